"""The functions without an HTTP server: ``python -m bench.control_plane.inprocess``.

Each function's ASGI app (as functions-framework builds it) is called directly by 32
concurrent callers in one event loop, so what is measured is the app's own CPU per request:
no uvicorn, no sockets to the client, no wrk competing for the cores. It separates what the
code costs from what serving costs, and it answers in seconds, which is how the changes in
BENCHMARKS.md were tried before the served bench priced them. Each variant runs in its own
process (functions read their settings once); events go to the bench's 202 sink and Redis is
a redis-server this bench starts (AOF, fsync always).

Variants: hello; submit and status on the embedded stores; the same on Redis (jobs and
rate-limit windows); submit on Redis with the cap on unfinished jobs on (production's
default; the served bench keeps it off).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from bench.common import emit, machine_basics
from bench.control_plane import servers
from bench.control_plane.scenarios import JOB_BODY, UNLIMITED_ADMISSION

CONCURRENCY = 32
FUNCTIONS = servers.REPO_ROOT / "functions"
# variant -> (target, source, uses Redis, extra environment)
VARIANTS: dict[str, tuple[str, pathlib.Path, bool, dict[str, str]]] = {
    "hello": ("hello", servers.HELLO_SOURCE, False, {}),
    "submit": ("submit", FUNCTIONS / "submit" / "main.py", False, {}),
    "status": ("status", FUNCTIONS / "status" / "main.py", False, {}),
    "submit-redis": ("submit", FUNCTIONS / "submit" / "main.py", True, {}),
    "status-redis": ("status", FUNCTIONS / "status" / "main.py", True, {}),
    "submit-redis-cap": (
        "submit", FUNCTIONS / "submit" / "main.py", True, {"T2V_MAX_ACTIVE_JOBS": "1000000000"},
    ),
}  # fmt: skip


async def _seed_job() -> str:
    """A queued job for status to read, created through the configured store."""
    from t2v.jobs import Job, JobStatus, new_job_id
    from t2v.settings import Settings
    from t2v.store import open_job_store

    store = open_job_store(Settings.from_env().store_url)
    params = json.loads(JOB_BODY)
    job = Job(new_job_id(), "local", JobStatus.QUEUED, params, time.time(), estimated_s=3.0)
    try:
        await store.create(job)
    finally:
        await store.close()
    return job.id


def _scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"bench")]
    if body:
        headers += [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]  # fmt: skip
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
        "scheme": "http", "method": method, "root_path": "", "path": path,
        "raw_path": path.encode(), "query_string": b"", "headers": headers, "state": {},
    }  # fmt: skip


async def _drive(app: Any, scope: dict[str, Any], body: bytes, requests: int) -> float:
    """CPU ms per request over ``requests`` calls by CONCURRENCY callers, after a warm-up."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def call() -> None:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(dict(scope), receive, send)
        if sent[0]["status"] >= 300:
            raise RuntimeError(f"{scope['method']} {scope['path']}: {sent}")

    async def caller(count: int) -> None:
        for _ in range(count):
            await call()

    for _ in range(200):
        await call()
    per_caller = max(1, requests // CONCURRENCY)
    started = time.process_time()
    await asyncio.gather(*(caller(per_caller) for _ in range(CONCURRENCY)))
    return (time.process_time() - started) * 1000 / (per_caller * CONCURRENCY)


def child(variant: str, requests: int) -> float:
    """Run in the variant's own process (settings come from its environment)."""
    from functions_framework.aio import create_asgi_app

    target, source, _, _ = VARIANTS[variant]
    # functions-framework's own entry point, untyped there.
    create_app = cast(Callable[[str, str], Any], create_asgi_app)
    app = create_app(target, str(source))
    if target == "submit":
        method, path, body = "POST", "/v1/jobs", JOB_BODY.encode()
    elif target == "status":
        method, path, body = "GET", f"/v1/jobs/{asyncio.run(_seed_job())}", b""
    else:
        method, path, body = "GET", "/", b""
    return asyncio.run(_drive(app, _scope(method, path, body), body, requests))


def _run_child(variant: str, requests: int, env: dict[str, str]) -> float:
    command = [sys.executable, "-m", "bench.control_plane.inprocess", "--child", variant,
               "--requests", str(requests)]  # fmt: skip
    result = subprocess.run(
        command, cwd=servers.REPO_ROOT, env={**os.environ, **env}, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{result.stdout}\n{result.stderr}")
    return float(result.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def _services(work_dir: pathlib.Path) -> Iterator[tuple[str, str]]:
    with (
        servers.event_sink(work_dir / "logs") as sink,
        servers.redis_server(work_dir / "redis") as redis_url,
    ):
        yield sink.url, redis_url


def run(requests: int, rounds: int, work_dir: pathlib.Path) -> dict[str, Any]:
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with _services(work_dir) as (sink_url, redis_url):
        for round_ in range(rounds):
            for name, (target, _, redis, extra) in VARIANTS.items():
                env = {
                    **UNLIMITED_ADMISSION,
                    "T2V_DATA_DIR": str(work_dir / f"data-{name}-{round_}"),
                    "T2V_MODEL_PROFILE": "tiny",
                    "K_SINK": sink_url,
                    "K_SERVICE": f"t2v-{target}",
                    **extra,
                }
                if redis:
                    env["T2V_STORE_URL"] = f"{redis_url}/0"
                    env["T2V_RATE_LIMIT_STORAGE"] = f"{redis_url}/1"
                cpu[name].append(_run_child(name, requests, env))
    return {
        name: {"cpu_ms_per_request": statistics.median(values), "rounds": values}
        for name, values in cpu.items()
    }


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    lines = [
        f"## In-process on {info['cpu']} x{info['cpu_count']}, {info['date']}",
        f"{report['requests']} requests per run from {CONCURRENCY} concurrent callers, "
        f"{report['rounds']} round(s), median",
        "",
        "| variant | CPU ms/request | rounds |",
        "| --- | --- | --- |",
    ]
    for name, row in report["variants"].items():
        rounds = ", ".join(f"{value:.3f}" for value in row["rounds"])
        lines.append(f"| {name} | {row['cpu_ms_per_request']:.3f} | {rounds} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=12000, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(child(args.child, args.requests))
        return 0
    with tempfile.TemporaryDirectory(prefix="t2v-bench-inprocess-") as scratch:
        variants = run(args.requests, args.rounds, pathlib.Path(scratch))
    report = {
        "benchmark": "control_plane_inprocess",
        "machine": machine_basics(),
        "requests": args.requests,
        "rounds": args.rounds,
        "variants": variants,
    }
    emit(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
