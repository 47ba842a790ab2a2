"""The local broker's core: match events against Triggers and feed per-Trigger work queues.

The broker is in memory, like Knative's InMemoryChannel: events waiting in a queue or
between retries are lost when the process stops. Durability comes from elsewhere: the
job store holds every job, and the sweep (PingSource) re-requests jobs whose worker
lease expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from cloudevents.http import CloudEvent

from t2v.broker.config import BrokerConfig, TriggerSpec, resolve_destination
from t2v.broker.delivery import DeliveryOverride, Dispatcher, RetryPolicy
from t2v.broker.event_log import EventLog
from t2v.event_auth import SENDER_ATTRIBUTE, Sender

# Knative's loop guard: each reply hop lowers the TTL; an event reaching 0 is dropped.
TTL_EXTENSION = "knativebrokerttl"
INITIAL_TTL = 255
ALL_TRIGGERS = "*"

_logger = logging.getLogger("t2v.broker")


@dataclass(frozen=True)
class Route:
    """A Trigger resolved to local URLs and its effective delivery settings."""

    trigger: str
    filter_attributes: Mapping[str, str]
    subscriber_url: str
    dead_letter_url: str | None
    policy: RetryPolicy
    parallelism: int

    def matches(self, event: CloudEvent) -> bool:
        """Knative's attributes filter: exact string match; "" means present and non-empty."""
        for name, wanted in self.filter_attributes.items():
            value = event.get(name)
            if value is None or value == "":
                return False
            if wanted != "" and str(value) != wanted:
                return False
        return True


def resolve_routes(
    config: BrokerConfig,
    services: Mapping[str, str],
    overrides: Mapping[str, DeliveryOverride] | None = None,
) -> tuple[Route, ...]:
    """Resolve every Trigger; raises ``BrokerConfigError`` for a service with no URL."""
    overrides = overrides or {}
    return tuple(_route(config, trigger, services, overrides) for trigger in config.triggers)


def _route(
    config: BrokerConfig,
    trigger: TriggerSpec,
    services: Mapping[str, str],
    overrides: Mapping[str, DeliveryOverride],
) -> Route:
    delivery = config.effective_delivery(trigger)
    policy = RetryPolicy.from_delivery(delivery)
    parallelism = trigger.parallelism
    # The "*" override applies first so a Trigger's own override wins over it.
    for key in (ALL_TRIGGERS, trigger.name):
        override = overrides.get(key)
        if override is not None:
            policy = override.apply(policy)
            parallelism = override.parallelism or parallelism
    sink = delivery.dead_letter_sink
    return Route(
        trigger=trigger.name,
        filter_attributes=trigger.filter_attributes,
        subscriber_url=resolve_destination(trigger.subscriber, services),
        dead_letter_url=resolve_destination(sink, services) if sink is not None else None,
        policy=policy,
        parallelism=parallelism,
    )


@dataclass(frozen=True)
class _Envelope:
    event: CloudEvent
    ttl: int


class LocalBroker:
    """Routes published events to subscribers; ``start`` and ``stop`` bracket its life."""

    def __init__(
        self, routes: tuple[Route, ...], event_log: EventLog, *, signing_key: bytes | None = None
    ) -> None:
        self._routes = routes
        self._log = event_log
        self._signing_key = signing_key
        self._queues: dict[str, asyncio.Queue[_Envelope]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._accepting = False

    @property
    def accepting(self) -> bool:
        return self._accepting

    async def start(self) -> None:
        # Timeouts come from each Trigger's delivery spec, never from the client default.
        self._client = httpx.AsyncClient(timeout=None)
        dispatcher = Dispatcher(self._client, self._log, signing_key=self._signing_key)
        for route in self._routes:
            queue: asyncio.Queue[_Envelope] = asyncio.Queue()
            self._queues[route.trigger] = queue
            # parallelism workers per Trigger: never more deliveries in flight than that.
            self._workers += [
                asyncio.create_task(self._work(route, queue, dispatcher))
                for _ in range(route.parallelism)
            ]
        self._accepting = True

    async def stop(self) -> None:
        self._accepting = False
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers.clear()
        self._queues.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def publish(self, event: CloudEvent, sender: Sender | None = None) -> None:
        """Accept ``event`` as broker ingress does (its TTL read from ``knativebrokerttl``),
        stamped with its authenticated ``sender``: whatever sender it named is dropped."""
        _drop(event, SENDER_ATTRIBUTE)
        if sender is not None:
            event[SENDER_ATTRIBUTE] = sender.name
        ttl = _take_ttl(event)
        self._log.record("ingress", event, sender=sender.name if sender else None)
        self._enqueue(_Envelope(event, ttl))

    def _enqueue(self, envelope: _Envelope) -> None:
        if envelope.ttl <= 0:
            self._log.record("dropped", envelope.event, reason="ttl exhausted")
            return
        for route in self._routes:
            if route.matches(envelope.event):
                self._queues[route.trigger].put_nowait(envelope)

    async def _work(
        self, route: Route, queue: asyncio.Queue[_Envelope], dispatcher: Dispatcher
    ) -> None:
        while True:
            envelope = await queue.get()
            try:
                reply = await dispatcher.deliver(
                    route.trigger, envelope.event, route.subscriber_url,
                    route.dead_letter_url, route.policy,
                )  # fmt: skip
                if reply is not None and self._signing_key is not None:
                    # A reply has no sender credential: with authentication on it is
                    # not routed (t2v's functions never reply).
                    self._log.record("dropped", reply, reason="unauthenticated reply")
                elif reply is not None:
                    _drop(reply, SENDER_ATTRIBUTE)
                    _take_ttl(reply)  # a subscriber cannot reset the loop guard
                    self._log.record("reply", reply, trigger=route.trigger)
                    self._enqueue(_Envelope(reply, envelope.ttl - 1))
            except Exception:
                # A bug in one delivery must not stop this Trigger's worker for good.
                _logger.exception("delivery for trigger %s failed", route.trigger)
                self._log.record("undeliverable", envelope.event, trigger=route.trigger)
            finally:
                queue.task_done()


def _drop(event: CloudEvent, attribute: str) -> None:
    if event.get(attribute) is not None:
        del event[attribute]


def _take_ttl(event: CloudEvent) -> int:
    """Remove the TTL extension (subscribers never see it) and return its value."""
    raw = event.get(TTL_EXTENSION)
    if raw is None:
        return INITIAL_TTL
    del event[TTL_EXTENSION]
    try:
        return int(raw)
    except (TypeError, ValueError):
        return INITIAL_TTL
