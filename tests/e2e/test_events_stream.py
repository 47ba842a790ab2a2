"""`GET /v1/jobs/{id}/events` on the real local platform with two status processes: a stream
resumed on the other process with Last-Event-ID loses no state change and repeats none."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent

from t2v.auth import hash_key
from t2v.store.sqlite import SqliteJobStore
from tests.e2e.harness import TERMINAL, Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]
KEYS = {"alice": "key-alice-1", "bob": "key-bob-2"}
# Enough steps that a stream cut after its first event is cut while the job runs.
JOB = {"width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 8}


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who]}"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Platform]:
    registry = {hash_key(key): {"tenant": who, "role": "user"} for who, key in KEYS.items()}
    env = {"T2V_API_KEYS": json.dumps(registry), "T2V_STATUS_PROCESSES": "2"}
    running = Platform(tmp_path_factory.mktemp("events"), tiny_model_dir, env).start()
    try:
        yield running
    finally:
        running.stop()


def submit(platform: Platform, prompt: str) -> str:
    response = platform.submit({"prompt": prompt, "seed": 5, **JOB}, headers=auth("alice"))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def read_events(
    base: str, job_id: str, *, last_event_id: str | None = None, first_only: bool = False
) -> tuple[httpx.Response, list[ServerSentEvent]]:
    """The stream's events until the server ends it (or only its first, then hang up)."""
    headers = {**auth("alice"), "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    seen: list[ServerSentEvent] = []
    with (
        httpx.Client(timeout=httpx.Timeout(10.0, read=60.0)) as client,
        client.stream("GET", f"{base}/v1/jobs/{job_id}/events", headers=headers) as response,
    ):
        for event in EventSource(response).iter_sse():
            if event.event == "job":
                seen.append(event)
                if first_only:
                    break
    return response, seen


def milestones(jobs: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """Each (status, phase) the job went through, in order (a repeat in a row is one)."""
    found: list[tuple[str, str | None]] = []
    for job in jobs:
        milestone = (job["status"], job["phase"])
        if not found or found[-1] != milestone:
            found.append(milestone)
    return found


def logged_jobs(platform: Platform, job_id: str, from_seq: int) -> list[dict[str, Any]]:
    """The job as each write from `from_seq` on left it: the store's change log itself."""

    async def read() -> list[dict[str, Any]]:
        store = SqliteJobStore(platform.data_dir / "jobs.db")
        try:
            log = await store.changes(job_id, after_seq=from_seq - 1, limit=1000)
        finally:
            await store.close()
        return [{"status": c.job.status.value, "phase": c.job.phase} for c in log]

    return asyncio.run(read())


def test_a_resumed_stream_sees_every_change_exactly_once(platform: Platform) -> None:
    job_id = submit(platform, "a heron at dawn")
    first_process, other_process = (
        platform.function_url("status"),
        platform.function_url("status-2"),
    )

    response, first = read_events(first_process, job_id, first_only=True)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert len(first) == 1
    _, rest = read_events(other_process, job_id, last_event_id=first[0].id)

    events = first + rest
    jobs = [json.loads(event.data) for event in events]
    assert jobs[-1]["status"] in TERMINAL
    ids = [int(event.id) for event in events]
    assert ids == sorted(ids)
    assert len({(event.id, event.data) for event in events}) == len(events)
    assert milestones(jobs) == milestones(logged_jobs(platform, job_id, ids[0]))
    statuses = [status for status, _ in milestones(jobs)]
    transitions = [s for n, s in enumerate(statuses) if n == 0 or statuses[n - 1] != s]
    assert transitions[-1] == "succeeded", jobs[-1]["error"]
    assert len(set(transitions)) == len(transitions)


def test_the_stream_ends_after_the_terminal_event_through_the_gateway(platform: Platform) -> None:
    job_id = submit(platform, "a kite over dunes")
    done = platform.wait_for(
        job_id,
        lambda job: job["status"] in TERMINAL,
        fetch=lambda: platform.client.get(
            f"{platform.url}/v1/jobs/{job_id}", headers=auth("alice")
        ).json(),
    )

    response, events = read_events(platform.url, job_id)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert len(events) == 1  # the job is finished: its state now, then the end
    assert json.loads(events[0].data) == done
    # A resume from the terminal event has nothing to send and ends at once too.
    _, resumed = read_events(platform.url, job_id, last_event_id=events[0].id)
    assert resumed == []


def test_another_tenants_job_is_not_found(platform: Platform) -> None:
    job_id = submit(platform, "alice's lantern")

    for base in (platform.url, platform.function_url("status-2")):
        response = platform.client.get(f"{base}/v1/jobs/{job_id}/events", headers=auth("bob"))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    unauthenticated = platform.client.get(f"{platform.url}/v1/jobs/{job_id}/events")
    assert unauthenticated.status_code == 401


def test_a_last_event_id_that_is_not_one_is_refused(platform: Platform) -> None:
    job_id = submit(platform, "a quiet harbour")
    headers = {**auth("alice"), "Last-Event-ID": "seven"}

    response = platform.client.get(f"{platform.url}/v1/jobs/{job_id}/events", headers=headers)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_last_event_id"
