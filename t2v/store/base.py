"""The JobStore interface. `t2v.store.core.JobStoreCore` implements it once, over each
backend; every backend passes `tests/contracts/test_job_store.py`."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from t2v.jobs import Job, JobStatus, JobUpdate

# Entries a job's change log keeps (the newest): far more than one job's milestones.
CHANGE_LOG_LENGTH = 1000


@dataclass(frozen=True)
class IdempotencyClaim:
    """An `Idempotency-Key` and the hash of the request body it was first used with."""

    key: str
    request_hash: str
    ttl_s: float = 24 * 3600.0


class UnfinishedLimitReached(Exception):
    """`create` with `max_unfinished`: the tenant already has that many queued or running jobs."""

    def __init__(self, tenant: str, limit: int) -> None:
        super().__init__(f"tenant {tenant} has {limit} unfinished jobs")
        self.tenant = tenant
        self.limit = limit


@dataclass(frozen=True)
class CreateResult:
    job: Job
    created: bool
    # The job's `queue_position` right after the create (None: not queued).
    queue_position: int | None = None


@dataclass(frozen=True)
class ApplyResult:
    job: Job
    applied: bool
    # Why an update that would have changed the job was refused (`t2v.store.core.refusal`);
    # None when it was applied or was simply stale.
    refused: str | None = None


@dataclass(frozen=True)
class Lease:
    job_id: str
    worker_id: str
    attempt: int
    expires_at: float


@dataclass(frozen=True)
class JobChange:
    """One entry of a job's change log: the job as one write left it, and that write's
    number (1 for the create, one more for each write after it)."""

    seq: int
    job: Job


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


class JobStore(Protocol):
    async def create(
        self,
        job: Job,
        idempotency: IdempotencyClaim | None = None,
        *,
        max_unfinished: int | None = None,
    ) -> CreateResult:
        """Store a new job. With an idempotency claim already used for the same request hash
        by the same tenant, return that job (created=False); with another hash raise
        `IdempotencyConflictError`. With `max_unfinished`, raise `UnfinishedLimitReached`
        when the tenant already has that many queued or running jobs, checked in the same
        transaction as the write (concurrent creates never overshoot it). Atomic: nothing is
        stored on error."""
        ...

    async def get(self, job_id: str) -> Job | None: ...

    async def get_with_position(self, job_id: str) -> tuple[Job | None, int | None]:
        """The job and its `queue_position` (what a status read shows)."""
        ...

    async def list(
        self,
        *,
        tenant: str | None,
        status: JobStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        """Newest first. `tenant=None` lists every tenant's jobs (admin)."""
        ...

    async def apply(self, update: JobUpdate) -> ApplyResult:
        """Apply an update with `t2v.jobs.merge` as one compare-and-set; an update with a
        `reporter` only when `t2v.store.core.refusal` finds none (it must come from the
        job's current lease). Raises `NotFoundError` for an unknown job."""
        ...

    async def request_cancel(self, job_id: str, *, at: float) -> Job:
        """A queued job becomes `canceled` at once; a running one gets its cancel flag set
        (the worker stops within one step); a finished one is returned unchanged."""
        ...

    async def is_cancel_requested(self, job_id: str) -> bool: ...

    async def claim(self, job_id: str, worker_id: str, *, ttl_s: float, now: float) -> Lease | None:
        """Take the job's lease when it is free, expired or already ours; each new holder
        gets the next attempt number. None when another live worker holds it."""
        ...

    async def renew(self, lease: Lease, *, ttl_s: float, now: float) -> bool:
        """Extend our lease; False when it was lost (expired and taken over)."""
        ...

    async def release(self, lease: Lease) -> None: ...

    async def lease_of(self, job_id: str) -> Lease | None: ...

    async def stale_jobs(
        self, *, now: float, queued_before: float, limit: int = 100
    ) -> builtins.list[Job]:
        """Running jobs whose lease expired (or never existed), and queued jobs created
        before `queued_before`: the sweep re-requests these."""
        ...

    async def delete(self, job_id: str) -> Job:
        """Delete a finished job (its index entries and lease too) and return it as it was.
        `ConflictError` `job_not_finished` for a queued or running job, `NotFoundError` for
        an unknown one."""
        ...

    async def expire_video(self, job_id: str) -> Job:
        """Mark the job's video expired (`Job.video_expired`): the job no longer holds it."""
        ...

    async def videos_finished_before(
        self, finished_before: float, *, limit: int = 100
    ) -> builtins.list[Job]:
        """Jobs holding a video (`Job.held_video_key`) that finished before
        `finished_before`, oldest first: the retention sweep expires these."""
        ...

    async def count_video_holders(self, key: str) -> int:
        """How many jobs hold the video under `key` (content-addressed: several may)."""
        ...

    async def record_sweep(self, job_id: str) -> Job:
        """Count one re-request by the sweep and return the job."""
        ...

    async def queue_position(self, job: Job) -> int | None:
        """1-based position among queued jobs (oldest first), None when not queued.

        The embedded SQLite store counts at most 100 jobs ahead (it has no order-statistic
        index, and counting is linear) and reports 100 for any job further back; Redis is
        exact (ZCOUNT on its sorted set).
        """
        ...

    async def jobs_ahead(
        self, job: Job, *, limit: int
    ) -> tuple[builtins.list[Job], builtins.list[Job]]:
        """What a queued job waits for: the running jobs and the queued jobs created before
        it, each oldest first and at most `limit` of each."""
        ...

    async def read_record(self, name: str) -> dict[str, Any] | None:
        """A small named record that is not a job (infer's ETA figures), None if unset."""
        ...

    async def update_record(
        self, name: str, change: Callable[[dict[str, Any] | None], dict[str, Any]]
    ) -> dict[str, Any]:
        """Replace the record with `change(stored)` as one compare-and-set (retried on a
        conflict, so concurrent updates from several workers are all kept)."""
        ...

    async def count(self, status: JobStatus) -> int:
        """How many jobs of every tenant have this status (queue depth for metrics)."""
        ...

    async def count_unfinished(self, tenant: str) -> int:
        """How many of the tenant's jobs are queued or running (the active-jobs cap)."""
        ...

    async def changes(
        self, job_id: str, *, after_seq: int, limit: int = 100
    ) -> builtins.list[JobChange]:
        """The job's change log after `after_seq`, oldest first, at most `limit` entries.
        Every write of a job appends one, in the same transaction; the log keeps the job's
        last `CHANGE_LOG_LENGTH` or so (Redis trims it approximately) and goes with the job."""
        ...

    async def last_change(self, job_id: str) -> JobChange | None:
        """The newest entry of the job's change log (None: the job has none)."""
        ...

    async def wait_for_changes(
        self, job_id: str, *, after_seq: int, timeout_s: float
    ) -> builtins.list[JobChange]:
        """`changes` once there are any, or [] after `timeout_s` (SQLite polls; Redis blocks
        on connections of their own, so waiting streams never hold the store's others)."""
        ...

    async def ping(self) -> None:
        """Raise `UnavailableError` when the backend cannot be reached."""
        ...

    async def close(self) -> None: ...
