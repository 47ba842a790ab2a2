"""200 shuffled, concurrent lifecycle updates for one job: it ends terminal, and nobody
watching it ever sees it move backwards (status rank, or progress within an attempt)."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from collections.abc import Sequence

from t2v.jobs import Job, JobError, JobStatus, JobUpdate, Progress, new_job_id
from t2v.store import JobStore, open_job_store
from tests.params import job_params

UPDATES = 200
THREADS = 4
T0 = 1_700_000_000.0


def lifecycle_updates(job_id: str, rng: random.Random) -> list[JobUpdate]:
    """Two attempts of a run (the first one retried), with every event repeated, plus one
    success and one failure racing to end the job: 200 updates, shuffled."""
    events: list[JobUpdate] = [JobUpdate(job_id, JobStatus.RUNNING, phase="starting", at=T0)]
    for attempt in (1, 2):
        for step in range(1, 21):
            progress = Progress(attempt, step, 20)
            events.append(JobUpdate(job_id, JobStatus.RUNNING, phase="denoising",
                                    progress=progress))  # fmt: skip
        for phase in ("decoding", "encoding", "uploading"):
            events.append(JobUpdate(job_id, JobStatus.RUNNING, phase=phase,
                                    progress=Progress(attempt, 20, 20)))  # fmt: skip
    events.append(JobUpdate(job_id, JobStatus.SUCCEEDED, at=T0 + 60))
    events.append(JobUpdate(job_id, JobStatus.FAILED, at=T0 + 61,
                            error=JobError("internal", "raced the success")))  # fmt: skip
    updates = [rng.choice(events) for _ in range(UPDATES - len(events))] + events
    rng.shuffle(updates)
    assert len(updates) == UPDATES
    return updates


def assert_never_regressed(observed: Sequence[Job]) -> None:
    for before, after in itertools.pairwise(observed):
        assert after.status.rank >= before.status.rank, (before.status, after.status)
        if before.status.terminal:
            assert after == before
        if before.progress and after.progress and before.progress.attempt == after.progress.attempt:
            assert after.progress.step >= before.progress.step, (before.progress, after.progress)
        if before.progress and after.progress:
            assert after.progress.attempt >= before.progress.attempt


async def watch(store: JobStore, job_id: str, done: asyncio.Event, seen: list[Job]) -> None:
    while True:
        finished = done.is_set()
        job = await store.get(job_id)
        assert job is not None
        seen.append(job)
        if finished:
            return
        await asyncio.sleep(0)


async def start_job(store: JobStore) -> Job:
    job = Job(new_job_id(), "acme", JobStatus.QUEUED, job_params("stress"), created_at=T0)
    await store.create(job)
    return job


def check_outcome(final: Job, applied_terminals: list[JobUpdate]) -> None:
    assert final.status.terminal
    assert len(applied_terminals) == 1 and applied_terminals[0].status == final.status
    if final.status == JobStatus.SUCCEEDED:
        assert final.finished_at == T0 + 60 and final.error is None


async def test_concurrent_shuffled_updates_end_terminal_without_regression(
    job_store: JobStore,
) -> None:
    job = await start_job(job_store)
    updates = lifecycle_updates(job.id, random.Random(4))
    done, seen = asyncio.Event(), [job]
    watcher = asyncio.create_task(watch(job_store, job.id, done, seen))
    results = await asyncio.gather(*(job_store.apply(update) for update in updates))
    done.set()
    await watcher
    applied_terminals = [
        u for u, r in zip(updates, results, strict=True) if r.applied and u.status.terminal
    ]
    final = await job_store.get(job.id)
    assert final is not None
    check_outcome(final, applied_terminals)
    assert_never_regressed(seen)
    # Replaying everything once more changes nothing.
    replay = await asyncio.gather(*(job_store.apply(update) for update in updates))
    assert not any(r.applied for r in replay)
    assert await job_store.get(job.id) == final


async def test_updates_from_several_threads_with_their_own_connections(
    job_store: JobStore, job_store_url: str
) -> None:
    job = await start_job(job_store)
    updates = lifecycle_updates(job.id, random.Random(7))
    applied_terminals: list[JobUpdate] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker(share: list[JobUpdate]) -> None:
        async def run() -> None:
            store = open_job_store(job_store_url)  # its own connection, as another pod has
            try:
                results = await asyncio.gather(*(store.apply(update) for update in share))
            finally:
                await store.close()
            with lock:
                applied_terminals.extend(
                    u
                    for u, r in zip(share, results, strict=True)
                    if r.applied and u.status.terminal
                )

        try:
            asyncio.run(run())
        except BaseException as exc:
            failures.append(exc)

    done, seen = asyncio.Event(), [job]
    watcher = asyncio.create_task(watch(job_store, job.id, done, seen))
    threads = [threading.Thread(target=worker, args=(updates[i::THREADS],)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(asyncio.to_thread(thread.join) for thread in threads))
    done.set()
    await watcher
    assert failures == []
    final = await job_store.get(job.id)
    assert final is not None
    check_outcome(final, applied_terminals)
    assert_never_regressed(seen)
