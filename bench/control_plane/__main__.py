"""Control-plane load test: ``python -m bench.control_plane [--duration 5] [--out r.json]``.

submit and status served as in production (functions-framework, gunicorn, uvicorn worker)
side by side with a bare functions-framework hello-world served the same way, under wrk, on
the embedded stores and again on the cluster's (Redis: jobs and rate-limit windows); then
status on the whole local platform, idle and while a generation runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import sys
import tempfile
from typing import Any

from bench.common import emit
from bench.control_plane import scenarios
from bench.control_plane.wrk import LoadSettings
from bench.mochi.report import machine


def _row(name: str, result: dict[str, Any]) -> str:
    errors = sum(result["errors"].values())
    cpu = result.get("server_cpu_ms_per_request")
    cpu_text = "-" if cpu is None else f"{cpu:.2f}"
    return (
        f"| {name} | {result['requests_per_s']:.0f} | {result['p50_ms']:.2f} "
        f"| {result['p99_ms']:.2f} | {cpu_text} | {result['requests']} | {errors} |"
    )


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    load = report["load"]
    lines = [
        f"## Control plane on {info['cpu']} x{info['cpu_count']}, {info['date']}",
        f"wrk {load['threads']} thread(s), {load['connections']} connections, "
        f"{load['duration_s']} s per run, {report['rounds']} round(s), "
        f"WORKERS={report['workers']}",
        "",
        "| scenario | req/s | p50 ms | p99 ms | server CPU ms/req | requests | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    side = report["side_by_side"]
    lines += [_row(name, result) for name, result in side["scenarios"].items()]
    lines.append("")
    for name, ratio in side["ratios"].items():
        verdict = "met" if ratio["met"] else "MISSED"
        rounds = ", ".join(f"{value:.2f}" for value in ratio["rounds"])
        lines.append(
            f"- {name}: {ratio['ratio']:.2f}, median of the rounds' ratios {rounds} "
            f"(target {ratio['target']:.2f}: {verdict})"
        )
    generation = report.get("generation")
    if generation:
        lines += [
            "",
            f"status on the local platform (one tiny job takes {generation['job_seconds']:.2f} s):",
            "",
            "| status GET | req/s | p50 ms | p99 ms | server CPU ms/req | requests | errors |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            _row("idle", generation["idle"]),
            _row("during generation", generation["during_generation"]),
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=3, help="hello/submit/status rounds")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
    parser.add_argument("--no-generation", action="store_true", help="skip the platform run")
    parser.add_argument(
        "--no-redis", action="store_true", help="skip submit and status on the cluster's stores"
    )
    parser.add_argument("--work-dir", type=pathlib.Path, help="default: a temporary directory")
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, work_dir: pathlib.Path) -> dict[str, Any]:
    settings = LoadSettings(args.duration, args.connections, args.threads)
    report: dict[str, Any] = {
        "benchmark": "control_plane",
        "machine": machine("cpu"),
        "load": settings.__dict__,
        "rounds": args.rounds,
        "workers": args.workers,
        "side_by_side": scenarios.side_by_side(
            settings,
            rounds=args.rounds,
            workers=args.workers,
            work_dir=work_dir / "side",
            redis=not args.no_redis,
        ),
        "generation": None,
    }
    if not args.no_generation:
        report["generation"] = scenarios.status_during_generation(
            settings, work_dir=work_dir / "generation"
        )
    report["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.work_dir is not None:
        report = run(args, args.work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="t2v-bench-") as scratch:
            report = run(args, pathlib.Path(scratch))
    emit(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
