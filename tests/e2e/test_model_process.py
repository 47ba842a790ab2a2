"""The model in a child process, on the real local platform: crashes there (a real SIGSEGV,
``os._exit``, CUDA out of memory) cost one job a retry, never infer its life.

Faults come from T2V_TEST_FAULTS (t2v/worker/faults.py), enabled for these platforms only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SMALL_JOB = {"prompt": "crash", "width": 64, "height": 48, "num_frames": 7}
LONG_JOB = {
    "prompt": "long",
    "width": 432,
    "height": 240,
    "num_frames": 31,
    "num_inference_steps": 8,
}


@pytest.fixture
def start(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Any]:
    started: list[Platform] = []

    def start_with(faults: str) -> Platform:
        env = {"T2V_WARMUP": "0", "T2V_ENABLE_TEST_FAULTS": "1", "T2V_TEST_FAULTS": faults}
        platform = Platform(tmp_path / f"platform-{len(started)}", tiny_model_dir, env)
        started.append(platform)
        return platform.start()

    yield start_with
    for platform in started:
        platform.stop()


class HealthWatch:
    """Asks infer's /healthz again and again while a job runs; every answer is kept."""

    def __init__(self, platform: Platform) -> None:
        self._url = f"{platform.function_url('infer')}/healthz"
        self._stop = threading.Event()
        self.answers: list[int | str] = []
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.wait(0.05):
                try:
                    self.answers.append(client.get(self._url).status_code)
                except httpx.HTTPError as exc:
                    self.answers.append(type(exc).__name__)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _started(platform: Platform, job_id: str) -> int:
    return sum(
        1
        for e in platform.events()
        if e["kind"] == "ingress" and e["type"] == "dev.t2v.job.started" and e["subject"] == job_id
    )


def test_a_segfault_is_retried_once_on_a_fresh_process_and_succeeds(start: Any) -> None:
    platform = start("segfault@step2")
    infer_pid = platform.state()["functions"]["infer"]["pid"]
    job = platform.submit(SMALL_JOB).json()
    with HealthWatch(platform) as health:
        done = platform.wait_terminal(job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert health.answers and set(health.answers) == {200}
    stats = platform.infer_stats()
    assert stats["model_crashes"] == 1
    assert stats["generations"] == 1
    # The crashed run and at least one retry. A released lease is stale at once, so the
    # sweep may request the job again beside the broker's retry while the fresh process
    # loads: both start, the lease lets one generate (generations == 1 above).
    assert _started(platform, job["id"]) >= 2
    # infer itself lived on: the same process answered throughout.
    assert platform.state()["functions"]["infer"]["pid"] == infer_pid
    assert platform.client.get(f"{platform.function_url('infer')}/readyz").status_code == 200


def test_a_job_that_crashes_every_time_fails_worker_crashed(start: Any) -> None:
    platform = start("segfault@step1x*")
    job = platform.submit(SMALL_JOB).json()
    with HealthWatch(platform) as health:
        done = platform.wait_terminal(job["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "worker_crashed"
    assert "SIGSEGV" in done["error"]["message"]
    assert done["error"]["retryable"] is False
    assert set(health.answers) == {200}
    assert platform.infer_stats()["model_crashes"] == 2
    # The next job runs on the third model process (the fault hits every run: it fails too,
    # which shows a fresh process took it rather than infer having stopped).
    again = platform.wait_terminal(platform.submit(SMALL_JOB).json()["id"])
    assert again["error"]["code"] == "worker_crashed"


def test_exit_then_out_of_memory_fails_out_of_memory(start: Any) -> None:
    platform = start("exit@step1,oom@step1x*")
    job = platform.submit(SMALL_JOB).json()
    done = platform.wait_terminal(job["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "out_of_memory"
    assert platform.infer_stats()["model_crashes"] == 2
    crashed = [
        line
        for line in (platform.data_dir / "logs" / "infer.log").read_text().splitlines()
        if "exited with status 3" in line
    ]
    assert crashed, "infer did not log the os._exit of the model process"


def test_a_cancel_reaches_the_model_process_within_a_step(start: Any) -> None:
    platform = start("")
    job = platform.submit(LONG_JOB).json()
    running = platform.wait_for(job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 2)
    canceled = platform.client.post(f"{platform.url}/v1/jobs/{job['id']}/cancel")
    assert canceled.status_code == 202
    done = platform.wait_terminal(job["id"])
    assert done["status"] == "canceled"
    # The model stopped short of its last step: the cancel went down the pipe mid-run.
    assert running["progress"]["step"] <= done["progress"]["step"]
    assert done["progress"]["step"] < LONG_JOB["num_inference_steps"]
    stats = platform.infer_stats()
    assert (stats["generations"], stats["model_crashes"]) == (0, 0)
