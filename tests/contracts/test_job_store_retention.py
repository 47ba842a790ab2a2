"""The JobStore's part of retention, on every backend: which jobs hold a video, the
expiry query, deleting a finished job."""

from __future__ import annotations

import dataclasses

import pytest

from t2v.errors import ConflictError, NotFoundError
from t2v.jobs import JobStatus, JobUpdate
from t2v.store.base import JobStore
from tests.contracts.test_job_store import T0, VIDEO, created, make_job, started


async def _finished(store: JobStore, at: float, key: str = VIDEO.key) -> str:
    (job,) = await created(store, make_job(created_at=at - 9))
    await store.apply(started(job, at=at - 8))
    video = dataclasses.replace(VIDEO, key=key)
    await store.apply(JobUpdate(job.id, JobStatus.SUCCEEDED, at=at, video=video))
    return job.id


async def test_videos_finished_before_lists_holders_oldest_first(job_store: JobStore) -> None:
    later = await _finished(job_store, T0 + 20)
    earlier = await _finished(job_store, T0 + 10)
    await _finished(job_store, T0 + 30)
    (failed,) = await created(job_store, make_job())
    await job_store.apply(JobUpdate(failed.id, JobStatus.FAILED, at=T0 + 1))
    found = await job_store.videos_finished_before(T0 + 30)
    assert [job.id for job in found] == [earlier, later]
    assert [job.id for job in await job_store.videos_finished_before(T0 + 30, limit=1)] == [earlier]


async def test_an_expired_video_is_no_longer_held(job_store: JobStore) -> None:
    first = await _finished(job_store, T0 + 10)
    second = await _finished(job_store, T0 + 20)
    assert await job_store.count_video_holders(VIDEO.key) == 2
    expired = await job_store.expire_video(first)
    assert expired.video_expired and expired.video == VIDEO
    assert expired.held_video_key is None
    assert await job_store.count_video_holders(VIDEO.key) == 1
    assert [job.id for job in await job_store.videos_finished_before(T0 + 99)] == [second]
    # Expiring again changes nothing (the sweep may run twice).
    assert await job_store.expire_video(first) == expired
    stored = await job_store.get(first)
    assert stored is not None and stored.status == JobStatus.SUCCEEDED and stored.video_expired


async def test_delete_removes_a_finished_job_and_its_holding(job_store: JobStore) -> None:
    first = await _finished(job_store, T0 + 10)
    await _finished(job_store, T0 + 20, key="videos/other.mp4")
    deleted = await job_store.delete(first)
    assert deleted.id == first and deleted.held_video_key == VIDEO.key
    assert await job_store.get(first) is None
    assert await job_store.count_video_holders(VIDEO.key) == 0
    assert await job_store.count_video_holders("videos/other.mp4") == 1
    assert first not in [job.id for job in (await job_store.list(tenant=None)).jobs]
    assert first not in [job.id for job in (await job_store.list(tenant="acme")).jobs]
    page = await job_store.list(tenant="acme", status=JobStatus.SUCCEEDED)
    assert [job.id for job in page.jobs] != [] and first not in [job.id for job in page.jobs]
    assert await job_store.count(JobStatus.SUCCEEDED) == 1
    with pytest.raises(NotFoundError):
        await job_store.delete(first)


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING])
async def test_an_unfinished_job_is_not_deleted(job_store: JobStore, status: JobStatus) -> None:
    (job,) = await created(job_store, make_job())
    if status == JobStatus.RUNNING:
        await job_store.apply(started(job))
    with pytest.raises(ConflictError) as raised:
        await job_store.delete(job.id)
    assert raised.value.code == "job_not_finished"
    stored = await job_store.get(job.id)
    assert stored is not None and stored.status == status
    assert await job_store.count_unfinished("acme") == 1


async def test_a_canceled_job_can_be_deleted(job_store: JobStore) -> None:
    (job,) = await created(job_store, make_job())
    await job_store.request_cancel(job.id, at=T0 + 1)
    await job_store.delete(job.id)
    assert await job_store.get(job.id) is None
    assert await job_store.count(JobStatus.CANCELED) == 0
