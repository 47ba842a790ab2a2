"""The store core's rules that the contract suite does not reach, on every backend."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
import redis

from t2v.errors import ConflictError, UnavailableError
from t2v.jobs import Job, JobStatus, JobUpdate, Progress
from t2v.store import core
from t2v.store.base import IdempotencyClaim, JobStore
from t2v.store.core import ClaimWrite, JobStoreBackend, JobStoreCore
from t2v.store.redis import RedisBackend
from t2v.store.sqlite import SqliteBackend
from tests.contracts.test_job_store import T0, make_job, progress, started, succeeded


def open_backend(url: str) -> JobStoreBackend:
    if url.startswith("sqlite:"):
        return SqliteBackend(Path(url.removeprefix("sqlite:///")))
    return RedisBackend.from_url(url, max_connections=4)


def forget_job(url: str, job_id: str) -> None:
    """Delete a job's record behind the store's back."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        return
    with redis.Redis.from_url(url.split("?")[0]) as client:
        assert client.delete(*client.keys(f"*:job:{job_id}")) == 1


async def test_a_taken_job_id_is_a_conflict_and_changes_nothing(job_store: JobStore) -> None:
    job = make_job()
    await job_store.create(job)
    with pytest.raises(ConflictError) as raised:
        await job_store.create(dataclasses.replace(job, status=JobStatus.RUNNING))
    assert raised.value.code == "job_exists"
    assert await job_store.get(job.id) == job
    assert await job_store.count(JobStatus.QUEUED) == 1
    assert await job_store.count(JobStatus.RUNNING) == 0


async def test_a_claim_whose_job_is_gone_goes_to_the_new_job(
    job_store: JobStore, job_store_url: str
) -> None:
    claim = IdempotencyClaim("key-1", "hash-a")
    first = make_job()
    await job_store.create(first, claim)
    forget_job(job_store_url, first.id)
    second = make_job(created_at=T0 + 1)
    result = await job_store.create(second, claim)
    assert result.created and result.job == second
    again = await job_store.create(make_job(created_at=T0 + 2), claim)
    assert not again.created and again.job == second


async def test_a_change_that_lost_a_race_is_merged_onto_the_winner(
    job_store: JobStore, job_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_job()
    await job_store.create(job)
    await job_store.apply(started(job))
    backend = open_backend(job_store_url)
    put_job = backend.put_job
    calls: list[Job] = []

    async def racing(
        job: Job,
        *,
        expected: Job | None,
        claim: ClaimWrite | None = None,
        drop_lease: bool = False,
    ) -> bool:
        if not calls:
            # Another process writes between this change's read and its compare-and-set.
            assert (await job_store.apply(progress(job, 5))).applied
        calls.append(job)
        return await put_job(job, expected=expected, claim=claim, drop_lease=drop_lease)

    monkeypatch.setattr(backend, "put_job", racing)
    store = JobStoreCore(backend)
    try:
        result = await store.apply(succeeded(job))
    finally:
        await store.close()
    assert len(calls) == 2  # the first compare-and-set failed; the second read saw step 5
    assert result.applied and result.job.status == JobStatus.SUCCEEDED
    assert result.job.progress == Progress(1, 5, 8)
    assert await job_store.get(job.id) == result.job


async def test_a_change_that_keeps_conflicting_gives_up_as_unavailable(
    job_store: JobStore, job_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_job()
    await job_store.create(job)
    backend = open_backend(job_store_url)
    rounds: list[Job] = []

    async def always_conflicts(
        job: Job,
        *,
        expected: Job | None,
        claim: ClaimWrite | None = None,
        drop_lease: bool = False,
    ) -> bool:
        rounds.append(job)
        return False

    monkeypatch.setattr(core, "MAX_ROUNDS", 3)
    monkeypatch.setattr(backend, "put_job", always_conflicts)
    store = JobStoreCore(backend)
    try:
        with pytest.raises(UnavailableError):
            await store.apply(JobUpdate(job.id, JobStatus.RUNNING, at=T0 + 1))
    finally:
        await store.close()
    assert len(rounds) == 3
    assert await job_store.get(job.id) == job


async def test_stale_jobs_look_past_queued_jobs_that_live_leases_hold(
    job_store: JobStore,
) -> None:
    jobs = [make_job(created_at=T0 + i) for i in range(3)]
    for job in jobs:
        await job_store.create(job)
    for job in jobs[:2]:
        assert await job_store.claim(job.id, "worker-a", ttl_s=30, now=T0 + 10) is not None
    stale = await job_store.stale_jobs(now=T0 + 20, queued_before=T0 + 5, limit=1)
    assert [job.id for job in stale] == [jobs[2].id]
