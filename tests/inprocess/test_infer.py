"""infer's ASGI app in process: which `job.requested` deliveries it acknowledges, and how."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from t2v import events
from tests.inprocess.conftest import Functions, post_event


async def request(functions: Functions, job_id: str) -> tuple[int, dict[str, str]]:
    data = {"job_id": job_id, "tenant": "local"}
    response = await post_event(functions.infer, events.JOB_REQUESTED, data, subject=job_id)
    return response.status_code, response.json()


async def test_a_request_for_an_unknown_job_is_acknowledged_and_ignored(
    functions: Functions,
) -> None:
    assert await request(functions, "job_nope") == (
        200,
        {"job_id": "job_nope", "result": "ignored", "detail": "unknown or finished job"},
    )


async def test_a_request_for_a_canceled_job_is_acknowledged_and_ignored(
    functions: Functions,
) -> None:
    job = await functions.create()
    await functions.submit.post(f"/v1/jobs/{job['id']}/cancel")
    status, body = await request(functions, job["id"])
    assert (status, body["result"]) == (200, "ignored")
    assert functions.sink.of_type(events.JOB_STARTED) == []


async def test_a_job_another_live_worker_holds_is_a_duplicate(functions: Functions) -> None:
    job = await functions.create()
    store = (await functions.runtime("infer")).store
    assert await store.claim(job["id"], "worker-b", ttl_s=60, now=time.time()) is not None
    status, body = await request(functions, job["id"])
    assert (status, body["result"]) == (200, "duplicate")
    assert functions.sink.of_type(events.JOB_STARTED) == []


async def test_infer_refuses_other_event_types_and_requests_that_name_no_job(
    functions: Functions,
) -> None:
    other = await post_event(functions.infer, events.JOB_SUBMIT, {"prompt": "x"})
    assert other.status_code == 400
    nameless = await post_event(functions.infer, events.JOB_REQUESTED, {"tenant": "local"})
    assert nameless.status_code == 400


class TestGeneration:
    @pytest.fixture
    def function_env(self, tiny_model_dir: Path) -> dict[str, str]:
        return {"T2V_MODEL": str(tiny_model_dir)}

    async def test_a_request_runs_the_job_and_reports_it(self, functions: Functions) -> None:
        job = await functions.create()
        status, body = await request(functions, job["id"])
        assert (status, body["result"]) == (200, "succeeded")
        [started] = functions.sink.of_type(events.JOB_STARTED, job["id"])
        assert started["attempt"] == 1 and started["total_steps"] == 2
        [done] = functions.sink.of_type(events.JOB_SUCCEEDED, job["id"])
        assert done["video"]["num_frames"] == 7 and not done["cached"]
