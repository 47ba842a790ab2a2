"""Submit limits: a sliding-window rate per tenant and a cap on unfinished jobs, with the
counters in this process and on Redis (a real server)."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis

from t2v.errors import RateLimitedError, UnavailableError
from t2v.jobs import Job, JobStatus, JobUpdate, new_job_id
from t2v.ratelimit import SubmitLimiter
from t2v.store import JobStore, open_job_store
from tests.params import job_params
from tests.services import RedisServer, free_port, redis_server


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[JobStore]:
    job_store = open_job_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        yield job_store
    finally:
        await job_store.close()


@pytest.fixture(params=["memory", "redis"])
def storage_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    server: RedisServer = request.getfixturevalue("redis_service")
    return server.url(db=1)


def tenant() -> str:
    # A fresh tenant per test: the Redis server (and its windows) live for the whole session.
    return f"tenant-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def limiters() -> AsyncIterator[list[SubmitLimiter]]:
    opened: list[SubmitLimiter] = []
    yield opened
    for limiter in opened:
        await limiter.close()


@pytest.fixture
def limiter(store: JobStore, limiters: list[SubmitLimiter]) -> Callable[..., SubmitLimiter]:
    def open_limiter(storage_url: str, rate: str, max_active: int = 20) -> SubmitLimiter:
        env = {
            "T2V_SUBMIT_RATE": rate,
            "T2V_MAX_ACTIVE_JOBS": str(max_active),
            "T2V_RATE_LIMIT_STORAGE": storage_url,
        }
        limiters.append(SubmitLimiter.from_env(env, store))
        return limiters[-1]

    return open_limiter


async def test_traffic_below_the_rate_passes_with_headers(
    limiter: Callable[..., SubmitLimiter], storage_url: str
) -> None:
    limits = limiter(storage_url, "5/minute")
    me = tenant()
    for remaining in (4, 3, 2, 1, 0):
        headers = await limits.check(me)
        assert headers["RateLimit-Limit"] == "5"
        assert headers["RateLimit-Remaining"] == str(remaining)
        assert headers["RateLimit-Policy"] == "5;w=60"
        assert 0 <= int(headers["RateLimit-Reset"]) <= 60


async def test_a_burst_above_the_rate_is_refused_with_retry_after(
    limiter: Callable[..., SubmitLimiter], storage_url: str
) -> None:
    limits = limiter(storage_url, "3/minute")
    me, other = tenant(), tenant()
    for _ in range(3):
        await limits.check(me)
    for _ in range(4):
        with pytest.raises(RateLimitedError) as raised:
            await limits.check(me)
        error = raised.value
        assert error.code == "rate_limited" and error.http_status == 429 and error.retryable
        assert 1 <= error.retry_after_s <= 60
        assert error.headers["Retry-After"] == str(error.retry_after_s)
        assert error.headers["RateLimit-Limit"] == "3"
        assert error.headers["RateLimit-Remaining"] == "0"
        assert error.headers["RateLimit-Policy"] == "3;w=60"
        assert 1 <= int(error.headers["RateLimit-Reset"]) <= 60
    # Another tenant has its own window.
    assert (await limits.check(other))["RateLimit-Remaining"] == "2"


async def test_a_tenant_at_its_cap_of_unfinished_jobs_is_refused(
    limiter: Callable[..., SubmitLimiter], store: JobStore, storage_url: str
) -> None:
    limits = limiter(storage_url, "100/minute", max_active=2)
    me = tenant()
    jobs = [
        Job(new_job_id(), me, JobStatus.QUEUED, job_params(), created_at=float(i)) for i in range(2)
    ]
    for job in jobs:
        await store.create(job)
    await store.apply(JobUpdate(jobs[0].id, JobStatus.RUNNING, phase="starting", at=5.0))
    with pytest.raises(RateLimitedError) as raised:
        await limits.check(me)
    assert raised.value.code == "too_many_active_jobs" and raised.value.http_status == 429
    assert raised.value.headers["Retry-After"] == str(raised.value.retry_after_s)
    assert raised.value.headers["RateLimit-Limit"] == "100"
    assert raised.value.headers["RateLimit-Remaining"] == "100"
    assert raised.value.headers["RateLimit-Policy"] == "100;w=60"
    assert (await limits.check(tenant()))["RateLimit-Remaining"] == "99"
    await store.apply(JobUpdate(jobs[0].id, JobStatus.SUCCEEDED, at=9.0))
    # The refusal at the cap did not use up any of the tenant's rate.
    assert (await limits.check(me))["RateLimit-Remaining"] == "99"


async def test_a_cap_of_zero_turns_the_cap_off(
    limiter: Callable[..., SubmitLimiter], store: JobStore
) -> None:
    limits = limiter("memory://", "100/minute", max_active=0)
    me = tenant()
    await store.create(Job(new_job_id(), me, JobStatus.QUEUED, job_params(), created_at=1.0))
    assert (await limits.check(me))["RateLimit-Remaining"] == "99"


async def test_unreachable_redis_storage_is_unavailable(
    limiter: Callable[..., SubmitLimiter],
) -> None:
    limits = limiter(f"redis://127.0.0.1:{free_port()}/0", "5/minute")
    with pytest.raises(UnavailableError):
        await limits.check(tenant())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"T2V_SUBMIT_RATE": "lots"}, "T2V_SUBMIT_RATE"),
        ({"T2V_MAX_ACTIVE_JOBS": "many"}, "T2V_MAX_ACTIVE_JOBS"),
        ({"T2V_RATE_LIMIT_STORAGE": "mongodb://db"}, "T2V_RATE_LIMIT_STORAGE"),
    ],
)
def test_bad_configuration_fails_at_start_up(
    store: JobStore, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SubmitLimiter.from_env(env, store)


async def _passes_until_refused(limits: SubmitLimiter, who: str, attempts: int) -> int:
    for passed in range(attempts):
        try:
            await limits.check(who)
        except RateLimitedError as refused:
            assert refused.headers["RateLimit-Remaining"] == "0"
            return passed
    return attempts


@pytest.mark.slow
async def test_the_previous_window_slides_out_gradually(
    limiter: Callable[..., SubmitLimiter], storage_url: str
) -> None:
    limits = limiter(storage_url, "5/second")
    me = tenant()
    # Begin at a whole second: memory windows are aligned to the expiry (Redis's start at the
    # first hit), so the burst falls in one window in both.
    await asyncio.sleep(math.ceil(time.time()) - time.time() + 0.01)
    start = time.time()
    assert await _passes_until_refused(limits, me, attempts=6) == 5
    assert (await limits.check(tenant()))["RateLimit-Remaining"] == "4"  # a window per tenant
    # 1.4 s in, 0.6 of the burst's window still overlaps: about 3 of its 5 still weigh, so
    # some submissions pass again, but not a whole window's worth.
    await asyncio.sleep(start + 1.4 - time.time())
    assert 1 <= await _passes_until_refused(limits, me, attempts=5) <= 4
    # Two windows after the last counted submission nothing is left.
    await asyncio.sleep(start + 3.2 - time.time())
    assert (await limits.check(me))["RateLimit-Remaining"] == "4"


async def test_a_redis_that_refuses_the_login_is_unavailable(
    limiter: Callable[..., SubmitLimiter],
) -> None:
    with redis_server() as server:
        admin = redis.Redis(port=server.port)
        try:
            admin.config_set("requirepass", "right")
        finally:
            admin.close()
        limits = limiter(f"redis://:wrong@127.0.0.1:{server.port}/1", "5/minute")
        with pytest.raises(UnavailableError):
            await limits.check(tenant())
        await limits.close()
