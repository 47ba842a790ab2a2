"""Start ``python -m t2v local`` on the tiny model for a benchmark, and stop it afterwards.

The same approach as the end-to-end tests' harness: a real process tree in its own session,
ready once it has written ``local.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from t2v.local.processes import stop_process_group
from t2v.model.tiny import build_tiny_mochi, is_built

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TERMINAL = ("succeeded", "failed", "canceled")
TINY_SEED = 0


@dataclass
class RunningPlatform:
    data_dir: pathlib.Path
    model_dir: pathlib.Path
    process: subprocess.Popen[bytes]

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.data_dir / "local.json").read_text()))

    @property
    def gateway(self) -> str:
        return str(self.state()["gateway"])

    def function_url(self, name: str) -> str:
        return str(self.state()["functions"][name]["url"])


def tiny_model(directory: pathlib.Path) -> pathlib.Path:
    if not is_built(directory, seed=TINY_SEED):
        build_tiny_mochi(directory, seed=TINY_SEED)
    return directory


@contextlib.contextmanager
def local_platform(
    data_dir: pathlib.Path,
    model_dir: pathlib.Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 240.0,
) -> Iterator[RunningPlatform]:
    """The whole platform on 127.0.0.1, free ports, the tiny model, until the block ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    state = data_dir / "local.json"
    state.unlink(missing_ok=True)
    full_env = {
        **os.environ,
        "T2V_DATA_DIR": str(data_dir),
        "T2V_MODEL": str(model_dir),
        "T2V_MODEL_PROFILE": "tiny",
        "T2V_LOCAL_PORT": "0",
        **(env or {}),
    }
    with (data_dir / "platform.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "t2v", "local"],
            cwd=REPO_ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not state.exists():
            if process.poll() is not None:
                raise RuntimeError(f"platform exited: see {data_dir / 'platform.log'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"platform not ready after {timeout_s} s")
            time.sleep(0.1)
        yield RunningPlatform(data_dir=data_dir, model_dir=model_dir, process=process)
    finally:
        stop_process_group(process)


def submit(client: httpx.Client, base: str, body: Mapping[str, object]) -> str:
    response = client.post(f"{base}/v1/jobs", json=body)
    response.raise_for_status()
    return str(response.json()["id"])


def wait_until(
    client: httpx.Client,
    base: str,
    job_id: str,
    statuses: tuple[str, ...],
    *,
    poll_s: float,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"{base}/v1/jobs/{job_id}")
        response.raise_for_status()
        job = dict(response.json())
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
        time.sleep(poll_s)
