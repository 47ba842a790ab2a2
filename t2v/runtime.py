"""Per-process resources of a function, created on its first request (never at import)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cloudevents.http import CloudEvent

from t2v.artifacts import ArtifactStore, open_artifact_store
from t2v.auth import KeyRegistry
from t2v.events import DiscardingEventSink, EventSink, HttpEventSink, make_event
from t2v.settings import Settings
from t2v.store import JobStore, open_job_store

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    store: JobStore
    artifacts: ArtifactStore
    sink: EventSink
    keys: KeyRegistry
    source: str  # CloudEvents `source` of events this function sends

    @classmethod
    def from_settings(cls, settings: Settings, *, source: str) -> Runtime:
        sink: EventSink = (
            HttpEventSink(settings.event_sink) if settings.event_sink else DiscardingEventSink()
        )
        if settings.event_sink is None:
            log.warning("K_SINK is not set: %s will not send events", source)
        keys = KeyRegistry.from_env()
        if keys.open_mode:
            log.warning("no API keys configured (T2V_API_KEYS): %s runs open", source)
        return cls(
            settings=settings,
            store=open_job_store(
                settings.store_url, redis_max_connections=settings.redis_max_connections
            ),
            artifacts=open_artifact_store(settings.artifacts_url),
            sink=sink,
            keys=keys,
            source=source,
        )

    def event(self, event_type: str, job_id: str, data: Mapping[str, Any]) -> CloudEvent:
        """An event from this function about one job (its `subject`)."""
        return make_event(event_type, source=self.source, subject=job_id, data=data)


class Lazy(Generic[T]):
    """A value built once, on first use, by an async factory; safe under concurrent first use."""

    def __init__(self, factory: Callable[[], Awaitable[T]]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def ready(self) -> bool:
        return self._value is not None

    async def get(self) -> T:
        if self._value is not None:
            return self._value
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._value is None:
                self._value = await self._factory()
        return self._value


def configure_logging() -> None:
    """The functions' own INFO lines (a job accepted, a sweep's work) on stderr, as `t2v`'s
    command line logs; a no-op where the server already configured logging."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # One line per HTTP call would drown what the function itself says.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def lazy_runtime(source: str) -> Lazy[Runtime]:
    async def build() -> Runtime:
        configure_logging()
        return Runtime.from_settings(Settings.from_env(), source=source)

    return Lazy(build)
