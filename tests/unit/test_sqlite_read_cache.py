"""Reads answered from memory (`VersionedReadCache`) are never older than the database: any
commit, from this store's writer or from another process's connection, is seen at once."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from t2v.jobs import Job, JobStatus, JobUpdate
from t2v.store.read_cache import VersionedReadCache
from t2v.store.sqlite import SqliteJobStore
from tests.unit.test_sqlite_group_commit import T0, make_job


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteJobStore]:
    job_store = SqliteJobStore(tmp_path / "jobs.db")
    yield job_store
    await job_store.close()


def _cache(store: SqliteJobStore) -> VersionedReadCache:
    cache = store._read_cache
    assert isinstance(cache, VersionedReadCache)
    return cache


async def test_an_unchanged_job_is_read_from_memory(store: SqliteJobStore) -> None:
    job = make_job()
    await store.create(job)
    first = await store.get(job.id)
    misses = _cache(store).misses
    for _ in range(5):
        assert await store.get(job.id) == first
    assert _cache(store).misses == misses
    assert _cache(store).hits >= 5


async def test_a_change_through_the_same_store_is_seen_at_once(store: SqliteJobStore) -> None:
    job = make_job()
    await store.create(job)
    assert await store.queue_position(job) == 1
    assert (await store.get(job.id) or job).status == JobStatus.QUEUED
    await store.apply(JobUpdate(job.id, JobStatus.RUNNING, at=T0 + 1))
    running = await store.get(job.id)
    assert running is not None and running.status == JobStatus.RUNNING
    assert await store.queue_position(running) is None


async def test_a_commit_by_another_process_is_seen_at_once(
    store: SqliteJobStore, tmp_path: Path
) -> None:
    other = SqliteJobStore(tmp_path / "jobs.db")  # its own connections, like another process
    try:
        job = make_job()
        await store.create(job)
        assert (await store.get(job.id) or job).status == JobStatus.QUEUED
        await other.apply(JobUpdate(job.id, JobStatus.RUNNING, at=T0 + 1))
        seen = await store.get(job.id)
        assert seen is not None and seen.status == JobStatus.RUNNING
    finally:
        await other.close()


async def test_queue_positions_follow_jobs_ahead_leaving(store: SqliteJobStore) -> None:
    jobs: list[Job] = []
    for offset in range(3):
        job = make_job()
        job = Job(job.id, job.tenant, job.status, job.params, T0 + offset)
        await store.create(job)
        jobs.append(job)
    assert await store.queue_position(jobs[2]) == 3
    await store.apply(JobUpdate(jobs[0].id, JobStatus.RUNNING, at=T0 + 5))
    assert await store.queue_position(jobs[2]) == 2


async def test_a_cached_status_read_asks_the_database_one_thing(store: SqliteJobStore) -> None:
    # A status read wants the job and its queue position: one version check serves both.
    job = make_job()
    await store.create(job)
    assert await store.get_with_position(job.id) == (job, 1)
    statements: list[str] = []
    store._read_connection().set_trace_callback(statements.append)
    assert await store.get_with_position(job.id) == (job, 1)
    assert statements == ["PRAGMA data_version"]
    ahead = make_job()
    await store.create(Job(ahead.id, ahead.tenant, ahead.status, ahead.params, T0 - 1))
    assert await store.get_with_position(job.id) == (job, 2)  # the new version is read


def test_an_entry_read_before_a_change_is_never_returned_after_it(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    with (
        contextlib.closing(sqlite3.connect(path, isolation_level=None)) as reader,
        contextlib.closing(sqlite3.connect(path, isolation_level=None)) as writer,
    ):
        writer.execute("CREATE TABLE t (v INTEGER)")
        writer.execute("INSERT INTO t VALUES (1)")
        cache = VersionedReadCache()

        def value() -> int:
            return int(reader.execute("SELECT v FROM t").fetchone()[0])

        assert cache.at(cache.version(reader), "v", value) == 1
        writer.execute("UPDATE t SET v = 2")
        assert cache.at(cache.version(reader), "v", value) == 2
        assert (cache.hits, cache.misses) == (0, 2)
        assert cache.at(cache.version(reader), "v", value) == 2
        assert cache.hits == 1


def test_the_cache_stays_within_its_size(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "plain.db")) as conn:
        cache = VersionedReadCache(max_entries=2)
        for key in range(5):
            assert cache.at(cache.version(conn), key, lambda: 10) == 10
        assert len(cache._entries) <= 2
        with pytest.raises(ValueError):
            VersionedReadCache(max_entries=0)
