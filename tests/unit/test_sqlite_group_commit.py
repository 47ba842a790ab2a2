"""Group commit in `SqliteJobStore`: changes queued together share one transaction, each in
its own savepoint, and every caller gets its own outcome on its own event loop.

To make a batch on purpose, another connection holds the file's write lock while the
store's first batch (one change) retries `BEGIN IMMEDIATE`; everything queued meanwhile goes
into its next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVarTuple

import pytest

from t2v.errors import IdempotencyConflictError, NotFoundError, UnavailableError
from t2v.jobs import Job, JobStatus, JobUpdate, new_job_id
from t2v.store.base import CreateResult, IdempotencyClaim
from t2v.store.group_commit import MAX_BATCH
from t2v.store.sqlite import SqliteJobStore

T0 = 1_700_000_000.0
_Ts = TypeVarTuple("_Ts")
_connect = sqlite3.connect  # the real one, before any test injects faults


def make_job(params: dict[str, Any] | None = None) -> Job:
    return Job(new_job_id(), "acme", JobStatus.QUEUED, params or {"prompt": "a cat"}, T0)


def count_rows(path: Path, table: str) -> int:
    with contextlib.closing(_connect(path)) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteJobStore]:
    opened = SqliteJobStore(tmp_path / "jobs.db")
    try:
        yield opened
    finally:
        await opened.close()


@contextlib.asynccontextmanager
async def writer_held(store: SqliteJobStore, path: Path) -> AsyncIterator[asyncio.Task[Any]]:
    """Yields the first change while the writer waits for another connection's write lock."""
    await store.ping()  # the reader creates the file and its schema
    other = _connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        batches = store.group_commit_stats.batches
        first = asyncio.create_task(store.create(make_job()))
        while store.group_commit_stats.batches == batches:
            await asyncio.sleep(0.005)
        yield first
    finally:
        other.execute("ROLLBACK")
        other.close()


def queue_now(*changes: Coroutine[Any, Any, Any]) -> list[asyncio.Task[Any]]:
    """Start the changes; they are queued once the caller yields to the loop."""
    return [asyncio.create_task(change) for change in changes]


async def test_concurrent_creates_all_land_and_each_caller_gets_its_own_job(
    store: SqliteJobStore,
) -> None:
    jobs = [make_job({"prompt": f"cat {i}"}) for i in range(200)]
    results = await asyncio.gather(*(store.create(job) for job in jobs))
    assert [result.job for result in results] == jobs
    assert all(result.created for result in results)
    for job in jobs:
        assert await store.get(job.id) == job
    assert store.group_commit_stats.operations == len(jobs)


async def test_one_failing_change_fails_alone_and_later_changes_see_earlier_ones(
    store: SqliteJobStore, tmp_path: Path
) -> None:
    first_job, later_job, unsaveable = make_job(), make_job(), make_job({"bad": object()})
    async with writer_held(store, tmp_path / "jobs.db") as held:
        tasks = queue_now(
            store.create(first_job),
            store.apply(JobUpdate(new_job_id(), JobStatus.RUNNING, at=T0 + 1)),
            store.create(later_job, IdempotencyClaim("key-1", "hash-a")),
            store.create(make_job(), IdempotencyClaim("key-1", "hash-b")),
            # Claims its key, then fails to encode: the claim must be rolled back too.
            store.create(unsaveable, IdempotencyClaim("key-2", "hash-a")),
            store.apply(JobUpdate(first_job.id, JobStatus.RUNNING, at=T0 + 1)),
        )
        await asyncio.sleep(0)
    await held
    created, missing, claimed, conflict, broken, started = await asyncio.gather(
        *tasks, return_exceptions=True
    )
    stats = store.group_commit_stats
    assert (stats.batches, stats.largest_batch) == (2, len(tasks))  # the held one, then ours
    assert isinstance(created, CreateResult) and created.created
    assert isinstance(missing, NotFoundError)
    assert isinstance(claimed, CreateResult) and claimed.created
    assert isinstance(conflict, IdempotencyConflictError)
    assert isinstance(broken, TypeError)
    assert not isinstance(started, BaseException) and started.applied
    stored = await store.get(first_job.id)
    assert stored is not None and stored.status == JobStatus.RUNNING
    assert await store.get(later_job.id) == later_job
    assert await store.get(unsaveable.id) is None
    assert count_rows(tmp_path / "jobs.db", "idempotency") == 1


