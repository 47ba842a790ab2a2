"""What `jobs.merge` keeps and drops on each change, and the job model's own small rules,
checked directly (the contract suite checks them again through every store)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from t2v.jobs import (
    COMMITTED_PHASE,
    Job,
    JobError,
    JobStatus,
    JobUpdate,
    Progress,
    VideoInfo,
    decode_job,
    encode_job,
    is_committed,
    merge,
    new_job_id,
)
from tests.params import job_params

QUEUED = Job(
    id="job_1", tenant="t", status=JobStatus.QUEUED, params=job_params("a"), created_at=1.0
)
VIDEO = VideoInfo("videos/a.mp4", "0" * 64, 10, 64, 48, 7, 30.0, 0.233)
ERROR = JobError("internal", "it broke", retryable=False, details={"why": "x"})


def update(status: JobStatus, **fields: object) -> JobUpdate:
    return JobUpdate("job_1", status, **fields)  # type: ignore[arg-type]


def apply(job: Job, *updates: JobUpdate) -> Job:
    for change in updates:
        merged = merge(job, change)
        assert merged is not None, change
        job = merged
    return job


RUNNING = apply(
    QUEUED,
    update(JobStatus.RUNNING, phase="denoising", progress=Progress(1, 3, 8), at=2.0),
)


def test_a_finished_job_keeps_when_it_started_and_its_progress() -> None:
    done = apply(RUNNING, update(JobStatus.SUCCEEDED, at=9.0, video=VIDEO))
    assert (done.status, done.phase, done.started_at, done.finished_at) == (
        JobStatus.SUCCEEDED,
        None,
        2.0,
        9.0,
    )
    assert done.progress == Progress(1, 3, 8) and done.video == VIDEO and done.error is None


def test_a_final_progress_replaces_the_last_one() -> None:
    done = apply(RUNNING, update(JobStatus.FAILED, at=9.0, error=ERROR, progress=Progress(1, 5, 8)))
    assert done.progress == Progress(1, 5, 8) and done.error == ERROR


def test_a_job_that_never_ran_started_when_it_finished() -> None:
    failed = apply(QUEUED, update(JobStatus.FAILED, at=5.0, error=ERROR))
    assert (failed.started_at, failed.finished_at, failed.progress) == (5.0, 5.0, None)


def test_a_later_running_update_keeps_started_at_and_unsent_fields() -> None:
    # Without progress an update sorts before any progress: it cannot move a running job.
    assert merge(RUNNING, update(JobStatus.RUNNING, phase="decoding", at=7.0)) is None
    stepped = apply(RUNNING, update(JobStatus.RUNNING, progress=Progress(1, 4, 8), at=7.0))
    assert (stepped.phase, stepped.progress) == ("denoising", Progress(1, 4, 8))
    assert stepped.started_at == 2.0


def test_a_first_progress_on_a_running_job_without_progress_applies() -> None:
    bare = apply(QUEUED, update(JobStatus.RUNNING, phase="starting", at=2.0))
    assert bare.progress is None
    first = apply(bare, update(JobStatus.RUNNING, phase="starting", progress=Progress(1, 0, 8)))
    assert first.progress == Progress(1, 0, 8)


def test_an_unknown_phase_at_the_same_step_does_not_apply() -> None:
    starting = apply(
        QUEUED, update(JobStatus.RUNNING, phase="starting", progress=Progress(1, 3, 8))
    )
    assert (
        merge(starting, update(JobStatus.RUNNING, phase="dreaming", progress=Progress(1, 3, 8)))
        is None
    )
    assert merge(starting, update(JobStatus.RUNNING, phase="denoising", progress=Progress(1, 3, 8)))


def test_the_commit_is_refused_only_when_a_cancel_is_flagged() -> None:
    flagged = dataclasses.replace(RUNNING, cancel_requested=True)
    commit = update(JobStatus.RUNNING, phase=COMMITTED_PHASE, progress=Progress(1, 8, 8))
    assert merge(flagged, commit) is None
    assert apply(RUNNING, commit).phase == COMMITTED_PHASE
    # A flagged job still reports its denoising progress until the worker stops.
    assert apply(flagged, update(JobStatus.RUNNING, progress=Progress(1, 4, 8))).cancel_requested


def test_committed_means_storing_or_stored() -> None:
    storing = dataclasses.replace(RUNNING, phase=COMMITTED_PHASE)
    assert is_committed(storing)
    assert is_committed(dataclasses.replace(QUEUED, status=JobStatus.SUCCEEDED))
    assert not is_committed(RUNNING)
    assert not is_committed(dataclasses.replace(storing, status=JobStatus.QUEUED))
    for status in (JobStatus.FAILED, JobStatus.CANCELED):
        assert not is_committed(dataclasses.replace(QUEUED, status=status))


def test_an_error_summary_carries_details_only_when_there_are_some() -> None:
    assert ERROR.summary() == {
        "code": "internal",
        "message": "it broke",
        "retryable": False,
        "details": {"why": "x"},
    }
    assert JobError("worker_lost", "gone", retryable=True).summary() == {
        "code": "worker_lost",
        "message": "gone",
        "retryable": True,
    }


@pytest.mark.parametrize(
    "job", [QUEUED, RUNNING, apply(RUNNING, update(JobStatus.FAILED, error=ERROR))]
)
def test_a_job_survives_encoding(job: Job) -> None:
    assert decode_job(encode_job(job)) == job
    assert decode_job(encode_job(job).decode()) == job


def test_job_ids_are_time_ordered_and_unique() -> None:
    ids = [new_job_id() for _ in range(50)]
    assert all(re.fullmatch(r"job_[0-9a-f]{32}", job_id) for job_id in ids)
    assert len(set(ids)) == 50
    assert ids == sorted(ids, key=lambda job_id: job_id[4:16])
