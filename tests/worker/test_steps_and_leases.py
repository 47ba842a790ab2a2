"""What the model runs after a cancel, counted in the pipeline's step hook; the cancel check
itself; and the worker's heartbeat, which keeps its lease and stops the run once the lease
is someone else's."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from t2v.events import event_data
from t2v.jobs import JobStatus
from t2v.store import Lease
from t2v.worker import models, progress, runner
from t2v.worker.progress import CancelCheck
from tests.worker.conftest import Worker

STEPS = 6
WAIT_S = 30.0


def hooked(before_step: Callable[[int], None]) -> Callable[..., Any]:
    """`models.generate` (the in-thread model's) with `before_step(i)` called in the step
    hook after diffusers ran step i and before the supervised hook (progress, cancel check)
    sees it."""
    from t2v.model.pipeline import generate

    def wrapped(model: Any, params: Any, step_hook: Any) -> Any:
        def hook(pipe: Any, i: int, t: Any, kwargs: dict[str, object]) -> Any:
            before_step(i)
            return step_hook(pipe, i, t, kwargs)

        return generate(model, params, hook)

    return wrapped


def on_loop(worker: Worker, loop: asyncio.AbstractEventLoop, coroutine: Any) -> Any:
    """Run a store call from the generation's thread on the test's loop."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=WAIT_S)


@pytest.mark.parametrize("cancel_after", [1, 2])
async def test_a_cancel_stops_the_model_within_one_step(
    worker: Worker, monkeypatch: pytest.MonkeyPatch, cancel_after: int
) -> None:
    """The cancel is stored while step `cancel_after` + 1 runs: that step is the only one
    the model may still finish (two values of `cancel_after`, so a check made only on
    every other step is caught whichever steps it skips)."""
    job = await worker.submit(num_inference_steps=STEPS)
    loop = asyncio.get_running_loop()
    ran_after_cancel: list[int] = []
    canceled = threading.Event()

    def before_step(i: int) -> None:
        if canceled.is_set():
            ran_after_cancel.append(i)
        elif i == cancel_after:
            # Step `cancel_after` + 1 has "begun": the cancel lands during it.
            ran_after_cancel.append(i)
            on_loop(worker, loop, worker.rt.store.request_cancel(job.id, at=time.time()))
            canceled.set()

    monkeypatch.setattr(models, "generate", hooked(before_step))
    assert (await worker.runner.handle(job.id)).result == "canceled"
    # The hook at step `cancel_after` stored the cancel, then checked it: no further step.
    assert ran_after_cancel == [cancel_after]
    assert (await worker.job(job.id)).status == JobStatus.CANCELED


class FailingStore:
    async def is_cancel_requested(self, job_id: str) -> bool:
        raise ConnectionError("the store is down")


class HangingStore:
    async def is_cancel_requested(self, job_id: str) -> bool:
        await asyncio.Event().wait()
        return True


async def ask(check: CancelCheck) -> bool:
    """Call the check as the step hook does: from another thread."""
    return await asyncio.to_thread(check)


async def test_the_cancel_check_answers_the_stored_flag(worker: Worker) -> None:
    job = await worker.submit()
    check = CancelCheck(worker.rt, asyncio.get_running_loop(), job.id)
    assert await ask(check) is False
    await worker.rt.store.request_cancel(job.id, at=time.time())
    assert await ask(check) is True


async def test_a_lost_lease_stops_the_run_without_asking_the_store(worker: Worker) -> None:
    rt: Any = type("Rt", (), {"store": FailingStore()})()
    check = CancelCheck(rt, asyncio.get_running_loop(), "job_1")
    check.lease_lost.set()
    assert await ask(check) is True


async def test_an_unreachable_or_slow_store_does_not_stop_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress, "CANCEL_CHECK_TIMEOUT_S", 0.2)
    loop = asyncio.get_running_loop()
    for store in (FailingStore(), HangingStore()):
        rt: Any = type("Rt", (), {"store": store})()
        assert await ask(CancelCheck(rt, loop, "job_1")) is False


