"""The artifact step: frames to a verified MP4 in the artifact store.

A file is published only when rust_infer's structural probe agrees with the job: a video
with the wrong frame count or size is never handed to a user.
"""

from __future__ import annotations

import asyncio
from typing import Any

import rust_infer
from t2v.jobs import Job
from t2v.metrics import metrics, time_phase
from t2v.runtime import Runtime

CONTENT_TYPE = "video/mp4"


class ArtifactMismatch(Exception):
    """The MP4's probe disagrees with the job's request."""


def describe(job: Job, key: str, data: bytes) -> dict[str, Any]:
    """Probe `data` and check it against the job; the job's `video` description."""
    try:
        probe = rust_infer.probe_mp4(data)
    except ValueError as exc:
        raise ArtifactMismatch(f"{key} is not a readable MP4: {exc}") from exc
    params = job.params
    expected = (params["num_frames"], params["width"], params["height"])
    found = (probe["num_frames"], probe["width"], probe["height"])
    if found != expected:
        raise ArtifactMismatch(f"{key}: probe found (frames, w, h) {found}, job wants {expected}")
    return {
        "key": key,
        "sha256": rust_infer.sha256_hex(data),
        "bytes": len(data),
        "width": probe["width"],
        "height": probe["height"],
        "num_frames": probe["num_frames"],
        "fps": probe["fps"],
        "duration_s": probe["duration_s"],
    }


def video_key(content_key: str, tenant: str, *, shared: bool) -> str:
    """Where a job's video is stored: its content address inside the tenant's own folder, so
    a cache hit only ever reuses the same tenant's video; one folder for every tenant only
    where `T2V_SHARE_VIDEO_CACHE` allows it."""
    if shared:
        return content_key
    folder, _, name = content_key.rpartition("/")
    return f"{folder}/{tenant}/{name}"


async def cached_video(rt: Runtime, job: Job, key: str) -> dict[str, Any] | None:
    """The stored video for this content address, if a previous run made it."""
    if await rt.artifacts.size(key) is None:
        return None
    data = await rt.artifacts.read(key)
    try:
        return describe(job, key, data)
    except ArtifactMismatch:
        return None


async def encode_video(job: Job, key: str, frames: Any) -> tuple[bytes, dict[str, Any]]:
    """The MP4 of ``frames`` and its checked description (ArtifactMismatch when wrong)."""
    with time_phase("encode"):
        data = await asyncio.to_thread(rust_infer.encode_mp4, frames, job.params["fps"])
    return data, describe(job, key, data)


async def store_video(rt: Runtime, key: str, data: bytes) -> None:
    with time_phase("upload"):
        await rt.artifacts.put(key, data, content_type=CONTENT_TYPE)
    metrics().artifact_bytes.observe(len(data))
