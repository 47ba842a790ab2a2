"""The JobStore contract: every backend (`job_store` is parametrised over them) passes it."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools

import pytest

from t2v.errors import IdempotencyConflictError, InvalidRequestError, NotFoundError
from t2v.jobs import Job, JobError, JobStatus, JobUpdate, Progress, VideoInfo, new_job_id
from t2v.store.base import IdempotencyClaim, JobStore, UnfinishedLimitReached
from tests.params import job_params

T0 = 1_700_000_000.0


def make_job(tenant: str = "acme", created_at: float = T0, prompt: str = "a cat") -> Job:
    return Job(
        id=new_job_id(),
        tenant=tenant,
        status=JobStatus.QUEUED,
        params=job_params(prompt),
        created_at=created_at,
    )


VIDEO = VideoInfo(
    key="videos/abc.mp4",
    sha256="ab" * 32,
    bytes=1234,
    width=224,
    height=128,
    num_frames=19,
    fps=30.0,
    duration_s=0.633,
)


def started(job: Job, at: float = T0 + 1) -> JobUpdate:
    return JobUpdate(job.id, JobStatus.RUNNING, phase="starting", at=at)


def progress(job: Job, step: int, attempt: int = 1, phase: str = "denoising") -> JobUpdate:
    return JobUpdate(job.id, JobStatus.RUNNING, phase=phase, progress=Progress(attempt, step, 8))


def succeeded(job: Job, at: float = T0 + 9) -> JobUpdate:
    return JobUpdate(job.id, JobStatus.SUCCEEDED, at=at, video=VIDEO)


async def created(store: JobStore, *jobs: Job) -> list[Job]:
    for job in jobs:
        assert (await store.create(job)).created
    return list(jobs)


# create / get -------------------------------------------------------------------------
async def test_create_then_get_returns_the_same_job(job_store: JobStore) -> None:
    job = make_job()
    result = await job_store.create(job)
    assert result.created and result.job == job
    assert await job_store.get(job.id) == job
    assert await job_store.get(new_job_id()) is None


async def test_ping_succeeds_on_a_live_backend(job_store: JobStore) -> None:
    await job_store.ping()


# idempotency --------------------------------------------------------------------------
async def test_same_idempotency_key_and_hash_returns_the_first_job(job_store: JobStore) -> None:
    first, second = make_job(), make_job(created_at=T0 + 5)
    claim = IdempotencyClaim("key-1", "hash-a")
    assert (await job_store.create(first, claim)).created
    again = await job_store.create(second, claim)
    assert not again.created and again.job == first
    assert await job_store.get(second.id) is None


async def test_reused_idempotency_key_with_another_hash_conflicts_and_stores_nothing(
    job_store: JobStore,
) -> None:
    first, second = make_job(), make_job(created_at=T0 + 5)
    await job_store.create(first, IdempotencyClaim("key-1", "hash-a"))
    with pytest.raises(IdempotencyConflictError) as raised:
        await job_store.create(second, IdempotencyClaim("key-1", "hash-b"))
    assert raised.value.code == "idempotency_key_reused"
    assert await job_store.get(second.id) is None
    page = await job_store.list(tenant="acme")
    assert [job.id for job in page.jobs] == [first.id]
    # The original claim still holds after the conflict.
    assert (await job_store.create(second, IdempotencyClaim("key-1", "hash-a"))).job == first


async def test_idempotency_keys_belong_to_one_tenant(job_store: JobStore) -> None:
    mine, theirs = make_job("acme"), make_job("globex")
    claim = IdempotencyClaim("shared-key", "hash-a")
    await job_store.create(mine, claim)
    result = await job_store.create(theirs, IdempotencyClaim("shared-key", "hash-b"))
    assert result.created and result.job == theirs


async def test_an_expired_idempotency_key_can_be_used_again(job_store: JobStore) -> None:
    first = make_job()
    await job_store.create(first, IdempotencyClaim("key-1", "hash-a", ttl_s=60))
    later = make_job(created_at=T0 + 61)
    result = await job_store.create(later, IdempotencyClaim("key-1", "hash-b", ttl_s=60))
    assert result.created and result.job == later
    repeat = make_job(created_at=T0 + 62)
    assert (await job_store.create(repeat, IdempotencyClaim("key-1", "hash-b"))).job == later


# the active-jobs cap ------------------------------------------------------------------
async def test_create_at_the_cap_is_refused_and_stores_nothing(job_store: JobStore) -> None:
    await created(job_store, make_job(), make_job())
    other = make_job("globex")
    assert (await job_store.create(other, max_unfinished=2)).created  # another tenant's count
    refused = make_job()
    with pytest.raises(UnfinishedLimitReached) as caught:
        await job_store.create(refused, max_unfinished=2)
    assert caught.value.limit == 2 and caught.value.tenant == "acme"
    assert await job_store.get(refused.id) is None
    assert await job_store.count_unfinished("acme") == 2


async def test_a_finished_job_frees_its_place_under_the_cap(job_store: JobStore) -> None:
    first, _ = await created(job_store, make_job(), make_job())
    await job_store.apply(started(first))
    with pytest.raises(UnfinishedLimitReached):
        await job_store.create(make_job(), max_unfinished=2)  # running counts as unfinished
    await job_store.apply(succeeded(first))
    assert (await job_store.create(make_job(), max_unfinished=2)).created


async def test_an_idempotent_replay_at_the_cap_returns_its_job(job_store: JobStore) -> None:
    claim = IdempotencyClaim("key-1", "hash-a")
    first = (await job_store.create(make_job(), claim, max_unfinished=1)).job
    replay = await job_store.create(make_job(created_at=T0 + 1), claim, max_unfinished=1)
    assert not replay.created and replay.job == first


async def test_concurrent_creates_never_overshoot_the_cap(job_store: JobStore) -> None:
    jobs = [make_job(created_at=T0 + i) for i in range(30)]
    results = await asyncio.gather(
        *(job_store.create(job, max_unfinished=7) for job in jobs), return_exceptions=True
    )
    made = [result for result in results if not isinstance(result, BaseException)]
    refusals = [result for result in results if isinstance(result, BaseException)]
    assert len(made) == 7 and all(result.created for result in made)
    assert all(isinstance(refusal, UnfinishedLimitReached) for refusal in refusals)
    assert await job_store.count_unfinished("acme") == 7


# apply / merge --------------------------------------------------------------------------
async def test_lifecycle_updates_move_a_job_to_success(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    running = await job_store.apply(started(job))
    assert running.applied and running.job.status == JobStatus.RUNNING
    assert running.job.started_at == T0 + 1
    step = await job_store.apply(progress(job, 3))
    assert step.applied and step.job.progress == Progress(1, 3, 8)
    done = await job_store.apply(succeeded(job))
    assert done.applied and done.job.status == JobStatus.SUCCEEDED
    assert done.job.video == VIDEO and done.job.finished_at == T0 + 9
    assert await job_store.get(job.id) == done.job


async def test_failure_records_the_error(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    error = JobError("out_of_memory", "the GPU ran out of memory", retryable=True)
    result = await job_store.apply(JobUpdate(job.id, JobStatus.FAILED, at=T0 + 3, error=error))
    stored = await job_store.get(job.id)
    assert result.applied and stored is not None
    assert stored.status == JobStatus.FAILED and stored.error == error
    assert stored.started_at == T0 + 3  # never seen running: started when it ended


async def test_duplicate_late_and_out_of_order_events_never_move_a_job_back(
    job_store: JobStore,
) -> None:
    (job,) = await created(job_store, make_job())
    await job_store.apply(started(job))
    assert (await job_store.apply(progress(job, 5))).applied
    assert not (await job_store.apply(progress(job, 5))).applied  # redelivered
    assert not (await job_store.apply(progress(job, 2))).applied  # late
    assert not (await job_store.apply(started(job))).applied  # late start
    assert not (await job_store.apply(JobUpdate(job.id, JobStatus.QUEUED))).applied
    assert (await job_store.apply(progress(job, 5, phase="decoding"))).applied
    assert not (await job_store.apply(progress(job, 5, phase="denoising"))).applied
    assert (await job_store.apply(progress(job, 1, attempt=2))).applied  # a retry restarts
    stored = await job_store.get(job.id)
    assert stored is not None and stored.progress == Progress(2, 1, 8)
    assert (await job_store.apply(succeeded(job))).applied
    failed = JobUpdate(job.id, JobStatus.FAILED, at=T0 + 10, error=JobError("x", "late"))
    late = await job_store.apply(failed)
    assert not late.applied and late.job.status == JobStatus.SUCCEEDED
    assert not (await job_store.apply(succeeded(job, at=T0 + 11))).applied
    final = await job_store.get(job.id)
    assert final is not None and final.finished_at == T0 + 9 and final.error is None


async def test_a_terminal_event_may_arrive_before_the_start(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    assert (await job_store.apply(succeeded(job))).applied
    assert not (await job_store.apply(started(job))).applied
    assert not (await job_store.apply(progress(job, 8))).applied
    stored = await job_store.get(job.id)
    assert stored is not None and stored.status == JobStatus.SUCCEEDED


async def test_apply_to_an_unknown_job_raises_not_found(job_store: JobStore) -> None:
    with pytest.raises(NotFoundError):
        await job_store.apply(JobUpdate(new_job_id(), JobStatus.RUNNING))


# cancel -------------------------------------------------------------------------------
async def test_cancel_of_a_queued_job_cancels_it_at_once(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    canceled = await job_store.request_cancel(job.id, at=T0 + 2)
    assert canceled.status == JobStatus.CANCELED and canceled.finished_at == T0 + 2
    assert await job_store.get(job.id) == canceled
    assert await job_store.is_cancel_requested(job.id)
    assert await job_store.queue_position(canceled) is None
    assert not (await job_store.apply(started(job))).applied
    queued = await job_store.list(tenant="acme", status=JobStatus.QUEUED)
    assert queued.jobs == []
    assert [
        j.id for j in (await job_store.list(tenant="acme", status=JobStatus.CANCELED)).jobs
    ] == [job.id]


async def test_cancel_of_a_running_job_sets_its_flag(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    await job_store.apply(started(job))
    assert not await job_store.is_cancel_requested(job.id)
    flagged = await job_store.request_cancel(job.id, at=T0 + 2)
    assert flagged.status == JobStatus.RUNNING and flagged.cancel_requested
    assert await job_store.is_cancel_requested(job.id)
    # The flag survives later progress, and the worker's canceled event ends the job.
    after = await job_store.apply(progress(job, 4))
    assert after.applied and after.job.cancel_requested
    done = await job_store.apply(JobUpdate(job.id, JobStatus.CANCELED, at=T0 + 3))
    assert done.applied and done.job.status == JobStatus.CANCELED


async def test_cancel_of_a_finished_job_changes_nothing(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    done = (await job_store.apply(succeeded(job))).job
    assert await job_store.request_cancel(job.id, at=T0 + 20) == done
    assert await job_store.get(job.id) == done
    assert not await job_store.is_cancel_requested(job.id)


async def test_cancel_of_an_unknown_job_raises_not_found(job_store: JobStore) -> None:
    with pytest.raises(NotFoundError):
        await job_store.request_cancel(new_job_id(), at=T0)
    assert not await job_store.is_cancel_requested(new_job_id())


# leases -------------------------------------------------------------------------------
async def test_a_live_lease_keeps_other_workers_out(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    lease = await job_store.claim(job.id, "worker-a", ttl_s=30, now=T0)
    assert lease is not None and lease.attempt == 1 and lease.expires_at == T0 + 30
    assert await job_store.lease_of(job.id) == lease
    assert await job_store.claim(job.id, "worker-b", ttl_s=30, now=T0 + 29) is None
    again = await job_store.claim(job.id, "worker-a", ttl_s=30, now=T0 + 10)
    assert again is not None and again.attempt == 1 and again.expires_at == T0 + 40


async def test_an_expired_lease_is_taken_over_with_the_next_attempt(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    first = await job_store.claim(job.id, "worker-a", ttl_s=30, now=T0)
    assert first is not None
    assert await job_store.renew(first, ttl_s=30, now=T0 + 20)
    assert await job_store.claim(job.id, "worker-b", ttl_s=30, now=T0 + 49) is None
    second = await job_store.claim(job.id, "worker-b", ttl_s=30, now=T0 + 51)
    assert second is not None and second.attempt == 2 and second.worker_id == "worker-b"
    assert not await job_store.renew(first, ttl_s=30, now=T0 + 52)
    assert await job_store.renew(second, ttl_s=30, now=T0 + 52)
    lease = await job_store.lease_of(job.id)
    assert lease is not None and lease.expires_at == T0 + 82 and lease.attempt == 2
    await job_store.release(first)  # a stale holder's release changes nothing
    assert await job_store.lease_of(job.id) == lease


async def test_a_released_lease_is_free_at_once_and_remembers_the_attempt(
    job_store: JobStore,
) -> None:
    (job,) = await created(job_store, make_job())
    first = await job_store.claim(job.id, "worker-a", ttl_s=30, now=T0)
    assert first is not None
    await job_store.release(first)
    released = await job_store.lease_of(job.id)
    assert released is not None and released.expires_at <= T0
    second = await job_store.claim(job.id, "worker-b", ttl_s=30, now=T0 + 1)
    assert second is not None and second.attempt == 2


async def test_a_terminal_update_drops_the_lease(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    assert await job_store.lease_of(job.id) is None
    lease = await job_store.claim(job.id, "worker-a", ttl_s=30, now=T0)
    assert lease is not None
    await job_store.apply(started(job))
    await job_store.apply(succeeded(job))
    assert await job_store.lease_of(job.id) is None
    assert not await job_store.renew(lease, ttl_s=30, now=T0 + 5)


# sweep --------------------------------------------------------------------------------
async def test_stale_jobs_are_unleased_running_jobs_and_old_queued_ones(
    job_store: JobStore,
) -> None:
    jobs = [make_job(created_at=T0 + i) for i in range(7)]
    await created(job_store, *jobs)
    (
        running_expired,
        running_unleased,
        running_live,
        queued_old,
        queued_old_leased,
        queued_new,
        finished,
    ) = jobs
    for job in (running_expired, running_unleased, running_live):
        await job_store.apply(started(job))
    await job_store.apply(succeeded(finished))
    now = T0 + 100
    await job_store.claim(running_expired.id, "w1", ttl_s=10, now=now - 20)
    await job_store.claim(running_live.id, "w2", ttl_s=10, now=now - 5)
    await job_store.claim(queued_old_leased.id, "w3", ttl_s=10, now=now - 5)
    stale = await job_store.stale_jobs(now=now, queued_before=queued_new.created_at)
    assert [job.id for job in stale] == [running_expired.id, running_unleased.id, queued_old.id]
    limited = await job_store.stale_jobs(now=now, queued_before=queued_new.created_at, limit=2)
    assert [job.id for job in limited] == [running_expired.id, running_unleased.id]


async def test_record_sweep_counts_each_re_request(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    assert (await job_store.record_sweep(job.id)).sweeps == 1
    swept = await job_store.record_sweep(job.id)
    assert swept.sweeps == 2 and swept.status == JobStatus.QUEUED
    assert await job_store.get(job.id) == swept
    with pytest.raises(NotFoundError):
        await job_store.record_sweep(new_job_id())


# queue position -------------------------------------------------------------------------
async def test_queue_position_counts_older_queued_jobs_of_every_tenant(
    job_store: JobStore,
) -> None:
    tied_a, tied_b = sorted([make_job(created_at=T0 + 1), make_job(created_at=T0 + 1)],
                            key=lambda job: job.id)  # fmt: skip
    first, other_tenant, last = (
        make_job(created_at=T0),
        make_job("globex", created_at=T0 + 0.5),
        make_job(created_at=T0 + 2),
    )
    await created(job_store, last, tied_b, first, tied_a, other_tenant)
    positions = [
        await job_store.queue_position(job) for job in (first, other_tenant, tied_a, tied_b, last)
    ]
    assert positions == [1, 2, 3, 4, 5]
    assert await job_store.get_with_position(tied_b.id) == (tied_b, 4)
    assert await job_store.get_with_position(new_job_id()) == (None, None)
    running = (await job_store.apply(started(first))).job
    assert await job_store.get_with_position(first.id) == (running, None)
    assert await job_store.queue_position(running) is None
    assert await job_store.queue_position(last) == 4
    assert await job_store.count(JobStatus.QUEUED) == 4
    assert await job_store.count(JobStatus.RUNNING) == 1
    assert await job_store.count(JobStatus.FAILED) == 0
    assert await job_store.count_unfinished(first.tenant) == 4
    assert await job_store.count_unfinished(other_tenant.tenant) == 1
    assert await job_store.count_unfinished("nobody") == 0


# listing ------------------------------------------------------------------------------
async def test_list_pages_through_a_tenants_jobs_newest_first(job_store: JobStore) -> None:
    times = [T0, T0 + 1, T0 + 1, T0 + 1, T0 + 2, T0 + 3, T0 + 3]
    mine = [make_job("acme", created_at=t) for t in times]
    theirs = [make_job("globex", created_at=t + 0.5) for t in times[:3]]
    await created(job_store, *mine, *theirs)
    expected = sorted(mine, key=lambda job: (job.created_at, job.id), reverse=True)
    seen: list[Job] = []
    cursor: str | None = None
    for _ in range(10):
        page = await job_store.list(tenant="acme", limit=3, cursor=cursor)
        assert len(page.jobs) <= 3
        seen += page.jobs
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [job.id for job in seen] == [job.id for job in expected]
    everyone = await job_store.list(tenant=None, limit=100)
    assert {job.id for job in everyone.jobs} == {job.id for job in mine + theirs}
    assert everyone.next_cursor is None
    assert [job.created_at for job in everyone.jobs] == sorted(
        (job.created_at for job in everyone.jobs), reverse=True
    )


async def test_list_of_an_exact_multiple_of_the_limit_ends_without_a_cursor(
    job_store: JobStore,
) -> None:
    await created(job_store, *(make_job(created_at=T0 + i) for i in range(4)))
    first = await job_store.list(tenant="acme", limit=2)
    assert first.next_cursor is not None
    second = await job_store.list(tenant="acme", limit=2, cursor=first.next_cursor)
    assert len(second.jobs) == 2 and second.next_cursor is None


async def test_list_filters_by_status_and_keeps_tenants_apart(job_store: JobStore) -> None:
    mine = [make_job("acme", created_at=T0 + i) for i in range(4)]
    theirs = [make_job("globex", created_at=T0 + 10 + i) for i in range(2)]
    await created(job_store, *mine, *theirs)
    for job in (mine[0], mine[2], theirs[1]):
        await job_store.apply(started(job))
    await job_store.apply(succeeded(mine[2]))

    async def ids(tenant: str | None, status: JobStatus | None) -> list[str]:
        return [job.id for job in (await job_store.list(tenant=tenant, status=status)).jobs]

    assert await ids("acme", JobStatus.RUNNING) == [mine[0].id]
    assert await ids("acme", JobStatus.QUEUED) == [mine[3].id, mine[1].id]
    assert await ids("acme", JobStatus.SUCCEEDED) == [mine[2].id]
    assert await ids("globex", None) == [theirs[1].id, theirs[0].id]
    assert await ids(None, JobStatus.RUNNING) == [theirs[1].id, mine[0].id]
    assert await ids("initech", None) == []


async def test_list_rejects_a_cursor_it_did_not_issue(job_store: JobStore) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        await job_store.list(tenant="acme", cursor="not a cursor")
    assert raised.value.code == "invalid_cursor"


async def test_stored_jobs_keep_every_field(job_store: JobStore) -> None:
    job = dataclasses.replace(
        make_job(prompt="ünïcode ✓ prompt"),
        phase=None,
        cancel_requested=False,
        sweeps=0,
    )
    await job_store.create(job)
    await job_store.apply(started(job))
    for step, phase in itertools.product(range(1, 3), ("denoising",)):
        await job_store.apply(progress(job, step, phase=phase))
    stored = await job_store.get(job.id)
    assert stored is not None
    assert stored.params == job.params and stored.phase == "denoising"
    assert stored.progress == Progress(1, 2, 8) and stored.started_at == T0 + 1


async def test_a_position_given_at_creation_is_the_position_then(job_store: JobStore) -> None:
    first, second = make_job(created_at=T0), make_job("globex", created_at=T0 + 1)
    positions = [(await job_store.create(job)).queue_position for job in (first, second)]
    # A store counts it in the creating transaction (SQLite) or leaves it to queue_position.
    assert positions in ([1, 2], [None, None])
    assert [await job_store.queue_position(job) for job in (first, second)] == [1, 2]


# named records (infer's ETA figures) and the jobs a queued job waits for -------------------
async def test_a_record_is_none_until_written_then_updated_in_place(job_store: JobStore) -> None:
    assert await job_store.read_record("eta-figures/tiny/cpu-tiny") is None
    first = await job_store.update_record("eta-figures/tiny/cpu-tiny", lambda raw: {"n": 1})
    assert first == {"n": 1}
    bumped = await job_store.update_record(
        "eta-figures/tiny/cpu-tiny", lambda raw: {"n": (raw or {"n": 0})["n"] + 1}
    )
    assert bumped == {"n": 2} == await job_store.read_record("eta-figures/tiny/cpu-tiny")
    assert await job_store.read_record("eta-figures/other") is None


async def test_concurrent_record_updates_are_all_kept(job_store: JobStore) -> None:
    def bump(raw: dict[str, int] | None) -> dict[str, int]:
        return {"n": (raw or {"n": 0})["n"] + 1}

    await asyncio.gather(*(job_store.update_record("counter", bump) for _ in range(10)))
    assert await job_store.read_record("counter") == {"n": 10}


async def test_jobs_ahead_are_the_running_and_the_older_queued_jobs(job_store: JobStore) -> None:
    jobs = await created(job_store, *(make_job(created_at=T0 + i) for i in range(5)))
    await job_store.apply(started(jobs[0]))
    running, queued = await job_store.jobs_ahead(jobs[3], limit=10)
    assert [job.id for job in running] == [jobs[0].id]
    assert [job.id for job in queued] == [jobs[1].id, jobs[2].id]
    running, queued = await job_store.jobs_ahead(jobs[4], limit=1)
    assert ([job.id for job in running], [job.id for job in queued]) == ([jobs[0].id], [jobs[1].id])
