"""Load a Mochi pipeline and run one request through it.

torch and diffusers are imported inside the functions: the CPU-only functions (submit,
status) import ``t2v`` without the model stack installed.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rust_infer import NormalizedParams
from t2v.model import _stack
from t2v.model.acceleration import (
    FIRST_BLOCK_CACHE,
    AccelerationConfig,
    apply_acceleration,
    check_acceleration,
)
from t2v.model.manifest import PROFILE_MOCHI, config_digest, read_manifest

# A directory inside the Hugging Face cache is named after the commit it holds.
_COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")
_HUB_REPO_PREFIX = "models--"

StepHook = Callable[..., dict[str, object]]


@dataclass(frozen=True)
class LoadedModel:
    pipe: Any
    device: str
    dtype: Any
    name: str
    revision: str
    profile: str  # "tiny" or "mochi-1": which request defaults and limits fit this model
    # The speed options applied (name -> what it did); empty for the plain pipeline.
    acceleration: Mapping[str, str] = field(default_factory=dict)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _local_model_dir(model: str) -> pathlib.Path:
    """``model`` itself when it is a directory, else the hub snapshot (downloaded if needed)."""
    candidate = pathlib.Path(model)
    if candidate.is_dir():
        return candidate
    return pathlib.Path(_stack.diffusers().MochiPipeline.download(model))


def _hub_snapshot(model_dir: pathlib.Path) -> tuple[str, str] | None:
    """(repo id, commit) when ``model_dir`` is ``.../models--org--name/snapshots/<commit>``."""
    repo_dir = model_dir.parent.parent
    if (
        _COMMIT_HASH.match(model_dir.name)
        and model_dir.parent.name == "snapshots"
        and repo_dir.name.startswith(_HUB_REPO_PREFIX)
    ):
        return repo_dir.name.removeprefix(_HUB_REPO_PREFIX).replace("--", "/"), model_dir.name
    return None


def _identity(model: str, model_dir: pathlib.Path) -> tuple[str, str, str]:
    """Name, revision and profile: from the manifest, else the hub cache, else the configs."""
    manifest = read_manifest(model_dir)
    if manifest is not None:
        return manifest.name, manifest.revision, manifest.profile
    snapshot = _hub_snapshot(model_dir)
    if snapshot is not None:
        return snapshot[0], snapshot[1], PROFILE_MOCHI
    name = model_dir.name if pathlib.Path(model).is_dir() else model
    return name, config_digest(model_dir), PROFILE_MOCHI


def load_model(
    model: str, *, device: str | None = None, acceleration: AccelerationConfig | None = None
) -> LoadedModel:
    """Load ``model`` (a local directory or a hub id such as ``genmo/mochi-1-preview``).

    float32 on CPU; bfloat16 on CUDA with VAE tiling, which keeps decoding of full-size
    videos within one GPU's memory. ``acceleration`` options are applied to the transformer
    (``t2v.model.acceleration``); one that cannot run here raises AccelerationUnavailable.
    """
    import torch

    target = device or default_device()
    on_cuda = target.startswith("cuda")
    dtype = torch.bfloat16 if on_cuda else torch.float32
    config = acceleration or AccelerationConfig()
    check_acceleration(config, device=target)
    model_dir = _local_model_dir(model)
    pipe = _stack.diffusers().MochiPipeline.from_pretrained(model_dir, dtype=dtype)
    pipe.to(target)
    if on_cuda:
        pipe.vae.enable_tiling()
    # Progress is reported through the step hook; tqdm output would only clutter the logs.
    pipe.set_progress_bar_config(disable=True)
    applied = apply_acceleration(pipe, config, device=target)

    name, revision, profile = _identity(model, model_dir)
    return LoadedModel(
        pipe=pipe,
        device=target,
        dtype=dtype,
        name=name,
        revision=revision,
        profile=profile,
        acceleration=applied,
    )


def frames_to_uint8(frames: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Float frames in [0, 1] to C-contiguous uint8, rounding rather than truncating."""
    scaled = np.rint(np.clip(frames, 0.0, 1.0) * 255.0)
    return np.ascontiguousarray(scaled.astype(np.uint8))


def no_step_hook(
    pipe: Any, step: int, timestep: Any, kwargs: dict[str, object]
) -> dict[str, object]:
    """A step hook that reports nothing (warm-up, tests): diffusers wants the kwargs back."""
    return kwargs


def generate(
    model: LoadedModel, params: NormalizedParams, step_hook: StepHook
) -> npt.NDArray[np.uint8]:
    """Run one normalised request; returns the video as uint8 ``(frames, height, width, 3)``.

    ``params`` are taken as they are: rust_infer's contract checked them at submit (its
    6k+1 frames and 16-pixel sides are what the VAE needs). ``step_hook`` is diffusers'
    ``callback_on_step_end(pipe, step, timestep, kwargs)`` and must return the kwargs;
    whatever it raises (cancellation, a deadline) propagates unchanged. The same params,
    seed and model give identical frames.
    """
    import torch

    generator = torch.Generator(model.device).manual_seed(params["seed"])
    if FIRST_BLOCK_CACHE in model.acceleration:
        # The pipeline clears the cache's state when a run ends, not when one is interrupted
        # (cancel, deadline): a stale cache would feed the last job's residuals into this one.
        model.pipe.maybe_free_model_hooks()

    # guidance_scale <= 1 turns classifier-free guidance off inside the pipeline (one pass).
    output = model.pipe(
        prompt=params["prompt"],
        # An empty negative prompt is the same as none: diffusers encodes "" in both cases.
        negative_prompt=params["negative_prompt"] or None,
        height=params["height"],
        width=params["width"],
        num_frames=params["num_frames"],
        num_inference_steps=params["num_inference_steps"],
        guidance_scale=params["guidance_scale"],
        generator=generator,
        callback_on_step_end=step_hook,
        output_type="np",
        return_dict=False,
    )
    video = np.asarray(output[0])
    if video.ndim == 5:  # (batch, frames, height, width, channels) with a batch of one
        video = video[0]
    return frames_to_uint8(video)
