"""Function processes, started with `functions-framework` exactly as their containers are,
and restarted when they die, as Kubernetes restarts a pod: the whole process group first (a
gunicorn worker whose master died still holds the port), then a fresh start after a delay that
doubles with each crash in a row (`RESTART_DELAY_S` up to `RESTART_DELAY_MAX_S`, as a
CrashLoopBackOff does) and starts over once a process has stayed up `STABLE_AFTER_S`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
RESTART_DELAY_S = 0.5
RESTART_DELAY_MAX_S = 30.0
STABLE_AFTER_S = 30.0
# How long a killed group may take to be gone (its port free) before the restart goes ahead.
GROUP_EXIT_WAIT_S = 5.0


@dataclass
class FunctionProcess:
    name: str
    target: str
    source: Path
    port: int
    env: Mapping[str, str]
    log_path: Path
    # gunicorn worker processes (functions-framework's WORKERS), each with its own state.
    workers: int = 1
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    crashes_in_a_row: int = 0
    on_start: Callable[[], None] | None = None
    _watch: asyncio.Task[None] | None = field(default=None, repr=False)
    _stopping: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        ff = Path(sys.executable).with_name("functions-framework")
        return [
            str(ff),
            "--asgi",
            "--target",
            self.target,
            "--source",
            str(self.source),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logfile = self.log_path.open("ab")
        env = {**os.environ, **self.env, "WORKERS": str(self.workers)}
        # A session of its own, so a kill reaches gunicorn's master and worker together.
        self.process = await asyncio.create_subprocess_exec(
            *self.command(), env=env, stdout=logfile, stderr=logfile, start_new_session=True
        )
        logfile.close()
        if self.on_start is not None:
            self.on_start()
        if self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._supervise())

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            assert self.process is not None
            started = loop.time()
            code = await self.process.wait()
            if self._stopping:
                return
            # The leader is dead; its workers must not outlive it (they hold the port).
            await kill_group(self.process.pid)
            self.restarts += 1
            lived_s = loop.time() - started
            self.crashes_in_a_row = 1 if lived_s >= STABLE_AFTER_S else self.crashes_in_a_row + 1
            delay = min(RESTART_DELAY_MAX_S, RESTART_DELAY_S * 2 ** (self.crashes_in_a_row - 1))
            log.warning(
                "%s exited with %s after %.1f s; restarting in %.1f s",
                self.name, code, lived_s, delay,
            )  # fmt: skip
            await asyncio.sleep(delay)
            if not self._stopping:
                await self.start()

    async def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``; no restart after this."""
        self._stopping = True
        await _terminate(self.process, grace_s)
        if self._watch is not None:
            # The supervisor returns once it sees _stopping; a restart it was in the middle
            # of may have started a new process, which goes the same way.
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            await _terminate(self.process, grace_s)


async def _terminate(process: asyncio.subprocess.Process | None, grace_s: float) -> None:
    if process is None:
        return
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()
    # The leader is gone; a child that ignored SIGTERM (a gunicorn worker mid-request), or one
    # a killed leader left behind, is not.
    await kill_group(process.pid)


async def kill_group(pgid: int, wait_s: float = GROUP_EXIT_WAIT_S) -> None:
    """SIGKILL every process of the group and wait (bounded) until none is left."""
    _signal_group(pgid, signal.SIGKILL)
    deadline = asyncio.get_running_loop().time() + wait_s
    # Polled: nothing notifies a parent when the other members of a process group exit.
    while group_alive(pgid) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def group_alive(pgid: int) -> bool:
    """Whether a live process is left in the group. Zombies do not count: they hold no port,
    and reaping one is its new parent's job (pid 1 once the leader is gone), not ours. Read
    from /proc (the platform runs on Linux)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone while we looked
        # The name (field 2) may hold spaces and parentheses; the fields after it do not.
        state, _parent, group = text[text.rindex(")") + 2 :].split()[:3]
        if state != "Z" and int(group) == pgid:
            return True
    return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def stop_process_group(process: subprocess.Popen[bytes], *, grace_s: float = 20.0) -> None:
    """SIGTERM the session ``process`` leads (so its children stop too, e.g. gunicorn's
    workers), SIGKILL it after ``grace_s``. For processes started with
    ``start_new_session=True``: `t2v local` from the benches and tests, servers under load."""
    if process.poll() is not None:
        return
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
