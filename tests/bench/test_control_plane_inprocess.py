"""bench/control_plane/inprocess in its short mode: every variant answers every request."""

from __future__ import annotations

import pathlib

from bench.control_plane.inprocess import VARIANTS
from tests.bench.runner import run_bench


def test_short_run_prices_every_variant(tmp_path: pathlib.Path) -> None:
    report = run_bench(
        ["-m", "bench.control_plane.inprocess", "--requests", "64", "--rounds", "1"],
        tmp_path / "r.json",
    )
    variants = report["variants"]
    assert set(variants) == set(VARIANTS)
    for row in variants.values():
        assert row["cpu_ms_per_request"] > 0 and len(row["rounds"]) == 1
