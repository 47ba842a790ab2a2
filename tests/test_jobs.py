"""The one rule set for changing a job: status only climbs, progress only moves forward."""

from __future__ import annotations

import dataclasses

import pytest

from t2v.jobs import Job, JobError, JobStatus, JobUpdate, Progress, VideoInfo, cancel, merge
from tests.params import job_params

QUEUED = Job(id="job_1", tenant="t", status=JobStatus.QUEUED, params=job_params(), created_at=1.0)
VIDEO = VideoInfo("videos/a.mp4", "0" * 64, 10, 64, 48, 7, 30.0, 0.233)


def running(attempt: int, step: int, phase: str = "denoising") -> JobUpdate:
    return JobUpdate(
        "job_1", JobStatus.RUNNING, phase=phase, progress=Progress(attempt, step, 8), at=2.0
    )


def test_queued_to_running_sets_started_at() -> None:
    job = merge(QUEUED, running(1, 0, "starting"))
    assert job is not None
    assert (job.status, job.phase, job.started_at) == (JobStatus.RUNNING, "starting", 2.0)


def test_progress_never_goes_back_within_an_attempt() -> None:
    job = merge(QUEUED, running(1, 5))
    assert job is not None
    assert merge(job, running(1, 4)) is None
    assert merge(job, running(1, 5)) is None  # a redelivery changes nothing


def test_a_new_attempt_restarts_progress() -> None:
    job = merge(QUEUED, running(1, 5))
    assert job is not None
    retried = merge(job, running(2, 0, "starting"))
    assert retried is not None and retried.progress == Progress(2, 0, 8)


def test_a_later_report_of_the_same_step_and_phase_is_kept_and_an_older_one_not() -> None:
    def report(seq: int, eta_s: float) -> JobUpdate:
        progress = Progress(1, 8, 8, seq=seq, eta_s=eta_s, at=3.0, done=0.9, phase_done=0.5)
        return JobUpdate("job_1", JobStatus.RUNNING, phase="decoding", progress=progress)

    job = merge(QUEUED, report(4, 3.0))
    assert job is not None
    later = merge(job, report(5, 2.0))
    assert later is not None and later.progress is not None and later.progress.eta_s == 2.0
    assert merge(later, report(4, 3.0)) is None  # late, delivered out of order
    assert merge(later, report(5, 2.0)) is None  # a redelivery


def test_percent_is_of_the_whole_job_when_the_worker_says() -> None:
    assert Progress(1, 8, 8).percent == 100.0
    assert Progress(1, 8, 8, done=0.7).percent == 70.0
    assert Progress(1, 8, 8, done=1.0).percent < 100.0  # only a finished job is at 100%


def test_phase_moves_forward_at_the_same_step() -> None:
    job = merge(QUEUED, running(1, 8, "decoding"))
    assert job is not None
    encoding = merge(job, running(1, 8, "encoding"))
    assert encoding is not None and encoding.phase == "encoding"
    assert merge(encoding, running(1, 8, "decoding")) is None


@pytest.mark.parametrize("terminal", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED])
def test_first_terminal_status_wins(terminal: JobStatus) -> None:
    done = merge(QUEUED, JobUpdate("job_1", terminal, at=3.0))
    assert done is not None and done.status == terminal and done.finished_at == 3.0
    for other in JobStatus:
        assert merge(done, JobUpdate("job_1", other, at=4.0)) is None


def test_running_after_success_is_ignored() -> None:
    done = merge(QUEUED, JobUpdate("job_1", JobStatus.SUCCEEDED, at=3.0, video=VIDEO))
    assert done is not None
    assert merge(done, running(1, 3)) is None


def test_queued_update_never_applies() -> None:
    assert merge(QUEUED, JobUpdate("job_1", JobStatus.QUEUED)) is None


def test_round_trip_through_dict() -> None:
    job = dataclasses.replace(
        QUEUED,
        status=JobStatus.FAILED,
        progress=Progress(1, 2, 8),
        error=JobError("internal", "boom", details={"a": "b"}),
        video=VIDEO,
    )
    assert Job.from_dict(job.to_dict()) == job


def test_cancel_rules() -> None:
    canceled = cancel(QUEUED, at=5.0)
    assert canceled is not None
    assert (canceled.status, canceled.finished_at, canceled.cancel_requested) == (
        JobStatus.CANCELED,
        5.0,
        True,
    )
    started = merge(QUEUED, running(1, 2))
    assert started is not None
    flagged = cancel(started, at=5.0)
    assert flagged is not None
    assert (flagged.status, flagged.cancel_requested) == (JobStatus.RUNNING, True)
    assert cancel(canceled, at=6.0) is None
