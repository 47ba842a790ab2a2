"""The job change log (`JobStore.changes`), on every backend: what a stream of a job's
changes reads, from any status process."""

from __future__ import annotations

import asyncio

import pytest

from t2v.errors import NotFoundError
from t2v.jobs import JobStatus, JobUpdate
from t2v.store.base import JobStore
from tests.contracts.test_job_store import T0, created, make_job, progress, started, succeeded


async def test_every_write_appends_the_job_as_it_left_it(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    await job_store.apply(started(job))
    await job_store.apply(progress(job, 1))
    await job_store.apply(succeeded(job))

    log = await job_store.changes(job.id, after_seq=0)

    assert [change.seq for change in log] == [1, 2, 3, 4]
    assert [change.job.status for change in log] == [
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.RUNNING,
        JobStatus.SUCCEEDED,
    ]
    assert [change.job.phase for change in log][1:3] == ["starting", "denoising"]
    assert log[-1].job == await job_store.get(job.id)
    assert await job_store.last_change(job.id) == log[-1]


async def test_an_update_that_changes_nothing_logs_nothing(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    await job_store.apply(started(job))
    await job_store.apply(started(job))  # redelivered: stale

    assert [change.seq for change in await job_store.changes(job.id, after_seq=0)] == [1, 2]


async def test_changes_after_a_seq_and_a_limit(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    await job_store.apply(started(job))
    for step in range(1, 5):
        await job_store.apply(progress(job, step))

    after = await job_store.changes(job.id, after_seq=2, limit=2)

    assert [change.seq for change in after] == [3, 4]
    assert [change.job.progress.step for change in after if change.job.progress] == [1, 2]
    assert await job_store.changes(job.id, after_seq=6) == []


async def test_each_job_has_its_own_log(job_store: JobStore) -> None:
    first, second = await created(job_store, make_job(), make_job(created_at=T0 + 1))
    await job_store.apply(started(first))

    assert [c.seq for c in await job_store.changes(second.id, after_seq=0)] == [1]
    assert [c.job.id for c in await job_store.changes(first.id, after_seq=0)] == [first.id] * 2


async def test_an_unknown_job_has_no_log(job_store: JobStore) -> None:
    assert await job_store.changes("job_missing", after_seq=0) == []
    assert await job_store.last_change("job_missing") is None
    assert await job_store.wait_for_changes("job_missing", after_seq=0, timeout_s=0.05) == []


async def test_deleting_a_job_deletes_its_log(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    await job_store.apply(succeeded(job))

    await job_store.delete(job.id)

    assert await job_store.changes(job.id, after_seq=0) == []
    assert await job_store.last_change(job.id) is None


async def test_a_cancel_is_logged(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    await job_store.request_cancel(job.id, at=T0 + 2)

    last = await job_store.last_change(job.id)

    assert last is not None
    assert (last.seq, last.job.status) == (2, JobStatus.CANCELED)


async def test_waiting_returns_what_is_already_there_at_once(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())

    found = await job_store.wait_for_changes(job.id, after_seq=0, timeout_s=30)

    assert [change.seq for change in found] == [1]


async def test_waiting_wakes_on_a_change_another_store_writes(
    job_store: JobStore, job_store_url: str
) -> None:
    """As a stream in one status process sees infer's events applied by another."""
    from t2v.store import open_job_store

    (job,) = await created(job_store, make_job())
    writer = open_job_store(job_store_url)
    try:
        waiting = asyncio.create_task(job_store.wait_for_changes(job.id, after_seq=1, timeout_s=30))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await writer.apply(started(job))
        found = await asyncio.wait_for(waiting, timeout=30)
    finally:
        await writer.close()

    assert [(change.seq, change.job.status) for change in found] == [(2, JobStatus.RUNNING)]


async def test_waiting_with_nothing_new_returns_empty(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())

    assert await job_store.wait_for_changes(job.id, after_seq=1, timeout_s=0.3) == []


async def test_an_update_of_an_unknown_job_logs_nothing(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    with pytest.raises(NotFoundError):
        await job_store.apply(JobUpdate("job_missing", JobStatus.RUNNING, phase="starting"))

    assert [change.seq for change in await job_store.changes(job.id, after_seq=0)] == [1]
