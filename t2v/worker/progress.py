"""Progress reporting and cancellation checks from the generation thread.

The pipeline runs in a worker thread; the store and event sink live on the event loop.
These bridges hand calls over to the loop without blocking a denoising step on the network
longer than needed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future

from t2v import events
from t2v.lifecycle import progress_data
from t2v.runtime import Runtime
from t2v.store import Lease

log = logging.getLogger(__name__)
CANCEL_CHECK_TIMEOUT_S = 10.0


class ProgressReporter:
    """Sends job.progress events, at most one per interval, but always phase changes."""

    def __init__(self, rt: Runtime, loop: asyncio.AbstractEventLoop, lease: Lease) -> None:
        self._rt = rt
        self._loop = loop
        self._lease = lease
        self._last_sent = 0.0
        self._last_phase = ""
        self._pending: list[Future[bool]] = []

    def report(self, phase: str, step: int, total: int) -> None:
        now = time.monotonic()
        phase_changed = phase != self._last_phase
        final_step = step == total
        if not (phase_changed or final_step) and now - self._last_sent < self._interval:
            return
        self._last_sent = now
        self._last_phase = phase
        lease = self._lease
        data = progress_data(
            lease.job_id, lease.attempt, phase, step, total, worker=lease.worker_id
        )
        event = self._rt.event(events.JOB_PROGRESS, lease.job_id, data)
        # Progress is advisory: an undelivered one (the sink counts and logs it) fails nothing.
        self._pending.append(
            asyncio.run_coroutine_threadsafe(self._rt.sink.send(event), self._loop)
        )

    @property
    def _interval(self) -> float:
        return self._rt.settings.progress_interval_s

    async def drain(self) -> None:
        """Wait for progress events in flight, so they reach the broker before the outcome."""
        pending, self._pending = self._pending, []
        for future in pending:
            await asyncio.wrap_future(future)


class CancelCheck:
    """Answers "stop now?" for the step hook: the job's cancel flag or a lost lease."""

    def __init__(self, rt: Runtime, loop: asyncio.AbstractEventLoop, job_id: str) -> None:
        self._rt = rt
        self._loop = loop
        self._job_id = job_id
        self.lease_lost = threading.Event()

    def __call__(self) -> bool:
        if self.lease_lost.is_set():
            return True
        future = asyncio.run_coroutine_threadsafe(
            self._rt.store.is_cancel_requested(self._job_id), self._loop
        )
        try:
            return future.result(timeout=CANCEL_CHECK_TIMEOUT_S)
        except Exception:
            # An unreachable store must not stop a healthy generation; the next step asks again.
            log.warning("cancel check for %s failed", self._job_id)
            return False
