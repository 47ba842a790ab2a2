"""bench/soak.py in a short run: every job succeeds, and nothing leaks descriptors or
temporary files (the reports' figures, never their speed)."""

from __future__ import annotations

import pathlib

import pytest

from bench.soak import summarize
from tests.bench.runner import run_bench

JOBS = 20


def resource(status: str, created: str, started: str | None, finished: str) -> dict[str, object]:
    return {
        "id": f"job_{created}",
        "status": status,
        "created_at": f"2026-12-07T10:00:{created}Z",
        "started_at": started and f"2026-12-07T10:00:{started}Z",
        "finished_at": f"2026-12-07T10:00:{finished}Z",
        "error": None if status == "succeeded" else {"code": "internal"},
    }


def test_the_summary_counts_waits_and_latencies_of_succeeded_jobs_only() -> None:
    jobs = [
        resource("succeeded", "00", "01", "03"),
        resource("succeeded", "00", "04", "06"),
        resource("failed", "00", None, "09"),
    ]
    summary = summarize(jobs)
    assert summary["succeeded"] == 2 and summary["success_rate"] == 2 / 3
    assert summary["queue_wait_s"]["max"] == 4.0 and summary["latency_s"]["max"] == 6.0
    assert [job["status"] for job in summary["not_succeeded"]] == ["failed"]


@pytest.mark.timeout(900)  # the platform's start on a busy 2-core machine takes minutes
def test_short_soak_succeeds_and_leaks_nothing(report_path: pathlib.Path) -> None:
    args = ["-m", "bench.soak", "--jobs", str(JOBS), "--warmup", "8"]
    result = run_bench(args, report_path, timeout_s=600)["result"]
    assert result["jobs"] == JOBS and result["success_rate"] == 1.0, result["not_succeeded"]
    assert result["tmp_files_left"] == []
    assert result["processes_gone"] == 0 and result["processes_new"] == 0  # nothing restarted
    names = {row["name"] for row in result["processes"]}
    assert {"t2v-infer worker", "t2v-submit worker", "t2v-status worker", "t2v-infer"} <= names
    infer_workers = [row for row in result["processes"] if row["name"] == "t2v-infer worker"]
    assert len(infer_workers) == 2
    for row in result["processes"]:
        # Pools are full after the warm-up: a descriptor per job kept would show as JOBS more.
        assert row["fds_end"] - row["fds_start"] < JOBS // 2, row
