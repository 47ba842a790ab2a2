"""Webhooks end to end: the real local platform (notify behind the broker's Triggers) and a
real receiver process on 127.0.0.1. The broker retries a failed completion; every attempt
is in the job's history; the signature verifies with the `standardwebhooks` reference; a
replay carries the same webhook-id; the events filter holds; refused targets are a 400."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from t2v.local.processes import stop_process_group
from tests.e2e.harness import REPO_ROOT, Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SMALL = {"width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 2}
WAIT_S = 120.0


@dataclass
class Receiver:
    url: str
    log: Path

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        found = [json.loads(line) for line in lines if line.strip()]
        for request in found:
            request["body"] = base64.b64decode(request["body"])
            request["payload"] = json.loads(request["body"])
        return found

    def of_job(self, job_id: str) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["payload"]["data"]["id"] == job_id]


def wait_until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (found := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)
    return found


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    port_file, log = tmp_path / "port", tmp_path / "requests.jsonl"
    command = [sys.executable, "-m", "tests.e2e.webhook_receiver"]
    command += ["--port-file", str(port_file), "--log", str(log), "--fail-completions", "3"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True)
    try:
        wait_until(port_file.exists, "the receiver did not start")
        yield Receiver(f"http://127.0.0.1:{port_file.read_text()}/hook", log)
    finally:
        stop_process_group(process)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Platform]:
    env = {"T2V_WEBHOOK_ALLOW_HTTP": "true", "T2V_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}
    running = Platform(tmp_path_factory.mktemp("webhooks"), tiny_model_dir, env).start()
    try:
        yield running
    finally:
        running.stop()


def test_a_failing_receiver_gets_the_fourth_completion_and_a_replay(
    platform: Platform, receiver: Receiver
) -> None:
    created = platform.submit({"prompt": "a fox", "seed": 3, "webhook": receiver.url, **SMALL})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert platform.wait_terminal(job_id)["status"] == "succeeded"
    sent = wait_until(lambda: len(receiver.of_job(job_id)) >= 4 and receiver.of_job(job_id), "4")
    assert [r["answered"] for r in sent] == [500, 500, 500, 204]
    assert {r["payload"]["type"] for r in sent} == {"job.completed"}
    assert len({r["headers"]["webhook-id"] for r in sent}) == 1
    assert len({r["body"] for r in sent}) == 1  # retries send the same body
    secret = platform.client.get(f"{platform.url}/v1/webhook-secret").json()["secret"]
    payload = standardwebhooks.Webhook(secret).verify(sent[-1]["body"], sent[-1]["headers"])
    assert payload["data"]["status"] == "succeeded"

    history = platform.client.get(f"{platform.url}/v1/jobs/{job_id}/webhooks").json()["data"]
    assert len(history) == 1
    delivery = history[0]
    assert delivery["id"] == sent[0]["headers"]["webhook-id"]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 204]
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3, 4]
    assert all(a["latency_ms"] >= 0 and a["at"] for a in delivery["attempts"])

    replay_url = f"{platform.url}/v1/jobs/{job_id}/webhooks/{delivery['id']}/replay"
    replayed = platform.client.post(replay_url)
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["replay"] is True and replayed.json()["attempt"] == 5
    again = wait_until(lambda: len(receiver.of_job(job_id)) >= 5 and receiver.of_job(job_id), "5")
    assert again[-1]["headers"]["webhook-id"] == delivery["id"]
    standardwebhooks.Webhook(secret).verify(again[-1]["body"], again[-1]["headers"])
    missing = platform.client.post(f"{platform.url}/v1/jobs/{job_id}/webhooks/msg_0/replay")
    assert missing.status_code == 404


def test_the_events_filter_is_honoured(platform: Platform, receiver: Receiver) -> None:
    body = {"prompt": "a cat", "seed": 4, "webhook": receiver.url, "webhook_events": ["start"]}
    job_id = platform.submit({**body, **SMALL}).json()["id"]
    assert platform.wait_terminal(job_id)["status"] == "succeeded"
    # notify has answered the job's succeeded event (and sent nothing for it).
    wait_until(
        lambda: any(
            e.get("trigger") == "t2v-notify-succeeded"
            and e["subject"] == job_id
            and e.get("outcome") == "delivered"
            for e in platform.events()
        ),
        "notify never took the succeeded event",
    )
    sent = wait_until(lambda: receiver.of_job(job_id), "no start webhook")
    assert [r["payload"]["type"] for r in sent] == ["job.started"]
    history = platform.client.get(f"{platform.url}/v1/jobs/{job_id}/webhooks").json()["data"]
    assert [d["event"] for d in history] == ["start"]


@pytest.mark.parametrize(
    ("webhook", "code"),
    [
        ("https://169.254.169.254/latest/meta-data", "webhook_refused"),
        ("https://10.0.0.8/hook", "webhook_refused"),
        ("https://[::ffff:192.168.0.1]/hook", "webhook_refused"),
        ("https://localhost/hook", "webhook_refused"),
        ("ftp://example.com/hook", "invalid_value"),
    ],
)
def test_refused_targets_are_a_clear_400(platform: Platform, webhook: str, code: str) -> None:
    response = platform.submit({"prompt": "a dog", "webhook": webhook, **SMALL})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, "webhook")
    # Nothing was stored.
    listed = platform.client.get(f"{platform.url}/v1/jobs").json()["data"]
    assert all(job["params"].get("webhook") != webhook for job in listed)


def test_the_secret_rotates_and_is_the_tenants(platform: Platform) -> None:
    first = platform.client.get(f"{platform.url}/v1/webhook-secret").json()
    rotated = platform.client.post(f"{platform.url}/v1/webhook-secret/rotate").json()
    assert rotated["secret"] != first["secret"] and rotated["secret"].startswith("whsec_")
    assert platform.client.get(f"{platform.url}/v1/webhook-secret").json() == rotated
