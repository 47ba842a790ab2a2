"""MP4 encoding: rust_infer.encode_mp4 against diffusers' export_to_video, on the same frames.

    python -m bench.encode --out encode.json          # 163 x 480x848 and 19 x 128x224
    python -m bench.encode --quick --out quick.json   # tiny sizes, one repetition (CI)

Every encode runs in a fresh process (``bench/encode/measure.py`` says what it measures and
how); the wall time is the median over ``--repeats`` processes, memory the largest peak. Each
encoder's first file is decoded with PyAV (FFmpeg) and compared with the source frames. The
markdown table goes to stdout, the JSON report to ``--out``.

Encoders: ``rust_infer`` (OpenH264, QP 20, one thread), ``export_to_video`` (diffusers with
its defaults: imageio-ffmpeg, libx264 preset medium, CRF 25, FFmpeg's automatic thread count)
and, for reference only, ``imageio_x264_1_thread`` (the same libx264 call on one thread).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from bench.common import emit
from bench.encode.frames import decode_rgb, mean_psnr_db, moving_frames
from bench.encode.measure import ENCODERS
from bench.encode.report import machine, markdown

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
FPS = 30
# (num_frames, height, width): the two cases, and tiny ones for CI.
FULL_CASES = ((163, 480, 848), (19, 128, 224))
QUICK_CASES = ((9, 48, 64), (3, 32, 32))
ACCEPTANCE = {"min_speedup": 1.5, "min_psnr_db": 35.0}


def _encode_in_child(
    name: str, case: tuple[int, int, int], video: pathlib.Path
) -> dict[str, float]:
    num_frames, height, width = case
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.encode.measure",
            name,
            str(num_frames),
            str(height),
            str(width),
            str(FPS),
            str(video),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{name} on {case} failed:\n{completed.stderr[-4000:]}")
    return dict(json.loads(completed.stdout.splitlines()[-1]))


def measure_encoder(
    name: str, case: tuple[int, int, int], repeats: int, workdir: pathlib.Path
) -> dict[str, Any]:
    runs = [
        _encode_in_child(name, case, workdir / f"{name}-{index}.mp4") for index in range(repeats)
    ]
    num_frames, height, width = case
    first_file = (workdir / f"{name}-0.mp4").read_bytes()
    psnr = mean_psnr_db(moving_frames(num_frames, height, width), decode_rgb(first_file))
    walls = [run["wall_s"] for run in runs]
    return {
        "wall_s": statistics.median(walls),
        "wall_s_runs": walls,
        "cpu_s": statistics.median(run["cpu_s"] + run["child_cpu_s"] for run in runs),
        "process_peak_mib": max(run["process_peak_mib"] for run in runs),
        "child_peak_mib": max(run["child_peak_mib"] for run in runs),
        "peak_mib": max(run["peak_mib"] for run in runs),
        "bytes": len(first_file),
        "mbit_per_s": len(first_file) * 8 / 1e6 / (num_frames / FPS),
        "psnr_db": psnr,
    }


def run(
    cases: Sequence[tuple[int, int, int]], repeats: int, encoders: Sequence[str]
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-encode-") as tmp:
        for case in cases:
            workdir = pathlib.Path(tmp) / "x".join(map(str, case))
            workdir.mkdir()
            measured = {name: measure_encoder(name, case, repeats, workdir) for name in encoders}
            rust_wall = measured["rust_infer"]["wall_s"]
            num_frames, height, width = case
            results.append(
                {
                    "num_frames": num_frames,
                    "height": height,
                    "width": width,
                    "fps": FPS,
                    "encoders": measured,
                    # How many times faster rust_infer is than each other encoder.
                    "speedup": {
                        name: result["wall_s"] / rust_wall
                        for name, result in measured.items()
                        if name != "rust_infer"
                    },
                }
            )
    headline = results[0]
    speedup = float(headline["speedup"]["export_to_video"])
    psnr = float(headline["encoders"]["rust_infer"]["psnr_db"])
    acceptance = {
        "case": f"{headline['num_frames']} x {headline['height']}x{headline['width']}",
        "speedup": speedup,
        "psnr_db": psnr,
        **ACCEPTANCE,
        "met": speedup >= ACCEPTANCE["min_speedup"] and psnr >= ACCEPTANCE["min_psnr_db"],
    }
    return {"cases": results, "acceptance": acceptance}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.encode", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one repetition (CI)")
    parser.add_argument(
        "--repeats", type=int, help="processes per encoder and case (default 3, quick 1)"
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="leave out imageio_x264_1_thread (the one-thread libx264 reference)",
    )
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    encoders = list(ENCODERS)
    if args.no_reference:
        encoders.remove("imageio_x264_1_thread")
    cases = QUICK_CASES if args.quick else FULL_CASES
    report = {
        "command": "python -m bench.encode " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "settings": {"quick": args.quick, "repeats": repeats, "fps": FPS, "encoders": encoders},
        **run(cases, repeats, encoders),
    }
    emit(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
