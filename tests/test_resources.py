"""The job resource: ETAs from the estimate, the queue and the pace of the steps."""

from __future__ import annotations

import dataclasses

from t2v.jobs import Job, JobStatus, Progress
from t2v.resources import eta_seconds, job_resource
from tests.params import job_params

JOB = Job(
    id="job_1",
    tenant="t",
    status=JobStatus.QUEUED,
    params=job_params(),
    created_at=100.0,
    estimated_s=10.0,
)


def test_queued_eta_counts_the_jobs_ahead_per_worker() -> None:
    assert eta_seconds(JOB, 1) == 10.0
    assert eta_seconds(JOB, 3) == 30.0
    assert eta_seconds(JOB, 3, workers=2) == 20.0
    assert eta_seconds(JOB, None) is None


def test_running_eta_follows_the_steps() -> None:
    running = dataclasses.replace(
        JOB, status=JobStatus.RUNNING, started_at=200.0, progress=Progress(1, 0, 10)
    )
    assert eta_seconds(running, None, now=204.0) == 6.0  # the estimate, less the time spent
    stepping = dataclasses.replace(running, progress=Progress(1, 4, 10))
    assert eta_seconds(stepping, None, now=208.0) == 12.0  # 2 s a step, 6 steps to go


def test_no_eta_when_finished_or_unestimated() -> None:
    assert eta_seconds(dataclasses.replace(JOB, status=JobStatus.SUCCEEDED), 1) is None
    assert eta_seconds(dataclasses.replace(JOB, estimated_s=None), 1) is None


def test_resource_links_and_fields() -> None:
    resource = job_resource(JOB, "http://api", queue_position=2)
    assert resource["links"] == {
        "self": "http://api/v1/jobs/job_1",
        "cancel": "http://api/v1/jobs/job_1/cancel",
    }
    assert resource["eta_seconds"] == 20.0
    assert resource["created_at"] == "1970-01-01T00:01:40Z"
