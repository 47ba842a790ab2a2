"""Control-plane headroom: how many times the GPU fleet's peak job rate submit and status serve.

    python -m bench.headroom --seconds 5 --out headroom.json

Starts the local platform (the end-to-end tests' harness) twice, on the embedded SQLite store
and on a redis-server persisting as docs/deploy.md asks (AOF, fsync always), and runs wrk for
``--seconds`` against each one's submit (``POST /v1/jobs``) and status (``GET /v1/jobs/{id}``)
directly: one process with one worker, as one pod. The fleet's peak is ``--gpus`` GPUs, each
finishing one default video every ``--video-seconds`` (the GPU section of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from bench.common import emit, machine_basics, tiny_model
from t2v.local.platform import free_port
from tests.e2e.harness import Platform
from tests.services import redis_server

LUA_SCRIPT = pathlib.Path(__file__).with_name("headroom.lua")
RESULT_MARKER = "HEADROOM "
JOB_BODY = json.dumps({"prompt": "a red fox running through fresh snow, golden hour"})
WARM_UP_REQUESTS = 5


def platform_env(store: Mapping[str, str]) -> dict[str, str]:
    return {
        # The rate limit is checked (that is part of submit's work) but never refuses, and
        # the cap on a tenant's unfinished jobs is off: cheap refusals would flatter the rate.
        "T2V_SUBMIT_RATE": "1000000/second",
        "T2V_MAX_ACTIVE_JOBS": "0",
        # The jobs wait in the broker as they wait for a GPU in the cluster (infer is sent
        # to a closed port and retried only in an hour): its generations would otherwise
        # share this machine's cores with the functions measured.
        "T2V_LOCAL_SERVICE_URLS": json.dumps({"t2v-infer": f"http://127.0.0.1:{free_port()}"}),
        "T2V_LOCAL_DELIVERY": json.dumps({"t2v-infer-job": {"retry": 1, "backoff_delay_s": 3600}}),
        "T2V_WARMUP": "0",
        "T2V_QUEUED_STALE_S": "3600",
        **store,
    }


def run_wrk(url: str, seconds: int, connections: int, body: str = "") -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    command = [wrk, "--threads=1", f"--connections={connections}", f"--duration={seconds}s",
               "--timeout=10s", f"--script={LUA_SCRIPT}", url]  # fmt: skip
    env = {**os.environ, "HEADROOM_METHOD": "POST" if body else "GET", "HEADROOM_BODY": body}
    completed = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"wrk printed no result:\n{completed.stdout}{completed.stderr}")
    raw = json.loads(lines[-1].removeprefix(RESULT_MARKER))
    if raw["errors"]:
        # A refused or failed request is cheaper than a served one: no figure from those.
        raise RuntimeError(f"{url}: {raw['errors']} of {raw['requests']} requests failed")
    return {
        "requests": raw["requests"],
        "requests_per_s": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
    }


def measure_store(
    env: Mapping[str, str], data_dir: pathlib.Path, model_dir: pathlib.Path, seconds: int,
    connections: int,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    platform = Platform(data_dir, model_dir, platform_env(env)).start()
    try:
        submit, status = platform.function_url("submit"), platform.function_url("status")
        # Each process's first requests build its runtime: kept out of the measurement.
        for _ in range(WARM_UP_REQUESTS):
            created = platform.client.post(
                f"{submit}/v1/jobs", content=JOB_BODY, headers={"content-type": "application/json"}
            )
            created.raise_for_status()
            job_id = str(created.json()["id"])
            platform.client.get(f"{status}/v1/jobs/{job_id}").raise_for_status()
        return {
            "submit": run_wrk(f"{submit}/v1/jobs", seconds, connections, body=JOB_BODY),
            "status": run_wrk(f"{status}/v1/jobs/{job_id}", seconds, connections),
        }
    finally:
        platform.stop()


def measure(args: argparse.Namespace, work_dir: pathlib.Path) -> dict[str, Any]:
    machine = machine_basics()  # the load average as the run starts
    model_dir = tiny_model(work_dir / "model")
    with redis_server(appendonly=True) as redis:
        stores = {
            "sqlite": {},
            "redis": {"T2V_STORE_URL": redis.url(0), "T2V_RATE_LIMIT_STORAGE": redis.url(1)},
        }
        results = {
            name: measure_store(env, work_dir / name, model_dir, args.seconds, args.connections)
            for name, env in stores.items()
        }
    fleet_jobs_per_s = args.gpus / args.video_seconds
    for requests in results.values():
        for result in requests.values():
            result["times_fleet_peak"] = result["requests_per_s"] / fleet_jobs_per_s
    return {
        "benchmark": "headroom",
        "machine": machine,
        "settings": {key: getattr(args, key) for key in ("seconds", "connections")},
        "fleet": {
            "gpus": args.gpus,
            "video_seconds": args.video_seconds,
            "jobs_per_s": fleet_jobs_per_s,
            "jobs_per_hour": fleet_jobs_per_s * 3600,
        },
        "stores": results,
    }


def markdown(report: Mapping[str, Any]) -> str:
    info, fleet = report["machine"], report["fleet"]
    lines = [
        f"## Control-plane headroom on {info['cpu']} x{info['cpu_count']}, {info['date']}",
        f"fleet peak: {fleet['gpus']} GPUs x 1 video / {fleet['video_seconds']:g} s = "
        f"{fleet['jobs_per_hour']:.0f} jobs/hour; wrk {report['settings']['connections']} "
        f"connections, {report['settings']['seconds']} s a run",
        "",
        "| store | request | req/s | p50 ms | p99 ms | x fleet peak job rate |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for store, requests in report["stores"].items():
        for name, row in requests.items():
            lines.append(
                f"| {store} | {name} | {row['requests_per_s']:.0f} | {row['p50_ms']:.1f} | "
                f"{row['p99_ms']:.1f} | {row['times_fleet_peak']:,.0f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk's duration per run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--gpus", type=int, default=8, help="infer's max-scale")
    parser.add_argument("--video-seconds", type=float, default=397.0, help="one default video")
    parser.add_argument("--work-dir", type=pathlib.Path, help="default: a temporary directory")
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    if args.work_dir is not None:
        report = measure(args, args.work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="t2v-headroom-") as scratch:
            report = measure(args, pathlib.Path(scratch))
    emit(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
