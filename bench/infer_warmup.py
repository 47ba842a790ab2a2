"""infer's own start on a device: load -> speed options -> warm-up, then the first jobs.

    python -m bench.infer_warmup --device cuda --out warmup.json
    python -m bench.infer_warmup --device cuda --full --job-steps 2 --variants default

Runs `t2v.worker.models.ModelHolder` (what infer runs before `/readyz`) on the tiny model, or
with ``--full`` on Mochi-1 at its real size with random weights (built and saved to disk
first, then loaded from there as infer loads a model), with the device's default speed
options, then jobs at the profile's default geometry with prompts of different lengths, and
reports each phase's seconds and how many graphs torch.compile made before and after each
job: a job that compiles nothing new paid nothing for compilation. The same jobs on the plain
model are the baseline, in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
import tempfile
import time
from typing import Any

import torch

import rust_infer
from bench.common import emit, machine_basics
from bench.mochi.models import build_models
from t2v.model import _stack
from t2v.model.manifest import PROFILE_MOCHI, ModelManifest, config_digest, write_manifest
from t2v.model.pipeline import LoadedModel, generate, no_step_hook
from t2v.model.tiny import TEXT_SEQUENCE_LENGTH, build_tiny_mochi
from t2v.model.vocab import build_tokenizer
from t2v.settings import Settings
from t2v.worker.models import ModelHolder

PROMPTS = (
    "a cat",
    "a red fox running through fresh snow at golden hour",
    "a slow aerial shot over a misty pine forest at dawn, birds crossing, soft light, 35 mm",
)


def _progress(text: str) -> None:
    # A device lease can end mid-run: say how far it got as it goes.
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _graphs() -> int:
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _jobs(model: LoadedModel, device: str, steps: int | None) -> list[dict[str, Any]]:
    defaults = rust_infer.profile_defaults(model.profile)
    if steps is not None:
        defaults["num_inference_steps"] = steps
    rows = []
    for seed, prompt in enumerate(PROMPTS):
        params = rust_infer.normalize_request(
            json.dumps({**defaults, "prompt": prompt, "seed": seed}),
            profile=model.profile,
            fresh_seed=seed,
        )
        graphs = _graphs()
        _sync(device)
        started = time.perf_counter()
        generate(model, params, no_step_hook)
        _sync(device)
        rows.append(
            {
                "prompt_words": len(prompt.split()),
                "seconds": time.perf_counter() - started,
                "new_graphs": _graphs() - graphs,
            }
        )
        _progress(f"job {seed + 1}: {rows[-1]}")
    return rows


async def _start(env: dict[str, str]) -> tuple[ModelHolder, LoadedModel, float]:
    holder = ModelHolder(Settings.from_env(env))
    started = time.perf_counter()
    model = await holder.get()
    return holder, model, time.perf_counter() - started


def run_variant(env: dict[str, str], device: str, steps: int | None) -> dict[str, Any]:
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    holder, model, ready_s = asyncio.run(_start(env))
    warmup_graphs = _graphs()
    _progress(
        f"ready in {ready_s:.1f} s (load {holder.load_seconds}, warm-up {holder.warmup_seconds})"
    )
    return {
        "acceleration": list(model.acceleration),
        "load_seconds": holder.load_seconds,
        "warmup_seconds": holder.warmup_seconds,
        "seconds_to_ready": ready_s,
        "graphs_compiled_before_ready": warmup_graphs,
        "jobs": _jobs(model, device, steps),
    }


def build_full_mochi(out_dir: pathlib.Path, device: str) -> pathlib.Path:
    """Mochi-1 at its real size, random bf16 weights, saved like the real model (~30 GB)."""
    models = build_models(tiny=False, device=device, dtype=torch.bfloat16)
    diffusers = _stack.diffusers()
    pipeline = diffusers.MochiPipeline(
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(invert_sigmas=True),
        vae=models.vae,
        text_encoder=models.text_encoder,
        tokenizer=build_tokenizer(TEXT_SEQUENCE_LENGTH),
        transformer=models.transformer,
    )
    pipeline.save_pretrained(out_dir, safe_serialization=True)
    manifest = ModelManifest(
        name="random-mochi-1", revision=config_digest(out_dir), profile=PROFILE_MOCHI, seed=0
    )
    write_manifest(out_dir, manifest)
    del pipeline, models
    torch.cuda.empty_cache()
    return out_dir


def run(
    device: str,
    acceleration: str | None,
    backend: str | None,
    *,
    full: bool = False,
    steps: int | None = None,
    variants: tuple[str, ...] = ("default", "plain"),
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="t2v-warmup-") as work:
        started = time.perf_counter()
        model_dir = pathlib.Path(work) / "model"
        if full:
            build_full_mochi(model_dir, device)
        else:
            build_tiny_mochi(model_dir)
        build_s = time.perf_counter() - started
        _progress(f"model built and saved in {build_s:.1f} s")
        base = {"T2V_MODEL": str(model_dir), "T2V_DEVICE": device}
        tuned = dict(base)
        if acceleration is not None:
            tuned["T2V_ACCELERATION"] = acceleration
        if backend is not None:
            tuned["T2V_COMPILE_BACKEND"] = backend
        envs = {"default": tuned, "plain": {**base, "T2V_ACCELERATION": "none"}}
        results = {name: run_variant(envs[name], device, steps) for name in variants}
    gpu = torch.cuda.get_device_name(device) if device.startswith("cuda") else None
    return {
        "benchmark": "infer_warmup",
        "machine": {**machine_basics(), "gpu": gpu, "torch": torch.__version__},
        "device": device,
        "model": "mochi-1 size, random weights" if full else "tiny",
        "job_steps": steps,
        "build_and_save_seconds": build_s,
        "variants": results,
    }


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    lines = [
        f"## infer start on {info['gpu'] or info['cpu']}, {info['date']} (torch {info['torch']})",
        f"model: {report['model']}; job steps: {report['job_steps'] or 'profile default'}",
        "",
        "| variant | options | load s | warm-up s | graphs before ready | jobs: s (new graphs) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in report["variants"].items():
        jobs = ", ".join(f"{job['seconds']:.2f} ({job['new_graphs']})" for job in row["jobs"])
        options = ",".join(row["acceleration"]) or "none"
        warmup = row["warmup_seconds"]
        lines.append(
            f"| {name} | {options} | {row['load_seconds']:.2f} | "
            f"{'-' if warmup is None else f'{warmup:.2f}'} | "
            f"{row['graphs_compiled_before_ready']} | {jobs} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--acceleration", help="T2V_ACCELERATION (default: the device's)")
    parser.add_argument("--backend", help="T2V_COMPILE_BACKEND (default: inductor)")
    parser.add_argument("--full", action="store_true", help="Mochi-1 at its real size")
    parser.add_argument("--job-steps", type=int, help="denoising steps per job")
    parser.add_argument("--variants", default="default,plain", help="default and/or plain")
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    report = run(
        args.device,
        args.acceleration,
        args.backend,
        full=args.full,
        steps=args.job_steps,
        variants=tuple(name for name in args.variants.split(",") if name),
    )
    emit(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
