"""Recovery policy: what becomes of a job that no live worker holds, and of a dead letter.

Pure functions over a job (and its lease), the settings and the time: they decide, the
submit function's sweep and the status function's dead-letter handler carry the decision
out. Delivery is at-least-once, so every decision is safe to take twice: a re-request is
a duplicate infer ignores while a lease is live, and a failure goes through `jobs.merge`,
where the first terminal status wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from t2v import events
from t2v.jobs import Job, JobError, JobStatus, JobUpdate
from t2v.store import Lease

# Knative's attributes on a dead letter, kept in the failed job's error details.
KNATIVE_ERROR_ATTRIBUTES = ("knativeerrordest", "knativeerrorcode", "knativeerrordata")


class RecoverySettings(Protocol):
    """What the policy reads from `t2v.settings.Settings`."""

    @property
    def queued_stale_s(self) -> float: ...

    @property
    def max_attempts(self) -> int: ...


class SweepAction(StrEnum):
    WAIT = "wait"  # not due yet: the job may simply be waiting its turn
    REREQUEST = "rerequest"  # send `job.requested` again (and count the sweep)
    FAIL = "fail"  # fail the job with `worker_lost`


def queued_cutoff(now: float, settings: RecoverySettings) -> float:
    """Queued jobs created before this are candidates for a re-request."""
    return now - settings.queued_stale_s


def sweep_action(job: Job, *, now: float, settings: RecoverySettings) -> SweepAction:
    """What the sweep does with `job`, which no live lease holds.

    Queued: its request may have been lost, or may still wait in the broker's queue; it is
    asked for again after `queued_stale_s`, then after exponentially longer waits (2x, 4x,
    ...), so a long queue is not flooded with duplicates. It is never failed here: it stays
    cancelable. Running: its worker was lost; it is asked for again at once, up to
    `max_attempts` times, and then fails with `worker_lost`.
    """
    if job.status == JobStatus.QUEUED:
        due = now - job.created_at >= settings.queued_stale_s * (1 << job.sweeps)
        return SweepAction.REREQUEST if due else SweepAction.WAIT
    if job.status == JobStatus.RUNNING:
        if job.sweeps >= settings.max_attempts:
            return SweepAction.FAIL
        return SweepAction.REREQUEST
    return SweepAction.WAIT


def worker_lost(job: Job, *, now: float) -> JobUpdate:
    """The update that fails a job whose workers were lost `job.sweeps` times."""
    error = JobError(
        "worker_lost",
        f"no worker finished the job after {job.sweeps} re-requests",
        retryable=True,
    )
    return JobUpdate(job.id, JobStatus.FAILED, at=now, error=error)


@dataclass(frozen=True)
class DeadLetterDecision:
    """`update` to apply (None: nothing), and why, for the response and the log."""

    update: JobUpdate | None
    reason: str


def dead_letter_target(event_type: str, subject: object) -> str | None:
    """The job a dead letter may change: only a lost `job.requested` changes one (a lost
    lifecycle event leaves its job to the sweep)."""
    if event_type != events.JOB_REQUESTED or not subject:
        return None
    return str(subject)


def dead_letter_decision(
    job: Job | None,
    lease: Lease | None,
    attributes: Mapping[str, object],
    *,
    now: float,
    settings: RecoverySettings,
) -> DeadLetterDecision:
    """What a dead-lettered `job.requested` for `job` does.

    The broker gave up delivering the request to a worker. While a live lease holds the job
    only a duplicate died. A running job whose worker was lost is the sweep's to re-request
    until `max_attempts`. Otherwise no worker will ever take the job: it fails
    `delivery_failed`, keeping Knative's error attributes.
    """
    if job is None:
        return DeadLetterDecision(None, "unknown job")
    if lease is not None and lease.expires_at > now:
        return DeadLetterDecision(None, "job is running")
    if job.status == JobStatus.RUNNING and job.sweeps < settings.max_attempts:
        return DeadLetterDecision(None, "left to the sweep")
    details = {
        name: str(attributes[name])
        for name in KNATIVE_ERROR_ATTRIBUTES
        if attributes.get(name) is not None
    }
    code = details.get("knativeerrorcode", "none")
    error = JobError(
        "delivery_failed",
        f"the broker could not deliver the job to a worker (last response: {code})",
        retryable=True,
        details=details,
    )
    return DeadLetterDecision(JobUpdate(job.id, JobStatus.FAILED, at=now, error=error), "failed")
