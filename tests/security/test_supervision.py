"""`kill -9` of a function's listed pid (gunicorn's master) must not leave its worker holding
the port, restarts back off, and the platform's SIGTERM leaves no process behind
(issue 18, item 4)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from t2v.local.processes import RESTART_DELAY_S, FunctionProcess
from t2v.local.processes import stop_process_group as stop_group
from tests.e2e.harness import Platform


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    return text[text.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def wait_until(condition: object, timeout_s: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


class Crashing(FunctionProcess):
    """A function that dies as soon as it starts."""

    def command(self) -> list[str]:
        return [sys.executable, "-c", "raise SystemExit(3)"]


async def test_restarts_back_off_exponentially(tmp_path: Path) -> None:
    starts: list[float] = []
    fifth_start = asyncio.Event()

    def started() -> None:
        starts.append(time.monotonic())
        if len(starts) == 5:
            fifth_start.set()

    proc = Crashing("crash", "crash", tmp_path, 0, {}, tmp_path / "crash.log")
    proc.on_start = started
    await proc.start()
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(fifth_start.wait(), 30)
    finally:
        await proc.stop(grace_s=1)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert len(gaps) >= 3, starts
    for i, gap in enumerate(gaps[:3]):
        assert gap >= RESTART_DELAY_S * 2**i, gaps


@pytest.fixture
def platform(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Platform]:
    running = Platform(tmp_path / "data", tiny_model_dir, {}).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.e2e
@pytest.mark.slow
def test_kill_9_of_the_master_restarts_cleanly_and_sigterm_leaves_nothing(
    platform: Platform,
) -> None:
    master = int(platform.state()["functions"]["infer"]["pid"])
    workers = children(master)
    assert workers, "gunicorn's master has a worker"
    os.kill(master, signal.SIGKILL)  # the listed pid only, as `kill -9 <pid>` does
    wait_until(
        lambda: platform.state()["functions"]["infer"]["pid"] != master, 60, "infer restarted"
    )
    wait_until(lambda: not any(alive(pid) for pid in workers), 10, "the old worker is gone")
    url = platform.function_url("infer")

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 120, "the restarted infer is ready")
    log = (platform.data_dir / "logs" / "infer.log").read_text()
    assert "Address already in use" not in log
    groups = [int(f["pid"]) for f in platform.state()["functions"].values()] + [master]
    assert platform.process is not None
    stop_group(platform.process)
    for pgid in groups:
        wait_until(lambda pgid=pgid: not group_members(pgid), 10, f"group {pgid} is gone")
