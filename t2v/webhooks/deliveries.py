"""Each job's webhook deliveries and every attempt at them: one record in the job store
(`webhook-deliveries/<job id>`), changed by compare-and-set, so notify's processes and the
broker's retries of one event all add to the same history.

A delivery is one event for the job's webhook (`id` is its `webhook-id`); its payload is
kept so that each retry, and a replay, sends the same body. The record also holds when the
last progress delivery was made: progress goes out at most once per `PROGRESS_INTERVAL_S`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from t2v.store import JobStore

PROGRESS_INTERVAL_S = 5.0
# Kept per job; the oldest progress deliveries go first (a completion is never dropped).
MAX_DELIVERIES = 100
COMPLETED = "completed"
PROGRESS = "progress"


def _name(job_id: str) -> str:
    return f"webhook-deliveries/{job_id}"


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes sent for a payload: the same for every attempt."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Reservation:
    """What to send: the delivery (new, or the one a retry of its event continues)."""

    delivery: dict[str, Any]


def _trimmed(deliveries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    while len(deliveries) > MAX_DELIVERIES:
        oldest = next((d for d in deliveries if d["event"] != COMPLETED), deliveries[0])
        deliveries.remove(oldest)
    return deliveries


async def reserve(
    store: JobStore,
    job_id: str,
    *,
    delivery_id: str,
    event: str,
    event_type: str,
    payload: dict[str, Any],
    now: float,
) -> Reservation | None:
    """The delivery to attempt for this event, or None when it is not to be sent: a job's
    completion goes out once (the first terminal event; another is a duplicate), and a
    progress event within `PROGRESS_INTERVAL_S` of the last one sent is dropped."""
    outcome: list[Reservation | None] = [None]

    def change(stored: dict[str, Any] | None) -> dict[str, Any]:
        record = stored if stored is not None else {"deliveries": []}
        deliveries: list[dict[str, Any]] = record["deliveries"]
        earlier = next((d for d in deliveries if d["id"] == delivery_id), None)
        outcome[0] = Reservation(earlier) if earlier is not None else None
        if earlier is not None:
            return record
        if event == COMPLETED and any(d["event"] == COMPLETED for d in deliveries):
            return record
        if event == PROGRESS and now - float(record.get("progress_sent_at", 0)) < (
            PROGRESS_INTERVAL_S
        ):
            return record
        delivery = {
            "id": delivery_id,
            "event": event,
            "event_type": event_type,
            "created_at": now,
            "payload": payload,
            "attempts": [],
        }
        outcome[0] = Reservation(delivery)
        record["deliveries"] = _trimmed([*deliveries, delivery])
        if event == PROGRESS:
            record["progress_sent_at"] = now
        return record

    await store.update_record(_name(job_id), change)
    return outcome[0]


async def record_attempt(
    store: JobStore, job_id: str, delivery_id: str, attempt: dict[str, Any]
) -> dict[str, Any]:
    """Add an attempt (numbered from 1 within its delivery); the attempt as stored."""
    stored: list[dict[str, Any]] = [attempt]

    def change(record: dict[str, Any] | None) -> dict[str, Any]:
        record = record if record is not None else {"deliveries": []}
        for delivery in record["deliveries"]:
            if delivery["id"] == delivery_id:
                numbered = {**attempt, "attempt": len(delivery["attempts"]) + 1}
                delivery["attempts"].append(numbered)
                stored[0] = numbered
        return record

    await store.update_record(_name(job_id), change)
    return stored[0]


async def history(store: JobStore, job_id: str) -> list[dict[str, Any]]:
    record = await store.read_record(_name(job_id))
    return list(record["deliveries"]) if record is not None else []


async def find(store: JobStore, job_id: str, delivery_id: str) -> dict[str, Any] | None:
    return next((d for d in await history(store, job_id) if d["id"] == delivery_id), None)
