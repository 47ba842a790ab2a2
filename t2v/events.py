"""CloudEvents: the event types, building and parsing them, and sending them to K_SINK.

Events go out in binary mode; both binary and structured mode are accepted on the way in.
`docs/events.md` is the catalogue.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any, NamedTuple, Protocol

import orjson
from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent, from_http
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from t2v.errors import MalformedEventError, UnavailableError
from t2v.keepalive import ExchangeError, KeepAliveClient
from t2v.random_ids import random_hex
from t2v.relay import EventRelay

log = logging.getLogger(__name__)

PREFIX = "dev.t2v."
JOB_SUBMIT = PREFIX + "job.submit"
JOB_REQUESTED = PREFIX + "job.requested"
JOB_STARTED = PREFIX + "job.started"
JOB_PROGRESS = PREFIX + "job.progress"
JOB_SUCCEEDED = PREFIX + "job.succeeded"
JOB_FAILED = PREFIX + "job.failed"
JOB_CANCELED = PREFIX + "job.canceled"
PING = "dev.knative.sources.ping"
LIFECYCLE_TYPES = (JOB_STARTED, JOB_PROGRESS, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELED)
DATA_SCHEMA_VERSION = "v1"
# Extension attribute naming the tenant of a job.submit event (see docs/events.md).
TENANT_EXTENSION = "t2vtenant"


def data_schema(event_type: str) -> str:
    return f"https://t2v.dev/schemas/{event_type.removeprefix(PREFIX)}/{DATA_SCHEMA_VERSION}.json"


def make_event(
    event_type: str,
    *,
    source: str,
    subject: str,
    data: Mapping[str, Any],
    event_id: str | None = None,
    extensions: Mapping[str, str] | None = None,
) -> CloudEvent:
    attributes: dict[str, Any] = {
        "type": event_type,
        "source": source,
        "subject": subject,
        "id": event_id or uuid.uuid4().hex,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "dataschema": data_schema(event_type),
    }
    attributes.update(extensions or {})
    return CloudEvent(attributes, dict(data))


# CloudEvents HTTP binding, binary mode: space, '"', '%' and anything outside printable
# ASCII are percent-encoded (as UTF-8) in ce-* header values. t2v's own values (ids, types,
# URLs, tenants) never need it, so the check is one regex search.
_NEEDS_ENCODING = re.compile(r'[^\x21-\x7e]|["%]')


def _header_value(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if _NEEDS_ENCODING.search(text) is None:
        return text
    return _NEEDS_ENCODING.sub(
        lambda match: "".join(f"%{byte:02X}" for byte in match.group().encode()), text
    )


def binary_http(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """``event`` as binary-mode HTTP headers and a JSON body.

    What cloudevents' `to_binary` makes, for a tenth of its CPU: it was the largest single
    cost of sending ``job.requested`` on every submit (BENCHMARKS.md, control plane).
    """
    headers: dict[str, str] = {}
    for name, value in event.get_attributes().items():
        if value is None or name == "data":
            continue
        if name == "datacontenttype":
            headers["content-type"] = _header_value(value)
        else:
            headers[f"ce-{name}"] = _header_value(value)
    data = event.get_data()
    if data is None:
        return headers, b""
    if isinstance(data, bytes):
        return headers, data
    return headers, json.dumps(data).encode()


@functools.lru_cache(maxsize=256)
def _constant_header(value: str) -> str:
    # An event type, source or schema URL: a handful per process, encoded once each.
    return _header_value(value)


def binary_event(
    event_type: str,
    *,
    source: str,
    subject: str,
    data: Mapping[str, Any],
    event_id: str | None = None,
    time: str | None = None,
    extensions: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], bytes]:
    """``binary_http(make_event(...))`` without building a CloudEvent: a tenth of its CPU.

    The same headers; the body is the same JSON, compact. ``time`` is RFC 3339 (now by
    default) and ``event_id`` a fresh random hex id by default, as in `make_event`.
    """
    headers = {
        "ce-type": _constant_header(event_type),
        "ce-source": _constant_header(source),
        "ce-subject": _header_value(subject),
        "ce-id": random_hex(16) if event_id is None else _header_value(event_id),
        "ce-time": datetime.now(UTC).isoformat() if time is None else _header_value(time),
        "content-type": "application/json",
        "ce-dataschema": _constant_header(data_schema(event_type)),
    }
    if extensions:
        for name, value in extensions.items():
            headers[f"ce-{name}"] = _header_value(value)
    headers["ce-specversion"] = "1.0"
    return headers, orjson.dumps(data if isinstance(data, dict) else dict(data))


def parse_event(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Read a CloudEvent in binary or structured mode, or raise MalformedEventError."""
    try:
        event = from_http(dict(headers), body)
    except (GenericException, ValueError, TypeError, KeyError) as exc:
        raise MalformedEventError(f"not a valid CloudEvent: {exc}") from exc
    for required in ("id", "source", "type"):
        if not event.get(required):
            raise MalformedEventError(f"CloudEvent attribute {required!r} is missing")
    return event


