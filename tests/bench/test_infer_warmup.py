"""bench/infer_warmup.py in its CPU mode: infer's start and first jobs, compiled and plain."""

from __future__ import annotations

import pathlib

from tests.bench.runner import run_bench


def test_compiled_start_compiles_before_ready_and_jobs_compile_nothing(
    tmp_path: pathlib.Path,
) -> None:
    report = run_bench(
        ["-m", "bench.infer_warmup", "--device", "cpu", "--acceleration", "compile",
         "--backend", "eager", "--job-steps", "2"],
        tmp_path / "warmup.json",
    )  # fmt: skip
    assert report["model"] == "tiny" and report["job_steps"] == 2
    compiled, plain = report["variants"]["default"], report["variants"]["plain"]
    assert compiled["acceleration"] == ["compile"] and plain["acceleration"] == []
    assert compiled["graphs_compiled_before_ready"] > 0
    assert plain["graphs_compiled_before_ready"] == 0
    for variant in (compiled, plain):
        assert variant["load_seconds"] > 0 and variant["warmup_seconds"] > 0
        assert [job["new_graphs"] for job in variant["jobs"]] == [0, 0, 0]
        assert all(job["seconds"] > 0 for job in variant["jobs"])
