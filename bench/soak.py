"""Soak: many tiny-model jobs through the local platform on Redis and S3, two infer workers.

    nice -n 10 python -m bench.soak --jobs 1000 --out bench/results/soak-cpu-<date>.json

The platform runs as `t2v local` with its job store and rate counters on a real
redis-server and its videos on the S3 test server (tests/services.py), `T2V_INFER_WORKERS=2`.
Jobs are the end-to-end tests' small request, each with its own seed (the artifact cache
never answers), kept ``--in-flight`` at a time: submitted as earlier ones finish, so the
run is long and steady rather than one burst. After ``--warmup`` jobs (connection pools
filled, models loaded) every process's RSS and open descriptors are read; again at the end.
The platform's functions get a temporary directory of their own (TMPDIR), and whatever is
left in it at the end is reported. Per job: queue wait (``started_at - created_at``) and
latency (``finished_at - created_at``), from the job resource.
"""

from __future__ import annotations

import argparse
import pathlib
import random
import statistics
import tempfile
import time
from typing import Any

import httpx

from bench import local_platform, processes
from bench.common import emit, epoch, machine_basics, percentile
from tests.contracts.backends import create_bucket
from tests.services import redis_server, s3_server

SMALL_REQUEST = {"width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 2}
INFER_WORKERS = 2


def platform_env(
    redis_url: str, rates_url: str, artifacts_url: str, tmp: pathlib.Path
) -> dict[str, str]:
    return {
        "T2V_STORE_URL": redis_url,
        "T2V_RATE_LIMIT_STORAGE": rates_url,
        "T2V_ARTIFACTS_URL": artifacts_url,
        "T2V_INFER_WORKERS": str(INFER_WORKERS),
        # The soak paces itself (--in-flight); the limits are not what it measures.
        "T2V_SUBMIT_RATE": "1000000/hour",
        "T2V_MAX_ACTIVE_JOBS": "1000",
        "TMPDIR": str(tmp),
    }


def run_jobs(
    client: httpx.Client, base: str, count: int, in_flight: int, poll_s: float, timeout_s: float
) -> list[dict[str, Any]]:
    """``count`` jobs, at most ``in_flight`` unfinished at once; their final resources."""
    seeds = random.Random().sample(range(1, 2**31), count)
    waiting: dict[str, float] = {}
    finished: list[dict[str, Any]] = []
    while seeds or waiting:
        while seeds and len(waiting) < in_flight:
            body = {"prompt": "soak", **SMALL_REQUEST, "seed": seeds.pop()}
            waiting[local_platform.submit(client, base, body)] = time.monotonic()
        for job_id, submitted in list(waiting.items()):
            response = client.get(f"{base}/v1/jobs/{job_id}")
            response.raise_for_status()
            job = dict(response.json())
            if job["status"] in local_platform.TERMINAL:
                finished.append(job)
                del waiting[job_id]
            elif time.monotonic() - submitted > timeout_s:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
        time.sleep(poll_s)
    return finished


def spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    return {
        "p50": round(percentile(values, 0.5), 3),
        "p95": round(percentile(values, 0.95), 3),
        "max": round(max(values), 3),
    }


def summarize(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    succeeded = [job for job in jobs if job["status"] == "succeeded"]
    waits = [epoch(job["started_at"]) - epoch(job["created_at"]) for job in succeeded]
    latencies = [epoch(job["finished_at"]) - epoch(job["created_at"]) for job in succeeded]
    return {
        "jobs": len(jobs),
        "succeeded": len(succeeded),
        "success_rate": len(succeeded) / len(jobs) if jobs else 0.0,
        "not_succeeded": [
            {"id": job["id"], "status": job["status"], "error": job.get("error")}
            for job in jobs
            if job["status"] != "succeeded"
        ],
        "queue_wait_s": spread(waits),
        "latency_s": spread(latencies),
        "latency_mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
    }


def measure(args: argparse.Namespace, work_dir: pathlib.Path) -> dict[str, Any]:
    model_dir = local_platform.tiny_model(work_dir / "model")
    tmp = work_dir / "platform-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    with redis_server() as redis, s3_server() as s3:
        bucket = create_bucket(s3)
        artifacts = f"s3://{bucket}/videos?endpoint_url={s3.endpoint_url}&region={s3.region}"
        env = {
            **platform_env(redis.url(0), redis.url(1), artifacts + "&path_style=1", tmp),
            **s3.credentials_env(),
        }
        with (
            local_platform.local_platform(work_dir / "platform", model_dir, env) as platform,
            httpx.Client(timeout=30.0) as client,
        ):
            base = platform.gateway
            warmup = run_jobs(client, base, args.warmup, args.in_flight, args.poll, args.timeout)
            labels = {
                int(function["pid"]): f"t2v-{name}"
                for name, function in platform.state()["functions"].items()
            }
            start = processes.snapshot(labels)
            started = time.monotonic()
            jobs = run_jobs(client, base, args.jobs, args.in_flight, args.poll, args.timeout)
            elapsed = time.monotonic() - started
            end = processes.snapshot(labels)
    rows = processes.compare(start, end)
    common = [row for row in rows if row["fds_start"] is not None and row["fds_end"] is not None]
    return {
        **summarize(jobs),
        "warmup_jobs": len(warmup),
        "warmup_succeeded": sum(job["status"] == "succeeded" for job in warmup),
        "in_flight": args.in_flight,
        "infer_workers": INFER_WORKERS,
        "request": SMALL_REQUEST,
        "duration_s": round(elapsed, 1),
        "jobs_per_minute": round(len(jobs) / elapsed * 60, 2),
        "processes": rows,
        "processes_gone": sum(row["fds_end"] is None for row in rows),
        "processes_new": sum(row["fds_start"] is None for row in rows),
        "fd_growth": sum(row["fds_end"] - row["fds_start"] for row in common),
        "rss_growth_mib": round(
            sum(row["rss_mib_end"] - row["rss_mib_start"] for row in common), 1
        ),
        "tmp_files_left": processes.files_under(tmp),
    }


def markdown(report: dict[str, Any]) -> str:
    info, result = report["machine"], report["result"]
    wait, latency = result["queue_wait_s"], result["latency_s"]
    lines = [
        f"## Soak on {info['cpu']} x{info['cpu_count']}, {info['date']}",
        f"{result['jobs']} jobs ({result['in_flight']} in flight, {result['infer_workers']} "
        f"infer workers, Redis + S3) in {result['duration_s']} s; "
        f"succeeded {result['succeeded']} ({result['success_rate']:.1%})",
        "",
        "| figure | p50 | p95 | max |",
        "| --- | --- | --- | --- |",
        f"| queue wait s | {wait['p50']} | {wait['p95']} | {wait['max']} |",
        f"| latency s | {latency['p50']} | {latency['p95']} | {latency['max']} |",
        "",
        "| process | pid | RSS MiB start | RSS MiB end | fds start | fds end |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["processes"]:
        lines.append(
            f"| {row['name']} | {row['pid']} | {row['rss_mib_start']} | {row['rss_mib_end']} "
            f"| {row['fds_start']} | {row['fds_end']} |"
        )
    lines += [
        "",
        f"descriptor growth {result['fd_growth']}, RSS growth {result['rss_growth_mib']} MiB, "
        f"temporary files left {len(result['tmp_files_left'])}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs measured")
    parser.add_argument("--warmup", type=int, default=4, help="jobs before the first reading")
    parser.add_argument("--in-flight", type=int, default=6, help="unfinished jobs at once")
    parser.add_argument("--poll", type=float, default=0.1, help="status read interval, s")
    parser.add_argument("--timeout", type=float, default=300.0, help="per job, s")
    parser.add_argument("--work-dir", type=pathlib.Path, help="default: a temporary directory")
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.jobs < 1 or args.in_flight < 1 or args.warmup < 0:
        raise SystemExit("--jobs and --in-flight must be at least 1, --warmup at least 0")
    machine = {**machine_basics(), "device": "cpu"}
    if args.work_dir is not None:
        result = measure(args, args.work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="t2v-soak-") as scratch:
            result = measure(args, pathlib.Path(scratch))
    report = {"benchmark": "soak", "machine": machine, "result": result}
    emit(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