async def test_a_batch_holds_at_most_max_batch_changes(
    store: SqliteJobStore, tmp_path: Path
) -> None:
    jobs = [make_job() for _ in range(MAX_BATCH + 6)]
    async with writer_held(store, tmp_path / "jobs.db") as held:
        tasks = queue_now(*(store.create(job) for job in jobs))
        await asyncio.sleep(0)
    await held
    assert [result.job for result in await asyncio.gather(*tasks)] == jobs
    stats = store.group_commit_stats
    assert (stats.batches, stats.operations, stats.largest_batch) == (3, len(jobs) + 1, MAX_BATCH)


async def test_a_write_lock_held_past_the_timeout_fails_the_batch_and_stores_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    store = SqliteJobStore(path, busy_timeout_s=0.05)
    try:
        await store.ping()
        other = _connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            outcomes = await asyncio.gather(
                *(store.create(make_job()) for _ in range(5)), return_exceptions=True
            )
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert all(isinstance(outcome, UnavailableError) for outcome in outcomes), outcomes
        assert count_rows(path, "jobs") == 0
        assert (await store.create(make_job())).created  # the writer carries on
    finally:
        await store.close()


class _FailingCommits(sqlite3.Connection):
    """Fails the COMMITs whose 1-based numbers are in `failing`, as a disk error would."""

    failing: frozenset[int] = frozenset()
    commits = 0

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if sql == "COMMIT":
            type(self).commits += 1
            if type(self).commits in self.failing:
                raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, parameters)


def failing_commits(*numbers: int) -> Callable[..., sqlite3.Connection]:
    factory = type("FailingCommits", (_FailingCommits,), {"failing": frozenset(numbers)})
    return functools.partial(_connect, factory=factory)


async def test_a_failed_commit_fails_every_change_of_the_batch_and_stores_nothing(
    store: SqliteJobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "connect", failing_commits(2))  # the held batch commits first
    async with writer_held(store, tmp_path / "jobs.db") as held:
        tasks = queue_now(
            store.create(make_job()),
            store.create(make_job(), IdempotencyClaim("key-1", "hash-a")),
            store.apply(JobUpdate(new_job_id(), JobStatus.RUNNING, at=T0 + 1)),
        )
        await asyncio.sleep(0)
    await held
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(outcome, UnavailableError) for outcome in outcomes), outcomes
    assert count_rows(tmp_path / "jobs.db", "jobs") == 1  # only the held one
    assert count_rows(tmp_path / "jobs.db", "idempotency") == 0
    assert (await store.create(make_job())).created  # the next batch commits again