class TestHeartbeat:
    @pytest.fixture
    def worker_env(self) -> dict[str, str]:
        return {"T2V_LEASE_TTL_S": "0.5", "T2V_HEARTBEAT_S": "0.05"}

    def renewals(
        self, worker: Worker, monkeypatch: pytest.MonkeyPatch
    ) -> tuple[list[bool], threading.Condition]:
        """Each renewal's answer, and a condition notified after each."""
        answers: list[bool] = []
        changed = threading.Condition()
        renew = worker.rt.store.renew

        async def counted(lease: Lease, *, ttl_s: float, now: float) -> bool:
            alive = await renew(lease, ttl_s=ttl_s, now=now)
            with changed:
                answers.append(alive)
                changed.notify_all()
            return alive

        monkeypatch.setattr(worker.rt.store, "renew", counted)
        return answers, changed

    async def test_renewals_keep_the_lease_past_its_ttl(
        self, worker: Worker, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        job = await worker.submit()
        answers, changed = self.renewals(worker, monkeypatch)
        ttl_s = worker.rt.settings.lease_ttl_s
        held: list[bool] = []
        loop = asyncio.get_running_loop()

        def before_step(i: int) -> None:
            if i != 0:
                return
            started = time.time()
            with changed:
                # Renewed for longer than one TTL: without renewals the lease is gone.
                assert changed.wait_for(lambda: len(answers) >= 3, timeout=WAIT_S)
            while time.time() - started <= ttl_s:
                with changed:
                    changed.wait(timeout=WAIT_S)
            lease = on_loop(worker, loop, worker.rt.store.lease_of(job.id))
            held.append(lease is not None and lease.expires_at > time.time())
            stale = on_loop(
                worker, loop, worker.rt.store.stale_jobs(now=time.time(), queued_before=0.0)
            )
            held.append(job.id not in [found.id for found in stale])
            with changed:
                during_run.extend(answers)

        during_run: list[bool] = []
        monkeypatch.setattr(models, "generate", hooked(before_step))
        assert (await worker.runner.handle(job.id)).result == "succeeded"
        # Only renewals while the job runs count: the job's end drops the lease, and a
        # renewal racing the final event rightly finds none.
        assert held == [True, True] and len(during_run) >= 3 and all(during_run)

    async def test_a_lost_lease_stops_the_run_and_reports_nothing(
        self, worker: Worker, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        job = await worker.submit(num_inference_steps=STEPS)
        checks: list[CancelCheck] = []

        class KeptCancelCheck(CancelCheck):
            def __init__(self, *args: Any) -> None:
                super().__init__(*args)
                checks.append(self)

        monkeypatch.setattr(runner, "CancelCheck", KeptCancelCheck)
        loop = asyncio.get_running_loop()
        steps_after_loss: list[int] = []
        taken: list[Lease | None] = []

        def before_step(i: int) -> None:
            if taken:
                steps_after_loss.append(i)
                return
            # Another worker takes the job over (this one's lease counted as expired); the
            # next heartbeat finds the lease gone.
            later = time.time() + worker.rt.settings.lease_ttl_s + 1
            claim = worker.rt.store.claim(job.id, "worker-b", ttl_s=60, now=later)
            taken.append(on_loop(worker, loop, claim))
            assert checks[0].lease_lost.wait(timeout=WAIT_S)

        monkeypatch.setattr(models, "generate", hooked(before_step))
        worker.sink.refusals_expected = True  # a report sent after the takeover is refused
        outcome = await worker.runner.handle(job.id)
        assert (outcome.result, outcome.detail) == ("ignored", "lease lost")
        assert all(event_data(event)["attempt"] == 1 for event in worker.sink.refused)
        assert taken[0] is not None and taken[0].attempt == 2
        assert steps_after_loss == []
        # No outcome from this attempt: the job is worker-b's now.
        assert set(worker.sink.types(job.id)) == {"job.started", "job.progress"}
        lease = await worker.rt.store.lease_of(job.id)
        assert lease is not None and lease.worker_id == "worker-b"
        assert (await worker.job(job.id)).status == JobStatus.RUNNING
