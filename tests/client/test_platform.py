"""The SDK and the `t2v` command against the real local platform (`t2v local` as processes,
real HTTP). The CLI runs in a pseudo-terminal, so rich really draws its progress bar."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from t2v_client import APIError, AsyncClient, Client, JobStatus
from t2v_client.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_UNREACHABLE

from tests.e2e.harness import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SMALL: dict[str, Any] = {"width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 2}
SMALL_FLAGS = ["--width", "64", "--height", "48", "--num-frames", "7", "--steps", "2"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b\][^\x07]*\x07|\r")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Platform]:
    running = Platform(tmp_path_factory.mktemp("client"), tiny_model_dir, {}).start()
    try:
        yield running
    finally:
        running.stop()


def decode(path: Path) -> tuple[int, int, int]:
    with av.open(io.BytesIO(path.read_bytes()), mode="r") as container:
        frames = list(container.decode(video=0))
    return len(frames), frames[0].width, frames[0].height


def event_streams_opened(platform: Platform) -> float:
    """How many `GET /v1/jobs/{id}/events` status has answered 200 (its own metrics)."""
    text = httpx.get(f"{platform.function_url('status')}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "t2v_http_requests_total"
        and sample.labels.get("route") == "/v1/jobs/{job_id}/events"
        and sample.labels.get("code") == "200"
    )


def test_generate_returns_the_sha256_the_job_reports(platform: Platform, tmp_path: Path) -> None:
    streams_before = event_streams_opened(platform)
    seen: list[JobStatus] = []
    with Client(platform.url) as sdk:
        result = sdk.generate(
            "a cat surfing",
            out=tmp_path / "cat.mp4",
            on_progress=lambda j: seen.append(j.status),
            **SMALL,
        )
        reported = sdk.get(result.job.id)
        listed = [job.id for job in sdk.list(limit=5)]
    assert reported.video is not None
    assert result.sha256 == reported.video.sha256 == result.job.video.sha256  # type: ignore[union-attr]
    assert decode(result.path) == (reported.video.num_frames, 64, 48)
    assert seen[-1] == JobStatus.SUCCEEDED
    assert result.job.id in listed
    # The SDK followed the job over its event stream, not by polling.
    assert event_streams_opened(platform) > streams_before


class DroppingProxy:
    """A 127.0.0.1 proxy in front of the platform that forwards the first request, lets the
    platform answer it, and closes the connection without passing the answer on."""

    def __init__(self, upstream: str, drops: int = 1) -> None:
        self.drops = drops
        self.forwarded: list[httpx.Response] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = httpx.post(upstream + self.path, content=body, headers=headers)
                proxy.forwarded.append(answer)
                if proxy.drops > 0:
                    proxy.drops -= 1
                    self.close_connection = True
                    return
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> DroppingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_submit_retried_after_a_dropped_connection_makes_one_job(platform: Platform) -> None:
    prompt = f"a dropped connection {uuid.uuid4()}"
    with DroppingProxy(platform.url) as proxy, Client(proxy.url) as sdk:
        job = sdk.submit(prompt, **SMALL)
    first, second = proxy.forwarded
    # The platform made the job on the first request, which the client never heard back from.
    assert first.status_code == 202 and first.json()["id"] == job.id
    assert second.headers["idempotent-replayed"] == "true"
    with Client(platform.url) as sdk:
        same = [j for j in sdk.list(limit=100) if j.params.get("prompt") == prompt]
        assert [j.id for j in same] == [job.id]
        sdk.wait(job, timeout_s=120)


class Terminal:
    """A command run in a pseudo-terminal (120 columns), its output read as it comes."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "t2v_client", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **env},
            cwd=cwd,
            start_new_session=True,
        )
        os.close(slave)
        self.raw = b""

    @property
    def text(self) -> str:
        return ANSI.sub("\n", self.raw.decode(errors="replace"))

    def read_until(self, done: Callable[[str], bool], timeout_s: float = 120.0) -> str:
        deadline = time.monotonic() + timeout_s
        while not done(self.text):
            assert time.monotonic() < deadline, self.text
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                try:
                    self.raw += os.read(self.master, 65536)
                except OSError:  # EIO: the command ended and the terminal closed
                    break
        return self.text

    def finish(self, timeout_s: float = 120.0) -> int:
        self.read_until(lambda _: self.process.poll() is not None, timeout_s)
        with contextlib.suppress(OSError):  # EIO once what it printed last is read
            while select.select([self.master], [], [], 0.2)[0]:
                self.raw += os.read(self.master, 65536)
        os.close(self.master)
        return self.process.wait(timeout=timeout_s)


