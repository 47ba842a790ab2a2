"""The job store's rules, written once, over a small backend interface.

A backend (`t2v.store.sqlite`, `t2v.store.redis`) keeps three kinds of record: jobs with
their list indexes, worker leases and idempotency claims. It offers reads, a few index
queries and two compare-and-sets; everything the store decides is decided here.

Each change reads the records it depends on, computes the new record with the rules of
`t2v.jobs`, and asks the backend to write it only if those records are still what was read.
When another writer got there first, nothing is written and the change starts again from a
fresh read (optimistic concurrency), so duplicate and concurrent events from any number of
processes cannot move a job backwards. Records are compared by value: every rule is a
function of the stored values alone, so a record that changed and changed back is as good
as one that never moved.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from t2v.errors import ConflictError, IdempotencyConflictError, NotFoundError, UnavailableError
from t2v.jobs import Job, JobStatus, JobUpdate, Reporter, cancel, merge
from t2v.store.base import (
    ApplyResult,
    CreateResult,
    IdempotencyClaim,
    JobChange,
    JobPage,
    Lease,
    UnfinishedLimitReached,
)
from t2v.store.cursor import decode_cursor, encode_cursor

# Rounds of read and compare-and-set before a change gives up: far more than one job's
# events ever contend for, so running out means something is wrong.
MAX_ROUNDS = 500


@dataclass(frozen=True)
class IdempotencyRecord:
    """A claimed `Idempotency-Key` as stored: the request it was used with, the job it made."""

    request_hash: str
    job_id: str
    expires_at: float


@dataclass(frozen=True)
class ClaimWrite:
    """An idempotency record to store with a new job, if the stored one is still `expected`."""

    tenant: str
    key: str
    record: IdempotencyRecord
    expected: IdempotencyRecord | None
    ttl_s: float


class JobStoreBackend(Protocol):
    async def read_job(self, job_id: str) -> Job | None: ...

    async def read_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs among `job_ids` that exist, in the order asked."""
        ...

    async def read_lease(self, job_id: str) -> Lease | None: ...

    async def read_leases(self, job_ids: Sequence[str]) -> list[Lease | None]:
        """One entry per id, in the order asked."""
        ...

    async def read_claim(self, tenant: str, key: str) -> IdempotencyRecord | None: ...

    async def put_job(
        self,
        job: Job,
        *,
        expected: Job | None,
        claim: ClaimWrite | None = None,
        drop_lease: bool = False,
        max_unfinished: int | None = None,
    ) -> bool:
        """Store `job`, its index entries, an entry of its change log and `claim`, and with
        `drop_lease` delete its lease, in one transaction, if the stored job still equals
        `expected` (None: no job has this id) and the stored claim `claim.expected`, and (with
        `max_unfinished`) the job's tenant has fewer queued and running jobs than that. False,
        with nothing written, when any of these does not hold."""
        ...

    async def put_lease(self, lease: Lease, *, expected: Lease | None) -> bool:
        """Store `lease` if the job's stored lease still equals `expected`."""
        ...

    async def delete_job(self, job: Job) -> bool:
        """Delete the job with its index entries, lease and change log, in one transaction, if the
        stored job still equals `job`. False, with nothing deleted, when it has changed."""
        ...

    async def finished_videos(self, *, finished_before: float, limit: int) -> list[str]:
        """Ids of jobs holding a video (`Job.held_video_key`) that finished before
        `finished_before`, oldest first."""
        ...

    async def count_video_holders(self, key: str) -> int:
        """How many jobs hold the video stored under `key`."""
        ...

    async def read_record(self, name: str) -> str | None:
        """A small named record (JSON text) that is not a job: e.g. infer's ETA figures."""
        ...

    async def put_record(self, name: str, value: str, *, expected: str | None) -> bool:
        """Store the record if the stored one still equals `expected` (None: none yet)."""
        ...

    async def newest(
        self,
        *,
        tenant: str | None,
        status: JobStatus | None,
        limit: int,
        before: tuple[float, str] | None,
    ) -> list[tuple[float, str]]:
        """`(created_at, id)` of up to `limit` jobs, newest first, all ordered before
        `before`; `tenant=None` is every tenant, `status=None` every status."""
        ...

    async def oldest(
        self, status: JobStatus, *, created_before: float | None, offset: int, limit: int
    ) -> list[str]:
        """Ids of jobs with `status` (created before `created_before`), oldest first."""
        ...

    async def count_queued_before(self, created_at: float, job_id: str) -> int:
        """Queued jobs of every tenant ordered before `(created_at, job_id)`."""
        ...

    async def count(self, *, tenant: str | None, statuses: Sequence[JobStatus]) -> int: ...

    async def read_changes(self, job_id: str, *, after_seq: int, limit: int) -> list[JobChange]:
        """The job's change log after `after_seq`, oldest first (`put_job` appends to it)."""
        ...

    async def read_last_change(self, job_id: str) -> JobChange | None: ...

    async def wait_for_changes(
        self, job_id: str, *, after_seq: int, limit: int, timeout_s: float
    ) -> list[JobChange]:
        """`read_changes` once it has any, or [] after `timeout_s`."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


async def _rounds() -> AsyncIterator[int]:
    for round_ in range(MAX_ROUNDS):
        if round_:
            # Someone else wrote first: back off a little (more as it repeats), read again.
            await asyncio.sleep(random.uniform(0, 0.001 * min(round_, 20)))
        yield round_


def _too_contended() -> UnavailableError:
    return UnavailableError("job store too contended: a change kept conflicting")


def _key_reused() -> IdempotencyConflictError:
    return IdempotencyConflictError(
        "this Idempotency-Key was already used with a different request"
    )


def _not_found(job_id: str) -> NotFoundError:
    return NotFoundError(f"job {job_id} not found")


def video_finished_at(job: Job) -> float:
    """When the job's video was made: what retention counts from (backends index it)."""
    return job.finished_at if job.finished_at is not None else job.created_at


