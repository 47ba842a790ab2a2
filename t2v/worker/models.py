"""The model, loaded once per infer process, and the two ways infer runs it.

`ModelHolder` loads and runs it in a thread of infer itself (`T2V_MODEL_PROCESS=0`, and the
worker tests, which patch the pipeline in place); `t2v.worker.child.ModelChild` in a child
process, so that a crash in native code fails one job and not infer. Both load in the
background, so health checks keep answering.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

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


@dataclass(frozen=True)
class ModelIdentity:
    """What the job runner needs to know of a loaded model (its revision keys the cache)."""

    name: str
    revision: str
    profile: str
    acceleration: Mapping[str, str]


class ModelRunner(Protocol):
    """A model that loads in the background and runs one supervised generation at a time."""

    load_seconds: float | None
    warmup_seconds: float | None

    def start_loading(self) -> object: ...

    @property
    def ready(self) -> bool: ...

    @property
    def failed(self) -> BaseException | None: ...

    async def get(self) -> ModelIdentity | LoadedModel: ...

    async def run(
        self,
        params: NormalizedParams,
        *,
        on_progress: Callable[[int, int], None],
        is_canceled: Callable[[], bool],
        deadline_s: float,
    ) -> Any: ...


def model_runner(settings: Settings) -> ModelRunner:
    """The runner `settings` ask for: a child process unless T2V_MODEL_PROCESS is off."""
    if settings.model_process:
        from t2v.worker.child import ModelChild

        return ModelChild(settings)
    return ModelHolder(settings)


@dataclass(frozen=True)
class Loaded:
    model: LoadedModel
    load_seconds: float
    warmup_seconds: float | None


def load_and_warm(settings: Settings) -> Loaded:
    """Load the model `settings` name and, unless T2V_WARMUP is off, warm it up."""
    started = time.monotonic()
    model = load_model(settings.model, device=settings.device, acceleration=settings.acceleration)
    load_seconds = time.monotonic() - started
    applied = ", ".join(model.acceleration) or "none"
    log.info(
        "model %s (%s) loaded in %.1f s; acceleration: %s",
        model.name,
        model.revision,
        load_seconds,
        applied,
    )
    warmup_seconds = _warm_up(model) if settings.warmup else None
    return Loaded(model, load_seconds, warmup_seconds)


def _warm_up(model: LoadedModel) -> float:
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


class ModelHolder:
    """The model in a thread of this process."""

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
        loaded = load_and_warm(self._settings)
        observe_phase("model_load", loaded.load_seconds)
        self.load_seconds = loaded.load_seconds
        self.warmup_seconds = loaded.warmup_seconds
        return loaded.model

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

    async def run(
        self,
        params: NormalizedParams,
        *,
        on_progress: Callable[[int, int], None],
        is_canceled: Callable[[], bool],
        deadline_s: float,
    ) -> Any:
        model = await self.get()

        def supervised() -> Any:
            return rust_infer.supervise(
                lambda hook: generate(model, params, hook),
                total_steps=params["num_inference_steps"],
                on_progress=on_progress,
                is_canceled=is_canceled,
                deadline_s=deadline_s,
            )

        return await asyncio.to_thread(supervised)
