"""infer's job runner: claim, generate through rust_infer's supervised run, publish.

Outcomes map to broker semantics: a retryable failure raises `RetryLater` (the function
answers 503 and the broker redelivers); everything else is acknowledged after the outcome
event is sent, so the broker does not retry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import rust_infer
from rust_infer import NormalizedParams
from t2v import eta, events
from t2v.errors import UnavailableError
from t2v.jobs import COMMITTED_PHASE, Job, JobError, JobStatus, JobUpdate
from t2v.lifecycle import started_data
from t2v.metrics import StepTimer, metrics, record_gpu_usage
from t2v.runtime import Runtime
from t2v.store import Lease
from t2v.worker.child import ModelCrashed
from t2v.worker.models import ModelRunner
from t2v.worker.progress import CancelCheck, ProgressReporter
from t2v.worker.publish import (
    ArtifactMismatch,
    cached_video,
    encode_video,
    store_video,
    video_key,
)

log = logging.getLogger(__name__)


# A job that crashes the model process is retried this often before it fails.
CRASH_RETRIES = 1


class RetryLater(Exception):
    """A transient failure: the broker should deliver the event again."""


@dataclass(frozen=True)
class Outcome:
    job_id: str
    result: str  # succeeded | failed | canceled | duplicate | ignored
    detail: str = ""


def worker_identity() -> str:
    # The random part makes the id unguessable: status takes lifecycle events only from the
    # worker (and attempt) holding the job's lease.
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"


class JobRunner:
    def __init__(self, rt: Runtime, models: ModelRunner) -> None:
        self._rt = rt
        self.models = models
        self.worker_id = worker_identity()
        # One pipeline, one generation at a time (containerConcurrency 1 on the cluster).
        self._gpu = asyncio.Lock()
        self.generations = 0
        self.cache_hits = 0
        # Jobs this process is working on: a duplicate delivery to the same process would
        # otherwise pass the lease check (the lease is already ours).
        self._active: set[str] = set()
        # When this worker last finished with a job: the next queued one's handoff starts.
        self._free_since: float | None = None
        # Jobs whose run crashed the model process, and how often (in this process: a retry
        # that lands on another replica may crash once more there, which the broker's retry
        # limit bounds).
        self._crashes: dict[str, int] = {}

    async def handle(self, job_id: str) -> Outcome:
        if job_id in self._active:
            return Outcome(job_id, "duplicate", "already running in this worker")
        self._active.add(job_id)
        received = time.time()
        try:
            outcome = await self._handle(job_id, received)
            self._crashes.pop(job_id, None)
            return outcome
        finally:
            self._active.discard(job_id)
            self._free_since = time.time()

    async def _handle(self, job_id: str, received: float) -> Outcome:
        rt = self._rt
        job = await rt.store.get(job_id)
        if job is None or job.status.terminal:
            return Outcome(job_id, "ignored", "unknown or finished job")
        lease = await rt.store.claim(
            job_id, self.worker_id, ttl_s=rt.settings.lease_ttl_s, now=time.time()
        )
        if lease is None:
            return Outcome(job_id, "duplicate", "another live worker holds the lease")
        if job.cancel_requested:
            return await self._canceled(job, lease)
        cancel = CancelCheck(self._rt, asyncio.get_running_loop(), job_id)
        heartbeat = asyncio.create_task(self._heartbeat(lease, cancel))
        try:
            return await self._run(job, lease, cancel, received)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _run(self, job: Job, lease: Lease, cancel: CancelCheck, received: float) -> Outcome:
        params = job.params
        total = params["num_inference_steps"]
        seed, figures = await self._figures(job)
        reporter = ProgressReporter(
            self._rt,
            asyncio.get_running_loop(),
            lease,
            eta.RunClock(figures.plan(params, seed), now=received),
        )
        started = started_data(job.id, lease.attempt, self.worker_id, total, **reporter.estimate())
        await self._send(events.JOB_STARTED, job.id, started)
        if lease.attempt == 1:
            metrics().queue_wait.observe(max(0.0, time.time() - job.created_at))
        model = await self.models.get()
        key = video_key(
            rust_infer.artifact_key(params, model.revision),
            job.tenant,
            shared=self._rt.settings.share_video_cache,
        )
        cached = await cached_video(self._rt, job, key)
        if cached is not None:
            if not await self._commit(job, lease, key, reporter):
                return await self._canceled(job, lease)
            self.cache_hits += 1
            metrics().artifact_cache_hits.inc()
            return await self._succeed(job, lease, cached, cached_hit=True)
        ticker = asyncio.create_task(reporter.keep_reporting())
        try:
            try:
                frames = await self._generate(params, total, reporter, cancel)
            except rust_infer.RunFailed as failure:
                await reporter.drain()
                return await self._fail(job, lease, failure, lost=cancel.lease_lost.is_set())
            except ModelCrashed as crash:
                await reporter.drain()
                return await self._crashed(job, lease, crash, lost=cancel.lease_lost.is_set())
            outcome = await self._publish(job, lease, key, frames, reporter, cancel)
        finally:
            ticker.cancel()
        await reporter.drain()
        if outcome.result == "succeeded":
            measured = reporter.clock.measured()
            free_since = self._free_since
            if free_since is not None and job.created_at < free_since:
                # It waited for this worker: the time from its last job to this one is the
                # queue's handoff (broker delivery, claim), which every queued job pays.
                measured["handoff"] = received - free_since
            await self._learn(job, seed, measured)
        return outcome

    async def _figures(self, job: Job) -> tuple[eta.Seed, eta.Figures]:
        """rust_infer's estimate of the job and the figures learned so far (none when the
        store cannot say: the ETA is advisory and must not stop a job)."""
        settings = self._rt.settings
        seed = eta.Seed.of(job.params, profile=settings.model_profile, gpu=settings.gpu)
        try:
            figures = await eta.read_figures(self._rt.store, settings.model_profile, settings.gpu)
        except UnavailableError:
            log.warning("ETA figures unreadable for %s; using the estimate", job.id)
            figures = eta.Figures()
        return seed, figures

    async def _learn(self, job: Job, seed: eta.Seed, measured: dict[str, float]) -> None:
        """Move the figures towards this run's phases."""
        settings = self._rt.settings
        try:
            await self._rt.store.update_record(
                eta.record_name(settings.model_profile, settings.gpu),
                lambda raw: eta.Figures(raw).learned(job.params, seed, measured),
            )
        except UnavailableError:
            log.warning("ETA figures not updated after %s", job.id)

    async def _publish(
        self,
        job: Job,
        lease: Lease,
        key: str,
        frames: Any,
        reporter: ProgressReporter,
        cancel: CancelCheck,
    ) -> Outcome:
        """Encode, then store and announce the video, unless a cancel came in first.

        Decoding and encoding cannot be interrupted, so the cancel flag is read after each;
        the store is entered through `_commit`, which a cancel request made first refuses.
        """
        total = job.params["num_inference_steps"]
        if cancel.lease_lost.is_set():
            return Outcome(job.id, "ignored", "lease lost")
        if await self._rt.store.is_cancel_requested(job.id):
            return await self._canceled(job, lease)
        reporter.clock.enter("encode")
        reporter.report("encoding", total, total)
        try:
            data, video = await encode_video(job, key, frames)
        except ArtifactMismatch as exc:
            await self._rt.store.release(lease)
            raise RetryLater(str(exc)) from exc
        reporter.clock.enter("finish")
        if cancel.lease_lost.is_set():
            return Outcome(job.id, "ignored", "lease lost")
        if not await self._commit(job, lease, key, reporter):
            return await self._canceled(job, lease)
        reporter.report(COMMITTED_PHASE, total, total)
        await store_video(self._rt, key, data)
        return await self._succeed(job, lease, video, cached_hit=False)

    async def _commit(self, job: Job, lease: Lease, key: str, reporter: ProgressReporter) -> bool:
        """Move the job into `COMMITTED_PHASE` in the store, where a cancel is answered
        `409 too_late`, naming the artifact key its `job.succeeded` will carry (status takes
        no other). One compare-and-set with the cancel request: False when a cancel was
        requested first (the job is then to be canceled, its video not published)."""
        total = job.params["num_inference_steps"]
        reporter.clock.enter("finish")
        update = JobUpdate(
            job.id,
            JobStatus.RUNNING,
            phase=COMMITTED_PHASE,
            progress=reporter.progress(total, total),
            at=time.time(),
            artifact_key=key,
        )
        result = await self._rt.store.apply(update)
        return result.applied or not result.job.cancel_requested

    async def _canceled(self, job: Job, lease: Lease) -> Outcome:
        data = {"job_id": job.id, **self._lease_fields(lease), "reason": "user"}
        await self._send(events.JOB_CANCELED, job.id, data)
        return Outcome(job.id, "canceled")

    @staticmethod
    def _lease_fields(lease: Lease) -> dict[str, Any]:
        """What every lifecycle event carries so status can check it against the lease."""
        return {"attempt": lease.attempt, "worker": lease.worker_id}

    async def _generate(
        self,
        params: NormalizedParams,
        total: int,
        reporter: ProgressReporter,
        cancel: CancelCheck,
    ) -> Any:
        timer = StepTimer()

        def on_progress(step: int, steps: int) -> None:
            timer.tick()
            record_gpu_usage()
            reporter.clock.stepped()
            reporter.report("denoising" if step < steps else "decoding", step, steps)

        async with self._gpu:
            reporter.report("denoising", 0, total)
            frames = await self.models.run(
                params,
                on_progress=on_progress,
                is_canceled=cancel,
                deadline_s=self._rt.settings.job_deadline_s,
            )
            # The pipeline decodes after the last step's hook: the time since is the decode.
            timer.observe_since_last("decode")
            self.generations += 1
            metrics().generations.inc()
            return frames

    async def _heartbeat(self, lease: Lease, cancel: CancelCheck) -> None:
        settings = self._rt.settings
        while True:
            await asyncio.sleep(settings.heartbeat_s)
            try:
                alive = await self._rt.store.renew(
                    lease, ttl_s=settings.lease_ttl_s, now=time.time()
                )
            except Exception:
                log.warning("lease renewal for %s failed; retrying", lease.job_id)
                continue
            if not alive:
                # A job that ends drops its lease in the same write: a renewal that races the
                # final event finds no lease, and that is not a loss.
                job = await self._rt.store.get(lease.job_id)
                if job is None or not job.status.terminal:
                    log.error("lease on %s lost; stopping this attempt", lease.job_id)
                    cancel.lease_lost.set()
                return

    async def _succeed(
        self, job: Job, lease: Lease, video: dict[str, Any], *, cached_hit: bool
    ) -> Outcome:
        data = {"job_id": job.id, **self._lease_fields(lease), "video": video, "cached": cached_hit}
        await self._send(events.JOB_SUCCEEDED, job.id, data)
        return Outcome(job.id, "succeeded", "cache hit" if cached_hit else "generated")

    async def _fail(
        self, job: Job, lease: Lease, failure: rust_infer.RunFailed, *, lost: bool
    ) -> Outcome:
        if lost:
            # Another worker owns the job now; this attempt reports nothing.
            return Outcome(job.id, "ignored", "lease lost")
        if failure.code == "canceled":
            return await self._canceled(job, lease)
        if failure.retryable:
            await self._rt.store.release(lease)
            raise RetryLater(f"{failure.code}: {failure.message}")
        error = JobError(failure.code, failure.message, retryable=False)
        data = {"job_id": job.id, **self._lease_fields(lease), "error": error.summary()}
        await self._send(events.JOB_FAILED, job.id, data)
        return Outcome(job.id, "failed", failure.code)

    async def _crashed(self, job: Job, lease: Lease, crash: ModelCrashed, *, lost: bool) -> Outcome:
        """The model process died under this job: run it once more (on a fresh process),
        fail it if it crashes again."""
        if lost:
            return Outcome(job.id, "ignored", "lease lost")
        crashes = self._crashes.get(job.id, 0) + 1
        self._crashes[job.id] = crashes
        if crashes <= CRASH_RETRIES:
            await self._rt.store.release(lease)
            raise RetryLater(f"{crash.code}: {crash.message}")
        message = f"{crash.message} (crashed on {crashes} tries)"
        error = JobError(crash.code, message, retryable=False)
        data = {"job_id": job.id, **self._lease_fields(lease), "error": error.summary()}
        await self._send(events.JOB_FAILED, job.id, data)
        return Outcome(job.id, "failed", crash.code)

    async def _send(self, event_type: str, job_id: str, data: dict[str, Any]) -> None:
        # Undelivered, the outcome is lost to status: the broker's redelivery runs it again.
        if not await self._rt.sink.send(self._rt.event(event_type, job_id, data)):
            raise RetryLater(f"could not send {event_type}")
