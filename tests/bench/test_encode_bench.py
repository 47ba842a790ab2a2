"""bench/encode: rust_infer.encode_mp4 against export_to_video, in its quick CI mode.

Only the report's structure and that its figures are positive: never speed.
"""

from __future__ import annotations

import pathlib

from bench.encode.measure import ENCODERS
from tests.bench.runner import run_bench

FIGURES = ("wall_s", "cpu_s", "peak_mib", "bytes", "mbit_per_s", "psnr_db")


def test_quick_run_reports_every_encoder_on_every_case(report_path: pathlib.Path) -> None:
    report = run_bench(["-m", "bench.encode", "--quick"], report_path)
    assert report["settings"]["quick"] is True
    assert report["settings"]["repeats"] == 1
    assert {"date", "cpu", "cpus_usable", "ffmpeg"} <= set(report["machine"])
    cases = report["cases"]
    assert [(c["num_frames"], c["height"], c["width"]) for c in cases] == [(9, 48, 64), (3, 32, 32)]
    for case in cases:
        assert set(case["encoders"]) == set(ENCODERS)
        for name, result in case["encoders"].items():
            for figure in FIGURES:
                assert result[figure] > 0, (name, figure, result)
            assert len(result["wall_s_runs"]) == 1
            assert result["peak_mib"] >= result["process_peak_mib"]
        # Only export_to_video pipes frames to an ffmpeg process.
        assert case["encoders"]["rust_infer"]["child_peak_mib"] == 0
        assert case["encoders"]["export_to_video"]["child_peak_mib"] > 0
        assert set(case["speedup"]) == set(ENCODERS) - {"rust_infer"}
        assert all(value > 0 for value in case["speedup"].values())
    acceptance = report["acceptance"]
    assert acceptance["case"] == "9 x 48x64"
    assert isinstance(acceptance["met"], bool)
