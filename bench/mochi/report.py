"""The machine a run happened on, and the markdown tables printed after a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from bench.common import machine_basics, package_version

# bf16 dense tensor-core peaks (no sparsity), TFLOP/s, from NVIDIA's data sheets.
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM
    ("H200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
)


def gpu_peak_tflops(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


def machine(device: str) -> dict[str, object]:
    info: dict[str, object] = {
        **machine_basics(),
        "device": device,
        "torch": torch.__version__,
        "diffusers": package_version("diffusers"),
        "transformers": package_version("transformers"),
        "torchao": package_version("torchao"),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
        info["gpu_memory_gib"] = torch.cuda.get_device_properties(0).total_memory / 1024**3
    return info


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return (
            f"{value:.{digits}g}"
            if abs(value) < 1e-3 or abs(value) >= 1e4
            else f"{value:.{digits}f}"
        )
    return str(value)


def _stage(stage: Mapping[str, Any] | None) -> str:
    if stage is None:
        return "-"
    if stage.get("status", "ok") != "ok":
        return str(stage["status"])
    return _num(stage["median_s"])


def sizes_table(sizes: Sequence[Mapping[str, Any]]) -> str:
    header = (
        "| frames | tokens | step s (CFG) | TFLOP/step | TFLOP/s | MFU | peak GiB "
        "| VAE tiled s | VAE untiled s | MP4 s | 64-step video s |"
    )
    lines = [header, "|" + " --- |" * 11]
    for size in sizes:
        step = size["step"]
        lines.append(
            f"| {size['frames']} | {size['visual_tokens']} | {_num(step['median_s'])} "
            f"| {_num(size['step_tflop'])} | {_num(size['achieved_tflops'])} "
            f"| {_num(size['mfu'])} | {_num(step['peak_memory_gib'])} "
            f"| {_stage(size['vae_decode_tiled'])} | {_stage(size['vae_decode_untiled'])} "
            f"| {_stage(size['mp4_encode'])} | {_num(size['video_64_steps_s'])} |"
        )
    return "\n".join(lines)


def options_table(baseline: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| option | status | step s | speedup | rel. diff vs baseline | peak GiB | note |",
        "|" + " --- |" * 7,
        f"| baseline (diffusers default) | ok | {_num(baseline['median_s'])} | 1.000 | 0 "
        f"| {_num(baseline['peak_memory_gib'])} | |",
    ]
    for result in results:
        timing = result.get("timing") or {}
        note = result.get("reason") or ""
        if result["name"] == "first-block-cache" and result["status"] == "ok":
            note = (
                f"{result['steps']} steps, {result['steps_fully_computed']} fully computed; "
                "time is for all steps"
            )
        if result["name"] == "combined" and result["status"] == "ok":
            note = " + ".join(result["parts"])
        lines.append(
            f"| {result['name']} | {result['status']} | {_num(timing.get('median_s'))} "
            f"| {_num(result.get('speedup'))} | {_num(result.get('relative_difference'))} "
            f"| {_num(timing.get('peak_memory_gib'))} | {note} |"
        )
    return "\n".join(lines)


def markdown(report: Mapping[str, Any]) -> str:
    info = report["machine"]
    where = info.get("gpu") or f"CPU: {info['cpu']} x{info['cpu_count']}"
    parts = [
        f"## Mochi-1 {report['mode']} on {where} ({report['dtype']}), {info['date']}",
        f"{report['height']}x{report['width']}, {report['text_tokens']} text tokens, "
        f"bf16 peak {_num(report['peak_tflops'])} TFLOP/s",
        f"text encoding (2 x 256 tokens): {_num(report['text_encoding']['median_s'])} s",
        "",
        sizes_table(report["sizes"]),
    ]
    options = report.get("options")
    if options:
        parts += [
            "",
            f"options at {options['frames']} frames:",
            "",
            options_table(options["baseline"], options["results"]),
        ]
    return "\n".join(parts)
