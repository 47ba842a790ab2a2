"""Mochi-1 at full size on one GPU (bf16, random weights): where the time of a video goes.

    python bench/gpu_mochi.py --out mochi.json            # H100/H200: the real thing
    python bench/gpu_mochi.py --tiny --out tiny.json      # CPU, seconds: every code path

Times text encoding (T5-XXL encoder, negative + positive prompt), one denoising step with
classifier-free guidance (median of ``--repeats`` after one warm-up), VAE decode (tiled, and
untiled where it fits) and MP4 encoding (rust_infer) at 848x480 with 19, 85 and 163 frames.
Then times each speed option against the plain diffusers step in the same process (see
``bench/mochi/options.py``). Prints markdown tables; ``--out`` also writes the JSON report.

FLOPs of one step (``bench.mochi.models.step_flops``), counting a multiply-add as 2 FLOPs:
    N visual tokens = latent frames x (H/16) x (W/16)    (VAE 8x, patch 2x2; 6k+1 frames)
    L text tokens (``--text-tokens``; the mask drops the padding), S = N + L
    D = 3072 (24 heads x 128), C = 1536 (text stream), F = 8192 and Fc = 4096 (SwiGLU
    inner widths, 8/3 x D and 8/3 x C), layers = 48, P = 2 x 2 x 12 values per patch
    per layer:  visual q,k,v,out    2N x 4D^2
                visual SwiGLU MLP   2N x 3DF
                text q,k,v          2L x 3CD
                joint attention     4 S^2 D           (QK^T and PV over all S tokens)
                text out + MLP      2L x (DC + 3C Fc)  (not in the last, context-only layer)
    once:       patch embed + output projection 4NPD, caption projection 2L x 4096 x C
    x 2 for CFG (negative and positive prompt are one batch of 2).
Norms, RoPE, softmax and modulation are elementwise and left out (well under 1%).
At 848x480x163 (N = 44,520, L = 256) this is 3.33 PFLOP per step.

MFU = (FLOPs / step time) / the GPU's dense bf16 peak (H100 SXM and H200: 989 TFLOP/s).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

if __package__ in (None, ""):
    # Run as a script: make the repository root importable (``bench`` and ``t2v``).
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch

from bench.common import emit, write_json
from bench.mochi import options as opts
from bench.mochi import stages
from bench.mochi.models import MochiModels, build_models, step_flops, visual_tokens
from bench.mochi.report import gpu_peak_tflops, machine, markdown
from bench.mochi.timing import Timing, release_memory, time_call

FULL = {"height": 480, "width": 848, "frames": "19,85,163", "text_tokens": 256}
TINY = {"height": 48, "width": 64, "frames": "7,13", "text_tokens": 16}
VIDEO_STEPS = 64
FPS = 30


def _stage_dict(fn: Any, device: str, repeats: int) -> tuple[dict[str, object], Any]:
    """A stage's timing, or why it has none (an untiled decode that runs out of memory, a
    kernel that fails): one stage's failure is a finding, and the run goes on."""
    try:
        timing = time_call(fn, device=device, repeats=repeats, warmup_runs=0)
    except torch.OutOfMemoryError:
        release_memory(device)
        return {"status": "out of memory"}, None
    except Exception as error:
        release_memory(device)
        return {"status": "failed", "reason": f"{type(error).__name__}: {error}"}, None
    return {"status": "ok", **timing.as_dict()}, timing.result


def _seconds(stage: dict[str, object]) -> float:
    value = stage["median_s"]
    assert isinstance(value, float)
    return value


def _decode(models: MochiModels, latents: torch.Tensor, *, tiled: bool) -> Any:
    if tiled:
        models.vae.enable_tiling()
    else:
        models.vae.disable_tiling()
    return lambda: stages.decode_latents(models.vae, latents)


def _encode_mp4(decoded: torch.Tensor) -> tuple[dict[str, object], bytes]:
    try:
        import rust_infer
    except ImportError:
        return {"status": "skipped: rust_infer not installed"}, b""
    frames_u8 = stages.video_frames(decoded)
    return _stage_dict(lambda: rust_infer.encode_mp4(frames_u8, FPS), "cpu", 1)


