"""The job resource as the API shows it."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response

from t2v.jobs import Job, JobStatus
from t2v.settings import DEFAULT_VIDEO_RETENTION_S, Settings
from t2v.store.core import video_finished_at

JSON_MEDIA_TYPE = "application/json"


def iso_time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return _iso_time(epoch)


@functools.lru_cache(maxsize=4096)
def _iso_time(epoch: float) -> str:
    # A job's timestamps never change and are shown on every poll.
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def eta_seconds(
    job: Job, queue_position: int | None, *, workers: int = 1, now: float | None = None
) -> float | None:
    """Seconds until the job should finish.

    Queued: the jobs ahead are assumed to cost about what this one does, `workers` at a
    time. Running: the pace of the steps so far, or the estimate before the first step.
    """
    if job.estimated_s is None or job.status.terminal:
        return None
    if job.status == JobStatus.QUEUED:
        if queue_position is None:
            return None
        return round(job.estimated_s * math.ceil(queue_position / max(1, workers)), 1)
    now = time.time() if now is None else now
    elapsed = now - (job.started_at or now)
    progress = job.progress
    if progress is None or progress.step == 0 or progress.total == 0:
        return round(max(0.0, job.estimated_s - elapsed), 1)
    per_step = elapsed / progress.step
    return round(per_step * (progress.total - progress.step), 1)


def expires_at(job: Job, retention_s: float) -> float | None:
    """When the job's video expires (None: the job has no video)."""
    return video_finished_at(job) + retention_s if job.video is not None else None


def job_resource(
    job: Job,
    base: str,
    *,
    queue_position: int | None = None,
    workers: int = 1,
    retention_s: float = DEFAULT_VIDEO_RETENTION_S,
) -> dict[str, Any]:
    self_url = f"{base}/v1/jobs/{job.id}"
    links: dict[str, str] = {"self": self_url}
    if not job.status.terminal:
        links["cancel"] = f"{self_url}/cancel"
    video: dict[str, Any] | None = None
    if job.video is not None and not job.video_expired:
        links["video"] = f"{self_url}/video"
        video = {
            "url": links["video"],
            "sha256": job.video.sha256,
            "bytes": job.video.bytes,
            "width": job.video.width,
            "height": job.video.height,
            "num_frames": job.video.num_frames,
            "fps": job.video.fps,
            "duration_s": job.video.duration_s,
        }
    progress = None
    if job.progress is not None:
        progress = {
            "step": job.progress.step,
            "total": job.progress.total,
            "percent": job.progress.percent,
            "attempt": job.progress.attempt,
        }
    error = job.error.summary() if job.error is not None else None
    return {
        "id": job.id,
        "object": "job",
        "status": job.status.value,
        "phase": job.phase,
        "progress": progress,
        "queue_position": queue_position,
        "estimated_seconds": job.estimated_s,
        "eta_seconds": eta_seconds(job, queue_position, workers=workers),
        "params": job.params,
        "created_at": iso_time(job.created_at),
        "started_at": iso_time(job.started_at),
        "finished_at": iso_time(job.finished_at),
        "cancel_requested": job.cancel_requested,
        "error": error,
        "video": video,
        # When the video is (or was) removed by the retention sweep.
        "expires_at": iso_time(expires_at(job, retention_s)),
        "links": links,
    }


def resource_for(
    job: Job, base: str, settings: Settings, *, queue_position: int | None = None
) -> dict[str, Any]:
    """`job_resource` with what the settings say (workers for the ETA, video retention)."""
    return job_resource(
        job,
        base,
        queue_position=queue_position,
        workers=settings.infer_workers,
        retention_s=settings.video_retention_s,
    )


def json_body(content: object) -> bytes:
    """Compact UTF-8 JSON, as Starlette's JSONResponse renders it, by orjson: the json
    module took 30-40 us for a job resource, on every submit and status poll."""
    return orjson.dumps(content)


def json_response(
    content: object, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json_body(content), status_code=status_code, headers=headers, media_type=JSON_MEDIA_TYPE
    )
