"""The control-plane scenarios: hello vs submit vs status side by side, and status while a
generation runs on the same machine."""

from __future__ import annotations

import contextlib
import json
import math
import pathlib
import statistics
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx

from bench import local_platform
from bench.control_plane import servers
from bench.control_plane.wrk import LoadResult, LoadSettings, run_wrk

JOB_BODY = json.dumps({"prompt": "a red fox running through fresh snow, golden hour"})
# Share of hello's requests/s; "-redis": on the cluster's stores.
TARGETS = {"submit": 0.5, "status": 0.7, "submit-redis": 0.5, "status-redis": 0.7}
# The rate limit stays on (its check is part of submit's cost) but never refuses: a 429
# answered from memory would flatter the numbers. The cap on unfinished jobs is off: one
# tenant queues thousands of jobs here, and where the cap is on (20 by default) a tenant
# never has more than that to count.
UNLIMITED_ADMISSION = {"T2V_SUBMIT_RATE": "1000000/second", "T2V_MAX_ACTIVE_JOBS": "0"}


def measure(
    server: servers.Served, url: str, settings: LoadSettings, *, method: str = "GET",
    body: str = "",
) -> LoadResult:  # fmt: skip
    """wrk against ``url``, plus the server's CPU time per request over the run."""
    cpu_before = server.cpu_seconds()
    result = run_wrk(url, settings, method=method, body=body)
    cpu_ms = (server.cpu_seconds() - cpu_before) * 1000
    return replace(result, server_cpu_ms_per_request=cpu_ms / max(result.requests, 1))


