"""The job resource: a running job's ETA from its worker, a queued job's as given."""

from __future__ import annotations

import dataclasses

from t2v.eta import LATE_SHARE, running_eta
from t2v.jobs import Job, JobStatus, Progress
from t2v.resources import job_resource
from tests.params import job_params

JOB = Job(
    id="job_1",
    tenant="t",
    status=JobStatus.QUEUED,
    params=job_params(),
    created_at=100.0,
    estimated_s=10.0,
)
RUNNING = dataclasses.replace(
    JOB,
    status=JobStatus.RUNNING,
    started_at=200.0,
    phase="decoding",
    progress=Progress(1, 8, 8, seq=9, eta_s=6.0, at=210.0, done=0.6, phase_done=0.25),
)


def test_running_eta_is_the_workers_less_the_time_since() -> None:
    assert running_eta(RUNNING, now=212.0) == 4.0
    # Past the worker's estimate the job is late, not done.
    assert running_eta(RUNNING, now=230.0) == LATE_SHARE * 6.0


def test_running_eta_without_the_workers_word_is_the_estimate_less_the_time_spent() -> None:
    started = dataclasses.replace(RUNNING, progress=Progress(1, 0, 8))
    assert running_eta(started, now=204.0) == 6.0


def test_progress_counts_the_whole_job_and_its_phase() -> None:
    progress = job_resource(RUNNING, "http://api")["progress"]
    # All steps are done, but decoding is not: the job is not at 100%.
    assert progress["percent"] == 60.0 and progress["phase_percent"] == 25.0
    finished = dataclasses.replace(RUNNING, status=JobStatus.SUCCEEDED, phase=None)
    assert job_resource(finished, "http://api")["progress"]["percent"] == 100.0
    assert job_resource(finished, "http://api")["eta_seconds"] is None


def test_a_queued_jobs_eta_is_the_one_given() -> None:
    assert job_resource(JOB, "http://api", queue_position=2, eta_s=31.25)["eta_seconds"] == 31.2
    assert job_resource(JOB, "http://api")["eta_seconds"] is None


def test_resource_links_and_fields() -> None:
    resource = job_resource(JOB, "http://api", queue_position=2)
    assert resource["links"] == {
        "self": "http://api/v1/jobs/job_1",
        "cancel": "http://api/v1/jobs/job_1/cancel",
    }
    assert resource["queue_position"] == 2
    assert resource["created_at"] == "1970-01-01T00:01:40Z"
