"""Failures on the job path: killed workers, duplicate deliveries, a worker that always fails.

Each test starts its own platform with settings that make the fault show quickly.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cloudevents.http import CloudEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from t2v.local.platform import free_port
from tests.e2e.harness import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SLOW_JOB = {
    "prompt": "slow",
    "width": 432,
    "height": 240,
    "num_frames": 31,
    "num_inference_steps": 8,
}


def _platform(tmp_path: Path, model: Path, env: dict[str, Any]) -> Platform:
    settings = {
        key: json.dumps(value) if isinstance(value, dict) else str(value)
        for key, value in env.items()
    }
    return Platform(tmp_path / "platform", model, settings).start()


@pytest.fixture
def platforms(tmp_path: Path, tiny_model_dir: Path) -> Iterator[list[Platform]]:
    started: list[Platform] = []
    yield started
    for platform in started:
        platform.stop()


def _count(platform: Platform, event_type: str, job_id: str) -> int:
    return sum(
        1
        for e in platform.events()
        if e["kind"] == "ingress" and e["type"] == event_type and e["subject"] == job_id
    )


def _delivered(platform: Platform, event_id: str, trigger: str) -> int:
    """How many times the broker delivered the event through `trigger` and had it answered."""
    return sum(
        1
        for e in platform.events()
        if e["kind"] == "delivery"
        and e["id"] == event_id
        and e["trigger"] == trigger
        and e["outcome"] == "delivered"
    )


def _requested_event(job: dict[str, Any]) -> CloudEvent:
    data = {"job_id": job["id"], "tenant": "local", "params": job["params"]}
    return CloudEvent(
        {
            "type": "dev.t2v.job.requested",
            "source": "/tests",
            "id": uuid.uuid4().hex,
            "subject": job["id"],
        },
        data,
    )


def test_killed_worker_redelivery_finishes_once(
    platforms: list[Platform], tmp_path: Path, tiny_model_dir: Path
) -> None:
    platform = _platform(
        tmp_path,
        tiny_model_dir,
        {
            "T2V_LEASE_TTL_S": 2,
            # No sweep: the broker's redelivery alone must finish the job.
            "T2V_LOCAL_PING_INTERVAL_S": 3600,
            "T2V_LOCAL_DELIVERY": {"t2v-infer-job": {"retry": 6, "backoff_delay_s": 1.5}},
        },
    )
    platforms.append(platform)
    job = platform.submit(SLOW_JOB).json()
    platform.wait_for(job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 2)
    killed = platform.kill_function("infer")
    done = platform.wait_terminal(job["id"], timeout_s=180)
    assert done["status"] == "succeeded", done["error"]
    assert platform.state()["functions"]["infer"]["pid"] != killed
    assert done["progress"]["attempt"] == 2
    assert _count(platform, "dev.t2v.job.succeeded", job["id"]) == 1
    assert platform.infer_stats()["generations"] == 1


def test_acknowledged_duplicate_then_worker_lost_sweep_recovers(
    platforms: list[Platform], tmp_path: Path, tiny_model_dir: Path
) -> None:
    platform = _platform(
        tmp_path,
        tiny_model_dir,
        {
            "T2V_LEASE_TTL_S": 3,
            # Sweeps far enough apart, and enough of them, to outlast infer's restart.
            "T2V_LOCAL_PING_INTERVAL_S": 3,
            "T2V_MAX_ATTEMPTS": 8,
            # The broker gives up at once, so only the sweep can bring the job back.
            "T2V_LOCAL_DELIVERY": {"t2v-infer-job": {"retry": 0, "parallelism": 2}},
        },
    )
    platforms.append(platform)
    job = platform.submit(SLOW_JOB).json()
    platform.wait_for(job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 1)
    duplicate = platform.deliver("infer", _requested_event(job), sender="submit")
    assert duplicate.status_code == 200
    assert duplicate.json()["result"] == "duplicate"
    platform.kill_function("infer")
    done = platform.wait_terminal(job["id"], timeout_s=180)
    assert done["status"] == "succeeded", done["error"]
    assert _count(platform, "dev.t2v.job.succeeded", job["id"]) == 1
    rerequests = [
        e
        for e in platform.events()
        if e["kind"] == "ingress"
        and e["type"] == "dev.t2v.job.requested"
        and e["subject"] == job["id"]
        and e["source"] == "/t2v/submit"
    ]
    assert len(rerequests) >= 2  # the submit's request and at least one by the sweep


class AlwaysFailing:
    """An infer stand-in that answers 503 to everything: fault injection only."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls = 0

        async def fail(request: Request) -> PlainTextResponse:
            self.calls += 1
            return PlainTextResponse("GPU on fire", status_code=503)

        app = Starlette(routes=[Route("/{path:path}", fail, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> AlwaysFailing:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_always_failing_worker_dead_letters_the_job(
    platforms: list[Platform], tmp_path: Path, tiny_model_dir: Path
) -> None:
    with AlwaysFailing() as failing:
        platform = _platform(
            tmp_path,
            tiny_model_dir,
            {
                "T2V_LOCAL_SERVICE_URLS": {"t2v-infer": f"http://127.0.0.1:{failing.port}"},
                "T2V_LOCAL_DELIVERY": {"t2v-infer-job": {"retry": 2, "backoff_delay_s": 0.1}},
                "T2V_LOCAL_PING_INTERVAL_S": 3600,
            },
        )
        platforms.append(platform)
        job = platform.submit({"prompt": "doomed"}).json()
        done = platform.wait_terminal(job["id"], timeout_s=60)
        assert failing.calls == 3  # the first try and two retries
    assert done["status"] == "failed"
    error = done["error"]
    assert error["code"] == "delivery_failed"
    assert error["details"]["knativeerrorcode"] == "503"
    assert error["details"]["knativeerrordest"].startswith(f"http://127.0.0.1:{failing.port}")
    assert "knativeerrordata" in error["details"]


def test_same_request_delivered_twice_generates_once(
    platforms: list[Platform], tmp_path: Path, tiny_model_dir: Path
) -> None:
    platform = _platform(
        tmp_path,
        tiny_model_dir,
        {
            "T2V_LOCAL_DELIVERY": {"t2v-infer-job": {"parallelism": 2}},
            "T2V_LOCAL_PING_INTERVAL_S": 3600,
        },
    )
    platforms.append(platform)
    job = platform.submit(SLOW_JOB).json()
    platform.wait_for(job["id"], lambda j: j["status"] == "running")
    duplicate = _requested_event(job)
    assert platform.publish(duplicate).status_code == 202  # while it runs
    done = platform.wait_terminal(job["id"], timeout_s=120)
    assert platform.publish(duplicate).status_code == 202  # after it finished
    # Both copies answered by infer (the broker logs each delivery's outcome), not a sleep.
    platform.wait_for(
        job["id"],
        lambda answered: answered["count"] == 2,
        fetch=lambda: {"count": _delivered(platform, duplicate["id"], "t2v-infer-job")},
    )
    assert done["status"] == "succeeded"
    assert platform.infer_stats()["generations"] == 1
    assert _count(platform, "dev.t2v.job.succeeded", job["id"]) == 1