def _median_result(results: list[LoadResult]) -> dict[str, object]:
    """The round with the median throughput stands for the scenario; every round is kept."""
    ordered = sorted(results, key=lambda result: result.requests_per_s)
    middle = ordered[(len(ordered) - 1) // 2]
    return {**middle.as_dict(), "rounds_requests_per_s": [r.requests_per_s for r in results]}


def _warm(client: httpx.Client, submit_url: str, status_url: str) -> str:
    """First requests build each function's runtime (store, sink); keep them out of the
    measurement. Returns a job id for the status scenario."""
    job_id = ""
    for _ in range(5):
        response = client.post(
            f"{submit_url}/v1/jobs", content=JOB_BODY, headers={"content-type": "application/json"}
        )
        response.raise_for_status()
        job_id = str(response.json()["id"])
        client.get(f"{status_url}/v1/jobs/{job_id}").raise_for_status()
    return job_id


def side_by_side(
    settings: LoadSettings,
    *,
    rounds: int,
    workers: int,
    work_dir: pathlib.Path,
    redis: bool = True,
) -> dict[str, Any]:
    """hello GET /, submit POST /v1/jobs, status GET /v1/jobs/{id}: the same load, in turn,
    ``rounds`` times, with all of them served the same way and hello run again after each.
    With ``redis``, submit and status run a second time on the cluster's stores (`-redis`:
    jobs and rate-limit windows on a redis-server of this machine) beside the embedded
    default."""
    logs = work_dir / "logs"
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(servers.event_sink(logs))
        env = {
            "T2V_DATA_DIR": str(work_dir / "data"),
            "T2V_MODEL_PROFILE": "tiny",
            "K_SINK": sink.url,
            **UNLIMITED_ADMISSION,
        }
        stores: dict[str, dict[str, str]] = {"": {}}
        if redis:
            redis_url = stack.enter_context(servers.redis_server(work_dir / "redis"))
            stores["-redis"] = {
                "T2V_STORE_URL": f"{redis_url}/0",
                "T2V_RATE_LIMIT_STORAGE": f"{redis_url}/1",
            }

        def serve(name: str, source: pathlib.Path, suffix: str = "") -> servers.Served:
            function_env = {**env, **stores[suffix], "K_SERVICE": f"t2v-{name}"}
            return stack.enter_context(
                servers.function(name, source, env=function_env, workers=workers,
                                 log_dir=logs / (suffix.strip("-") or "embedded"))
            )  # fmt: skip

        functions = servers.REPO_ROOT / "functions"
        hello = serve("hello", servers.HELLO_SOURCE)
        client = stack.enter_context(httpx.Client(timeout=10.0))
        client.get(hello.url).raise_for_status()
        pairs: dict[str, tuple[servers.Served, servers.Served, str]] = {}
        for suffix in stores:
            submit = serve("submit", functions / "submit" / "main.py", suffix)
            status = serve("status", functions / "status" / "main.py", suffix)
            pairs[suffix] = (submit, status, _warm(client, submit.url, status.url))
        # Every function run is bracketed by hello runs, and its ratio taken against their
        # mean: both sides of the ratio then see the machine as it was around that run.
        runs: dict[str, list[LoadResult]] = {"hello": [measure(hello, f"{hello.url}/", settings)]}
        hello_around: dict[str, list[float]] = {}

        def bracketed(name: str, result: LoadResult) -> None:
            runs.setdefault(name, []).append(result)
            runs["hello"].append(measure(hello, f"{hello.url}/", settings))
            before, after = runs["hello"][-2:]
            hello_rps = (before.requests_per_s + after.requests_per_s) / 2
            hello_around.setdefault(name, []).append(hello_rps)

        for _ in range(rounds):
            for suffix, (submit, status, job_id) in pairs.items():
                bracketed(
                    f"submit{suffix}",
                    measure(submit, f"{submit.url}/v1/jobs", settings, method="POST",
                            body=JOB_BODY),
                )  # fmt: skip
                bracketed(
                    f"status{suffix}", measure(status, f"{status.url}/v1/jobs/{job_id}", settings)
                )
    scenarios = {name: _median_result(results) for name, results in runs.items()}
    return {"scenarios": scenarios, "ratios": paired_ratios(runs, hello_around)}


def paired_ratios(
    runs: Mapping[str, list[LoadResult]], hello_around: Mapping[str, list[float]]
) -> dict[str, dict[str, object]]:
    """Each scenario's requests/s over the hello runs around it, run by run, and the median.

    On a shared machine the background load drifts within seconds (hello alone moved by 50%
    between runs 15 s apart), so a ratio compares a run only with the hello runs just before
    and after it (``hello_around``: their mean requests/s, one per run of the scenario); a
    ratio of medians taken from different moments would carry the drift over.
    """
    ratios: dict[str, dict[str, object]] = {}
    for name, target in TARGETS.items():
        if name not in runs:
            continue
        per_round = [
            result.requests_per_s / hello_rps
            for result, hello_rps in zip(runs[name], hello_around[name], strict=True)
        ]
        ratio = statistics.median(per_round)
        ratios[f"{name}/hello"] = {
            "ratio": ratio,
            "rounds": per_round,
            "target": target,
            "met": ratio >= target,
        }
    return ratios


def _generation_seconds(client: httpx.Client, base: str) -> tuple[str, float]:
    """Run one job to the end; its id and how long it took from submit to succeeded."""
    started = time.monotonic()
    job_id = local_platform.submit(client, base, json.loads(JOB_BODY))
    job = local_platform.wait_until(client, base, job_id, local_platform.TERMINAL, poll_s=0.05)
    if job["status"] != "succeeded":
        raise RuntimeError(f"warm-up job ended {job['status']}: {job.get('error')}")
    return job_id, time.monotonic() - started


def status_during_generation(
    settings: LoadSettings, *, work_dir: pathlib.Path, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Status p50/p99 on the running local platform: idle, then while infer generates."""
    model_dir = local_platform.tiny_model(work_dir / "model")
    platform_env = {**UNLIMITED_ADMISSION, **(env or {})}
    with (
        local_platform.local_platform(work_dir / "platform", model_dir, platform_env) as platform,
        httpx.Client(timeout=30.0) as client,
    ):
        base = platform.gateway
        job_id, job_s = _generation_seconds(client, base)
        status_url = f"{platform.function_url('status')}/v1/jobs/{job_id}"
        idle = run_wrk(status_url, settings)
        # Enough queued work that infer is busy for the whole measurement.
        jobs = [
            local_platform.submit(client, base, json.loads(JOB_BODY))
            for _ in range(math.ceil(settings.duration_s / job_s) + 2)
        ]
        local_platform.wait_until(client, base, jobs[0], ("running", *local_platform.TERMINAL),
                                  poll_s=0.02)  # fmt: skip
        busy = run_wrk(status_url, settings)
        last = client.get(f"{base}/v1/jobs/{jobs[-1]}").json()
    return {
        "job_seconds": job_s,
        "idle": idle.as_dict(),
        "during_generation": busy.as_dict(),
        "generation_busy_throughout": last["status"] in ("queued", "running"),
        "p99_ratio": busy.p99_ms / idle.p99_ms if idle.p99_ms else None,
    }
