"""The model, loaded once per infer process, in a thread so health checks keep answering."""

from __future__ import annotations

import asyncio
import logging
import time

from t2v.metrics import observe_phase
from t2v.model.pipeline import LoadedModel, load_model
from t2v.settings import Settings

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._task: asyncio.Task[LoadedModel] | None = None
        self.load_seconds: float | None = None

    def start_loading(self) -> asyncio.Task[LoadedModel]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._load())
        return self._task

    async def _load(self) -> LoadedModel:
        started = time.monotonic()
        model = await asyncio.to_thread(
            load_model, self._settings.model, device=self._settings.device
        )
        self.load_seconds = time.monotonic() - started
        observe_phase("model_load", self.load_seconds)
        log.info("model %s (%s) loaded in %.1f s", model.name, model.revision, self.load_seconds)
        return model

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
