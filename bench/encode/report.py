"""The machine a run happened on, and the markdown table printed after a run."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bench.common import machine_basics, package_version


def machine() -> dict[str, object]:
    import imageio_ffmpeg

    return {
        **machine_basics(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "rust_infer": package_version("rust_infer"),
        "diffusers": package_version("diffusers"),
        "imageio": package_version("imageio"),
        "imageio_ffmpeg": package_version("imageio-ffmpeg"),
        "ffmpeg": imageio_ffmpeg.get_ffmpeg_version(),
        "av": package_version("av"),
    }


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(report: Mapping[str, Any]) -> str:
    repeats = report["settings"]["repeats"]
    lines = [
        f"| case | encoder | wall s (median of {repeats}) | CPU s | peak RSS MiB "
        "(process + ffmpeg) | size KiB | Mbit/s | RGB PSNR dB | rust_infer speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in report["cases"]:
        label = f"{case['num_frames']} x {case['height']}x{case['width']} @ {case['fps']} fps"
        for name, result in case["encoders"].items():
            speedup = case["speedup"].get(name)
            lines.append(
                f"| {label} | {name} | {_cell(result['wall_s'], 2)} | "
                f"{_cell(result['cpu_s'], 2)} | "
                f"{_cell(result['process_peak_mib'], 0)} + {_cell(result['child_peak_mib'], 0)} | "
                f"{_cell(result['bytes'] / 1024, 0)} | {_cell(result['mbit_per_s'], 2)} | "
                f"{_cell(result['psnr_db'], 1)} | "
                f"{'-' if speedup is None else f'{speedup:.2f}x'} |"
            )
    acceptance = report["acceptance"]
    lines.append("")
    lines.append(
        f"Acceptance ({acceptance['case']}): speed-up over export_to_video "
        f"{acceptance['speedup']:.2f}x (needs >= {acceptance['min_speedup']}x), rust_infer "
        f"PSNR {acceptance['psnr_db']:.1f} dB (needs >= {acceptance['min_psnr_db']} dB): "
        f"{'met' if acceptance['met'] else 'not met'}."
    )
    return "\n".join(lines)
