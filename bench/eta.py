"""How honest the ETA is: |ETA error| at 25%, 50% and 75% of each job's life on the local
platform (tiny model, demo-size jobs).

    python -m bench.eta --waves 4 --per-wave 5 --out eta.json

Jobs are submitted in waves (the next wave when the previous one has finished), so that some
jobs wait behind others and the queued ETA is measured as well as the running one. Every
unfinished job is read (`GET /v1/jobs/{id}`) every ``--poll`` seconds. A job's life runs from
its ``created_at`` to its ``finished_at``; at each fraction f of it, the last reading taken at
or before that moment gives the ETA shown, and

    error = |eta_seconds - (finished_at - reading time)| / (finished_at - reading time)

A reading with no ETA at all counts as an error of 100%. Every job gets its own seed, so the
artifact cache never answers.
"""

from __future__ import annotations

import argparse
import pathlib
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import local_platform
from bench.common import emit, epoch, percentile
from bench.mochi.report import machine

# What `t2v demo` submits: a prompt, the tiny profile's defaults for everything else.
DEMO_REQUEST = {"prompt": "a red fox running through fresh snow, golden hour"}
FRACTIONS = (0.25, 0.5, 0.75)
NO_ETA_ERROR = 1.0


@dataclass
class Reading:
    at: float
    status: str
    phase: str | None
    percent: float | None
    eta_s: float | None
    queue_position: int | None


@dataclass
class FollowedJob:
    id: str
    readings: list[Reading] = field(default_factory=list)
    final: dict[str, Any] | None = None


def _read(client: httpx.Client, base: str, job: FollowedJob) -> None:
    response = client.get(f"{base}/v1/jobs/{job.id}")
    at = time.time()
    response.raise_for_status()
    body = response.json()
    progress = body.get("progress") or {}
    job.readings.append(
        Reading(
            at=at,
            status=body["status"],
            phase=body.get("phase"),
            percent=progress.get("percent"),
            eta_s=body.get("eta_seconds"),
            queue_position=body.get("queue_position"),
        )
    )
    if body["status"] in local_platform.TERMINAL:
        job.final = body


def run_wave(
    client: httpx.Client, base: str, seeds: list[int], poll_s: float, timeout_s: float
) -> list[FollowedJob]:
    jobs = [
        FollowedJob(local_platform.submit(client, base, {**DEMO_REQUEST, "seed": seed}))
        for seed in seeds
    ]
    deadline = time.monotonic() + timeout_s
    while any(job.final is None for job in jobs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"wave not finished after {timeout_s} s")
        for job in jobs:
            if job.final is None:
                _read(client, base, job)
        time.sleep(poll_s)
    return jobs


def errors_at(job: FollowedJob, fraction: float) -> dict[str, Any]:
    """The ETA error of the last reading at or before ``fraction`` of the job's life."""
    assert job.final is not None
    created = epoch(job.final["created_at"])
    finished = epoch(job.final["finished_at"])
    moment = created + fraction * (finished - created)
    earlier = [reading for reading in job.readings if reading.at <= moment]
    reading = earlier[-1] if earlier else job.readings[0]
    remaining = max(finished - reading.at, 1e-3)
    error = NO_ETA_ERROR if reading.eta_s is None else abs(reading.eta_s - remaining) / remaining
    return {
        "fraction": fraction,
        "status": reading.status,
        "phase": reading.phase,
        "percent": reading.percent,
        "queue_position": reading.queue_position,
        "eta_s": reading.eta_s,
        "remaining_s": round(remaining, 3),
        "error": round(error, 4),
    }


def measure(
    waves: int, per_wave: int, poll_s: float, work_dir: pathlib.Path, timeout_s: float
) -> dict[str, Any]:
    model_dir = local_platform.tiny_model(work_dir / "model")
    seeds = random.Random().sample(range(1, 2**31), waves * per_wave)
    followed: list[FollowedJob] = []
    with (
        local_platform.local_platform(work_dir / "platform", model_dir) as platform,
        httpx.Client(timeout=30.0) as client,
    ):
        for wave in range(waves):
            batch = seeds[wave * per_wave : (wave + 1) * per_wave]
            followed += run_wave(client, platform.gateway, batch, poll_s, timeout_s)
    records = []
    for job in followed:
        assert job.final is not None
        if job.final["status"] != "succeeded":
            raise RuntimeError(f"job {job.id} ended {job.final['status']}: {job.final['error']}")
        life = epoch(job.final["finished_at"]) - epoch(job.final["created_at"])
        records.append(
            {
                "id": job.id,
                "life_s": round(life, 3),
                "first_eta_s": job.readings[0].eta_s,
                "readings": len(job.readings),
                "at": [errors_at(job, fraction) for fraction in FRACTIONS],
            }
        )
    return summarize(records, poll_s, waves, per_wave)


def summarize(
    records: list[dict[str, Any]], poll_s: float, waves: int, per_wave: int
) -> dict[str, Any]:
    by_fraction: dict[str, dict[str, float]] = {}
    for index, fraction in enumerate(FRACTIONS):
        errors = [float(record["at"][index]["error"]) for record in records]
        by_fraction[f"{fraction:.0%}"] = {
            "median": round(statistics.median(errors), 4),
            "p90": round(percentile(errors, 0.9), 4),
        }
    lives = [float(record["life_s"]) for record in records]
    return {
        "jobs": len(records),
        "waves": waves,
        "per_wave": per_wave,
        "poll_s": poll_s,
        "request": DEMO_REQUEST,
        "life_s": {"median": statistics.median(lives), "p90": percentile(lives, 0.9)},
        "abs_error": by_fraction,
        "target": "median error at 50% of a job's life under 25%",
        "target_met": by_fraction["50%"]["median"] < 0.25,
        "records": records,
    }


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    result = report["result"]
    lines = [
        f"## ETA error on {info['cpu']} x{info['cpu_count']}, {info['date']}",
        f"{result['jobs']} demo-size jobs ({result['waves']} waves of {result['per_wave']}), "
        f"tiny model, polled every {result['poll_s'] * 1000:.0f} ms; "
        f"job life median {result['life_s']['median']:.1f} s",
        "",
        "| point of the job's life | median abs error | p90 abs error |",
        "| --- | --- | --- |",
    ]
    for point, stats in result["abs_error"].items():
        lines.append(f"| {point} | {stats['median']:.1%} | {stats['p90']:.1%} |")
    verdict = "met" if result["target_met"] else "MISSED"
    lines += ["", f"target: {result['target']}: {verdict}"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--waves", type=int, default=4, help="waves of jobs, one after another")
    parser.add_argument("--per-wave", type=int, default=5, help="jobs submitted together")
    parser.add_argument("--poll", type=float, default=0.25, help="status read interval, s")
    parser.add_argument("--timeout", type=float, default=300.0, help="per wave, s")
    parser.add_argument("--work-dir", type=pathlib.Path, help="default: a temporary directory")
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.waves < 1 or args.per_wave < 1:
        raise SystemExit("--waves and --per-wave must be at least 1")
    if args.work_dir is not None:
        result = measure(args.waves, args.per_wave, args.poll, args.work_dir, args.timeout)
    else:
        with tempfile.TemporaryDirectory(prefix="t2v-eta-") as scratch:
            work_dir = pathlib.Path(scratch)
            result = measure(args.waves, args.per_wave, args.poll, work_dir, args.timeout)
    report = {"benchmark": "eta", "machine": machine("cpu"), "result": result}
    emit(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
