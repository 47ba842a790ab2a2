"""The delivery history's rules, on the real store backends: a retry continues its delivery,
a job's completion goes out once, progress at most once per interval, attempts numbered."""

from __future__ import annotations

from typing import Any

from t2v.store import JobStore
from t2v.webhooks import deliveries
from t2v.webhooks.deliveries import COMPLETED, PROGRESS, PROGRESS_INTERVAL_S

JOB = "job_1"


async def reserve(store: JobStore, delivery_id: str, event: str, now: float) -> Any:
    return await deliveries.reserve(
        store,
        JOB,
        delivery_id=delivery_id,
        event=event,
        event_type=f"dev.t2v.job.{event}",
        payload={"type": f"job.{event}", "n": delivery_id},
        now=now,
    )


async def test_a_retry_continues_its_delivery_and_attempts_are_numbered(
    job_store: JobStore,
) -> None:
    first = await reserve(job_store, "msg_a", COMPLETED, 100.0)
    again = await reserve(job_store, "msg_a", COMPLETED, 160.0)
    assert first is not None and again is not None
    assert again.delivery["payload"] == first.delivery["payload"]
    for status in (500, 204):
        await deliveries.record_attempt(job_store, JOB, "msg_a", {"status_code": status})
    (stored,) = await deliveries.history(job_store, JOB)
    assert [(a["attempt"], a["status_code"]) for a in stored["attempts"]] == [(1, 500), (2, 204)]


async def test_a_second_completion_is_not_sent(job_store: JobStore) -> None:
    assert await reserve(job_store, "msg_succeeded", COMPLETED, 100.0) is not None
    assert await reserve(job_store, "msg_canceled", COMPLETED, 101.0) is None
    assert [d["id"] for d in await deliveries.history(job_store, JOB)] == ["msg_succeeded"]


async def test_progress_goes_out_at_most_once_per_interval(job_store: JobStore) -> None:
    assert await reserve(job_store, "msg_p1", PROGRESS, 100.0) is not None
    assert await reserve(job_store, "msg_p2", PROGRESS, 100.0 + PROGRESS_INTERVAL_S - 0.1) is None
    assert await reserve(job_store, "msg_p3", PROGRESS, 100.0 + PROGRESS_INTERVAL_S) is not None
    # A completion is never throttled by progress.
    assert await reserve(job_store, "msg_done", COMPLETED, 100.0 + PROGRESS_INTERVAL_S) is not None


async def test_the_oldest_progress_goes_first_when_the_history_is_full(
    job_store: JobStore,
) -> None:
    assert await reserve(job_store, "msg_done", COMPLETED, 0.0) is not None
    for n in range(deliveries.MAX_DELIVERIES):
        assert await reserve(job_store, f"msg_{n}", PROGRESS, (n + 1) * PROGRESS_INTERVAL_S)
    kept = [d["id"] for d in await deliveries.history(job_store, JOB)]
    assert len(kept) == deliveries.MAX_DELIVERIES
    assert kept[0] == "msg_done" and "msg_0" not in kept and kept[-1] == "msg_99"
