"""The recovery policy, decided from a job, its lease, the settings and the time alone."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from t2v import events, recovery
from t2v.jobs import Job, JobStatus
from t2v.recovery import SweepAction, dead_letter_decision, sweep_action
from t2v.store import Lease
from tests.params import job_params

T0 = 1_000_000.0
STALE_S = 100.0


@dataclass(frozen=True)
class Policy:
    queued_stale_s: float = STALE_S
    max_attempts: int = 3


POLICY = Policy()


def job(status: JobStatus = JobStatus.QUEUED, *, sweeps: int = 0) -> Job:
    return Job(
        id="job_1",
        tenant="acme",
        status=status,
        params=job_params("a fox"),
        created_at=T0,
        sweeps=sweeps,
    )


def queued_action(sweeps: int, age_s: float) -> SweepAction:
    return sweep_action(job(sweeps=sweeps), now=T0 + age_s, settings=POLICY)


def test_the_settings_satisfy_the_policy_protocol() -> None:
    from t2v.settings import Settings

    settings: recovery.RecoverySettings = Settings.from_env({"T2V_QUEUED_STALE_S": "7"})
    assert recovery.queued_cutoff(T0, settings) == T0 - 7


def test_a_queued_job_is_left_alone_until_it_is_stale() -> None:
    assert queued_action(0, STALE_S - 0.001) == SweepAction.WAIT
    assert queued_action(0, STALE_S) == SweepAction.REREQUEST


@pytest.mark.parametrize("sweeps", [1, 2, 3, 5])
def test_each_re_request_of_a_queued_job_doubles_the_wait(sweeps: int) -> None:
    wait_s = STALE_S * 2**sweeps
    assert queued_action(sweeps, wait_s - 0.001) == SweepAction.WAIT
    assert queued_action(sweeps, wait_s) == SweepAction.REREQUEST


def test_a_queued_job_is_never_failed_however_often_it_was_swept() -> None:
    assert queued_action(50, STALE_S * 2**50) == SweepAction.REREQUEST


def test_a_running_job_without_a_live_lease_is_re_requested_at_once() -> None:
    for sweeps in range(POLICY.max_attempts):
        stale = job(JobStatus.RUNNING, sweeps=sweeps)
        assert sweep_action(stale, now=T0, settings=POLICY) == SweepAction.REREQUEST


def test_a_running_job_fails_worker_lost_after_max_attempts() -> None:
    for sweeps in (POLICY.max_attempts, POLICY.max_attempts + 1):
        stale = job(JobStatus.RUNNING, sweeps=sweeps)
        assert sweep_action(stale, now=T0, settings=POLICY) == SweepAction.FAIL
    update = recovery.worker_lost(job(JobStatus.RUNNING, sweeps=3), now=T0 + 5)
    assert (update.job_id, update.status, update.at) == ("job_1", JobStatus.FAILED, T0 + 5)
    assert update.error is not None
    assert update.error.code == "worker_lost" and update.error.retryable
    assert "after 3 re-requests" in update.error.message


@pytest.mark.parametrize("status", [s for s in JobStatus if s.terminal])
def test_a_finished_job_is_left_alone(status: JobStatus) -> None:
    assert sweep_action(job(status, sweeps=9), now=T0 + 1e9, settings=POLICY) == SweepAction.WAIT


def test_only_a_dead_job_requested_names_a_job_to_change() -> None:
    assert recovery.dead_letter_target(events.JOB_REQUESTED, "job_1") == "job_1"
    assert recovery.dead_letter_target(events.JOB_REQUESTED, None) is None
    assert recovery.dead_letter_target(events.JOB_REQUESTED, "") is None
    assert recovery.dead_letter_target(events.JOB_PROGRESS, "job_1") is None


KNATIVE = {
    "knativeerrorcode": "503",
    "knativeerrordest": "http://infer/events",
    "knativeerrordata": "R1BVIG9uIGZpcmU=",
    "subject": "job_1",
}


def decide(
    found: Job | None, lease: Lease | None = None, now: float = T0
) -> recovery.DeadLetterDecision:
    return dead_letter_decision(found, lease, KNATIVE, now=now, settings=POLICY)


def test_a_dead_letter_fails_a_queued_job_keeping_knatives_attributes() -> None:
    decision = decide(job())
    update = decision.update
    assert update is not None and decision.reason == "failed"
    assert (update.job_id, update.status, update.at) == ("job_1", JobStatus.FAILED, T0)
    assert update.error is not None and update.error.code == "delivery_failed"
    assert update.error.retryable
    assert update.error.details == {k: v for k, v in KNATIVE.items() if k != "subject"}
    assert "last response: 503" in update.error.message


def test_a_dead_letter_without_knative_attributes_says_none() -> None:
    decision = dead_letter_decision(job(), None, {}, now=T0, settings=POLICY)
    assert decision.update is not None and decision.update.error is not None
    assert decision.update.error.details == {}
    assert "last response: none" in decision.update.error.message


def test_a_dead_letter_for_an_unknown_job_changes_nothing() -> None:
    assert decide(None) == recovery.DeadLetterDecision(None, "unknown job")


def test_a_live_lease_means_only_a_duplicate_died() -> None:
    live = Lease("job_1", "worker-a", attempt=1, expires_at=T0 + 0.001)
    assert decide(job(JobStatus.RUNNING, sweeps=9), live).reason == "job is running"
    expired = dataclasses.replace(live, expires_at=T0)
    assert decide(job(), expired).update is not None


def test_a_lost_running_job_is_left_to_the_sweep_until_max_attempts() -> None:
    for sweeps in range(POLICY.max_attempts):
        assert decide(job(JobStatus.RUNNING, sweeps=sweeps)).reason == "left to the sweep"
    assert decide(job(JobStatus.RUNNING, sweeps=POLICY.max_attempts)).update is not None