@dataclass
class _Size:
    """One video size: its report row, and what later stages need from its step."""

    row: dict[str, Any]
    step: Timing
    inputs: stages.StepInputs


def _step_stage(
    args: argparse.Namespace, models: MochiModels, frames: int, embeds: torch.Tensor, mask: Any
) -> _Size:
    dtype = models.transformer.dtype
    inputs = stages.step_inputs(
        models, frames=frames, height=args.height, width=args.width,
        prompt_embeds=embeds, attention_mask=mask, device=args.device, dtype=dtype,
    )  # fmt: skip
    config = models.transformer.config
    tokens = visual_tokens(config, frames, args.height, args.width)
    flops = step_flops(
        config, visual=tokens, text=args.text_tokens, text_embed_dim=models.text_embed_dim
    )
    step = time_call(
        lambda: stages.guided_velocity(models.transformer, inputs, opts.STEP_TIMESTEP),
        device=args.device,
        repeats=args.repeats,
    )
    achieved = flops / step.median_s / 1e12
    row: dict[str, Any] = {
        "frames": frames,
        "visual_tokens": tokens,
        "step": step.as_dict(),
        "step_tflop": flops / 1e12,
        "achieved_tflops": achieved,
        "mfu": achieved / args.peak_tflops if args.peak_tflops else None,
        "vae_decode_tiled": None,
        "vae_decode_untiled": None,
        "mp4_encode": None,
        "mp4_bytes": 0,
        "video_64_steps_s": None,
    }
    return _Size(row=row, step=step, inputs=inputs)


def _tiled_decode_stage(
    args: argparse.Namespace, models: MochiModels, size: _Size, text_s: float
) -> None:
    """Tiled decode (production's path) and MP4 encode, and the 64-step video time they give:
    one prompt encoding, 64 steps, one decode, one encode."""
    row = size.row
    tiled, decoded = _stage_dict(_decode(models, size.inputs.latents, tiled=True), args.device, 1)
    row["vae_decode_tiled"] = tiled
    if decoded is None:
        row["mp4_encode"] = {"status": "no decoded video"}
        return
    row["mp4_encode"], video = _encode_mp4(decoded)
    row["mp4_bytes"] = len(video)
    del decoded
    if row["mp4_encode"]["status"] == "ok":
        row["video_64_steps_s"] = (
            text_s + VIDEO_STEPS * size.step.median_s + _seconds(tiled)
            + _seconds(row["mp4_encode"])
        )  # fmt: skip


