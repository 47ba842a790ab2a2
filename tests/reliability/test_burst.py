"""A burst: 200 submits at once from four tenants against the real local platform (Redis
store, API keys, one infer worker).

Every submit is answered 202 or 429 (never 5xx), each tenant gets exactly its active-jobs
cap accepted (less any of its jobs finished while the burst was being answered), and the
accepted jobs of each tenant run in the order they were stored (across tenants: first come,
first served; RELIABILITY.md, "Burst").
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.common import epoch
from t2v.auth import hash_key
from tests.contracts.backends import redis_store_url
from tests.e2e.harness import TERMINAL, Platform
from tests.services import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TENANTS = ("alpha", "bravo", "charlie", "delta")
SUBMITS = 200
CAP = 5
# The tiny profile's default size: long enough that few jobs end while the burst is answered.
REQUEST = {"prompt": "burst"}


def key_of(tenant: str) -> str:
    return f"key-{tenant}-burst"


@dataclass
class Answer:
    tenant: str
    status: int
    body: dict[str, Any]
    answered_at: float


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, redis_service: RedisServer
) -> Iterator[Platform]:
    registry = {hash_key(key_of(t)): {"tenant": t, "role": "user"} for t in TENANTS}
    env = {
        "T2V_API_KEYS": json.dumps(registry),
        "T2V_STORE_URL": redis_store_url(redis_service),
        "T2V_MAX_ACTIVE_JOBS": str(CAP),
        "T2V_SUBMIT_RATE": "100000/hour",
    }
    running = Platform(tmp_path_factory.mktemp("burst"), tiny_model_dir, env).start()
    try:
        yield running
    finally:
        running.stop()


async def burst(url: str) -> list[Answer]:
    """All submits started together, the tenants interleaved, over one connection each."""
    limits = httpx.Limits(max_connections=SUBMITS, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:

        async def one(index: int) -> Answer:
            tenant = TENANTS[index % len(TENANTS)]
            headers = {"Authorization": f"Bearer {key_of(tenant)}"}
            response = await client.post(f"{url}/v1/jobs", json=REQUEST, headers=headers)
            return Answer(tenant, response.status_code, response.json(), time.time())

        return await asyncio.gather(*(one(index) for index in range(SUBMITS)))


def wait_finished(platform: Platform, tenant: str, job_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key_of(tenant)}"}
    url = f"{platform.url}/v1/jobs/{job_id}"

    def fetch() -> dict[str, Any]:
        return dict(platform.client.get(url, headers=headers).json())

    return platform.wait_for(
        job_id, lambda job: job["status"] in TERMINAL, timeout_s=600, fetch=fetch
    )


@pytest.mark.timeout(900)  # the platform's start and 20 jobs on a busy 2-core machine
def test_a_burst_gets_202_or_429_and_the_cap_holds_then_drains_in_order(
    platform: Platform,
) -> None:
    answers = asyncio.run(burst(platform.url))
    assert sorted({answer.status for answer in answers}) == [202, 429], [
        (a.status, a.body) for a in answers if a.status not in (202, 429)
    ]
    refusals = {a.body["error"]["code"] for a in answers if a.status == 429}
    assert refusals == {"too_many_active_jobs"}
    accepted = {
        t: [a.body["id"] for a in answers if a.tenant == t and a.status == 202] for t in TENANTS
    }
    last_answer = {t: max(a.answered_at for a in answers if a.tenant == t) for t in TENANTS}

    finals: dict[str, dict[str, Any]] = {}
    for tenant, ids in accepted.items():
        for job_id in ids:
            finals[job_id] = wait_finished(platform, tenant, job_id)
    assert {job["status"] for job in finals.values()} == {"succeeded"}

    for tenant, ids in accepted.items():
        # A job that ended before the tenant's last answer made room for one more.
        ended_early = sum(
            epoch(finals[job_id]["finished_at"]) < last_answer[tenant] for job_id in ids
        )
        assert CAP <= len(ids) <= CAP + ended_early, (tenant, len(ids), ended_early)

    # One infer worker takes each tenant's jobs in the order they were stored.
    for ids in accepted.values():
        jobs = sorted((finals[i] for i in ids), key=lambda job: epoch(job["created_at"]))
        starts = [epoch(job["started_at"]) for job in jobs]
        assert starts == sorted(starts), [(j["id"], j["created_at"], j["started_at"]) for j in jobs]
