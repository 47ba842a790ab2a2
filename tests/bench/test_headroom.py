"""bench/headroom.py for a second a run: both stores, both requests, priced against the fleet."""

from __future__ import annotations

import pathlib

import pytest

from tests.bench.runner import run_bench


def test_short_run_reports_each_store_against_the_fleet_rate(report_path: pathlib.Path) -> None:
    report = run_bench(
        ["-m", "bench.headroom", "--seconds", "1", "--connections", "4", "--gpus", "8",
         "--video-seconds", "400"],
        report_path,
    )  # fmt: skip
    fleet = report["fleet"]
    assert fleet["jobs_per_s"] == pytest.approx(8 / 400)
    assert fleet["jobs_per_hour"] == pytest.approx(72)
    stores = report["stores"]
    assert list(stores) == ["sqlite", "redis"]
    for requests in stores.values():
        assert list(requests) == ["submit", "status"]
        for row in requests.values():
            assert row["requests"] > 0
            assert 0 < row["p50_ms"] <= row["p99_ms"]
            assert row["times_fleet_peak"] == pytest.approx(row["requests_per_s"] / (8 / 400))
            # Even a loaded 2-core machine serves far more than a fleet of 8 GPUs asks.
            assert row["times_fleet_peak"] > 100
