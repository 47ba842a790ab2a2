"""The job model and the one rule set for changing a job.

Every store applies `merge` inside its own compare-and-set, so duplicate, late and
out-of-order events can never move a job backwards, whatever the backend.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from rust_infer import NormalizedParams


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def terminal(self) -> bool:
        return _RANK[self] == 2


_RANK = {
    JobStatus.QUEUED: 0,
    JobStatus.RUNNING: 1,
    JobStatus.SUCCEEDED: 2,
    JobStatus.FAILED: 2,
    JobStatus.CANCELED: 2,
}

# Phases while running, in the order a generation goes through them.
PHASES = ("starting", "denoising", "decoding", "encoding", "uploading")
# From this phase on the video is being stored: a cancel is too late (infer enters it with a
# compare-and-set that a cancel request made first refuses).
COMMITTED_PHASE = "uploading"
# A job's failure code when the model process died under it twice (t2v/worker/child.py).
WORKER_CRASHED = "worker_crashed"


def new_job_id() -> str:
    """``job_`` and 32 hex digits: the time in milliseconds (12), then 80 random bits (20).

    Time first, as in UUIDv7: a new job's id lands at the end of the store's id index, not
    on a random page of it.
    """
    return f"job_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


@dataclass(frozen=True)
class JobError:
    code: str
    message: str
    retryable: bool = False
    details: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The error as events and the API carry it (`details` only when there are any)."""
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.details:
            body["details"] = dict(self.details)
        return body


@dataclass(frozen=True)
class Progress:
    attempt: int
    step: int
    total: int
    # What the worker said at `at` (t2v.eta): its report number within the attempt (orders
    # reports of one step and phase), seconds left, and the shares done of the whole job
    # and of the current phase.
    seq: int = 0
    eta_s: float | None = None
    at: float | None = None
    done: float | None = None
    phase_done: float | None = None

    @property
    def percent(self) -> float:
        """Of the whole job's time when the worker said, else of the steps."""
        if self.done is not None:
            return round(100.0 * min(self.done, 0.999), 1)
        return round(100.0 * self.step / self.total, 1) if self.total else 0.0


@dataclass(frozen=True)
class VideoInfo:
    key: str
    sha256: str
    bytes: int
    width: int
    height: int
    num_frames: int
    fps: float
    duration_s: float


@dataclass(frozen=True)
class Job:
    id: str
    tenant: str
    status: JobStatus
    params: NormalizedParams
    created_at: float
    phase: str | None = None
    progress: Progress | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: JobError | None = None
    video: VideoInfo | None = None
    cancel_requested: bool = False
    sweeps: int = 0
    estimated_s: float | None = None
    # The artifact key the lease holder committed to when it entered `COMMITTED_PHASE`: the
    # only video a `job.succeeded` may name for this job.
    artifact_key: str | None = None
    # The retention sweep removed the video (the job and its description stay).
    video_expired: bool = False

    @property
    def held_video_key(self) -> str | None:
        """The artifact key of the video this job still holds (None: none, or expired).
        Videos are content-addressed, so several jobs may hold one key."""
        return self.video.key if self.video is not None and not self.video_expired else None

    def to_dict(self) -> dict[str, Any]:
        """The job as plain JSON-ready data (what the stores keep)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Job:
        data = dict(raw)
        data["status"] = JobStatus(data["status"])
        if data.get("progress") is not None:
            data["progress"] = Progress(**data["progress"])
        if data.get("error") is not None:
            data["error"] = JobError(**data["error"])
        if data.get("video") is not None:
            data["video"] = VideoInfo(**data["video"])
        return cls(**data)


def encode_job(job: Job) -> bytes:
    """The job as stored: `job.to_dict()` as JSON."""
    return orjson.dumps(job.to_dict())


def decode_job(text: str | bytes) -> Job:
    """The job stored as ``text`` (what `encode_job` wrote)."""
    return Job.from_dict(orjson.loads(text))


@dataclass(frozen=True)
class Reporter:
    """Who reports an update: the worker and attempt of the lease it says it holds."""

    worker: str
    attempt: int


@dataclass(frozen=True)
class JobUpdate:
    """A change reported by an event. Fields left None are not touched.

    `reporter` is None for a writer the store trusts (a function writing the store itself);
    an update from an event names the lease it comes from, and the store applies it only
    when that lease is the job's current one (`t2v.store.core.refusal`).
    """

    job_id: str
    status: JobStatus
    phase: str | None = None
    progress: Progress | None = None
    at: float | None = None
    error: JobError | None = None
    video: VideoInfo | None = None
    reporter: Reporter | None = None
    artifact_key: str | None = None


def _progress_key(progress: Progress | None) -> tuple[int, int]:
    return (progress.attempt, progress.step) if progress else (-1, -1)


def merge(job: Job, update: JobUpdate) -> Job | None:
    """Return the job with `update` applied, or None when the update is stale.

    Status only climbs in rank and the first terminal status wins. While running, progress
    is ordered by (attempt, step, phase, the worker's report number), so a redelivered or
    late progress event is ignored.
    """
    if job.status.terminal:
        return None
    target = update.status
    if target.rank < job.status.rank:
        return None
    if target.terminal:
        return dataclasses.replace(
            job,
            status=target,
            phase=None,
            finished_at=update.at,
            started_at=job.started_at if job.started_at is not None else update.at,
            error=update.error,
            video=update.video,
            progress=update.progress or job.progress,
        )
    if target == JobStatus.RUNNING:
        if update.phase == COMMITTED_PHASE and job.cancel_requested:
            return None
        if job.status == JobStatus.RUNNING and _progress_key(update.progress) < _progress_key(
            job.progress
        ):
            return None
        if (
            job.status == JobStatus.RUNNING
            and _progress_key(update.progress) == _progress_key(job.progress)
            and (_phase_index(update.phase), _seq(update.progress))
            <= (_phase_index(job.phase), _seq(job.progress))
        ):
            return None
        return dataclasses.replace(
            job,
            status=target,
            phase=update.phase or job.phase,
            progress=update.progress or job.progress,
            started_at=job.started_at if job.started_at is not None else update.at,
            artifact_key=update.artifact_key or job.artifact_key,
        )
    return None


def cancel(job: Job, *, at: float) -> Job | None:
    """The job after a cancel request, or None when it has already finished.

    A queued job is canceled at once (it never runs); a running one is flagged, and its
    worker stops within one denoising step, or at the end of decoding or encoding, and
    reports `job.canceled`. Once the worker is storing the video (`COMMITTED_PHASE`) it is
    too late: None, as for a finished job.
    """
    if job.status.terminal or is_committed(job):
        return None
    if job.status == JobStatus.QUEUED:
        return dataclasses.replace(
            job, status=JobStatus.CANCELED, finished_at=at, cancel_requested=True
        )
    return dataclasses.replace(job, cancel_requested=True)


def is_committed(job: Job) -> bool:
    """The job's video is being stored or is stored: a cancel can no longer stop it."""
    if job.status == JobStatus.SUCCEEDED:
        return True
    return job.status == JobStatus.RUNNING and job.phase == COMMITTED_PHASE


def _seq(progress: Progress | None) -> int:
    return progress.seq if progress else 0


def _phase_index(phase: str | None) -> int:
    return PHASES.index(phase) if phase in PHASES else -1
