"""What only the S3 store must show: its URL format, the object metadata it writes
(content type, SHA-256 checksum, multipart), capped presigned lifetimes, and 503s."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from t2v.artifacts import open_artifact_store
from t2v.artifacts.s3 import S3ArtifactStore
from t2v.errors import UnavailableError
from tests.contracts.backends import create_bucket
from tests.services import S3Server, free_port


@pytest.fixture
def s3_env(s3_service: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3_service.credentials_env().items():
        monkeypatch.setenv(name, value)
    return s3_service


def raw_client(server: S3Server) -> Any:
    return boto3.client("s3", endpoint_url=server.endpoint_url, region_name=server.region)


def store_url(server: S3Server, bucket: str, **extra: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"endpoint_url": server.endpoint_url,
                                              "path_style": "1", **extra}.items())  # fmt: skip
    return f"s3://{bucket}/clips?{query}"


async def test_objects_carry_content_type_and_a_verified_sha256(s3_env: S3Server) -> None:
    bucket = create_bucket(s3_env)
    store = open_artifact_store(store_url(s3_env, bucket))
    data = os.urandom(4096)
    await store.put("one.mp4", data, content_type="video/mp4")
    head = raw_client(s3_env).head_object(
        Bucket=bucket, Key="clips/one.mp4", ChecksumMode="ENABLED"
    )
    assert head["ContentType"] == "video/mp4"
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()


async def test_objects_above_the_threshold_go_up_in_parts(s3_env: S3Server) -> None:
    bucket = create_bucket(s3_env)
    store = open_artifact_store(store_url(s3_env, bucket, multipart_mb="5"))
    data = os.urandom(11 * 1024 * 1024)
    await store.put("big.mp4", data, content_type="video/mp4")
    head = raw_client(s3_env).head_object(Bucket=bucket, Key="clips/big.mp4")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag names its part count
    assert head["ContentType"] == "video/mp4"


async def test_presigned_lifetimes_are_capped_by_the_url_setting(s3_env: S3Server) -> None:
    bucket = create_bucket(s3_env)
    store = open_artifact_store(store_url(s3_env, bucket, expires="120", region="eu-west-1"))
    await store.put("x.mp4", b"x", content_type="video/mp4")

    async def signed(expires_s: int) -> dict[str, list[str]]:
        url = await store.presigned_url("x.mp4", expires_s=expires_s)
        assert url is not None and urlsplit(url).path == f"/{bucket}/clips/x.mp4"
        return parse_qs(urlsplit(url).query)

    assert (await signed(60))["X-Amz-Expires"] == ["60"]
    capped = await signed(3600)
    assert capped["X-Amz-Expires"] == ["120"]
    assert "/eu-west-1/s3/" in capped["X-Amz-Credential"][0]


def test_the_url_names_bucket_prefix_and_options() -> None:
    store = S3ArtifactStore.from_url(
        "s3://media/videos/v1?endpoint_url=http://minio:9000&region=us-west-2&path_style=true"
    )
    assert store._bucket == "media" and store._prefix == "videos/v1"
    assert store._endpoint_url == "http://minio:9000" and store._path_style
    assert store._region == "us-west-2"
    with pytest.raises(ValueError):
        S3ArtifactStore.from_url("s3:///no-bucket")


async def test_an_unreachable_server_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    store = S3ArtifactStore.from_url(
        f"s3://bucket1?endpoint_url=http://127.0.0.1:{free_port()}&path_style=1"
    )
    with pytest.raises(UnavailableError) as raised:
        await store.size("a.mp4")
    assert raised.value.http_status == 503


async def test_a_presigned_url_names_one_object_for_its_lifetime_only(s3_env: S3Server) -> None:
    """The test server checks what S3 checks (tests/services.py): the signature over the
    object's key and the lifetime, so a URL edited to another key, or used late, is refused."""
    bucket = create_bucket(s3_env)
    store = open_artifact_store(store_url(s3_env, bucket))
    await store.put("mine.mp4", b"alice's video", content_type="video/mp4")
    await store.put("theirs.mp4", b"bob's video", content_type="video/mp4")
    url = await store.presigned_url("mine.mp4", expires_s=1)
    assert url is not None
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).content == b"alice's video"
        other_key = await client.get(url.replace("/clips/mine.mp4", "/clips/theirs.mp4", 1))
        assert other_key.status_code == 403
        assert b"SignatureDoesNotMatch" in other_key.content
        longer = await client.get(url.replace("X-Amz-Expires=1&", "X-Amz-Expires=3600&", 1))
        assert longer.status_code == 403 and b"SignatureDoesNotMatch" in longer.content
        # Past X-Amz-Date + X-Amz-Expires (whole seconds): two seconds is always past it.
        await asyncio.sleep(2.1)
        late = await client.get(url)
        assert late.status_code == 403
        assert b"expired" in late.content
