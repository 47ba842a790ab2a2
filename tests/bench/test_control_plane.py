"""bench/control_plane: wrk's summary parsing, and a short run of every scenario."""

from __future__ import annotations

import pathlib

from bench.control_plane.scenarios import paired_ratios
from bench.control_plane.wrk import RESULT_MARKER, LoadResult, parse_output
from tests.bench.runner import run_bench

SAMPLE = (
    "Running 1s test @ http://127.0.0.1:1/\n"
    + RESULT_MARKER
    + '{"requests": 2000, "duration_us": 2000000, "bytes": 1, "errors": {"connect": 0, '
    '"read": 0, "write": 0, "status": 3, "timeout": 0}, "latency_us": {"p50": 1500, '
    '"p90": 2500, "p99": 9000, "max": 12000, "mean": 1700.5}}\n'
)


def test_parse_output_reads_the_lua_summary() -> None:
    result = parse_output(SAMPLE)
    assert result.requests_per_s == 1000
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (1.5, 9.0, 12.0)
    assert result.errors["status"] == 3


def _check(result: dict[str, object]) -> None:
    assert isinstance(result["requests"], int) and result["requests"] > 0
    assert result["errors"] == {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    for key in ("requests_per_s", "p50_ms", "p99_ms"):
        value = result[key]
        assert isinstance(value, float) and value > 0


def test_short_run_measures_every_scenario(report_path: pathlib.Path) -> None:
    report = run_bench(
        ["-m", "bench.control_plane", "--duration", "1", "--rounds", "1", "--connections", "4"],
        report_path,
    )
    scenarios = report["side_by_side"]["scenarios"]
    assert set(scenarios) == {"hello", "submit", "status", "submit-redis", "status-redis"}
    for result in scenarios.values():
        _check(result)
        assert result["server_cpu_ms_per_request"] > 0
    ratios = report["side_by_side"]["ratios"]
    assert set(ratios) == {
        "submit/hello", "status/hello", "submit-redis/hello", "status-redis/hello"
    }  # fmt: skip
    assert all(ratio["ratio"] > 0 for ratio in ratios.values())
    generation = report["generation"]
    assert generation["job_seconds"] > 0
    _check(generation["idle"])
    _check(generation["during_generation"])


def test_ratios_take_each_run_against_the_hello_runs_around_it() -> None:
    def result(requests: int) -> LoadResult:
        return LoadResult(requests, 1.0, {}, 1.0, 1.0, 1.0, 1.0, 1.0)

    # The machine drifts 2x between runs; each status run keeps 3/4 of the hello around it.
    runs = {
        "submit": [result(1000), result(2000), result(6000)],
        "status": [result(3000), result(6000), result(4500)],
    }
    around = {"submit": [4000.0, 8000.0, 6000.0], "status": [4000.0, 8000.0, 6000.0]}
    ratios = paired_ratios(runs, around)
    assert ratios["status/hello"]["rounds"] == [0.75, 0.75, 0.75]
    assert ratios["status/hello"]["ratio"] == 0.75 and ratios["status/hello"]["met"] is True
    assert ratios["submit/hello"]["ratio"] == 0.25 and ratios["submit/hello"]["met"] is False


def test_parts_price_each_part_of_submit(report_path: pathlib.Path) -> None:
    report = run_bench(
        ["-m", "bench.control_plane.parts", "--duration", "1", "--rounds", "1",
         "--connections", "4"],
        report_path,
    )  # fmt: skip
    variants = report["variants"]
    assert list(variants) == [
        "hello", "accept", "accept+event", "accept+store", "accept+store+event", "submit",
    ]  # fmt: skip
    for row in variants.values():
        assert row["errors"] == 0
        assert row["requests_per_s"] > 0
        assert row["cpu_ms_per_request"] > 0
    assert variants["accept"]["cpu_ms_over_accept"] == 0
