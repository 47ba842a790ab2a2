"""Lifecycle events <-> store updates: what infer says, and how status applies it.

Whatever carried it, an event moves a job only when it comes from the job's current lease
holder (its data names the worker and attempt; the store checks them, `t2v.store.core`),
and a `job.succeeded` only with a video that is in the artifact store, under the key the
holder committed to, with the reported size and sha256. Anything else is acknowledged and
ignored: counted in `t2v_lifecycle_events_refused` and logged once with the job id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from cloudevents.http import CloudEvent

from t2v import events
from t2v.artifacts import ArtifactStore
from t2v.errors import MalformedEventError, NotFoundError
from t2v.jobs import JobError, JobStatus, JobUpdate, Progress, Reporter, VideoInfo, merge
from t2v.metrics import metrics
from t2v.store import ApplyResult, JobStore

log = logging.getLogger(__name__)
VIDEO_UNVERIFIED = "video_unverified"

_STATUS_OF = {
    events.JOB_STARTED: JobStatus.RUNNING,
    events.JOB_PROGRESS: JobStatus.RUNNING,
    events.JOB_SUCCEEDED: JobStatus.SUCCEEDED,
    events.JOB_FAILED: JobStatus.FAILED,
    events.JOB_CANCELED: JobStatus.CANCELED,
}


# What a worker may add to job.started and job.progress about time (t2v.eta, Progress).
TIME_FIELDS = ("eta_s", "at", "done", "phase_done")


def started_data(
    job_id: str, attempt: int, worker: str, total: int, **eta: float
) -> dict[str, Any]:
    return {"job_id": job_id, "attempt": attempt, "worker": worker, "total_steps": total, **eta}


def progress_data(
    job_id: str, attempt: int, phase: str, step: int, total: int, *, worker: str, **eta: float
) -> dict[str, Any]:
    data = {"job_id": job_id, "attempt": attempt, "worker": worker, "phase": phase}
    return data | {"step": step, "total": total} | eta


def _progress(data: dict[str, Any], attempt: int, step: int, total: int) -> Progress:
    times = {name: float(data[name]) for name in TIME_FIELDS if data.get(name) is not None}
    return Progress(attempt, step, total, seq=int(data.get("seq", 0)), **times)


def lifecycle_update(event: CloudEvent, *, now: float) -> JobUpdate:
    """Turn a lifecycle event into the store update it stands for."""
    status = _STATUS_OF.get(event["type"])
    if status is None:
        raise MalformedEventError(f"status does not take {event['type']} events")
    data = events.event_data(event)
    job_id = str(data.get("job_id") or event.get("subject") or "")
    if not job_id:
        raise MalformedEventError("lifecycle event names no job (data.job_id or subject)")
    try:
        return _update(event["type"], status, job_id, data, now)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedEventError(f"{event['type']} data is malformed: {exc}") from exc


def _update(
    event_type: str, status: JobStatus, job_id: str, data: dict[str, Any], now: float
) -> JobUpdate:
    attempt = int(data.get("attempt", 1))
    # An event that names no worker names no lease: the store never takes it (submit's own
    # job.canceled and job.failed echo changes it already wrote, so they are stale anyway).
    by = Reporter(str(data.get("worker", "")), attempt)
    if event_type == events.JOB_STARTED:
        progress = _progress(data, attempt, 0, int(data["total_steps"]))
        return JobUpdate(job_id, status, phase="starting", progress=progress, at=now, reporter=by)
    if event_type == events.JOB_PROGRESS:
        progress = _progress(data, attempt, int(data["step"]), int(data["total"]))
        phase = str(data["phase"])
        return JobUpdate(job_id, status, phase=phase, progress=progress, at=now, reporter=by)
    if event_type == events.JOB_SUCCEEDED:
        return JobUpdate(job_id, status, at=now, video=VideoInfo(**data["video"]), reporter=by)
    if event_type == events.JOB_FAILED:
        error = data.get("error") or {}
        return JobUpdate(
            job_id,
            status,
            at=now,
            error=JobError(
                str(error.get("code", "internal")),
                str(error.get("message", "the job failed")),
                bool(error.get("retryable", False)),
            ),
            reporter=by,
        )
    return JobUpdate(job_id, status, at=now, reporter=by)


async def apply_lifecycle_event(
    store: JobStore, artifacts: ArtifactStore, event: CloudEvent, *, now: float
) -> ApplyResult:
    """Apply a lifecycle event under the rules above. `NotFoundError` for an unknown job."""
    update = lifecycle_update(event, now=now)
    job = await store.get(update.job_id)
    if job is None:
        raise NotFoundError(f"job {update.job_id} not found")
    if merge(job, update) is None:
        return ApplyResult(job, applied=False)  # stale: a redelivery, or out of order
    if update.video is not None and not await _video_is_stored(artifacts, update.video):
        result = ApplyResult(job, applied=False, refused=VIDEO_UNVERIFIED)
    else:
        result = await store.apply(update)
    if result.refused is not None:
        metrics().lifecycle_events_refused.labels(event["type"], result.refused).inc()
        log.warning(
            "%s for job %s from %s ignored: %s",
            event["type"],
            update.job_id,
            event["source"],
            result.refused,
        )
    return result


async def _video_is_stored(artifacts: ArtifactStore, video: VideoInfo) -> bool:
    """The artifact store holds `video.key` with the reported size and sha256."""
    if await artifacts.size(video.key) != video.bytes:
        return False
    data = await artifacts.read(video.key)
    return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest()) == video.sha256
