"""Lifecycle events <-> store updates: what infer says, and how status applies it."""

from __future__ import annotations

from typing import Any

from cloudevents.http import CloudEvent

from t2v import events
from t2v.errors import MalformedEventError
from t2v.jobs import JobError, JobStatus, JobUpdate, Progress, VideoInfo

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
    job_id: str, attempt: int, phase: str, step: int, total: int, **eta: float
) -> dict[str, Any]:
    data = {"job_id": job_id, "attempt": attempt, "phase": phase, "step": step, "total": total}
    return data | eta


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
    if event_type == events.JOB_STARTED:
        progress = _progress(data, attempt, 0, int(data["total_steps"]))
        return JobUpdate(job_id, status, phase="starting", progress=progress, at=now)
    if event_type == events.JOB_PROGRESS:
        progress = _progress(data, attempt, int(data["step"]), int(data["total"]))
        return JobUpdate(job_id, status, phase=str(data["phase"]), progress=progress, at=now)
    if event_type == events.JOB_SUCCEEDED:
        return JobUpdate(job_id, status, at=now, video=VideoInfo(**data["video"]))
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
        )
    return JobUpdate(job_id, status, at=now)


def dead_letter_update(event: CloudEvent, job_id: str, *, now: float) -> JobUpdate:
    """A dead-lettered job.requested fails its job, keeping Knative's error attributes."""
    details = {
        name: str(event.get(name))
        for name in ("knativeerrordest", "knativeerrorcode", "knativeerrordata")
        if event.get(name) is not None
    }
    code = details.get("knativeerrorcode", "none")
    error = JobError(
        "delivery_failed",
        f"the broker could not deliver the job to a worker (last response: {code})",
        retryable=True,
        details=details,
    )
    return JobUpdate(job_id, JobStatus.FAILED, at=now, error=error)