def test_cli_generate_draws_the_progress_bar_and_writes_a_decodable_mp4(
    platform: Platform, tmp_path: Path
) -> None:
    term = Terminal(
        ["generate", "a cat surfing", "--out", "cat.mp4", "--seed", "11", *SMALL_FLAGS],
        {"T2V_URL": platform.url},
        tmp_path,
    )
    assert term.finish() == 0, term.text
    text = term.text
    job_id = re.search(r"submitted (job_\w+)", text)
    assert job_id is not None, text
    job = platform.job(job_id.group(1))
    # The bar was drawn: the queued state, the steps, and 100% at the end.
    assert "queued" in text and "step 2/2" in text and "100%" in text, text
    assert f"sha256 {job['video']['sha256']}" in text
    video = job["video"]
    assert decode(tmp_path / "cat.mp4") == (video["num_frames"], video["width"], video["height"])


def test_ctrl_c_during_generate_asks_and_cancels(platform: Platform, tmp_path: Path) -> None:
    slow = ["--width", "64", "--height", "48", "--num-frames", "7", "--steps", "200"]
    term = Terminal(["generate", "a slow cat", *slow], {"T2V_URL": platform.url}, tmp_path)
    text = term.read_until(lambda t: "step " in t)
    job_id = re.search(r"submitted (job_\w+)", text)
    assert job_id is not None, text
    term.process.send_signal(signal.SIGINT)
    term.read_until(lambda t: "cancel job" in t)
    os.write(term.master, b"y\n")
    assert term.finish() == EXIT_INTERRUPTED, term.text
    assert f"job {job_id.group(1)} canceled" in term.text
    assert platform.wait_terminal(job_id.group(1))["status"] == "canceled"


def run_cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "t2v_client", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_exit_codes_and_json(platform: Platform) -> None:
    refused = run_cli("submit", "a cat", "--width", "17", "--json", url=platform.url)
    assert refused.returncode == EXIT_BAD_INPUT
    assert '"field": "width"' in refused.stdout
    down = run_cli("status", "job_x", url="http://127.0.0.1:9")
    assert down.returncode == EXIT_UNREACHABLE, down.stderr
    submitted = run_cli("submit", "a cat", *SMALL_FLAGS, "--json", url=platform.url)
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    waited = run_cli("wait", job_id, "--json", url=platform.url)
    assert waited.returncode == 0 and '"status": "succeeded"' in waited.stdout


def test_delete_where_the_server_has_it(platform: Platform, tmp_path: Path) -> None:
    with Client(platform.url) as sdk:
        done = sdk.wait(sdk.submit("a cat to delete", seed=5, **SMALL), timeout_s=120)
        sdk.delete(done)
        with pytest.raises(APIError):
            sdk.download(done.id, tmp_path / "gone.mp4")


async def test_async_generate_and_the_cli_job_commands(platform: Platform, tmp_path: Path) -> None:
    async with AsyncClient(platform.url) as sdk:
        result = await sdk.generate("an async cat", out=tmp_path / "a.mp4", seed=9, **SMALL)
        listed = [job.id async for job in sdk.list(status="succeeded", limit=3)]
    job_id = result.job.id
    assert result.job.video is not None and result.sha256 == result.job.video.sha256
    assert job_id in listed
    status = run_cli("status", job_id, "--json", url=platform.url)
    assert json.loads(status.stdout)["video"]["sha256"] == result.sha256
    fetched = run_cli(
        "download", job_id, "--out", str(tmp_path / "b.mp4"), "--json", url=platform.url
    )
    assert json.loads(fetched.stdout)["sha256"] == result.sha256
    assert (tmp_path / "b.mp4").read_bytes() == result.path.read_bytes()
    listing = run_cli("list", "--status", "succeeded", "--json", url=platform.url)
    assert job_id in [job["id"] for job in json.loads(listing.stdout)]
    late = run_cli("cancel", job_id, url=platform.url)
    assert late.returncode == EXIT_BAD_INPUT and "too_late" in late.stderr
