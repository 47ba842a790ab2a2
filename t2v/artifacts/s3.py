"""The cluster ArtifactStore: an S3 bucket (AWS S3, MinIO or any S3-protocol server).

URL: `s3://BUCKET[/PREFIX]?endpoint_url=URL&region=REGION&path_style=1&expires=SECONDS`
- `endpoint_url`: the server for MinIO and other S3-protocol servers (default: AWS).
- `region`: the signing region (default: boto3's own, else `us-east-1`).
- `path_style=1`: `http://host/bucket/key` addressing, which MinIO needs.
- `expires`: the longest lifetime, in seconds, a presigned URL may have (default 3600);
  `presigned_url` gives the shorter of this and what the caller asks for.
- `multipart_mb`: objects above this size go up in parts (default 16).

Credentials come from boto3's standard chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
a profile, or the pod's IAM role), never from the URL. The bucket must already exist.

boto3 is blocking, so every call runs in a worker thread. A single PUT and a completed
multipart upload both make the object appear whole, which gives the atomic `put` the
interface asks for. Every upload sends SHA-256 checksums (of the whole object, or of each
part), which S3 and MinIO verify and keep with the object.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.exceptions as boto_errors
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from t2v.artifacts.base import StoredArtifact
from t2v.errors import InvalidRequestError, NotFoundError, UnavailableError

T = TypeVar("T")

DEFAULT_MAX_EXPIRES_S = 3600
DEFAULT_MULTIPART_BYTES = 16 * 1024 * 1024
# SigV4 presigned URLs cannot live longer than seven days.
_SIGV4_MAX_EXPIRES_S = 7 * 24 * 3600
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


def _validated_key(key: str) -> str:
    # The same rule as the filesystem store, so a key valid in one store is valid in both.
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") for part in parts):
        raise InvalidRequestError(f"invalid artifact key {key!r}", code="invalid_key")
    return key


def _error_code(exc: boto_errors.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _http_status(exc: boto_errors.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class S3ArtifactStore:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        path_style: bool = False,
        max_expires_s: int = DEFAULT_MAX_EXPIRES_S,
        multipart_threshold: int = DEFAULT_MULTIPART_BYTES,
    ) -> None:
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._endpoint_url = endpoint_url
        self._region = region
        self._path_style = path_style
        self._max_expires_s = min(max_expires_s, _SIGV4_MAX_EXPIRES_S)
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(multipart_threshold, 5 * 1024 * 1024),
        )
        self._multipart_threshold = multipart_threshold
        self._client: Any = None

    @classmethod
    def from_url(cls, url: str) -> S3ArtifactStore:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"artifact store URL {url!r} must look like s3://bucket/prefix")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        return cls(
            parts.netloc,
            parts.path,
            endpoint_url=query.get("endpoint_url") or None,
            region=query.get("region") or None,
            path_style=query.get("path_style", "0").lower() in ("1", "true", "yes"),
            max_expires_s=int(query.get("expires", DEFAULT_MAX_EXPIRES_S)),
            multipart_threshold=int(float(query.get("multipart_mb", 16)) * 1024 * 1024),
        )

    def _s3(self) -> Any:
        # Built on first use (not at construction) so opening a store touches no network.
        if self._client is None:
            session = boto3.session.Session()
            self._client = session.client(
                "s3",
                endpoint_url=self._endpoint_url,
                region_name=self._region or session.region_name or "us-east-1",
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path" if self._path_style else "auto"},
                    retries={"mode": "standard", "max_attempts": 3},
                    connect_timeout=5,
                    read_timeout=60,
                ),
            )
        return self._client

    def _object_key(self, key: str) -> str:
        key = _validated_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    async def _call(self, operation: Callable[[Any], T]) -> T:
        def run() -> T:
            try:
                return operation(self._s3())
            except (
                boto_errors.EndpointConnectionError,
                boto_errors.ConnectionClosedError,
                boto_errors.ConnectTimeoutError,
                boto_errors.ReadTimeoutError,
                boto_errors.NoCredentialsError,
            ) as exc:
                raise UnavailableError(f"artifact store unavailable: {exc}") from exc
            except boto_errors.ClientError as exc:
                if _http_status(exc) >= 500:
                    raise UnavailableError(f"artifact store unavailable: {exc}") from exc
                raise

        return await asyncio.to_thread(run)

    async def put(self, key: str, data: bytes, *, content_type: str) -> StoredArtifact:
        object_key = self._object_key(key)
        digest = hashlib.sha256(data)

        def upload(s3: Any) -> None:
            if len(data) < self._multipart_threshold:
                s3.put_object(
                    Bucket=self._bucket,
                    Key=object_key,
                    Body=data,
                    ContentType=content_type,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
                )
                return
            # Each part carries its own SHA-256 checksum; the server checks every one.
            s3.upload_fileobj(
                io.BytesIO(data),
                self._bucket,
                object_key,
                ExtraArgs={"ContentType": content_type, "ChecksumAlgorithm": "SHA256"},
                Config=self._transfer,
            )

        await self._call(upload)
        return StoredArtifact(key, len(data), digest.hexdigest())

    async def size(self, key: str) -> int | None:
        object_key = self._object_key(key)

        def head(s3: Any) -> int | None:
            try:
                response = s3.head_object(Bucket=self._bucket, Key=object_key)
            except boto_errors.ClientError as exc:
                if _error_code(exc) in _MISSING_CODES:
                    return None
                raise
            return int(response["ContentLength"])

        return await self._call(head)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        object_key = self._object_key(key)
        if end is not None and end <= start:
            # An empty range has no HTTP form; answer it as the filesystem store does.
            if await self.size(key) is None:
                raise NotFoundError(f"artifact {key} not found")
            return b""

        def get(s3: Any) -> bytes:
            extra = {}
            if start > 0 or end is not None:
                extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
            try:
                response = s3.get_object(Bucket=self._bucket, Key=object_key, **extra)
            except boto_errors.ClientError as exc:
                if _error_code(exc) in _MISSING_CODES:
                    raise NotFoundError(f"artifact {key} not found") from exc
                if _error_code(exc) == "InvalidRange":
                    return b""  # starts past the end: nothing there, as with a file
                raise
            body: bytes = response["Body"].read()
            return body

        return await self._call(get)

    async def presigned_url(self, key: str, *, expires_s: int) -> str | None:
        object_key = self._object_key(key)
        lifetime = max(1, min(expires_s, self._max_expires_s))

        def sign(s3: Any) -> str:
            url: str = s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": object_key},
                ExpiresIn=lifetime,
            )
            return url

        return await self._call(sign)

    async def delete(self, key: str) -> None:
        object_key = self._object_key(key)
        await self._call(lambda s3: s3.delete_object(Bucket=self._bucket, Key=object_key))