@functools.cache
def _validator(event_type: str) -> Draft202012Validator | None:
    name = event_type.removeprefix(PREFIX)
    path = resources.files("t2v") / "schemas" / f"{name}.{DATA_SCHEMA_VERSION}.json"
    if not event_type.startswith(PREFIX) or not path.is_file():
        return None
    return Draft202012Validator(json.loads(path.read_text()))


def event_data(event: CloudEvent) -> dict[str, Any]:
    """The event's data as a JSON object checked against its schema, or MalformedEventError."""
    data = event.get_data()
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise MalformedEventError("CloudEvent data is not JSON") from exc
    if not isinstance(data, dict):
        raise MalformedEventError("CloudEvent data must be a JSON object")
    validator = _validator(str(event["type"]))
    if validator is not None:
        problem = best_match(validator.iter_errors(data))
        if problem is not None:
            where = "/".join(str(part) for part in problem.absolute_path) or "data"
            raise MalformedEventError(f"{event['type']} {where}: {problem.message}")
    return data


class OutgoingEvent(NamedTuple):
    """An event for `EventSink.post_soon` (a tuple: built on every submit)."""

    type: str
    source: str
    subject: str
    data: Mapping[str, Any]
    time: str | None = None  # when it happened (RFC 3339); now by default


class EventSink(Protocol):
    async def send(self, event: CloudEvent) -> None:
        """Deliver ``event`` now (retried briefly), or raise UnavailableError."""

    def post_soon(self, event: OutgoingEvent) -> None:
        """Queue the event and return at once; it is delivered at least once, or given up
        with an error log (or dropped, with a warning, when too many are waiting)."""


class HttpEventSink:
    """Posts events in binary mode to K_SINK (the Broker), retrying briefly on failure.

    Sending the event is a large part of submit's work, so it goes through the lean
    kept-alive client in `t2v.keepalive` (why: that module and BENCHMARKS.md), and
    `post_soon` hands it to a background relay that batches and pipelines (`t2v.relay`).
    """

    def __init__(
        self, url: str, *, attempts: int = 4, timeout_s: float = 10.0, max_queued: int = 10_000
    ) -> None:
        self._url = url
        self._attempts = attempts
        self._client = KeepAliveClient(url, timeout_s=timeout_s)
        self.relay = EventRelay(self._client, attempts=attempts, max_queued=max_queued, target=url)

    async def send(self, event: CloudEvent) -> None:
        headers, body = binary_http(event)
        delay = 0.1
        for attempt in range(1, self._attempts + 1):
            try:
                reply = await self._client.post(headers, body)
                if reply.status < 300:
                    return
                reason = f"HTTP {reply.status}"
            except ExchangeError as exc:
                reason = str(exc)
            log.warning(
                "event %s to %s failed (%s), attempt %d", event["type"], self._url, reason, attempt
            )
            if attempt < self._attempts:
                await asyncio.sleep(delay)
                delay *= 4
        raise UnavailableError(f"could not deliver {event['type']} to the broker: {reason}")

    def post_soon(self, event: OutgoingEvent) -> None:
        headers, body = binary_event(
            event.type, source=event.source, subject=event.subject, data=event.data,
            time=event.time,
        )  # fmt: skip
        self.relay.post_soon(headers, body, description=f"{event.type} for {event.subject}")

    async def close(self, timeout_s: float = 2.0) -> None:
        """Deliver what `post_soon` queued (for up to ``timeout_s``), then close."""
        await self.relay.close(timeout_s)
        await self._client.close()


class DiscardingEventSink:
    """Used when K_SINK is not set: events are logged and dropped (a function run alone)."""

    async def send(self, event: CloudEvent) -> None:
        log.info("K_SINK not set; dropping %s for %s", event["type"], event.get("subject"))

    def post_soon(self, event: OutgoingEvent) -> None:
        log.info("K_SINK not set; dropping %s for %s", event.type, event.subject)
