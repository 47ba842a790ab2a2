"""The job resource as the API shows it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response

from t2v.eta import running_eta
from t2v.jobs import Job, JobStatus
from t2v.settings import DEFAULT_VIDEO_RETENTION_S, Settings
from t2v.store.core import video_finished_at

JSON_MEDIA_TYPE = "application/json"
# The most jobs one page of `GET /v1/jobs` holds (status enforces it, the OpenAPI document says it).
MAX_PAGE = 100


def iso_time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return _iso_time(epoch)


def _iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def expires_at(job: Job, retention_s: float) -> float | None:
    """When the job's video expires (None: the job has no video)."""
    return video_finished_at(job) + retention_s if job.video is not None else None


def job_resource(
    job: Job,
    base: str,
    *,
    queue_position: int | None = None,
    eta_s: float | None = None,
    retention_s: float = DEFAULT_VIDEO_RETENTION_S,
) -> dict[str, Any]:
    """`eta_s`: a queued job's ETA (`t2v.eta.job_eta`); a running job's is its worker's."""
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
            # Of the whole job's time: below 100 while work is left, 100 once it succeeded.
            "percent": 100.0 if job.status == JobStatus.SUCCEEDED else job.progress.percent,
            "phase_percent": _percent(job.progress.phase_done),
            "attempt": job.progress.attempt,
        }
    if eta_s is None and job.status == JobStatus.RUNNING:
        eta_s = running_eta(job)
    error = job.error.summary() if job.error is not None else None
    return {
        "id": job.id,
        "object": "job",
        "status": job.status.value,
        "phase": job.phase,
        "progress": progress,
        "queue_position": queue_position,
        "estimated_seconds": job.estimated_s,
        "eta_seconds": round(eta_s, 1) if eta_s is not None and not job.status.terminal else None,
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
    job: Job,
    base: str,
    settings: Settings,
    *,
    queue_position: int | None = None,
    eta_s: float | None = None,
) -> dict[str, Any]:
    """`job_resource` with the video retention the settings say."""
    return job_resource(
        job,
        base,
        queue_position=queue_position,
        eta_s=eta_s,
        retention_s=settings.video_retention_s,
    )


def _percent(share: float | None) -> float | None:
    return round(100.0 * share, 1) if share is not None else None


def json_body(content: object) -> bytes:
    """Compact UTF-8 JSON, as Starlette's JSONResponse renders it (orjson also takes the
    job's dataclasses and enums as they are)."""
    return orjson.dumps(content)


def json_response(
    content: object, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json_body(content), status_code=status_code, headers=headers, media_type=JSON_MEDIA_TYPE
    )
