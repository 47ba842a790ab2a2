"""`t2v local` as a user runs it: from a folder that is not the repository, stopped by a
signal. Every process it started must be gone within 10 s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from t2v.cli import main
from t2v.local.processes import stop_process_group

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
STOP_WITHIN_S = 10.0
SMALL = {"width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 2}


def started_by(data_dir: Path) -> set[int]:
    """Live processes whose standard output is a log in ``data_dir``: what `t2v local`
    started (every function process, and each worker it forks, writes its log there). The
    environment would not do: gunicorn renames its processes with setproctitle, which
    overwrites the memory /proc/<pid>/environ reads."""
    prefix = str(data_dir.resolve()) + "/"
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            stdout = os.readlink(entry / "fd" / "1")
        except OSError:
            continue
        if state != "Z" and stdout.startswith(prefix):
            found.add(int(entry.name))
    return found


def wait_until_gone(data_dir: Path, deadline: float) -> set[int]:
    while (left := started_by(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop_process_group(process, grace_s=2.0)


def start_local(
    launched: list[subprocess.Popen[bytes]], data_dir: Path, model: Path
) -> subprocess.Popen[bytes]:
    # Flags, not the environment: the folder and the flags are what a user controls.
    env = {k: v for k, v in os.environ.items() if k not in ("T2V_DATA_DIR", "T2V_MODEL")}
    command = [sys.executable, "-m", "t2v", "local", "--port", "0"]
    command += ["--data-dir", str(data_dir), "--model", str(model)]
    data_dir.mkdir(parents=True, exist_ok=True)
    with output_path(data_dir).open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd="/tmp",
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    launched.append(process)
    return process


def output_path(data_dir: Path) -> Path:
    return data_dir.parent / "t2v-local.out"


def output(data_dir: Path) -> str:
    return output_path(data_dir).read_text()


def test_from_tmp_a_job_succeeds_and_sigterm_stops_every_process(
    tmp_path: Path, tiny_model_dir: Path, launch: list[subprocess.Popen[bytes]]
) -> None:
    data_dir = tmp_path / "data"
    process = start_local(launch, data_dir, tiny_model_dir)
    state = data_dir / "local.json"
    deadline = time.monotonic() + 240
    while not state.exists():
        assert process.poll() is None, output(data_dir)
        assert time.monotonic() < deadline, "t2v local did not come up"
        time.sleep(0.2)
    gateway = json.loads(state.read_text())["gateway"]
    with httpx.Client(base_url=gateway, timeout=30.0) as client:
        job = client.post("/v1/jobs", json={"prompt": "a lighthouse", **SMALL}).json()
        deadline = time.monotonic() + 120
        while (job := client.get(f"/v1/jobs/{job['id']}").json())["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job["status"] == "succeeded", job
        # Too late to cancel: never a 202 for a job whose video is stored.
        late = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert late.status_code == 409
        assert late.json()["error"]["code"] == "too_late"
    children = started_by(data_dir)
    # gunicorn's master and worker for each of the three functions.
    assert len(children) >= 6, children

    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_WITHIN_S
    assert process.wait(timeout=STOP_WITHIN_S) == 0
    assert wait_until_gone(data_dir, deadline) == set()
    said = output(data_dir)
    assert "t2v is up" in said
    assert str(data_dir) in said  # says where its data is
    assert not state.exists()


def test_ctrl_c_while_starting_stops_every_process(
    tmp_path: Path, tiny_model_dir: Path, launch: list[subprocess.Popen[bytes]]
) -> None:
    data_dir = tmp_path / "data"
    process = start_local(launch, data_dir, tiny_model_dir)
    deadline = time.monotonic() + 60
    while len(started_by(data_dir)) < 3:
        assert process.poll() is None
        assert time.monotonic() < deadline, "no function process started"
        time.sleep(0.05)
    assert not (data_dir / "local.json").exists(), "meant to interrupt the start, not a run"
    process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_WITHIN_S
    process.wait(timeout=STOP_WITHIN_S)
    assert wait_until_gone(data_dir, deadline) == set()


def test_a_missing_model_fails_fast_and_says_how_to_build_it(
    tmp_path: Path, launch: list[subprocess.Popen[bytes]]
) -> None:
    data_dir = tmp_path / "data"
    process = start_local(launch, data_dir, data_dir / "models" / "tiny-mochi")
    assert process.wait(timeout=60) == 2
    said = output(data_dir)
    assert f"no model at {data_dir / 'models' / 'tiny-mochi'}" in said
    assert f"t2v build-tiny-model --data-dir {data_dir}" in said
    assert "t2v is up" not in said
    assert started_by(data_dir) == set()


def test_help_lists_the_options_and_their_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["local", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option, variable in (
        ("--port", "T2V_LOCAL_PORT"),
        ("--data-dir", "T2V_DATA_DIR"),
        ("--model", "T2V_MODEL"),
    ):
        assert option in text and variable in text
