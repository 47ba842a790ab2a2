"""PingSource, locally: emit each source's event on its cron schedule into the broker."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import Awaitable, Callable

from cloudevents.http import CloudEvent

from t2v.broker.config import BrokerConfig, BrokerConfigError, PingSourceSpec

PING_EVENT_TYPE = "dev.knative.sources.ping"
DEFAULT_NAMESPACE = "default"

_EVERY_N_MINUTES = re.compile(r"^\*(?:/(?P<step>[1-9]\d*))?$")

Publish = Callable[[CloudEvent], Awaitable[None]]


def schedule_step_minutes(schedule: str) -> int:
    """The minute step of ``* * * * *`` or ``*/N * * * *``, the schedules run locally."""
    fields = schedule.split()
    match = _EVERY_N_MINUTES.match(fields[0]) if len(fields) == 5 else None
    if match is None or any(field != "*" for field in fields[1:]):
        raise BrokerConfigError(
            f"unsupported PingSource schedule {schedule!r}: "
            "the local broker runs '* * * * *' and '*/N * * * *' only"
        )
    step = int(match.group("step") or 1)
    if step > 59:
        raise BrokerConfigError(f"unsupported PingSource schedule {schedule!r}: N must be < 60")
    return step


def next_fire_time(now: dt.datetime, step_minutes: int) -> dt.datetime:
    """The first minute after ``now`` that cron's ``*/step`` minute field selects."""
    candidate = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    while candidate.minute % step_minutes != 0:
        candidate += dt.timedelta(minutes=1)
    return candidate


def ping_event(source: PingSourceSpec, namespace: str = DEFAULT_NAMESPACE) -> CloudEvent:
    """The event Knative's PingSource adapter sends for ``source``."""
    attributes = {
        "id": str(uuid.uuid4()),
        "type": PING_EVENT_TYPE,
        "source": f"/apis/v1/namespaces/{namespace}/pingsources/{source.name}",
        "time": dt.datetime.now(dt.UTC).isoformat(),
    }
    if source.content_type is not None:
        attributes["datacontenttype"] = source.content_type
    return CloudEvent(attributes, source.data.encode("utf-8") if source.data else None)


def validate_ping_sources(config: BrokerConfig) -> None:
    """Fail at start-up, not in a background task, on a schedule the broker cannot run."""
    for source in config.ping_sources:
        schedule_step_minutes(source.schedule)


async def run_ping_sources(
    config: BrokerConfig,
    publish: Publish,
    interval_override_s: float | None = None,
    *,
    namespace: str = DEFAULT_NAMESPACE,
) -> None:
    """Emit every PingSource's event until cancelled.

    On the cron schedule by the wall clock, or every ``interval_override_s`` seconds
    (first event after one interval) when given: local runs and tests use short intervals.
    """
    validate_ping_sources(config)
    if interval_override_s is not None and interval_override_s <= 0:
        raise ValueError("interval_override_s must be positive")
    async with asyncio.TaskGroup() as group:
        for source in config.ping_sources:
            group.create_task(_run_one(source, publish, interval_override_s, namespace))


async def _run_one(
    source: PingSourceSpec, publish: Publish, interval_s: float | None, namespace: str
) -> None:
    step = schedule_step_minutes(source.schedule)
    while True:
        if interval_s is not None:
            await asyncio.sleep(interval_s)
        else:
            now = dt.datetime.now(dt.UTC)
            await asyncio.sleep((next_fire_time(now, step) - now).total_seconds())
        await publish(ping_event(source, namespace))
