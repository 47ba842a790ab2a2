"""bench/eta.py: the error at each point of a job's life, and a short run on the platform."""

from __future__ import annotations

import datetime
import pathlib

import pytest

from bench.eta import FollowedJob, Reading, errors_at, summarize
from tests.bench.runner import run_bench

T0 = 1_800_000_000.0


def iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat()


def followed(readings: list[tuple[float, float | None]], life_s: float = 20.0) -> FollowedJob:
    job = FollowedJob("job_1")
    job.readings = [
        Reading(T0 + at, "running", "denoising", 10.0, eta, None) for at, eta in readings
    ]
    job.final = {"created_at": iso(T0), "finished_at": iso(T0 + life_s)}
    return job


def test_the_error_is_of_the_last_reading_before_each_point_against_the_time_left() -> None:
    job = followed([(0.0, 30.0), (4.0, 12.0), (9.0, None), (14.0, 6.0)])
    at_25, at_50, at_75 = (errors_at(job, fraction) for fraction in (0.25, 0.5, 0.75))
    assert at_25["eta_s"] == 12.0 and at_25["error"] == pytest.approx(abs(12.0 - 16.0) / 16.0)
    assert at_50["eta_s"] is None and at_50["error"] == 1.0  # no ETA shown counts as 100%
    assert at_75["eta_s"] == 6.0 and at_75["error"] == pytest.approx(0.0)


def test_the_summary_gives_median_and_p90_at_each_point() -> None:
    records = [
        {"life_s": 10.0, "at": [{"error": e}, {"error": e / 2}, {"error": e / 4}]}
        for e in (0.1 * i for i in range(1, 11))
    ]
    summary = summarize(records, 0.25, 2, 5)
    assert summary["abs_error"]["25%"] == {"median": pytest.approx(0.55), "p90": 0.9}
    assert summary["abs_error"]["50%"]["median"] == pytest.approx(0.275)
    assert summary["target_met"] is False


def test_short_run_reports_errors_at_three_points(report_path: pathlib.Path) -> None:
    report = run_bench(["-m", "bench.eta", "--waves", "1", "--per-wave", "2"], report_path)
    result = report["result"]
    assert result["jobs"] == 2
    assert set(result["abs_error"]) == {"25%", "50%", "75%"}
    for stats in result["abs_error"].values():
        assert 0 <= stats["median"] <= stats["p90"]
    assert isinstance(result["target_met"], bool)
