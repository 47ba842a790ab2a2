"""bench/overhead.py: a few jobs end to end against the direct pipeline call."""

from __future__ import annotations

import pathlib

from tests.bench.runner import run_bench


def test_short_run_reports_overhead_per_job(report_path: pathlib.Path) -> None:
    report = run_bench(["-m", "bench.overhead", "--jobs", "2"], report_path)
    result = report["result"]
    assert result["jobs"] == 2
    assert result["request"]["num_frames"] == 7
    for key in ("end_to_end_s", "direct_s"):
        assert 0 < result[key]["median"] <= result[key]["p90"]
    assert {"queued_s", "running_s", "noticed_after_s"} <= set(result["breakdown_s"])
    seeds = {record["params"]["seed"] for record in result["records"]}
    assert len(seeds) == 2  # distinct seeds: the artifact cache never answers
    assert isinstance(result["target_met"], bool)
