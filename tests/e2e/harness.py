"""Start `python -m t2v local` as a real process tree and talk to it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from t2v.event_auth import SENDER_ATTRIBUTE, SIGNATURE_HEADER, signature
from t2v.local.processes import stop_process_group

REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("succeeded", "failed", "canceled")
# The sender `publish` posts each event type as, by default (the others: infer).
_SENDER_OF = {
    "dev.t2v.job.submit": "external",
    "dev.t2v.job.requested": "submit",
}

# Small, fast settings: short leases and sweeps so fault tests finish in seconds.
FAST_ENV = {
    "T2V_LEASE_TTL_S": "3",
    "T2V_HEARTBEAT_S": "0.5",
    "T2V_PROGRESS_INTERVAL_S": "0",
    "T2V_QUEUED_STALE_S": "30",
    "T2V_LOCAL_PING_INTERVAL_S": "1",
    "T2V_LOCAL_DELIVERY": json.dumps({"*": {"backoff_delay_s": 0.25}}),
    "T2V_SUBMIT_RATE": "1000/minute",
    "T2V_MAX_ACTIVE_JOBS": "100",
    # Tests that send wrong keys on purpose share 127.0.0.1 (tests/security tests the rate).
    "T2V_FAILED_KEY_RATE": "1000/minute",
}


class Platform:
    def __init__(self, data_dir: Path, model_dir: Path, env: Mapping[str, str]) -> None:
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            **FAST_ENV,
            "T2V_DATA_DIR": str(data_dir),
            "T2V_MODEL": str(model_dir),
            "T2V_MODEL_PROFILE": "tiny",
            "T2V_LOCAL_PORT": "0",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(timeout=30.0)

    def start(self, timeout_s: float = 240.0) -> Platform:
        state = self.data_dir / "local.json"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The child keeps its own descriptor of the log: ours is closed once it has started.
        with (self.data_dir / "platform.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "t2v", "local"],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while not state.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"platform exited: see {self.data_dir / 'platform.log'}")
            if time.monotonic() > deadline:
                raise TimeoutError("platform did not start")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        self.client.close()
        if self.process is not None:
            stop_process_group(self.process)

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.data_dir / "local.json").read_text()))

    @property
    def url(self) -> str:
        return str(self.state()["gateway"])

    @property
    def broker(self) -> str:
        return str(self.state()["broker"])

    def function_url(self, name: str) -> str:
        return str(self.state()["functions"][name]["url"])

    def kill_function(self, name: str) -> int:
        pid = int(self.state()["functions"][name]["pid"])
        os.killpg(pid, signal.SIGKILL)
        return pid

    def submit(self, body: Any, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return self.client.post(f"{self.url}/v1/jobs", json=body, headers=headers)

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"{self.url}/v1/jobs/{job_id}")
        response.raise_for_status()
        return dict(response.json())

    def wait_for(
        self,
        job_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout_s: float = 120.0,
        fetch: Callable[[], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            job = fetch() if fetch is not None else self.job(job_id)
            if predicate(job):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"{job_id} stuck at {job['status']} {job.get('progress')}")
            time.sleep(0.05)

    def wait_terminal(self, job_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
        return self.wait_for(job_id, lambda job: job["status"] in TERMINAL, timeout_s)

    def events(self) -> list[dict[str, Any]]:
        path = self.data_dir / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def credentials(self) -> dict[str, Any]:
        """The senders' tokens and the signing key `t2v local` keeps in the data dir."""
        return dict(json.loads((self.data_dir / "credentials.json").read_text()))

    def publish(
        self, event: CloudEvent, *, structured: bool = False, token: str | None = None
    ) -> httpx.Response:
        """Post to the broker's ingress as the sender that may send this type (another
        system for job.submit, submit for job.requested), or with ``token``."""
        headers, body = to_structured(event) if structured else to_binary(event)
        if token is None:
            token = self.credentials()["senders"][_SENDER_OF.get(event["type"], "infer")]
        headers = {**headers, "Authorization": f"Bearer {token}"}
        return self.client.post(self.broker, headers=headers, content=body)

    def deliver(self, function: str, event: CloudEvent, *, sender: str) -> httpx.Response:
        """Post ``event`` to a function's /events as the broker delivers it from ``sender``."""
        event[SENDER_ATTRIBUTE] = sender
        headers, body = to_binary(event)
        headers = {key: str(value) for key, value in headers.items()}
        key = str(self.credentials()["signing_key"]).encode()
        headers[SIGNATURE_HEADER] = signature(key, headers, body)
        return self.client.post(
            f"{self.function_url(function)}/events", headers=headers, content=body
        )

    def infer_stats(self) -> dict[str, Any]:
        return dict(self.client.get(f"{self.function_url('infer')}/stats").json())
