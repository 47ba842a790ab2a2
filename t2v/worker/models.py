"""The model, loaded once per infer process, in a thread so health checks keep answering.

Loading ends with a warm-up generation (``T2V_WARMUP``, on by default) so that the first job
does not pay for compilation, kernel selection and allocator growth. It runs before the model
counts as ready, and outside JobRunner, so it is not counted as a generation.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import rust_infer
from t2v.metrics import observe_phase
from t2v.model.acceleration import COMPILE
from t2v.model.pipeline import (
    SPATIAL_MULTIPLE,
    TEMPORAL_COMPRESSION,
    LoadedModel,
    generate,
    load_model,
    no_step_hook,
)
from t2v.settings import Settings

log = logging.getLogger(__name__)

WARMUP_STEPS = 2
WARMUP_PROMPT = "warm-up"
WARMUP_SHRINK = 4  # small geometry: a quarter of the default height and width


def _shrunk(size: int) -> int:
    return math.ceil(size / WARMUP_SHRINK / SPATIAL_MULTIPLE) * SPATIAL_MULTIPLE


def warmup_params(model: LoadedModel) -> dict[str, object]:
    """A short request for ``model``: 2 steps, with its profile's guidance.

    Compiled graphs are specialised to the shapes they first see, so a compiled model warms up
    at its profile's default size, the one most jobs ask for. Without compilation a small size
    suffices to initialise the kernels and the allocator.
    """
    defaults: dict[str, Any] = rust_infer.profile_defaults(model.profile)
    params: dict[str, object] = {
        "prompt": WARMUP_PROMPT,
        "negative_prompt": defaults["negative_prompt"],
        "num_frames": defaults["num_frames"],
        "height": defaults["height"],
        "width": defaults["width"],
        "num_inference_steps": WARMUP_STEPS,
        # Guidance above 1 doubles the transformer's batch: keep the jobs' shape.
        "guidance_scale": defaults["guidance_scale"],
        "seed": 0,
    }
    if COMPILE not in model.acceleration:
        params["num_frames"] = TEMPORAL_COMPRESSION + 1
        params["height"] = _shrunk(int(defaults["height"]))
        params["width"] = _shrunk(int(defaults["width"]))
    return params


class ModelHolder:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._task: asyncio.Task[LoadedModel] | None = None
        self.load_seconds: float | None = None
        self.warmup_seconds: float | None = None

    def start_loading(self) -> asyncio.Task[LoadedModel]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._load))
        return self._task

    def _load(self) -> LoadedModel:
        settings = self._settings
        started = time.monotonic()
        model = load_model(
            settings.model, device=settings.device, acceleration=settings.acceleration
        )
        load_seconds = time.monotonic() - started
        observe_phase("model_load", load_seconds)
        applied = ", ".join(model.acceleration) or "none"
        log.info(
            "model %s (%s) loaded in %.1f s; acceleration: %s",
            model.name,
            model.revision,
            load_seconds,
            applied,
        )
        self.load_seconds = load_seconds
        if settings.warmup:
            self.warmup_seconds = self._warm_up(model)
        return model

    def _warm_up(self, model: LoadedModel) -> float:
        params = warmup_params(model)
        started = time.monotonic()
        generate(model, params, no_step_hook)
        seconds = time.monotonic() - started
        log.info(
            "model warmed up in %.1f s (%sx%s, %s frames, %s steps)",
            seconds,
            params["width"],
            params["height"],
            params["num_frames"],
            params["num_inference_steps"],
        )
        return seconds

    @property
    def ready(self) -> bool:
        return self._task is not None and self._task.done() and self._task.exception() is None

    @property
    def failed(self) -> BaseException | None:
        if self._task is None or not self._task.done() or self._task.cancelled():
            return None
        return self._task.exception()

    async def get(self) -> LoadedModel:
        return await asyncio.shield(self.start_loading())
