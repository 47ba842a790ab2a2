"""Platform overhead per job: a job's end-to-end time on the local platform (tiny model)
minus the time of calling the pipeline directly with the same settings.

    python -m bench.overhead --jobs 20 --out overhead.json

Each job gets its own seed, so the artifact cache never answers. Per job:
  end to end = from sending POST /v1/jobs until GET /v1/jobs/{id} first shows ``succeeded``
               (polled every ``--poll`` seconds; the job's own created_at/started_at/
               finished_at split it into queue, run and notice)
  direct     = ``generate`` + ``encode_mp4`` on the job's normalised params in this process
  overhead   = end to end - direct
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import statistics
import sys
import tempfile
import time
from typing import Any

from bench.common import emit, epoch, percentile, tiny_model
from bench.mochi.report import machine
from t2v.contract import NormalizedParams
from tests.e2e.harness import TERMINAL, Platform

# Small frames keep the generation short, so its run-to-run noise does not swamp the fixed
# per-job cost being measured; the tiny profile's 8 steps keep the per-step work (progress
# events, cancel checks) of a real job.
DEFAULT_REQUEST = {
    "prompt": "a red fox running through fresh snow, golden hour",
    "num_frames": 7,
    "width": 64,
    "height": 48,
}
# The end-to-end harness paces the platform for fault tests (a progress event every step,
# short leases, a sweep every second); each job's fixed cost is measured at the platform's
# own defaults ("" is a setting's default).
DEFAULT_PACE = {
    "T2V_LEASE_TTL_S": "",
    "T2V_HEARTBEAT_S": "",
    "T2V_PROGRESS_INTERVAL_S": "",
    "T2V_QUEUED_STALE_S": "",
    "T2V_LOCAL_DELIVERY": "",
    "T2V_LOCAL_PING_INTERVAL_S": "10",
}


def wait_terminal(
    platform: Platform, job_id: str, poll_s: float, timeout_s: float = 300.0
) -> dict[str, Any]:
    """Poll every ``poll_s``: how soon a finished job is seen is part of what is measured."""
    deadline = time.monotonic() + timeout_s
    while (job := platform.job(job_id))["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
        time.sleep(poll_s)
    return job


def run_job(platform: Platform, request: dict[str, Any], poll_s: float) -> dict[str, Any]:
    started = time.time()
    response = platform.submit(request)
    response.raise_for_status()
    job_id = str(response.json()["id"])
    job = wait_terminal(platform, job_id, poll_s)
    seen = time.time()
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} ended {job['status']}: {job.get('error')}")
    created, begun, finished = (
        epoch(job[key]) for key in ("created_at", "started_at", "finished_at")
    )
    return {
        "id": job_id,
        "params": job["params"],
        "end_to_end_s": seen - started,
        "submit_to_created_s": created - started,
        "queued_s": begun - created,
        "running_s": finished - begun,
        "noticed_after_s": seen - finished,
    }


def direct_seconds(model: Any, params: NormalizedParams) -> float:
    """What infer's work costs without the platform: the pipeline and the MP4 encoding."""
    import rust_infer
    from t2v.model.pipeline import generate

    started = time.perf_counter()
    frames = generate(model, params, lambda pipe, step, timestep, kwargs: kwargs)
    rust_infer.encode_mp4(frames, int(params["fps"]))
    return time.perf_counter() - started


def measure(
    jobs: int, poll_s: float, work_dir: pathlib.Path, request: dict[str, Any]
) -> dict[str, Any]:
    """Each job end to end and the same params directly, back to back, alternating which
    goes first: drift in the machine's load then hits both halves of a pair alike."""
    import rust_infer
    from t2v.model.pipeline import load_model

    model_dir = tiny_model(work_dir / "model")
    model = load_model(str(model_dir), device="cpu")
    seeds = random.Random().sample(range(1, 2**31), jobs + 1)
    records = []
    platform = Platform(work_dir / "platform", model_dir, DEFAULT_PACE).start()
    try:
        # Warm-up of both paths: first-request setup in every process, first pipeline call.
        warm = run_job(platform, {**request, "seed": seeds[0]}, poll_s)
        direct_seconds(model, warm["params"])
        for index, seed in enumerate(seeds[1:]):
            job_request = {**request, "seed": seed}
            if index % 2:
                params = rust_infer.normalize_request(
                    json.dumps(job_request).encode(), profile="tiny", fresh_seed=seed
                )
                direct_s = direct_seconds(model, params)
                record = run_job(platform, job_request, poll_s)
            else:
                record = run_job(platform, job_request, poll_s)
                direct_s = direct_seconds(model, record["params"])
            record["direct_s"] = direct_s
            record["overhead_s"] = record["end_to_end_s"] - record["direct_s"]
            record["overhead_in_infer_s"] = record["running_s"] - record["direct_s"]
            records.append(record)
    finally:
        platform.stop()
    return summarize(records, poll_s)


def summarize(records: list[dict[str, Any]], poll_s: float) -> dict[str, Any]:
    def stats(key: str) -> dict[str, float]:
        values = [float(record[key]) for record in records]
        return {"median": statistics.median(values), "p90": percentile(values, 0.9)}

    overhead_ms = stats("overhead_s")["median"] * 1000
    return {
        "jobs": len(records),
        "poll_s": poll_s,
        "request": {key: value for key, value in records[0]["params"].items() if key != "seed"},
        "overhead_s": stats("overhead_s"),
        "end_to_end_s": stats("end_to_end_s"),
        "direct_s": stats("direct_s"),
        "breakdown_s": {
            key: stats(key)
            for key in (
                "submit_to_created_s",
                "queued_s",
                "running_s",
                "overhead_in_infer_s",
                "noticed_after_s",
            )
        },
        "target_ms": 300,
        "target_met": overhead_ms <= 300,
        "records": records,
    }


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    result = report["result"]
    lines = [
        f"## Platform overhead per job on {info['cpu']} x{info['cpu_count']}, {info['date']}",
        f"{result['jobs']} jobs, tiny model, status polled every {result['poll_s'] * 1000:.0f} ms",
        "",
        "| per job | median ms | p90 ms |",
        "| --- | --- | --- |",
    ]
    rows = {"overhead": result["overhead_s"], "end to end": result["end_to_end_s"]}
    rows["direct (generate + encode_mp4)"] = result["direct_s"]
    rows.update(
        {f"  {key.removesuffix('_s')}": value for key, value in result["breakdown_s"].items()}
    )
    for name, value in rows.items():
        lines.append(f"| {name} | {value['median'] * 1000:.0f} | {value['p90'] * 1000:.0f} |")
    verdict = "met" if result["target_met"] else "MISSED"
    lines += ["", f"target: median overhead <= {result['target_ms']} ms: {verdict}"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20, help="measured jobs (after 1 warm-up)")
    parser.add_argument("--poll", type=float, default=0.01, help="status poll interval, s")
    parser.add_argument(
        "--request", type=json.loads, default=DEFAULT_REQUEST, help="job body (JSON, no seed)"
    )
    parser.add_argument("--work-dir", type=pathlib.Path, help="default: a temporary directory")
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.jobs < 1:
        raise SystemExit("--jobs must be at least 1")
    if args.work_dir is not None:
        result = measure(args.jobs, args.poll, args.work_dir, args.request)
    else:
        with tempfile.TemporaryDirectory(prefix="t2v-overhead-") as scratch:
            result = measure(args.jobs, args.poll, pathlib.Path(scratch), args.request)
    report = {"benchmark": "overhead", "machine": machine("cpu"), "result": result}
    emit(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