def _is_live(lease: Lease | None, now: float) -> bool:
    return lease is not None and lease.expires_at > now


NOT_LEASE_HOLDER = "not_lease_holder"
FOREIGN_VIDEO = "foreign_video"


def holds(lease: Lease | None, reporter: Reporter) -> bool:
    """Whether `reporter` is the job's current lease holder.

    Expiry does not matter: a lease that expired, or that its holder released after its
    last event (a retryable failure), still names its holder until another worker takes
    it, and taking it makes the next attempt, which no older event can name.
    """
    return lease is not None and (lease.worker_id, lease.attempt) == (
        reporter.worker,
        reporter.attempt,
    )


def refusal(job: Job, lease: Lease | None, update: JobUpdate) -> str | None:
    """Why a reported update that would change `job` is refused, or None to apply it.

    A job's outcome comes only from its current lease holder, and a video only under the
    artifact key that holder committed to (`Job.artifact_key`); writers the store trusts
    (`reporter` None) are not asked.
    """
    if update.reporter is None:
        return None
    if not holds(lease, update.reporter):
        return NOT_LEASE_HOLDER
    if update.video is not None and update.video.key != job.artifact_key:
        return FOREIGN_VIDEO
    return None


class JobStoreCore:
    """A `JobStore`: the rules above over one backend."""

    def __init__(self, backend: JobStoreBackend) -> None:
        self._backend = backend

    # Jobs ---------------------------------------------------------------------------------
    async def create(
        self,
        job: Job,
        idempotency: IdempotencyClaim | None = None,
        *,
        max_unfinished: int | None = None,
    ) -> CreateResult:
        backend = self._backend
        async for _ in _rounds():
            claim = None
            if idempotency is not None:
                record = await backend.read_claim(job.tenant, idempotency.key)
                if record is not None and record.expires_at > job.created_at:
                    if record.request_hash != idempotency.request_hash:
                        raise _key_reused()
                    earlier = await backend.read_job(record.job_id)
                    if earlier is not None:
                        return await self._created(earlier, created=False)
                    # The claim names a job that is gone: this job takes the claim over.
                claim = ClaimWrite(
                    job.tenant,
                    idempotency.key,
                    IdempotencyRecord(
                        idempotency.request_hash, job.id, job.created_at + idempotency.ttl_s
                    ),
                    expected=record,
                    ttl_s=idempotency.ttl_s,
                )
            if await backend.put_job(
                job, expected=None, claim=claim, max_unfinished=max_unfinished
            ):
                return await self._created(job, created=True)
            if await backend.read_job(job.id) is not None:
                raise ConflictError(f"job {job.id} already exists", code="job_exists")
            # Refused at the cap, or another write got in between: only a full count refuses
            # (a job that finished meanwhile made room, and the next round takes it).
            if (
                max_unfinished is not None
                and await self.count_unfinished(job.tenant) >= max_unfinished
            ):
                raise UnfinishedLimitReached(job.tenant, max_unfinished)
        raise _too_contended()

    async def _created(self, job: Job, *, created: bool) -> CreateResult:
        return CreateResult(job, created=created, queue_position=await self.queue_position(job))

    async def get(self, job_id: str) -> Job | None:
        return await self._backend.read_job(job_id)

    async def get_with_position(self, job_id: str) -> tuple[Job | None, int | None]:
        job = await self.get(job_id)
        return job, await self.queue_position(job) if job is not None else None

    async def _update(self, job_id: str, change: Callable[[Job], Job | None]) -> tuple[Job, bool]:
        """Read, `change` (None: nothing to do), compare-and-set: the job, and whether it
        changed. A job that ends gives up its lease in the same write."""
        async for _ in _rounds():
            job = await self._backend.read_job(job_id)
            if job is None:
                raise _not_found(job_id)
            changed = change(job)
            if changed is None:
                return job, False
            terminal = changed.status.terminal
            if await self._backend.put_job(changed, expected=job, drop_lease=terminal):
                return changed, True
        raise _too_contended()

    async def apply(self, update: JobUpdate) -> ApplyResult:
        # The lease is read once, before the job: a holder that loses its lease between the
        # two reads had it when its event was sent, which is as good as arriving earlier.
        lease = await self._backend.read_lease(update.job_id) if update.reporter else None
        refused: str | None = None

        def change(job: Job) -> Job | None:
            nonlocal refused
            changed = merge(job, update)
            refused = refusal(job, lease, update) if changed is not None else None
            return None if refused else changed

        job, applied = await self._update(update.job_id, change)
        return ApplyResult(job, applied=applied, refused=refused)

    async def request_cancel(self, job_id: str, *, at: float) -> Job:
        job, _ = await self._update(job_id, lambda job: cancel(job, at=at))
        return job

    async def is_cancel_requested(self, job_id: str) -> bool:
        job = await self.get(job_id)
        return job is not None and (job.cancel_requested or job.status == JobStatus.CANCELED)

    async def delete(self, job_id: str) -> Job:
        """Delete a finished job; a queued or running one is refused (`job_not_finished`):
        cancel it first. Returns the job as it was."""
        async for _ in _rounds():
            job = await self._backend.read_job(job_id)
            if job is None:
                raise _not_found(job_id)
            if not job.status.terminal:
                raise ConflictError(
                    f"job {job_id} is {job.status.value}: cancel it before deleting it",
                    code="job_not_finished",
                )
            if await self._backend.delete_job(job):
                return job
        raise _too_contended()

    async def expire_video(self, job_id: str) -> Job:
        """Mark the job's video expired, so that it no longer holds it (`video_expired`)."""
        job, _ = await self._update(
            job_id,
            lambda job: (
                dataclasses.replace(job, video_expired=True)
                if job.held_video_key is not None
                else None
            ),
        )
        return job

    async def record_sweep(self, job_id: str) -> Job:
        job, _ = await self._update(
            job_id, lambda job: dataclasses.replace(job, sweeps=job.sweeps + 1)
        )
        return job

    # Leases -------------------------------------------------------------------------------
    async def _update_lease(
        self, job_id: str, change: Callable[[Lease | None], Lease | None]
    ) -> Lease | None:
        """Read, `change` (None: nothing to do), compare-and-set: the lease written."""
        async for _ in _rounds():
            held = await self._backend.read_lease(job_id)
            lease = change(held)
            if lease is None:
                return None
            if await self._backend.put_lease(lease, expected=held):
                return lease
        raise _too_contended()

    async def claim(self, job_id: str, worker_id: str, *, ttl_s: float, now: float) -> Lease | None:
        def take(held: Lease | None) -> Lease | None:
            if held is None:
                attempt = 1
            elif held.worker_id == worker_id:
                attempt = held.attempt
            elif held.expires_at > now:
                return None  # another live worker has it
            else:
                attempt = held.attempt + 1
            return Lease(job_id, worker_id, attempt, now + ttl_s)

        return await self._update_lease(job_id, take)

    async def _set_expiry(self, lease: Lease, expires_at: float) -> bool:
        def extend(held: Lease | None) -> Lease | None:
            ours = held is not None and (held.worker_id, held.attempt) == (
                lease.worker_id,
                lease.attempt,
            )
            return dataclasses.replace(lease, expires_at=expires_at) if ours else None

        return await self._update_lease(lease.job_id, extend) is not None

    async def renew(self, lease: Lease, *, ttl_s: float, now: float) -> bool:
        return await self._set_expiry(lease, now + ttl_s)

    async def release(self, lease: Lease) -> None:
        # The lease stays (it remembers the attempt count), free for anyone at once.
        await self._set_expiry(lease, 0.0)

    async def lease_of(self, job_id: str) -> Lease | None:
        return await self._backend.read_lease(job_id)

    # Named records ------------------------------------------------------------------------
    async def read_record(self, name: str) -> dict[str, Any] | None:
        text = await self._backend.read_record(name)
        return orjson.loads(text) if text is not None else None

    async def update_record(
        self, name: str, change: Callable[[dict[str, Any] | None], dict[str, Any]]
    ) -> dict[str, Any]:
        """Read, `change`, compare-and-set: the record written."""
        async for _ in _rounds():
            text = await self._backend.read_record(name)
            record = change(orjson.loads(text) if text is not None else None)
            if await self._backend.put_record(name, orjson.dumps(record).decode(), expected=text):
                return record
        raise _too_contended()

    # Queries ------------------------------------------------------------------------------
    async def jobs_ahead(
        self, job: Job, *, limit: int
    ) -> tuple[builtins.list[Job], builtins.list[Job]]:
        """What a queued job waits for: the running jobs and the queued jobs created before
        it, each oldest first and at most `limit` of each."""
        statuses = ((JobStatus.RUNNING, None), (JobStatus.QUEUED, job.created_at))
        ids = [
            await self._backend.oldest(status, created_before=before, offset=0, limit=limit)
            for status, before in statuses
        ]
        found = await self._backend.read_jobs([*ids[0], *ids[1]])
        # The index and the jobs are read one after the other: drop a job that moved on.
        running = [other for other in found if other.status == JobStatus.RUNNING]
        queued = [
            other for other in found if other.status == JobStatus.QUEUED and other.id != job.id
        ]
        return running, queued

    async def list(
        self,
        *,
        tenant: str | None,
        status: JobStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        before = decode_cursor(cursor) if cursor is not None else None
        entries = await self._backend.newest(
            tenant=tenant, status=status, limit=limit + 1, before=before
        )
        jobs = await self._backend.read_jobs([job_id for _, job_id in entries[:limit]])
        if status is not None:
            # The index and the jobs are read one after the other: drop a job that moved on.
            jobs = [job for job in jobs if job.status == status]
        next_cursor = encode_cursor(*entries[limit - 1]) if len(entries) > limit > 0 else None
        return JobPage(jobs, next_cursor)

    async def stale_jobs(
        self, *, now: float, queued_before: float, limit: int = 100
    ) -> builtins.list[Job]:
        running = await self._unleased(JobStatus.RUNNING, None, now=now, limit=limit)
        queued = await self._unleased(JobStatus.QUEUED, queued_before, now=now, limit=limit)
        return sorted(running + queued, key=lambda job: (job.created_at, job.id))[:limit]

    async def _unleased(
        self, status: JobStatus, created_before: float | None, *, now: float, limit: int
    ) -> builtins.list[Job]:
        """The oldest `limit` jobs with `status` (created before `created_before`) that no
        live lease holds."""
        found: builtins.list[Job] = []
        batch = max(limit, 1)
        offset = 0
        while len(found) < limit:
            ids = await self._backend.oldest(
                status, created_before=created_before, offset=offset, limit=batch
            )
            leases = await self._backend.read_leases(ids)
            free = [i for i, lease in zip(ids, leases, strict=True) if not _is_live(lease, now)]
            found += [job for job in await self._backend.read_jobs(free) if job.status == status]
            if len(ids) < batch:
                break
            offset += batch
        return found[:limit]

    async def videos_finished_before(
        self, finished_before: float, *, limit: int = 100
    ) -> builtins.list[Job]:
        ids = await self._backend.finished_videos(finished_before=finished_before, limit=limit)
        return [job for job in await self._backend.read_jobs(ids) if job.held_video_key]

    async def count_video_holders(self, key: str) -> int:
        return await self._backend.count_video_holders(key)

    async def queue_position(self, job: Job) -> int | None:
        if job.status != JobStatus.QUEUED:
            return None
        return await self._backend.count_queued_before(job.created_at, job.id) + 1

    async def count(self, status: JobStatus) -> int:
        return await self._backend.count(tenant=None, statuses=(status,))

    async def count_unfinished(self, tenant: str) -> int:
        return await self._backend.count(
            tenant=tenant, statuses=(JobStatus.QUEUED, JobStatus.RUNNING)
        )

    # Change log ---------------------------------------------------------------------------
    async def changes(
        self, job_id: str, *, after_seq: int, limit: int = 100
    ) -> builtins.list[JobChange]:
        return await self._backend.read_changes(job_id, after_seq=after_seq, limit=limit)

    async def last_change(self, job_id: str) -> JobChange | None:
        return await self._backend.read_last_change(job_id)

    async def wait_for_changes(
        self, job_id: str, *, after_seq: int, timeout_s: float, limit: int = 100
    ) -> builtins.list[JobChange]:
        return await self._backend.wait_for_changes(
            job_id, after_seq=after_seq, limit=limit, timeout_s=timeout_s
        )

    async def ping(self) -> None:
        await self._backend.ping()

    async def close(self) -> None:
        await self._backend.close()
