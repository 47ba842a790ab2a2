"""Run wrk (the HTTP load generator) and read its result.

wrk over a Python load generator: it is a C event loop that needs a fraction of a core to
push tens of thousands of requests a second, so on a 2-core machine the servers, not the
client, are what gets measured. ``load.lua`` sets the POST body and prints a JSON summary.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
from dataclasses import dataclass

LUA_SCRIPT = pathlib.Path(__file__).with_name("load.lua")
RESULT_MARKER = "BENCH_RESULT "


class WrkMissingError(RuntimeError):
    """wrk is not installed (Debian: apt-get install -y wrk)."""


@dataclass(frozen=True)
class LoadSettings:
    duration_s: int
    connections: int
    threads: int


@dataclass(frozen=True)
class LoadResult:
    requests: int
    duration_s: float
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    server_cpu_ms_per_request: float | None = None

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s

    def as_dict(self) -> dict[str, object]:
        return {
            "requests_per_s": self.requests_per_s,
            "requests": self.requests,
            "duration_s": self.duration_s,
            "errors": self.errors,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "mean_ms": self.mean_ms,
            "server_cpu_ms_per_request": self.server_cpu_ms_per_request,
        }


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissingError("wrk is not installed: apt-get install -y wrk")
    return path


def parse_output(output: str) -> LoadResult:
    lines = [line for line in output.splitlines() if line.startswith(RESULT_MARKER)]
    if not lines:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    raw = json.loads(lines[-1].removeprefix(RESULT_MARKER))
    latency = raw["latency_us"]
    return LoadResult(
        requests=int(raw["requests"]),
        duration_s=raw["duration_us"] / 1e6,
        errors={key: int(value) for key, value in raw["errors"].items()},
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        mean_ms=latency["mean"] / 1000,
    )


def run_wrk(url: str, settings: LoadSettings, *, method: str = "GET", body: str = "") -> LoadResult:
    command = [
        wrk_path(),
        f"--threads={settings.threads}",
        f"--connections={settings.connections}",
        f"--duration={settings.duration_s}s",
        "--timeout=10s",
        f"--script={LUA_SCRIPT}",
        url,
    ]
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_BODY": body}
    completed = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=settings.duration_s + 60
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr}")
    return parse_output(completed.stdout)
