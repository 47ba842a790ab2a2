"""What only the Redis store must show: it survives a server crash with AOF on, reports a
lost connection as `UnavailableError`, and keeps its keys under the configured prefix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from t2v.errors import UnavailableError
from t2v.jobs import JobStatus, JobUpdate, Progress
from t2v.store.base import IdempotencyClaim
from t2v.store.redis import RedisJobStore
from tests.contracts.test_job_store import T0, VIDEO, make_job
from tests.services import RedisServer, redis_server


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    with redis_server(appendonly=True) as server:
        yield server


async def test_a_crash_with_aof_between_submit_and_completion_loses_no_job(
    aof_redis: RedisServer,
) -> None:
    url = aof_redis.url(prefix="durable")
    store = RedisJobStore.from_url(url)
    jobs = [make_job(created_at=T0 + i) for i in range(3)]
    try:
        await store.create(jobs[0], IdempotencyClaim("key-1", "hash-a"))
        for job in jobs[1:]:
            await store.create(job)
        await store.apply(JobUpdate(jobs[0].id, JobStatus.RUNNING, phase="starting", at=T0 + 5))
        lease = await store.claim(jobs[0].id, "worker-a", ttl_s=30, now=T0 + 5)
        assert lease is not None

        aof_redis.restart(kill=True)  # SIGKILL: no shutdown save, only the AOF

        # The same store object carries on over a fresh connection.
        assert await store.renew(lease, ttl_s=30, now=T0 + 10)
        step = JobUpdate(jobs[0].id, JobStatus.RUNNING, phase="denoising",
                         progress=Progress(1, 4, 8))  # fmt: skip
        assert (await store.apply(step)).applied
        done = JobUpdate(jobs[0].id, JobStatus.SUCCEEDED, at=T0 + 20, video=VIDEO)
        assert (await store.apply(done)).applied
    finally:
        await store.close()

    reopened = RedisJobStore.from_url(url)
    try:
        finished = await reopened.get(jobs[0].id)
        assert finished is not None and finished.status == JobStatus.SUCCEEDED
        assert finished.video == VIDEO
        queued = await reopened.list(tenant="acme", status=JobStatus.QUEUED)
        assert [job.id for job in queued.jobs] == [jobs[2].id, jobs[1].id]
        assert await reopened.queue_position(jobs[1]) == 1
        again = await reopened.create(make_job(), IdempotencyClaim("key-1", "hash-a"))
        assert not again.created and again.job.id == jobs[0].id
    finally:
        await reopened.close()


async def test_a_lost_connection_is_unavailable_and_writes_nothing(
    aof_redis: RedisServer,
) -> None:
    store = RedisJobStore.from_url(aof_redis.url(prefix="lost"))
    job = make_job()
    try:
        await store.create(job)
        aof_redis.stop()
        with pytest.raises(UnavailableError) as raised:
            await store.apply(JobUpdate(job.id, JobStatus.RUNNING, phase="starting", at=T0))
        assert raised.value.http_status == 503 and raised.value.retryable
        for call in (store.ping(), store.get(job.id), store.create(make_job())):
            with pytest.raises(UnavailableError):
                await call
        aof_redis.start()
        assert await store.get(job.id) == job
        page = await store.list(tenant=None)
        assert [j.id for j in page.jobs] == [job.id]
        assert (await store.list(tenant=None, status=JobStatus.RUNNING)).jobs == []
    finally:
        await store.close()


async def test_an_unreachable_server_is_unavailable() -> None:
    with redis_server() as server:
        url = server.url()
    store = RedisJobStore.from_url(url)  # the server is gone now
    try:
        with pytest.raises(UnavailableError):
            await store.ping()
    finally:
        await store.close()


async def test_keys_live_under_the_configured_prefix(aof_redis: RedisServer) -> None:
    first = RedisJobStore.from_url(aof_redis.url(prefix="team-a"))
    second = RedisJobStore.from_url(aof_redis.url(prefix="team-b"))
    job = make_job()
    try:
        await first.create(job, IdempotencyClaim("key-1", "hash-a"))
        assert await second.get(job.id) is None
        assert (await second.list(tenant=None)).jobs == []
        with redis.Redis(port=aof_redis.port, decode_responses=True) as raw:
            keys = raw.keys("*")
        assert keys and all(key.startswith("{team-a}:") for key in keys)
    finally:
        await first.close()
        await second.close()
