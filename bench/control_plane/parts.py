"""What each part of submit costs when served: ``python -m bench.control_plane.parts``.

Served one after another in each round, all as in production (functions-framework, gunicorn,
one uvicorn worker) under the same wrk load: hello; ``accept`` (submit's validation and a
202, nothing kept: ``accept/main.py``); accept + the event; accept + the store; accept +
both; and submit itself (which adds auth, the rate limit, idempotency and its full 202). The
server's CPU per request prices each part; the differences to ``accept`` are the parts'
prices. This is the measurement behind "why submit misses 0.5" in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from bench.common import emit
from bench.control_plane import servers
from bench.control_plane.scenarios import JOB_BODY, UNLIMITED_ADMISSION, measure
from bench.control_plane.wrk import LoadResult, LoadSettings
from bench.mochi.report import machine

ACCEPT_SOURCE = pathlib.Path(__file__).with_name("accept") / "main.py"
SUBMIT_SOURCE = servers.REPO_ROOT / "functions" / "submit" / "main.py"
# name -> (target, source, T2V_PARTS); hello is the yardstick, submit the real thing.
VARIANTS: dict[str, tuple[str, pathlib.Path, str]] = {
    "hello": ("hello", servers.HELLO_SOURCE, ""),
    "accept": ("accept", ACCEPT_SOURCE, ""),
    "accept+event": ("accept", ACCEPT_SOURCE, "event"),
    "accept+store": ("accept", ACCEPT_SOURCE, "store"),
    "accept+store+event": ("accept", ACCEPT_SOURCE, "store,event"),
    "submit": ("submit", SUBMIT_SOURCE, ""),
}


@contextmanager
def _served(work_dir: pathlib.Path) -> Iterator[dict[str, servers.Served]]:
    logs = work_dir / "logs"
    with ExitStack() as stack:
        sink = stack.enter_context(servers.event_sink(logs))
        served = {}
        for name, (target, source, parts) in VARIANTS.items():
            env = {
                "T2V_DATA_DIR": str(work_dir / name),
                "T2V_MODEL_PROFILE": "tiny",
                "K_SINK": sink.url,
                "K_SERVICE": f"t2v-{target}",
                "T2V_PARTS": parts,
                **UNLIMITED_ADMISSION,
            }
            served[name] = stack.enter_context(
                servers.function(target, source, env=env, workers=1, log_dir=logs)
            )
        yield served


def _path(name: str) -> str:
    return "/v1/jobs" if name == "submit" else "/"


def run(settings: LoadSettings, *, rounds: int, work_dir: pathlib.Path) -> dict[str, Any]:
    results: dict[str, list[LoadResult]] = {name: [] for name in VARIANTS}
    with _served(work_dir) as served:
        for _ in range(rounds):
            for name, server in served.items():
                method, body = ("GET", "") if name == "hello" else ("POST", JOB_BODY)
                url = server.url + _path(name)
                results[name].append(measure(server, url, settings, method=method, body=body))
    variants: dict[str, dict[str, Any]] = {}
    for name, runs in results.items():
        cpu = [run.server_cpu_ms_per_request or 0.0 for run in runs]
        variants[name] = {
            "cpu_ms_per_request": statistics.median(cpu),
            "cpu_ms_per_request_rounds": cpu,
            "requests_per_s": statistics.median(run.requests_per_s for run in runs),
            "p99_ms": statistics.median(run.p99_ms for run in runs),
            "errors": sum(sum(run.errors.values()) for run in runs),
        }
    base = variants["accept"]["cpu_ms_per_request"]
    for row in variants.values():
        row["cpu_ms_over_accept"] = row["cpu_ms_per_request"] - base
    return {
        "benchmark": "control_plane.parts",
        "machine": machine("cpu"),
        "load": settings.__dict__,
        "rounds": rounds,
        "variants": variants,
    }


def markdown(report: dict[str, Any]) -> str:
    info, load = report["machine"], report["load"]
    lines = [
        f"## submit in parts on {info['cpu']} x{info['cpu_count']}, {info['date']}",
        f"wrk {load['threads']} thread(s), {load['connections']} connections, "
        f"{load['duration_s']} s per run, {report['rounds']} round(s); medians over rounds",
        "",
        "| variant | server CPU ms/req | over accept | req/s | p99 ms | errors |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in report["variants"].items():
        lines.append(
            f"| {name} | {row['cpu_ms_per_request']:.3f} | {row['cpu_ms_over_accept']:+.3f} "
            f"| {row['requests_per_s']:.0f} | {row['p99_ms']:.1f} | {row['errors']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    settings = LoadSettings(args.duration, args.connections, 1)
    with tempfile.TemporaryDirectory(prefix="t2v-parts-") as work_dir:
        report = run(settings, rounds=args.rounds, work_dir=pathlib.Path(work_dir))
    emit(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
