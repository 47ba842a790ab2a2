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
from t2v.eta import RunClock
from t2v.jobs import Progress
from t2v.lifecycle import progress_data
from t2v.runtime import Runtime
from t2v.store import Lease

log = logging.getLogger(__name__)
CANCEL_CHECK_TIMEOUT_S = 10.0
# Phases that run without a step hook, reported on a timer instead.
TICKED_PHASES = ("decoding", "encoding")
# The timer's shortest interval (tests set the progress interval to 0: report everything).
MIN_TICK_S = 0.2


class ProgressReporter:
    """Sends job.progress events, at most one per interval, but always phase changes.

    Each carries the run clock's estimate (`t2v.eta`): seconds left, the share done of the
    job and of its phase, and a report number that orders reports of the same step and
    phase. Decoding and encoding run without a step hook: `keep_reporting` reports them
    every interval, so their own progress moves and their time counts in the ETA.
    """

    def __init__(
        self, rt: Runtime, loop: asyncio.AbstractEventLoop, lease: Lease, clock: RunClock
    ) -> None:
        self._rt = rt
        self._loop = loop
        self._lease = lease
        self.clock = clock
        self._last_sent = 0.0
        self._last: tuple[str, int, int] = ("", 0, 0)
        self._seq = 0
        self._done = 0.0
        self._lock = threading.Lock()
        self._pending: list[Future[bool]] = []

    def report(self, phase: str, step: int, total: int, *, tick: bool = False) -> None:
        """Called from any thread; `tick`: a timed phase's periodic report."""
        now = time.monotonic()
        phase_changed = phase != self._last[0]
        final_step = step == total and not tick
        if not (phase_changed or final_step) and now - self._last_sent < self._interval:
            return
        self._last_sent = now
        self._last = (phase, step, total)
        lease = self._lease
        data = progress_data(
            lease.job_id,
            lease.attempt,
            phase,
            step,
            total,
            worker=lease.worker_id,
            **self.estimate(),
        )
        event = self._rt.event(events.JOB_PROGRESS, lease.job_id, data)
        # Progress is advisory: an undelivered one (the sink counts and logs it) fails nothing.
        self._pending.append(
            asyncio.run_coroutine_threadsafe(self._rt.sink.send(event), self._loop)
        )

    def estimate(self) -> dict[str, float]:
        """The clock's estimate now, with the next report number."""
        snapshot = self.clock.snapshot()
        with self._lock:
            self._seq += 1
            # A run past its estimate gains time left: the share done holds rather than falls.
            self._done = max(self._done, snapshot.done)
            seq, done = self._seq, self._done
        return {
            "seq": seq,
            "eta_s": snapshot.eta_s,
            "at": snapshot.at,
            "done": done,
            "phase_done": snapshot.phase_done,
        }

    def progress(self, step: int, total: int) -> Progress:
        """A `Progress` with the clock's estimate, for an update the worker writes itself."""
        estimate = self.estimate()
        seq = int(estimate.pop("seq"))
        return Progress(self._lease.attempt, step, total, seq=seq, **estimate)

    async def keep_reporting(self) -> None:
        """Report the phases without a step hook until cancelled."""
        while True:
            await asyncio.sleep(max(self._interval, MIN_TICK_S))
            phase, step, total = self._last
            if phase in TICKED_PHASES:
                self.report(phase, step, total, tick=True)

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
