"""How fast infer notices a dead model process, and how long a fresh one takes to load.

    python -m bench.model_crash --runs 3 --out model_crash.json

Runs `t2v.worker.child.ModelChild` (what infer runs with ``T2V_MODEL_PROCESS`` on) on the
tiny model, by default on the CPU, and for each run starts a job, sends the model process a
real SIGSEGV once the job's first step is reported, and times the two parts of the recovery:
detect (the signal until the run raises ``ModelCrashed``: the pipe's EOF and reaping) and
reload (from then until the fresh process has loaded the model again, warm-up included when
``--warmup``; what ``/readyz`` waits for).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import signal
import statistics
import tempfile
import time
from typing import Any

import rust_infer
from bench.common import emit, machine_basics, tiny_model
from t2v.settings import Settings
from t2v.worker.child import ModelChild, ModelCrashed

JOB = {"prompt": "crash me", "width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 8}


async def _one_crash(child: ModelChild) -> dict[str, float]:
    pid = child.pid
    assert pid is not None
    params = rust_infer.normalize_request(json.dumps(JOB), profile="tiny", fresh_seed=0)
    killed_at: list[float] = []

    def on_progress(step: int, steps: int) -> None:
        if step == 1 and not killed_at:
            killed_at.append(time.perf_counter())
            os.kill(pid, signal.SIGSEGV)

    try:
        await child.run(params, on_progress=on_progress, is_canceled=lambda: False, deadline_s=600)
    except ModelCrashed:
        detected = time.perf_counter()
    else:
        raise RuntimeError("the model process survived SIGSEGV")
    await child.get()
    reloaded = time.perf_counter()
    return {"detect_s": detected - killed_at[0], "reload_s": reloaded - detected}


async def measure(model: pathlib.Path, runs: int, device: str, warmup: bool) -> dict[str, Any]:
    env = {
        "T2V_MODEL": str(model),
        "T2V_MODEL_PROFILE": "tiny",
        "T2V_DEVICE": device,
        "T2V_WARMUP": "1" if warmup else "0",
        "T2V_DATA_DIR": tempfile.mkdtemp(prefix="t2v-bench-"),
    }
    child = ModelChild(Settings.from_env(env))
    started = time.perf_counter()
    await child.get()
    first_load = time.perf_counter() - started
    try:
        rows = [await _one_crash(child) for _ in range(runs)]
    finally:
        child.close()
    return {
        "machine": machine_basics(),
        "device": device,
        "warmup": warmup,
        "first_load_s": first_load,
        "runs": rows,
        "detect_s_median": statistics.median(r["detect_s"] for r in rows),
        "reload_s_median": statistics.median(r["reload_s"] for r in rows),
    }


def _text(report: dict[str, Any]) -> str:
    lines = [
        f"model process crash recovery ({report['device']}, warm-up {report['warmup']})",
        f"first load: {report['first_load_s']:.2f} s",
        "| run | detect s | reload s |",
        "| --- | --- | --- |",
    ]
    for index, row in enumerate(report["runs"], 1):
        lines.append(f"| {index} | {row['detect_s']:.3f} | {row['reload_s']:.2f} |")
    detect, reload = report["detect_s_median"], report["reload_s_median"]
    lines.append(f"median: detect {detect:.3f} s, reload {reload:.2f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", action="store_true", help="warm up each fresh process")
    parser.add_argument("--model", type=pathlib.Path, help="default: the tiny model, built")
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args(argv)
    model = args.model or tiny_model(pathlib.Path(tempfile.gettempdir()) / "t2v-bench-tiny")
    report = asyncio.run(measure(model, args.runs, args.device, args.warmup))
    emit(report, _text(report), args.out)


if __name__ == "__main__":
    main()
