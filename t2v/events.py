"""CloudEvents: the event types, building and parsing them, and sending them to K_SINK.

Events go out in binary mode (the cloudevents SDK's encoding, over httpx); both binary and
structured mode are accepted on the way in.
`docs/events.md` is the catalogue.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

import httpx
from cloudevents.conversion import to_binary
from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent, from_http
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from t2v.errors import MalformedEventError
from t2v.metrics import metrics

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
# The credential a function presents to the broker's ingress (`t2v.event_auth`): the local
# broker's token, or a file holding it (on a cluster, the OIDC token a SinkBinding mounts).
SENDER_TOKEN_ENV = "T2V_EVENT_SENDER_TOKEN"
SENDER_TOKEN_FILE_ENV = "T2V_EVENT_SENDER_TOKEN_FILE"


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


class EventSink(Protocol):
    async def send(self, event: CloudEvent) -> bool:
        """Post ``event`` once. False when it was not delivered: that is counted and logged
        here, and the caller decides whether it matters (retries are the Broker's and the
        sweep's, never the sink's)."""

    async def close(self) -> None:
        """Release the sink's connections."""


class HttpEventSink:
    """Posts events in binary mode to K_SINK (the Broker), one attempt each.

    One `httpx.AsyncClient` per process, made on first use on the running loop (a new loop,
    as in tests, gets a new client: a client's connections belong to one loop). Each post
    presents the sender's token: `token`, else `T2V_EVENT_SENDER_TOKEN`, else the file
    `T2V_EVENT_SENDER_TOKEN_FILE` names, read for each post (an OIDC token is rotated).
    """

    def __init__(self, url: str, *, timeout_s: float = 10.0, token: str | None = None) -> None:
        self._url = url
        self._timeout = httpx.Timeout(timeout_s)
        self._token = token if token is not None else os.environ.get(SENDER_TOKEN_ENV, "")
        self._token_file = os.environ.get(SENDER_TOKEN_FILE_ENV, "")
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def _auth(self) -> dict[str, str]:
        token = self._token
        if not token and self._token_file:
            try:
                with open(self._token_file, encoding="utf-8") as stream:
                    token = stream.read().strip()
            except OSError as exc:
                log.warning("sender token %s unreadable: %s", self._token_file, exc)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(timeout=self._timeout)
            self._client_loop = loop
        return self._client

    async def send(self, event: CloudEvent) -> bool:
        headers, body = to_binary(event)
        try:
            reply = await self._http().post(
                self._url, headers={**headers, **self._auth()}, content=body
            )
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            if reply.is_success:
                return True
            reason = f"HTTP {reply.status_code}"
        metrics().event_send_failures.labels(event["type"]).inc()
        subject = event.get("subject")
        log.warning("%s for %s not delivered to %s (%s)", event["type"], subject, self._url, reason)
        return False

    async def close(self) -> None:
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = self._client_loop = None


class DiscardingEventSink:
    """Used when K_SINK is not set: events are logged and dropped (a function run alone)."""

    async def send(self, event: CloudEvent) -> bool:
        log.info("K_SINK not set; dropping %s for %s", event["type"], event.get("subject"))
        return True  # nowhere to deliver to: nothing a caller could retry

    async def close(self) -> None:
        pass
