"""The Redis store's one-round-trip create (`t2v.store.redis_create`): the cases it hands to
the general WATCH path, and a server that has forgotten the script."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
import redis

from t2v.jobs import JobStatus
from t2v.store.base import IdempotencyClaim
from t2v.store.redis import RedisJobStore
from tests.contracts.backends import redis_store_url
from tests.contracts.test_job_store import T0, make_job
from tests.services import RedisServer


@pytest.fixture
async def store(redis_service: RedisServer) -> AsyncIterator[RedisJobStore]:
    opened = RedisJobStore.from_url(redis_store_url(redis_service))
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_created_job_comes_back_with_its_queue_position(store: RedisJobStore) -> None:
    first, second = make_job(created_at=T0), make_job(created_at=T0 + 1)
    assert (await store.create(second)).queue_position == 1
    result = await store.create(first)
    assert result.created and result.queue_position == 1
    assert await store.queue_position(second) == 2
    running = dataclasses.replace(make_job(created_at=T0 + 2), status=JobStatus.RUNNING)
    assert (await store.create(running)).queue_position is None


async def test_a_taken_id_goes_the_general_way_and_moves_the_indexes(
    store: RedisJobStore,
) -> None:
    job = make_job()
    await store.create(job)
    running = dataclasses.replace(job, status=JobStatus.RUNNING)
    result = await store.create(running)
    assert result.created and await store.get(job.id) == running
    assert await store.count(JobStatus.QUEUED) == 0
    assert await store.count(JobStatus.RUNNING) == 1


async def test_a_claim_whose_job_is_gone_makes_a_new_job(
    store: RedisJobStore, redis_service: RedisServer
) -> None:
    claim = IdempotencyClaim("key-1", "hash-a")
    first = make_job()
    await store.create(first, claim)
    client = redis.Redis.from_url(redis_service.url(), decode_responses=True)
    try:
        [job_key] = [key for key in client.scan_iter(match=f"*:job:{first.id}")]
        client.delete(job_key)
    finally:
        client.close()
    second = make_job()
    result = await store.create(second, claim)
    assert result.created and result.job == second
    again = await store.create(make_job(), claim)
    assert not again.created and again.job == second


async def test_a_server_that_lost_its_scripts_loads_the_script_again(
    store: RedisJobStore, redis_service: RedisServer
) -> None:
    await store.create(make_job())
    client = redis.Redis.from_url(redis_service.url())
    try:
        client.script_flush()
    finally:
        client.close()
    job = make_job(created_at=T0 + 1)
    assert (await store.create(job)).created
    assert await store.get(job.id) == job
