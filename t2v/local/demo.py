"""`t2v demo`: the main job end to end on the embedded default.

Builds the tiny model when it is missing, starts the platform, submits one prompt over
HTTP, follows its status, downloads the MP4 and checks it with an independent decoder.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from t2v.local.platform import LocalOptions, running_platform
from t2v.settings import Settings, tiny_model_dir

POLL_S = 0.5


def decoded_shape(path: Path) -> tuple[int, int, int]:
    """(frames, width, height) as PyAV (FFmpeg) decodes the file."""
    import av

    with av.open(str(path)) as container:
        frames = [frame for frame in container.decode(video=0)]
    return len(frames), frames[0].width, frames[0].height


async def follow(client: httpx.AsyncClient, job_url: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        job: dict[str, Any] = (await client.get(job_url)).json()
        progress = job.get("progress") or {}
        step = f"{progress.get('step', '-')}/{progress.get('total', '-')}"
        line = f"{job['status']:<9} {job.get('phase') or '':<10} step {step}"
        if line != last:
            print(line, flush=True)
            last = line
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"job not finished after {timeout_s} s")


async def run_demo(
    prompt: str, *, seed: int | None, out: str | None, env: Mapping[str, str] | None = None
) -> int:
    settings = Settings.from_env(env)
    default_model = tiny_model_dir(settings.data_dir)
    if settings.model == str(default_model):
        from t2v.model.tiny import main as build_tiny

        build_tiny(["--out", str(default_model)])
    async with running_platform(settings, LocalOptions.from_env(env)) as platform:
        print(f"platform up at {platform.gateway_url}", flush=True)
        request: dict[str, Any] = {"prompt": prompt}
        if seed is not None:
            request["seed"] = seed
        async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30.0) as client:
            response = await client.post("/v1/jobs", json=request)
            if response.status_code != 202:
                print(f"submit failed: {response.status_code} {response.text}")
                return 1
            job = response.json()
            print(f"submitted {job['id']}: {json.dumps(job['params'])}", flush=True)
            job = await follow(client, job["links"]["self"], timeout_s=600)
            if job["status"] != "succeeded":
                print(f"job {job['status']}: {job.get('error')}")
                return 1
            video = await client.get(job["links"]["video"])
            video.raise_for_status()
    target = Path(out) if out else settings.data_dir / "videos" / f"{job['id']}.mp4"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(video.content)
    frames, width, height = decoded_shape(target)
    params = job["params"]
    print(f"MP4: {target.resolve()}")
    print(
        f"decoded by FFmpeg (PyAV): {frames} frames, {width}x{height}; "
        f"sha256 {job['video']['sha256']}"
    )
    if (frames, width, height) != (params["num_frames"], params["width"], params["height"]):
        print("the decoded video does not match the request")
        return 1
    return 0
