"""Submits racing at a tenant's active-jobs cap, from several threads with their own store
connections (as several submit replicas have): the cap holds exactly."""

from __future__ import annotations

import asyncio
import threading

from t2v.jobs import Job, JobStatus, new_job_id
from t2v.store import JobStore, UnfinishedLimitReached, open_job_store
from tests.params import job_params

THREADS = 4
CREATES_PER_THREAD = 25
CAP = 9
T0 = 1_700_000_000.0


def new_job(tenant: str, index: int) -> Job:
    return Job(new_job_id(), tenant, JobStatus.QUEUED, job_params("burst"), created_at=T0 + index)


async def test_the_cap_holds_across_connections(job_store: JobStore, job_store_url: str) -> None:
    outcomes: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def submitter(first_index: int) -> None:
        async def run() -> list[str]:
            store = open_job_store(job_store_url)
            try:
                tenants = ("acme", "globex")
                jobs = [new_job(tenants[i % 2], first_index + i) for i in range(CREATES_PER_THREAD)]
                results = await asyncio.gather(
                    *(store.create(job, max_unfinished=CAP) for job in jobs),
                    return_exceptions=True,
                )
            finally:
                await store.close()
            seen = []
            for job, result in zip(jobs, results, strict=True):
                if isinstance(result, UnfinishedLimitReached):
                    seen.append(f"{job.tenant}:refused")
                elif isinstance(result, BaseException):
                    raise result
                else:
                    seen.append(f"{job.tenant}:created")
            return seen

        try:
            seen = asyncio.run(run())
            with lock:
                outcomes.extend(seen)
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=submitter, args=(n * CREATES_PER_THREAD,)) for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(asyncio.to_thread(thread.join) for thread in threads))
    assert failures == []
    for tenant in ("acme", "globex"):
        assert outcomes.count(f"{tenant}:created") == CAP
        assert await job_store.count_unfinished(tenant) == CAP
    assert len(outcomes) == THREADS * CREATES_PER_THREAD
