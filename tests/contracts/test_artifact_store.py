"""The ArtifactStore contract: every backend (`artifact_store` is parametrised over them)."""

from __future__ import annotations

import asyncio
import hashlib
import os

import httpx
import pytest

from t2v.artifacts.base import ArtifactStore, StoredArtifact
from t2v.artifacts.filesystem import FilesystemArtifactStore
from t2v.errors import InvalidRequestError, NotFoundError

MP4 = "video/mp4"


async def test_put_returns_size_and_sha256_and_the_bytes_read_back(
    artifact_store: ArtifactStore,
) -> None:
    data = os.urandom(10_000)
    stored = await artifact_store.put("videos/a/b.mp4", data, content_type=MP4)
    assert stored == StoredArtifact("videos/a/b.mp4", 10_000, hashlib.sha256(data).hexdigest())
    assert await artifact_store.size("videos/a/b.mp4") == 10_000
    assert await artifact_store.read("videos/a/b.mp4") == data


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, None), (0, 1), (5, 17), (17, None), (9_999, None), (9_990, 20_000), (50, 50),
     (10_000, None), (12_000, 13_000)],
)  # fmt: skip
async def test_read_returns_the_byte_range_asked_for(
    artifact_store: ArtifactStore, start: int, end: int | None
) -> None:
    data = os.urandom(10_000)
    await artifact_store.put("range.mp4", data, content_type=MP4)
    assert await artifact_store.read("range.mp4", start, end) == data[start:end]


async def test_a_missing_object_has_no_size_and_cannot_be_read(
    artifact_store: ArtifactStore,
) -> None:
    assert await artifact_store.size("missing.mp4") is None
    with pytest.raises(NotFoundError):
        await artifact_store.read("missing.mp4")
    with pytest.raises(NotFoundError):
        await artifact_store.read("missing.mp4", 3, 9)


async def test_put_replaces_an_object_whole(artifact_store: ArtifactStore) -> None:
    await artifact_store.put("same.mp4", b"x" * 5000, content_type=MP4)
    await artifact_store.put("same.mp4", b"short", content_type=MP4)
    assert await artifact_store.read("same.mp4") == b"short"
    assert await artifact_store.size("same.mp4") == 5


async def test_concurrent_puts_leave_one_whole_object(artifact_store: ArtifactStore) -> None:
    versions = [bytes([i]) * (20_000 + i) for i in range(6)]
    await asyncio.gather(
        *(artifact_store.put("race.mp4", data, content_type=MP4) for data in versions)
    )
    assert await artifact_store.read("race.mp4") in versions


async def test_a_large_object_round_trips(artifact_store: ArtifactStore) -> None:
    # Above the S3 fixture's multipart threshold, so it goes up in three parts there.
    data = os.urandom(11 * 1024 * 1024 + 123)
    stored = await artifact_store.put("big/video.mp4", data, content_type=MP4)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await artifact_store.size("big/video.mp4") == len(data)
    boundary = 5 * 1024 * 1024
    assert (
        await artifact_store.read("big/video.mp4", boundary - 10, boundary + 10)
        == (data[boundary - 10 : boundary + 10])
    )
    assert hashlib.sha256(await artifact_store.read("big/video.mp4")).hexdigest() == stored.sha256


async def test_delete_removes_an_object_and_tolerates_a_missing_one(
    artifact_store: ArtifactStore,
) -> None:
    await artifact_store.put("gone.mp4", b"data", content_type=MP4)
    await artifact_store.delete("gone.mp4")
    assert await artifact_store.size("gone.mp4") is None
    with pytest.raises(NotFoundError):
        await artifact_store.read("gone.mp4")
    await artifact_store.delete("gone.mp4")


@pytest.mark.parametrize("key", ["", "a//b.mp4", "../escape.mp4", "a/./b.mp4", "/abs.mp4", "a/"])
async def test_keys_that_could_escape_or_alias_are_rejected(
    artifact_store: ArtifactStore, key: str
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        await artifact_store.put(key, b"data", content_type=MP4)
    assert raised.value.code == "invalid_key"
    with pytest.raises(InvalidRequestError):
        await artifact_store.size(key)


async def test_a_presigned_url_serves_exactly_the_stored_bytes_until_it_expires(
    artifact_store: ArtifactStore,
) -> None:
    data = os.urandom(300_000)
    stored = await artifact_store.put("signed/video.mp4", data, content_type=MP4)
    url = await artifact_store.presigned_url("signed/video.mp4", expires_s=600)
    if isinstance(artifact_store, FilesystemArtifactStore):
        # No URL of its own: the status function serves the bytes itself.
        assert url is None
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"] == MP4
        assert hashlib.sha256(response.content).hexdigest() == stored.sha256

        short = await artifact_store.presigned_url("signed/video.mp4", expires_s=1)
        assert short is not None
        # Signed times have one-second resolution: after 2.5 s the URL is past its lifetime.
        await asyncio.sleep(2.5)
        expired = await client.get(short)
        assert expired.status_code == 403
        assert b"expired" in expired.content
        assert (await client.get(url)).status_code == 200
