"""The model, loaded once per infer process, in a thread so health checks keep answering.

Loading ends with a warm-up generation (``T2V_WARMUP``, on by default) so that the first job
does not pay for compilation, kernel selection and allocator growth. It runs before the model
counts as ready, and outside JobRunner, so it is not counted as a generation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time

import rust_infer
from rust_infer import NormalizedParams
from t2v.metrics import observe_phase
from t2v.model.acceleration import COMPILE
from t2v.model.pipeline import LoadedModel, generate, load_model, no_step_hook
from t2v.settings import Settings

log = logging.getLogger(__name__)

WARMUP_STEPS = 2
WARMUP_PROMPT = "warm-up"
WARMUP_SHRINK = 4  # small geometry: a quarter of the default height and width


def _shrunk(size: int) -> int:
    side = rust_infer.SIDE_MULTIPLE
    return math.ceil(size / WARMUP_SHRINK / side) * side


def warmup_params(model: LoadedModel) -> NormalizedParams:
    """A short request for ``model``: 2 steps, with its profile's guidance.

    Compiled graphs are specialised to the shapes they first see, so a compiled model warms up
    at its profile's default size, the one most jobs ask for. Without compilation a small size
    (the shortest clip) suffices to initialise the kernels and the allocator.
    """
    request: dict[str, object] = {"prompt": WARMUP_PROMPT, "num_inference_steps": WARMUP_STEPS}
    if COMPILE not in model.acceleration:
        defaults = rust_infer.profile_defaults(model.profile)
        request["num_frames"] = rust_infer.FRAME_GROUP + 1
        request["height"] = _shrunk(defaults["height"])
        request["width"] = _shrunk(defaults["width"])
    # Guidance stays the profile's: above 1 it doubles the transformer's batch, as in jobs.
    return rust_infer.normalize_request(json.dumps(request), profile=model.profile, fresh_seed=0)


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