def _options_stage(
    args: argparse.Namespace,
    models: MochiModels,
    size: _Size,
    report: dict[str, Any],
    checkpoint: Callable[[str], None],
) -> None:
    """Each option against the plain step at this size, into ``report["options"]``, which is
    written out after each one."""
    ctx = opts.OptionContext(
        transformer=models.transformer,
        inputs=size.inputs,
        device=args.device,
        repeats=args.repeats,
        cache_steps=args.cache_steps,
        cache_threshold=args.cache_threshold,
        baseline=size.step,
        compile_backend=args.compile_backend,
    )
    results: list[dict[str, object]] = []
    report["options"] = {
        "frames": args.option_frames, "baseline": size.step.as_dict(), "results": results,
    }  # fmt: skip
    for name in args.options:
        results.append(opts.run_option(name, ctx).as_dict())
        checkpoint(f"option {name}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Stages in order of what matters most, the report written out after each one, so a run
    cut short (a GPU lease ends) still leaves every figure it got: the largest size's step,
    then the options at that size, then the decodes, and untiled decodes (which may not fit)
    last. The other sizes' steps come before the options, which change the transformer."""
    dtype = torch.float32 if args.tiny else torch.bfloat16
    models = build_models(tiny=args.tiny, device=args.device, dtype=dtype)
    if args.tiny:
        # Small tiles so the tiny video really is decoded in tiles (the production path).
        models.vae.enable_tiling(32, 32, 24, 24)
    batch = stages.token_batch(models, args.text_tokens, args.device)
    text = time_call(lambda: stages.encode_text(models, batch), device=args.device, repeats=3)
    embeds, mask = text.result, batch["attention_mask"]
    report: dict[str, Any] = {
        "benchmark": "gpu_mochi",
        "mode": "tiny" if args.tiny else "full",
        "dtype": str(dtype).removeprefix("torch."),
        "machine": machine(args.device),
        "peak_tflops": args.peak_tflops,
        "height": args.height,
        "width": args.width,
        "text_tokens": args.text_tokens,
        "repeats": args.repeats,
        "text_encoding": text.as_dict(),
        "sizes": [],
        "options": None,
        "complete": False,
    }
    sizes: dict[int, _Size] = {}

    def checkpoint(stage: str) -> None:
        report["sizes"] = [sizes[frames].row for frames in sorted(sizes)]
        write_json(report, args.out)
        print(f"[gpu_mochi] done: {stage}", flush=True)

    checkpoint("text encoding")
    for frames in sorted(set(args.frames), reverse=True):
        sizes[frames] = _step_stage(args, models, frames, embeds, mask)
        checkpoint(f"step at {frames} frames")
    if args.options and args.option_frames in sizes:
        _options_stage(args, models, sizes[args.option_frames], report, checkpoint)
    for frames in sorted(sizes, reverse=True):
        _tiled_decode_stage(args, models, sizes[frames], text.median_s)
        release_memory(args.device)
        checkpoint(f"tiled decode at {frames} frames")
    for frames in sorted(sizes):
        latents = sizes[frames].inputs.latents
        untiled, _ = _stage_dict(_decode(models, latents, tiled=False), args.device, 1)
        sizes[frames].row["vae_decode_untiled"] = untiled
        release_memory(args.device)
        checkpoint(f"untiled decode at {frames} frames")
    report["complete"] = True
    return report


def _frame_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny config, CPU, float32 (CI)")
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    parser.add_argument("--device", help="default: cuda when available (tiny: cpu)")
    parser.add_argument("--frames", help="comma-separated frame counts (6k+1)")
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--text-tokens", type=int, help="real (unpadded) prompt tokens")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after warm-up")
    parser.add_argument(
        "--options",
        default=",".join(opts.OPTIONS),
        help=f"comma-separated, in this order: {','.join(opts.OPTIONS)}; '' for none",
    )
    parser.add_argument("--option-frames", type=int, help="size the options run at (default max)")
    parser.add_argument("--cache-steps", type=int, help="consecutive steps for the FBC timing")
    parser.add_argument("--cache-threshold", type=float, default=0.05)
    parser.add_argument(
        "--compile-backend",
        default="inductor",
        help="torch.compile backend; CI's tiny run uses 'eager' (traces, skips codegen)",
    )
    parser.add_argument("--peak-tflops", type=float, help="override the GPU's bf16 peak")
    args = parser.parse_args(argv)
    defaults = TINY if args.tiny else FULL
    args.device = args.device or ("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    args.height = args.height or defaults["height"]
    args.width = args.width or defaults["width"]
    args.text_tokens = args.text_tokens or defaults["text_tokens"]
    args.frames = _frame_list(args.frames or str(defaults["frames"]))
    args.option_frames = args.option_frames or max(args.frames)
    args.cache_steps = args.cache_steps or (3 if args.tiny else 4)
    requested = {name.strip() for name in args.options.split(",") if name.strip()}
    if requested - set(opts.OPTIONS):
        parser.error(f"unknown options: {sorted(requested - set(opts.OPTIONS))}")
    args.options = [name for name in opts.OPTIONS if name in requested]
    if args.repeats < 3 and not args.tiny:
        parser.error("--repeats must be at least 3 (the step time is a median of 3 or more)")
    if not args.tiny and not args.device.startswith("cuda"):
        parser.error("the full-size run needs a CUDA GPU; use --tiny on CPU")
    args.peak_tflops = args.peak_tflops or gpu_peak_tflops(args.device)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    emit(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
