"""The ArtifactStore interface.

Every implementation passes `tests/contracts/test_artifact_store.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StoredArtifact:
    key: str
    bytes: int
    sha256: str


class ArtifactStore(Protocol):
    async def put(self, key: str, data: bytes, *, content_type: str) -> StoredArtifact:
        """Store `data` under `key` atomically: readers see the whole object or nothing."""
        ...

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, None when it does not exist."""
        ...

    async def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end) of the object (end None: to the end). NotFoundError if absent."""
        ...

    async def presigned_url(self, key: str, *, expires_s: int) -> str | None:
        """A URL a client can download from directly, or None when the store has none
        (then the status function serves the bytes itself)."""
        ...

    async def delete(self, key: str) -> None: ...
