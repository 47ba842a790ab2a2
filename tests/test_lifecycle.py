"""Lifecycle events as infer sends them, checked against the catalogue's schemas."""

from __future__ import annotations

import pytest
from cloudevents.http import CloudEvent

from t2v import events
from t2v.errors import MalformedEventError
from t2v.jobs import JobStatus
from t2v.lifecycle import lifecycle_update, progress_data, started_data

VIDEO = {
    "key": "videos/a.mp4",
    "sha256": "a" * 64,
    "bytes": 10,
    "width": 64,
    "height": 48,
    "num_frames": 7,
    "fps": 30.0,
    "duration_s": 0.233,
}


def event(event_type: str, data: dict[str, object]) -> CloudEvent:
    return events.make_event(event_type, source="/tests", subject="job_1", data=data)


def test_started_and_progress() -> None:
    started = lifecycle_update(event(events.JOB_STARTED, started_data("job_1", 1, "w", 8)), now=5.0)
    assert (started.status, started.phase, started.progress) == (
        JobStatus.RUNNING,
        "starting",
        started.progress,
    )
    assert started.progress is not None and started.progress.total == 8
    step = lifecycle_update(
        event(events.JOB_PROGRESS, progress_data("job_1", 1, "denoising", 3, 8, worker="w")),
        now=6.0,
    )
    assert step.progress is not None and step.progress.step == 3


def test_succeeded_carries_the_video() -> None:
    data = {"job_id": "job_1", "attempt": 1, "video": VIDEO, "cached": False}
    update = lifecycle_update(event(events.JOB_SUCCEEDED, data), now=7.0)
    assert update.status == JobStatus.SUCCEEDED
    assert update.video is not None and update.video.sha256 == "a" * 64


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        (
            events.JOB_PROGRESS,
            {"job_id": "job_1", "attempt": 1, "phase": "dreaming", "step": 1, "total": 2},
        ),
        (
            events.JOB_SUCCEEDED,
            {"job_id": "job_1", "attempt": 1, "video": {"key": "x"}, "cached": False},
        ),
        (events.JOB_FAILED, {"job_id": "job_1"}),
        (events.JOB_STARTED, {"attempt": 1}),
    ],
)
def test_data_that_breaks_the_schema_is_refused(event_type: str, data: dict[str, object]) -> None:
    with pytest.raises(MalformedEventError):
        lifecycle_update(event(event_type, data), now=1.0)


def test_status_refuses_other_types() -> None:
    with pytest.raises(MalformedEventError):
        lifecycle_update(event(events.JOB_SUBMIT, {"prompt": "x"}), now=1.0)
