"""submit's ASGI app in process: create, refuse bad input with stable codes, cancel, sweep."""

from __future__ import annotations

import time

import pytest

from t2v import events
from t2v.events import make_event
from t2v.jobs import JobStatus, JobUpdate, Progress
from tests.inprocess.conftest import Functions, post_event, signed, sweep


async def test_a_created_job_is_stored_queued_and_requested(functions: Functions) -> None:
    job = await functions.create()
    assert job["status"] == "queued" and job["queue_position"] == 1
    stored = await (await functions.runtime("submit")).store.get(job["id"])
    assert stored is not None and stored.status == JobStatus.QUEUED
    assert functions.sink.of_type(events.JOB_REQUESTED) == [
        {"job_id": job["id"], "tenant": "local"}
    ]


async def test_an_idempotent_replay_returns_the_same_job_and_requests_it_once(
    functions: Functions,
) -> None:
    body = {"prompt": "a fox", "width": 64, "height": 48, "num_frames": 7}
    headers = {"Idempotency-Key": "order-17"}
    first = await functions.submit.post("/v1/jobs", json=body, headers=headers)
    # The same request with its keys in another order is the same request.
    again = await functions.submit.post(
        "/v1/jobs", json=dict(reversed(body.items())), headers=headers
    )
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(functions.sink.of_type(events.JOB_REQUESTED)) == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", {}, 400, "invalid_json"),
        (b'{"prompt": ""}', {}, 400, None),
        (b'{"prompt": "x", "num_inference_steps": 0}', {}, 400, None),
        (b'{"prompt": "x"}', {"Content-Type": "text/plain"}, 415, None),
        (b'{"prompt": "x"}', {"Idempotency-Key": "k" * 256}, 400, "invalid_idempotency_key"),
        (b'{"prompt": "x"}', {"Idempotency-Key": "tab\there"}, 400, "invalid_idempotency_key"),
    ],
)
async def test_bad_input_is_refused_with_a_stable_code_and_nothing_stored(
    functions: Functions, body: bytes, headers: dict[str, str], status: int, code: str | None
) -> None:
    response = await functions.submit.post(
        "/v1/jobs", content=body, headers={"Content-Type": "application/json", **headers}
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]
    if code is not None:
        assert error["code"] == code
    listing = await functions.status.get("/v1/jobs")
    assert listing.json()["data"] == []
    assert functions.sink.sent == []


async def test_the_longest_idempotency_key_is_taken(functions: Functions) -> None:
    response = await functions.submit.post(
        "/v1/jobs", json={"prompt": "x"}, headers={"Idempotency-Key": "k" * 255}
    )
    assert response.status_code == 202, response.text


async def test_canceling_a_queued_job_cancels_it_and_says_so_once(functions: Functions) -> None:
    job = await functions.create()
    first = await functions.submit.post(f"/v1/jobs/{job['id']}/cancel")
    again = await functions.submit.post(f"/v1/jobs/{job['id']}/cancel")
    assert first.status_code == again.status_code == 202
    assert first.json()["status"] == again.json()["status"] == "canceled"
    assert functions.sink.of_type(events.JOB_CANCELED) == [{"job_id": job["id"], "reason": "user"}]


async def test_cancel_of_an_unknown_job_is_404(functions: Functions) -> None:
    response = await functions.submit.post("/v1/jobs/job_nope/cancel")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_cancel_once_the_video_is_being_stored_is_409_too_late(functions: Functions) -> None:
    job = await functions.create()
    store = (await functions.runtime("submit")).store
    total = Progress(1, 2, 2)
    await store.apply(JobUpdate(job["id"], JobStatus.RUNNING, phase="uploading", progress=total))
    response = await functions.submit.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "too_late"


async def test_a_job_submit_event_creates_one_job_however_often_it_is_delivered(
    functions: Functions,
) -> None:
    event = make_event(
        events.JOB_SUBMIT, source="/tests", subject="", data={"prompt": "a fox", "num_frames": 7}
    )
    headers, body = signed(event)
    answers = [
        (await functions.submit.post("/events", content=body, headers=headers)).json()
        for _ in range(2)
    ]
    assert answers[0] == answers[1] and answers[0]["status"] == "queued"


async def test_submit_takes_no_other_event_type(functions: Functions) -> None:
    response = await post_event(functions.submit, events.JOB_STARTED, {"job_id": "job_1"})
    assert response.status_code == 400


class Clock:
    """submit's wall clock, moved forward by the test (the sweep compares job ages with it)."""

    def __init__(self, functions: Functions, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        monkeypatch.setattr(functions.modules["submit"], "time", self)

    def time(self) -> float:
        return time.time() + self.offset


async def test_the_sweep_re_requests_a_stale_queued_job_with_growing_waits(
    functions: Functions, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale_s = functions.settings.queued_stale_s
    clock = Clock(functions, monkeypatch)
    job = await functions.create()
    assert await sweep(functions) == {"rerequested": 0, "failed": 0}
    clock.offset = stale_s + 1
    assert await sweep(functions) == {"rerequested": 1, "failed": 0}
    # After one re-request the job waits twice as long before it is asked for again.
    clock.offset = 2 * stale_s - 1
    assert await sweep(functions) == {"rerequested": 0, "failed": 0}
    clock.offset = 2 * stale_s + 1
    assert await sweep(functions) == {"rerequested": 1, "failed": 0}
    assert len(functions.sink.of_type(events.JOB_REQUESTED, job["id"])) == 3
    stored = await (await functions.runtime("submit")).store.get(job["id"])
    assert stored is not None and stored.status == JobStatus.QUEUED and stored.sweeps == 2


async def test_the_sweep_fails_a_lost_running_job_worker_lost_after_max_attempts(
    functions: Functions,
) -> None:
    job = await functions.create()
    store = (await functions.runtime("submit")).store
    await store.apply(JobUpdate(job["id"], JobStatus.RUNNING, phase="starting", at=time.time()))
    for _ in range(functions.settings.max_attempts):
        assert await sweep(functions) == {"rerequested": 1, "failed": 0}
    assert await sweep(functions) == {"rerequested": 0, "failed": 1}
    assert await sweep(functions) == {"rerequested": 0, "failed": 0}
    failed = await functions.status.get(f"/v1/jobs/{job['id']}")
    assert failed.json()["status"] == "failed"
    assert failed.json()["error"]["code"] == "worker_lost"
    [sent] = functions.sink.of_type(events.JOB_FAILED, job["id"])
    assert sent["error"]["code"] == "worker_lost"


async def test_the_sweep_leaves_a_job_with_a_live_lease_alone(functions: Functions) -> None:
    job = await functions.create()
    store = (await functions.runtime("submit")).store
    await store.apply(JobUpdate(job["id"], JobStatus.RUNNING, phase="starting", at=time.time()))
    assert await store.claim(job["id"], "worker-a", ttl_s=60, now=time.time()) is not None
    for _ in range(functions.settings.max_attempts + 1):
        assert await sweep(functions) == {"rerequested": 0, "failed": 0}