class _CountingLoop(asyncio.SelectorEventLoop):
    """Counts wake-ups from other threads."""

    wakeups = 0

    def call_soon_threadsafe(
        self,
        callback: Callable[[*_Ts], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        self.wakeups += 1
        return super().call_soon_threadsafe(callback, *args, context=context)


async def test_callers_on_two_loops_commit_on_their_own_loops_and_wait_out_each_other(
    store: SqliteJobStore, tmp_path: Path
) -> None:
    """Two threads' loops share the store: each commits its own batch on its own loop
    (nothing crosses threads), and a loop that finds the file locked retries until free."""
    per_loop = 10
    queued = [threading.Event(), threading.Event()]
    outcomes: list[tuple[list[Job], list[CreateResult], int]] = []

    def caller(ready: threading.Event) -> None:
        async def create_some() -> None:
            jobs = [make_job() for _ in range(per_loop)]
            tasks = queue_now(*(store.create(job) for job in jobs))
            await asyncio.sleep(0)
            ready.set()
            results = await asyncio.gather(*tasks)
            loop = asyncio.get_running_loop()
            assert isinstance(loop, _CountingLoop)
            outcomes.append((jobs, results, loop.wakeups))

        with asyncio.Runner(loop_factory=_CountingLoop) as runner:
            runner.run(create_some())

    threads = [threading.Thread(target=caller, args=(ready,)) for ready in queued]
    async with writer_held(store, tmp_path / "jobs.db") as held:
        for thread in threads:
            thread.start()
        for ready in queued:
            await asyncio.to_thread(ready.wait)
    await held
    for thread in threads:
        await asyncio.to_thread(thread.join)
    assert len(outcomes) == 2
    for jobs, results, wakeups in outcomes:
        assert [result.job for result in results] == jobs
        assert wakeups == 0
        for job in jobs:
            assert await store.get(job.id) == job
    stats = store.group_commit_stats
    assert (stats.batches, stats.largest_batch) == (3, per_loop)  # the held one, then one each


async def test_a_caller_cancelled_while_queued_leaves_the_others_and_the_loop_clean(
    store: SqliteJobStore, tmp_path: Path
) -> None:
    loop_errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: loop_errors.append(context))
    gone, kept = make_job(), make_job()
    async with writer_held(store, tmp_path / "jobs.db") as held:
        cancelled, waited = queue_now(store.create(gone), store.create(kept))
        await asyncio.sleep(0)
        cancelled.cancel()
    await held
    assert (await waited).job == kept
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.sleep(0)  # the batch's outcomes were settled in one callback
    assert loop_errors == []


async def test_close_commits_what_is_queued_and_the_store_reopens(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = SqliteJobStore(path)
    queued_job = make_job()
    async with writer_held(store, path) as held:
        [queued] = queue_now(store.create(queued_job))
        await asyncio.sleep(0)
        closing = asyncio.create_task(store.close())
        await asyncio.sleep(0)
        assert not closing.done()  # it waits for the held batch and the queued change
    await asyncio.gather(held, queued, closing)
    assert count_rows(path, "jobs") == 2

    later_job = make_job()
    assert (await store.create(later_job)).created
    assert await store.get(queued_job.id) == queued_job
    assert await store.get(later_job.id) == later_job
    await store.close()
    await store.close()
    assert count_rows(path, "jobs") == 3


async def test_a_locked_file_is_retried_by_timer_without_blocking_the_loop(
    store: SqliteJobStore, tmp_path: Path
) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        async with writer_held(store, tmp_path / "jobs.db") as held:
            before = ticks
            await asyncio.sleep(0.2)
            assert not held.done()
            # The loop ran its other work while the batch waited for the lock.
            assert ticks - before >= 20
        assert (await held).created
    finally:
        ticker.cancel()


async def test_new_jobs_of_one_batch_share_an_insert_and_count_their_queue_places(
    store: SqliteJobStore, tmp_path: Path
) -> None:
    ahead = make_job()
    await store.create(ahead)
    jobs = [dataclasses.replace(make_job(), created_at=T0 + n) for n in range(1, 6)]
    async with writer_held(store, tmp_path / "jobs.db") as held:
        tasks = queue_now(*(store.create(job) for job in jobs))
        await asyncio.sleep(0)
    await held  # the held batch's job was created at T0 too, and sorts among the ahead ones
    results = await asyncio.gather(*tasks)
    assert [result.queue_position for result in results] == [3, 4, 5, 6, 7]
    assert store.group_commit_stats.largest_batch == len(jobs)


async def test_a_new_job_that_cannot_be_encoded_fails_alone_before_its_batch(
    store: SqliteJobStore, tmp_path: Path
) -> None:
    kept, broken = make_job(), make_job({"bad": object()})
    async with writer_held(store, tmp_path / "jobs.db") as held:
        tasks = queue_now(store.create(kept), store.create(broken))
        await asyncio.sleep(0)
    await held
    created, failed = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(created, CreateResult) and created.created
    assert isinstance(failed, TypeError)
    assert await store.get(broken.id) is None


async def test_the_writer_journals_savepoints_in_memory(store: SqliteJobStore) -> None:
    # A batch's SAVEPOINT journal past 64 KiB would otherwise spill to a temporary file,
    # created and unlinked on every batch.
    await store.create(make_job())
    writer = store._open(0.0)
    try:
        assert writer.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
    finally:
        writer.close()
