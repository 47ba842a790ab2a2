"""The transport-independent rules for lifecycle events (issue 18, item 4, high): status takes
a job's outcome only from its current lease holder, and a `job.succeeded` only with a video
stored under the key that holder committed to, with the reported size and sha256.

Real parts: the SQLite job store and the filesystem artifact store, through
`t2v.lifecycle.apply_lifecycle_event` exactly as status's /events applies them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from t2v import events
from t2v.artifacts.filesystem import FilesystemArtifactStore
from t2v.jobs import COMMITTED_PHASE, Job, JobStatus, JobUpdate, Progress, new_job_id
from t2v.lifecycle import VIDEO_UNVERIFIED, apply_lifecycle_event, progress_data, started_data
from t2v.metrics import metrics
from t2v.store import ApplyResult, JobStore, Lease, open_job_store
from t2v.store.core import FOREIGN_VIDEO, NOT_LEASE_HOLDER
from tests.params import job_params

TOTAL = 4
TTL_S = 30.0
ERROR = {"code": "internal", "message": "boom", "retryable": False}
VIDEO_BYTES = b"\x00\x00\x00\x18ftypisom" + b"frames" * 100


@dataclass
class Stores:
    jobs: JobStore
    artifacts: FilesystemArtifactStore

    async def apply(self, event: CloudEvent) -> ApplyResult:
        return await apply_lifecycle_event(self.jobs, self.artifacts, event, now=time.time())

    async def running_job(self, worker: str = "worker-1") -> tuple[Job, Lease]:
        job = Job(new_job_id(), "tenantA", JobStatus.QUEUED, job_params("p"), time.time())
        await self.jobs.create(job)
        lease = await self.jobs.claim(job.id, worker, ttl_s=TTL_S, now=time.time())
        assert lease is not None
        assert (await self.apply(started(lease))).applied
        return job, lease

    async def commit(self, lease: Lease, key: str) -> None:
        """What infer writes to the store itself before it uploads (`JobRunner._commit`)."""
        update = JobUpdate(
            lease.job_id,
            JobStatus.RUNNING,
            phase=COMMITTED_PHASE,
            progress=Progress(lease.attempt, TOTAL, TOTAL),
            artifact_key=key,
        )
        assert (await self.jobs.apply(update)).applied

    async def store_video(self, key: str, data: bytes = VIDEO_BYTES) -> dict[str, Any]:
        await self.artifacts.put(key, data, content_type="video/mp4")
        return video(key, data)


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[Stores]:
    jobs = open_job_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        yield Stores(jobs, FilesystemArtifactStore(tmp_path / "artifacts"))
    finally:
        await jobs.close()


def video(key: str, data: bytes = VIDEO_BYTES) -> dict[str, Any]:
    return {
        "key": key,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "width": 64,
        "height": 48,
        "num_frames": 7,
        "fps": 8.0,
        "duration_s": 0.875,
    }


def lifecycle(event_type: str, job_id: str, data: dict[str, Any]) -> CloudEvent:
    return events.make_event(event_type, source="/t2v/infer", subject=job_id, data=data)


def holder(lease: Lease) -> dict[str, Any]:
    return {"job_id": lease.job_id, "attempt": lease.attempt, "worker": lease.worker_id}


def started(lease: Lease) -> CloudEvent:
    data = started_data(lease.job_id, lease.attempt, lease.worker_id, TOTAL)
    return lifecycle(events.JOB_STARTED, lease.job_id, data)


def progress(lease: Lease, step: int, *, worker: str | None = None) -> CloudEvent:
    data = progress_data(
        lease.job_id, lease.attempt, "denoising", step, TOTAL, worker=worker or lease.worker_id
    )
    return lifecycle(events.JOB_PROGRESS, lease.job_id, data)


def succeeded(lease: Lease, described: dict[str, Any], **fields: Any) -> CloudEvent:
    data = {**holder(lease), "video": described, "cached": False, **fields}
    return lifecycle(events.JOB_SUCCEEDED, lease.job_id, data)


def failed(lease: Lease, **fields: Any) -> CloudEvent:
    return lifecycle(events.JOB_FAILED, lease.job_id, {**holder(lease), "error": ERROR, **fields})


def refused_count(event_type: str, reason: str) -> float:
    counter = metrics().lifecycle_events_refused.labels(event_type, reason)
    return float(counter._value.get())


async def test_the_holders_events_are_applied(stores: Stores) -> None:
    _job, lease = await stores.running_job()
    assert (await stores.apply(progress(lease, 2))).applied
    await stores.commit(lease, "videos/own.mp4")
    described = await stores.store_video("videos/own.mp4")
    result = await stores.apply(succeeded(lease, described))
    assert result.applied and result.refused is None
    assert result.job.status == JobStatus.SUCCEEDED
    assert result.job.video is not None and result.job.video.key == "videos/own.mp4"
    # At-least-once: the same event again is stale, not a refusal.
    again = await stores.apply(succeeded(lease, described))
    assert (again.applied, again.refused) == (False, None)


@pytest.mark.parametrize(
    "forged",
    [
        {"worker": "attacker"},
        {"attempt": 2},
        {"worker": None},  # names no lease at all (None: left out)
    ],
    ids=["other-worker", "other-attempt", "no-worker"],
)
async def test_an_outcome_from_anyone_but_the_holder_is_ignored_and_counted(
    stores: Stores, forged: dict[str, Any]
) -> None:
    job, lease = await stores.running_job()
    before = refused_count(events.JOB_FAILED, NOT_LEASE_HOLDER)
    data = {**holder(lease), "error": ERROR, **forged}
    event = lifecycle(events.JOB_FAILED, job.id, {k: v for k, v in data.items() if v is not None})
    result = await stores.apply(event)
    assert (result.applied, result.refused) == (False, NOT_LEASE_HOLDER)
    assert (await stores.jobs.get(job.id)).status == JobStatus.RUNNING  # type: ignore[union-attr]
    assert refused_count(events.JOB_FAILED, NOT_LEASE_HOLDER) == before + 1


async def test_forged_progress_does_not_show(stores: Stores) -> None:
    job, lease = await stores.running_job()
    forged = progress_data(job.id, lease.attempt, "denoising", 150, 200, worker="attacker")
    result = await stores.apply(lifecycle(events.JOB_PROGRESS, job.id, forged))
    assert result.refused == NOT_LEASE_HOLDER
    stored = await stores.jobs.get(job.id)
    assert stored is not None and stored.progress == Progress(lease.attempt, 0, TOTAL)


async def test_after_the_lease_is_taken_over_only_the_new_attempt_counts(stores: Stores) -> None:
    job, first = await stores.running_job("worker-1")
    # The first worker's lease expires and another worker takes the job over.
    await stores.jobs.release(first)
    second = await stores.jobs.claim(job.id, "worker-2", ttl_s=TTL_S, now=time.time())
    assert second is not None and second.attempt == first.attempt + 1
    late = await stores.apply(progress(first, 3))
    assert late.refused == NOT_LEASE_HOLDER
    assert (await stores.apply(started(second))).applied
    assert (await stores.apply(progress(second, 1))).applied


async def test_the_holders_final_event_after_its_lease_was_released_is_applied(
    stores: Stores,
) -> None:
    _job, lease = await stores.running_job()
    await stores.jobs.release(lease)  # as infer does before answering 503, for example
    result = await stores.apply(failed(lease))
    assert result.applied and result.job.status == JobStatus.FAILED


async def test_another_jobs_video_is_refused(stores: Stores) -> None:
    job, lease = await stores.running_job()
    other = await stores.store_video("videos/other-job.mp4", b"another video" * 50)
    await stores.commit(lease, "videos/own.mp4")
    await stores.store_video("videos/own.mp4")
    before = refused_count(events.JOB_SUCCEEDED, FOREIGN_VIDEO)
    result = await stores.apply(succeeded(lease, other))
    assert (result.applied, result.refused) == (False, FOREIGN_VIDEO)
    assert refused_count(events.JOB_SUCCEEDED, FOREIGN_VIDEO) == before + 1
    stored = await stores.jobs.get(job.id)
    assert stored is not None and stored.status == JobStatus.RUNNING and stored.video is None


async def test_a_video_before_the_commit_is_refused(stores: Stores) -> None:
    _job, lease = await stores.running_job()
    described = await stores.store_video("videos/own.mp4")
    result = await stores.apply(succeeded(lease, described))
    assert result.refused == FOREIGN_VIDEO  # no key committed yet


@pytest.mark.parametrize(
    ("stored", "reported"),
    [
        (None, {}),  # nothing under the key
        (VIDEO_BYTES, {"sha256": "0" * 64}),
        (VIDEO_BYTES, {"bytes": len(VIDEO_BYTES) + 1}),
    ],
    ids=["missing", "other-sha256", "other-size"],
)
async def test_a_video_the_store_does_not_hold_is_refused(
    stores: Stores, stored: bytes | None, reported: dict[str, Any]
) -> None:
    job, lease = await stores.running_job()
    key = f"videos/{job.id}.mp4"
    await stores.commit(lease, key)
    if stored is not None:
        await stores.store_video(key, stored)
    result = await stores.apply(succeeded(lease, {**video(key), **reported}))
    assert (result.applied, result.refused) == (False, VIDEO_UNVERIFIED)
    assert (await stores.jobs.get(job.id)).status == JobStatus.RUNNING  # type: ignore[union-attr]


async def test_an_echo_of_a_change_submit_already_wrote_is_stale_not_refused(
    stores: Stores,
) -> None:
    job = Job(new_job_id(), "tenantA", JobStatus.QUEUED, job_params("p"), time.time())
    await stores.jobs.create(job)
    await stores.jobs.request_cancel(job.id, at=time.time())  # a queued job: canceled at once
    echo = lifecycle(events.JOB_CANCELED, job.id, {"job_id": job.id, "reason": "user"})
    result = await stores.apply(echo)
    assert (result.applied, result.refused) == (False, None)
