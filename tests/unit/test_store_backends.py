"""What each backend must do under load: SQLite waits a bounded time for another writer's
lock; Redis makes concurrent callers wait for one of its pooled connections."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import redis

from t2v.errors import UnavailableError
from t2v.jobs import JobStatus
from t2v.store.redis import RedisJobStore
from t2v.store.sqlite import SqliteJobStore
from tests.contracts.backends import redis_store_url
from tests.contracts.test_job_store import T0, make_job, started
from tests.services import RedisServer


async def test_sqlite_a_change_blocked_by_another_writer_is_unavailable_and_stores_nothing(
    tmp_path: Path,
) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db", busy_timeout_s=0.2)
    queued = make_job()
    await store.create(queued)
    other = sqlite3.connect(tmp_path / "jobs.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        blocked = make_job(created_at=T0 + 1)
        with pytest.raises(UnavailableError):
            await store.create(blocked)
        with pytest.raises(UnavailableError):
            await store.apply(started(queued))
        assert await store.get(queued.id) == queued  # reads do not wait for the writer (WAL)
        other.execute("ROLLBACK")
        assert await store.get(blocked.id) is None
        assert (await store.apply(started(queued))).applied
    finally:
        other.close()
        await store.close()


async def test_redis_concurrent_changes_wait_for_a_pooled_connection(
    redis_service: RedisServer,
) -> None:
    url = f"{redis_store_url(redis_service)}&client_name=pool-test"
    store = RedisJobStore.from_url(url, max_connections=2)
    jobs = [make_job(created_at=T0 + i) for i in range(40)]
    try:
        results = await asyncio.gather(*(store.create(job) for job in jobs))
        assert all(result.created for result in results)
        applied = await asyncio.gather(*(store.apply(started(job)) for job in jobs))
        assert all(result.applied for result in applied)
        assert await store.count(JobStatus.RUNNING) == len(jobs)
        with redis.Redis(port=redis_service.port) as raw:
            named = [c for c in raw.client_list() if c.get("name") == "pool-test"]
        assert 1 <= len(named) <= 2
    finally:
        await store.close()
