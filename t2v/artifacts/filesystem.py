"""The embedded ArtifactStore: files in a directory, written by rename so they appear whole."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

from t2v.artifacts.base import StoredArtifact
from t2v.errors import InvalidRequestError, NotFoundError


class FilesystemArtifactStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    @classmethod
    def from_url(cls, url: str) -> FilesystemArtifactStore:
        return cls(Path(url.removeprefix("file://")))

    def path_of(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(part in ("", ".", "..") for part in parts):
            raise InvalidRequestError(f"invalid artifact key {key!r}", code="invalid_key")
        return self._root.joinpath(*parts)

    async def put(self, key: str, data: bytes, *, content_type: str) -> StoredArtifact:
        path = self.path_of(key)

        def write() -> StoredArtifact:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return StoredArtifact(key, len(data), hashlib.sha256(data).hexdigest())

        return await asyncio.to_thread(write)

    async def size(self, key: str) -> int | None:
        path = self.path_of(key)
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            return None

    async def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        path = self.path_of(key)

        def read_range() -> bytes:
            try:
                with path.open("rb") as src:
                    src.seek(start)
                    return src.read() if end is None else src.read(max(0, end - start))
            except FileNotFoundError as exc:
                raise NotFoundError(f"artifact {key} not found") from exc

        return await asyncio.to_thread(read_range)

    async def presigned_url(self, key: str, *, expires_s: int) -> str | None:
        return None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path_of(key).unlink, missing_ok=True)
