"""API keys, tenants and rate limits over real HTTP through the gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from t2v.auth import hash_key
from tests.e2e.harness import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KEYS = {"alice": "key-alice-1", "bob": "key-bob-2", "carol": "key-carol-3", "root": "key-root-4"}
SMALL = {"width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 2}
RATE = 5


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who]}"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Platform]:
    registry = {
        hash_key(key): {"tenant": who, "role": "admin" if who == "root" else "user"}
        for who, key in KEYS.items()
    }
    env = {"T2V_API_KEYS": json.dumps(registry), "T2V_SUBMIT_RATE": f"{RATE}/minute"}
    running = Platform(tmp_path_factory.mktemp("access"), tiny_model_dir, env).start()
    try:
        yield running
    finally:
        running.stop()


def test_missing_or_wrong_key_is_401(platform: Platform) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic a2V5"}):
        response = platform.submit({"prompt": "x"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
        listing = platform.client.get(f"{platform.url}/v1/jobs", headers=headers)
        assert listing.status_code == 401


def test_tenants_cannot_see_each_other(platform: Platform) -> None:
    created = platform.submit({"prompt": "alice's", "seed": 1, **SMALL}, headers=auth("alice"))
    assert created.status_code == 202
    job_id = created.json()["id"]
    url = f"{platform.url}/v1/jobs/{job_id}"
    done = platform.wait_for(
        job_id,
        lambda j: j["status"] == "succeeded",
        fetch=lambda: platform.client.get(url, headers=auth("alice")).json(),
    )
    assert platform.client.get(done["links"]["video"], headers=auth("alice")).status_code == 200
    for path in ("", "/video"):
        response = platform.client.get(url + path, headers=auth("bob"))
        assert response.status_code == 404
    assert platform.client.post(f"{url}/cancel", headers=auth("bob")).status_code == 404
    bobs = platform.client.get(f"{platform.url}/v1/jobs", headers=auth("bob")).json()["data"]
    assert job_id not in {job["id"] for job in bobs}
    alices = platform.client.get(f"{platform.url}/v1/jobs", headers=auth("alice")).json()["data"]
    assert job_id in {job["id"] for job in alices}
    everyone = platform.client.get(f"{platform.url}/v1/jobs", headers=auth("root")).json()["data"]
    assert job_id in {job["id"] for job in everyone}
    assert platform.client.get(url, headers=auth("root")).status_code == 200


def test_burst_above_the_rate_gets_429(platform: Platform) -> None:
    answers = [
        platform.submit({"prompt": f"burst {i}", **SMALL}, headers=auth("carol"))
        for i in range(RATE + 3)
    ]
    accepted = [a for a in answers if a.status_code == 202]
    limited = [a for a in answers if a.status_code == 429]
    assert len(accepted) == RATE and len(limited) == 3
    first = accepted[0]
    assert first.headers["ratelimit-limit"] == str(RATE)
    assert first.headers["ratelimit-remaining"] == str(RATE - 1)
    for response in limited:
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) > 0
        assert response.headers["ratelimit-remaining"] == "0"
    # Another tenant below its own limit is not affected.
    assert (
        platform.submit({"prompt": "bob is fine", **SMALL}, headers=auth("bob")).status_code == 202
    )


def test_webhook_history_and_secrets_are_the_tenants_own(platform: Platform) -> None:
    created = platform.submit({"prompt": "alice's hook", "seed": 9, **SMALL}, headers=auth("alice"))
    job_id = created.json()["id"]
    history = f"{platform.url}/v1/jobs/{job_id}/webhooks"
    mine = platform.client.get(history, headers=auth("alice"))
    assert mine.status_code == 200 and mine.json() == {"object": "list", "data": []}
    replay = f"{history}/msg_0123/replay"
    for response in (
        platform.client.get(history, headers=auth("bob")),
        platform.client.post(replay, headers=auth("bob")),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert platform.client.get(history).status_code == 401
    secret = f"{platform.url}/v1/webhook-secret"
    alices = platform.client.get(secret, headers=auth("alice")).json()["secret"]
    bobs = platform.client.get(secret, headers=auth("bob")).json()["secret"]
    assert alices != bobs
    rotated = platform.client.post(f"{secret}/rotate", headers=auth("bob")).json()["secret"]
    assert platform.client.get(secret, headers=auth("alice")).json()["secret"] == alices
    assert rotated != bobs
