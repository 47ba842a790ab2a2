"""Functions served as in production (functions-framework CLI: gunicorn with uvicorn workers)
and a trivial event sink that accepts every CloudEvent, all on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import httpx

from t2v.local.processes import stop_process_group

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
HELLO_SOURCE = pathlib.Path(__file__).with_name("hello") / "main.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Served:
    name: str
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by this server: the process and its children
        (gunicorn's workers). Per request, it shows the cost of a request even when other
        work on the machine slows the clock down."""
        return sum(_cpu_seconds(pid) for pid in [self.pid, *_children(self.pid)])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; everything after its ")" is plain.
    return raw.rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    children = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def _cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: pathlib.Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready; see {log}")
        time.sleep(0.1)


@contextlib.contextmanager
def _process(
    command: list[str], env: Mapping[str, str], ready_url: str, log: pathlib.Path
) -> Iterator[subprocess.Popen[bytes]]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        # A session of its own, so stopping reaches gunicorn's master and its workers.
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(process, ready_url, log)
        yield process
    finally:
        stop_process_group(process, grace_s=15)


@contextlib.contextmanager
def function(
    name: str,
    source: pathlib.Path,
    *,
    env: Mapping[str, str],
    workers: int,
    log_dir: pathlib.Path,
    ready_path: str = "/healthz",
) -> Iterator[Served]:
    """``functions-framework --asgi`` exactly as the container runs it."""
    port = free_port()
    command = [
        str(pathlib.Path(sys.executable).with_name("functions-framework")),
        "--asgi",
        "--target",
        name,
        "--source",
        str(source),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    url = f"http://127.0.0.1:{port}"
    full_env = {**env, "WORKERS": str(workers)}
    with _process(command, full_env, url + ready_path, log_dir / f"{name}.log") as process:
        yield Served(name=name, url=url, pid=process.pid)


@contextlib.contextmanager
def event_sink(log_dir: pathlib.Path) -> Iterator[Served]:
    """A broker stand-in that answers 202 at once, so submit is measured, not the broker."""
    port = free_port()
    command = [sys.executable, "-m", "bench.control_plane.sink", str(port)]
    url = f"http://127.0.0.1:{port}"
    with _process(command, {}, url, log_dir / "sink.log") as process:
        yield Served(name="sink", url=url, pid=process.pid)


def _redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def redis_server(data_dir: pathlib.Path) -> Iterator[str]:
    """redis-server persisting as deploy.md asks of production (AOF, fsync always); yields
    its URL. Its CPU is not the functions': it is not counted in theirs."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
        "--save", "", "--appendonly", "yes", "--appendfsync", "always",
        "--logfile", str(data_dir / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _redis_answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {data_dir / 'redis.log'}")
            time.sleep(0.05)
        yield url
    finally:
        stop_process_group(process, grace_s=15)
