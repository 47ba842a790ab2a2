"""Delivering one event to one subscriber with Knative's retry, backoff and dead-letter rules.

Semantics, as in knative.dev/eventing ``pkg/kncloudevents`` and the RabbitMQ dispatcher:

* Retried: no response (connection error, per-request timeout), 5xx, 404, 408, 409, 429.
  Not retried: other 4xx, 3xx, 1xx.
* ``retry`` is the number of retries after the first attempt, so at most ``retry + 1``
  attempts. The wait before retry ``n`` (n = 1, 2, ...) is ``backoffDelay * 2**n`` for
  ``exponential`` and ``backoffDelay * n`` for ``linear``: the documented formula, and
  what the RabbitMQ broker's CloudEvents client does. No wait when either field is unset.
* A 2xx answer that carries a CloudEvent is a reply; the caller publishes it.
* When delivery fails, the original event goes to the dead-letter sink (with the same
  retry policy) carrying ``knativeerrordest`` (subscriber URL), ``knativeerrorcode`` (the
  last HTTP status; 500 when there was no response, as Knative reports a dispatch error)
  and ``knativeerrordata`` (the response body, base64, cut to 1024 characters).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from cloudevents.http import CloudEvent

from t2v.broker.codec import is_cloudevent, read_event, write_binary
from t2v.broker.config import BackoffPolicy, DeliverySpec
from t2v.broker.event_log import EventLog
from t2v.errors import MalformedEventError
from t2v.event_auth import SIGNATURE_HEADER, signature

ERROR_DATA_MAX_LENGTH = 1024
_RETRYABLE_4XX = frozenset({404, 408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """The resolved retry settings for one destination."""

    retry: int = 0
    backoff_policy: BackoffPolicy | None = None
    backoff_delay_s: float | None = None
    timeout_s: float | None = None

    @classmethod
    def from_delivery(cls, delivery: DeliverySpec) -> RetryPolicy:
        return cls(
            retry=delivery.retry or 0,
            backoff_policy=delivery.backoff_policy,
            backoff_delay_s=delivery.backoff_delay_s,
            timeout_s=delivery.timeout_s,
        )

    def backoff_s(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        if self.backoff_policy is None or self.backoff_delay_s is None:
            return 0.0
        if self.backoff_policy is BackoffPolicy.EXPONENTIAL:
            return self.backoff_delay_s * 2.0**retry_number
        return self.backoff_delay_s * retry_number


@dataclass(frozen=True)
class DeliveryOverride:
    """Local-only replacements for a Trigger's delivery settings (tests, small machines)."""

    retry: int | None = None
    backoff_policy: BackoffPolicy | None = None
    backoff_delay_s: float | None = None
    timeout_s: float | None = None
    parallelism: int | None = None

    def apply(self, policy: RetryPolicy) -> RetryPolicy:
        changes = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(policy)
            if getattr(self, field.name) is not None
        }
        return dataclasses.replace(policy, **changes)


def is_retryable(status: int | None) -> bool:
    """Knative's ``SelectiveRetry``: ``None`` stands for "no response"."""
    return status is None or status >= 500 or status in _RETRYABLE_4XX


@dataclass(frozen=True)
class AttemptResult:
    status: int | None
    body: bytes
    reply: CloudEvent | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


ReplyPublisher = Callable[[CloudEvent], Awaitable[None]]


class Dispatcher:
    """Sends events for every Trigger over one shared HTTP client."""

    def __init__(
        self, client: httpx.AsyncClient, event_log: EventLog, *, signing_key: bytes | None = None
    ) -> None:
        self._client = client
        self._log = event_log
        self._signing_key = signing_key

    async def deliver(
        self,
        trigger: str,
        event: CloudEvent,
        subscriber_url: str,
        dead_letter_url: str | None,
        policy: RetryPolicy,
    ) -> CloudEvent | None:
        """Deliver ``event``; dead-letter it on failure. Returns the subscriber's reply, if any."""
        result = await self._send_with_retries("delivery", trigger, event, subscriber_url, policy)
        if result.succeeded:
            return result.reply
        if dead_letter_url is None:
            self._log.record("undeliverable", event, trigger=trigger, target=subscriber_url)
            return None
        dead_letter = _with_error_attributes(event, subscriber_url, result)
        dls_result = await self._send_with_retries(
            "dead_letter", trigger, dead_letter, dead_letter_url, policy
        )
        if not dls_result.succeeded:
            self._log.record("undeliverable", event, trigger=trigger, target=dead_letter_url)
        # A dead-letter sink's reply is dropped, as Knative does.
        return None

    async def _send_with_retries(
        self, kind: str, trigger: str, event: CloudEvent, url: str, policy: RetryPolicy
    ) -> AttemptResult:
        attempt = 0
        while True:
            attempt += 1
            result = await self._attempt(event, url, policy.timeout_s)
            if result.succeeded:
                outcome = "delivered"
            elif is_retryable(result.status) and attempt <= policy.retry:
                outcome = "retrying"
            else:
                outcome = "failed"
            self._log.record(
                kind, event, trigger=trigger, target=url, attempt=attempt,
                status=result.status, outcome=outcome,
            )  # fmt: skip
            if outcome != "retrying":
                return result
            await asyncio.sleep(policy.backoff_s(attempt))

    async def _attempt(self, event: CloudEvent, url: str, timeout_s: float | None) -> AttemptResult:
        headers, body = write_binary(event)
        # Knative asks subscribers for a reply event whether or not one is routed.
        headers["Prefer"] = "reply"
        if self._signing_key is not None:
            # The subscriber checks it (t2v.event_auth): the event, its sender included,
            # comes from this broker.
            headers[SIGNATURE_HEADER] = signature(self._signing_key, headers, body)
        try:
            # Like Go's http.Client.Timeout, the timeout bounds the whole exchange.
            async with asyncio.timeout(timeout_s):
                response = await self._client.post(url, headers=headers, content=body)
        except (httpx.TransportError, TimeoutError) as error:
            # No response: Knative reports it as status 500 with a "dispatch error" body.
            reason = str(error) or type(error).__name__
            detail = f"dispatch error: Post {url!r}: {reason}"
            return AttemptResult(status=None, body=detail.encode("utf-8"))
        result = AttemptResult(status=response.status_code, body=response.content)
        if result.succeeded and is_cloudevent(response.headers):
            try:
                reply = read_event(response.headers, response.content)
            except MalformedEventError:
                reply = None  # an invalid reply does not undo a successful delivery
            return dataclasses.replace(result, reply=reply)
        return result


def _with_error_attributes(
    event: CloudEvent, destination: str, result: AttemptResult
) -> CloudEvent:
    attributes = dict(event.get_attributes())
    attributes["knativeerrordest"] = destination
    attributes["knativeerrorcode"] = str(result.status if result.status is not None else 500)
    encoded = base64.b64encode(result.body).decode("ascii")
    attributes["knativeerrordata"] = encoded[:ERROR_DATA_MAX_LENGTH]
    dead_letter = CloudEvent(attributes, event.get_data())
    if "time" not in attributes:
        del dead_letter["time"]  # the SDK stamps one; the event must pass unchanged
    return dead_letter
