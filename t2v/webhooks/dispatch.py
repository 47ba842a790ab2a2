"""What notify does with a lifecycle event, and with a replay: build the payload from the
stored job, sign it with the tenant's secret, send it once, record the attempt.

The broker does the retrying: notify answers 502 when an attempt failed, and each
Trigger's delivery spec (eventing/triggers.yaml) says how often and how long the broker
tries again (a completion for over an hour, progress not at all).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from cloudevents.http import CloudEvent

from t2v import events
from t2v.errors import MalformedEventError, NotFoundError, UnavailableError
from t2v.jobs import Job, JobStatus
from t2v.metrics import metrics
from t2v.resources import resource_for
from t2v.runtime import Runtime
from t2v.webhooks import deliveries, sender, signing
from t2v.webhooks.guard import WebhookPolicy

START, PROGRESS, COMPLETED = "start", deliveries.PROGRESS, deliveries.COMPLETED
EVENT_OF_TYPE = {
    events.JOB_STARTED: START,
    events.JOB_PROGRESS: PROGRESS,
    events.JOB_SUCCEEDED: COMPLETED,
    events.JOB_FAILED: COMPLETED,
    events.JOB_CANCELED: COMPLETED,
}
DEFAULT_EVENTS = (COMPLETED,)
# status and notify take the same event at once: how long notify waits for the store to
# show what the event reported, so the payload is the job as the API shows it.
REFLECT_WAIT_S = 2.0
REFLECT_POLL_S = 0.1


@dataclass(frozen=True)
class Sent:
    """The answer notify gives the broker: 502 makes it retry."""

    status_code: int
    body: dict[str, Any]


def _skipped(reason: str) -> Sent:
    return Sent(200, {"sent": False, "reason": reason})


def _reflects(job: Job, event: str) -> bool:
    if event == COMPLETED:
        return job.status.terminal
    return job.status.rank >= JobStatus.RUNNING.rank


async def _reflected(rt: Runtime, job: Job, event: str) -> Job:
    deadline = time.monotonic() + REFLECT_WAIT_S
    while not _reflects(job, event) and time.monotonic() < deadline:
        await asyncio.sleep(REFLECT_POLL_S)
        job = await rt.store.get(job.id) or job
    return job


def payload_for(rt: Runtime, job: Job, event: str) -> dict[str, Any]:
    """The body: Standard Webhooks' type, timestamp and data (the job resource)."""
    return {
        "type": f"job.{'started' if event == START else event}",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": resource_for(job, rt.settings.public_url or "", rt.settings),
    }


async def send(
    rt: Runtime,
    job: Job,
    delivery: dict[str, Any],
    *,
    client: httpx.AsyncClient,
    policy: WebhookPolicy,
    replay: bool = False,
) -> dict[str, Any]:
    """One attempt at `delivery`, signed now with the tenant's secrets; the attempt as
    recorded in the job's history."""
    body = deliveries.body_of(delivery["payload"])
    secret = await signing.tenant_secret(rt.store, job.tenant)
    now = time.time()
    headers = signing.signed_headers(
        signing.signing_secrets(secret, now=now), delivery["id"], int(now), body
    )
    url = str(job.params.get("webhook"))
    result = await sender.attempt(client, url, headers, body, policy=policy, replay=replay)
    if result["error"] is None:
        outcome = "delivered"
    else:
        outcome = "refused" if str(result["error"]).startswith("refused") else "failed"
    metrics().webhook_deliveries.labels(delivery["event"], outcome).inc()
    result["outcome"] = outcome
    return await deliveries.record_attempt(rt.store, job.id, delivery["id"], result)


async def deliver_event(
    rt: Runtime, event: CloudEvent, *, client: httpx.AsyncClient, policy: WebhookPolicy
) -> Sent:
    kind = EVENT_OF_TYPE.get(str(event["type"]))
    if kind is None:
        raise MalformedEventError(f"notify does not take {event['type']} events")
    job_id = str(event.get("subject") or "")
    job = await rt.store.get(job_id) if job_id else None
    if job is None:
        return _skipped("unknown job")
    if not job.params.get("webhook"):
        return _skipped("the job has no webhook")
    if kind not in job.params.get("webhook_events", DEFAULT_EVENTS):
        return _skipped(f"the webhook does not take {kind} events")
    job = await _reflected(rt, job, kind)
    if kind == COMPLETED and not job.status.terminal:
        # Retried by the broker: status has not stored the outcome yet.
        raise UnavailableError(f"job {job.id} does not show its outcome yet")
    reservation = await deliveries.reserve(
        rt.store,
        job.id,
        delivery_id=signing.webhook_id(str(event["source"]), str(event["id"])),
        event=kind,
        event_type=str(event["type"]),
        payload=payload_for(rt, job, kind),
        now=time.time(),
    )
    if reservation is None:
        return _skipped("a duplicate completion, or progress within the interval")
    attempt = await send(rt, job, reservation.delivery, client=client, policy=policy)
    answer = {"sent": True, "delivery_id": reservation.delivery["id"], "attempt": attempt}
    # A refused target would be refused again: the broker need not retry it.
    return Sent(502 if attempt["outcome"] == "failed" else 200, answer)


async def replay(
    rt: Runtime,
    job: Job,
    delivery_id: str,
    *,
    client: httpx.AsyncClient,
    policy: WebhookPolicy,
) -> dict[str, Any]:
    """Send a recorded delivery again, with its webhook-id and body; the new attempt."""
    delivery = await deliveries.find(rt.store, job.id, delivery_id)
    if delivery is None:
        raise NotFoundError(f"job {job.id} has no webhook delivery {delivery_id}")
    return await send(rt, job, delivery, client=client, policy=policy, replay=True)
