"""A cancel is honoured in every phase: during decoding or encoding the job ends `canceled`
and no video is published; once the video is being stored the cancel is refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

import rust_infer
from t2v.jobs import COMMITTED_PHASE, JobStatus, JobUpdate, Progress
from t2v.worker.publish import cached_video, video_key
from tests.worker.conftest import Worker


def cancel_first(worker: Worker, job_id: str, call: Callable[..., Any]) -> Callable[..., Any]:
    """``call`` (run on the generation's thread) after a cancel request for the job, as a
    user's cancel arriving while that phase runs."""
    loop = asyncio.get_running_loop()

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        request = worker.rt.store.request_cancel(job_id, at=time.time())
        asyncio.run_coroutine_threadsafe(request, loop).result(timeout=10)
        return call(*args, **kwargs)

    return wrapped


async def assert_canceled_without_video(worker: Worker, job_id: str) -> None:
    job = await worker.job(job_id)
    assert job.status == JobStatus.CANCELED
    assert job.video is None
    assert "job.succeeded" not in worker.sink.types(job_id)
    model = await worker.models.get()
    content_key = rust_infer.artifact_key(job.params, model.revision)
    key = video_key(content_key, job.tenant, shared=worker.rt.settings.share_video_cache)
    assert await worker.rt.artifacts.size(key) is None


async def test_cancel_during_decoding_ends_canceled(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await worker.submit()
    vae = (await worker.models.get()).pipe.vae
    monkeypatch.setattr(vae, "decode", cancel_first(worker, job.id, vae.decode))
    outcome = await worker.runner.handle(job.id)
    assert outcome.result == "canceled"
    phases = [data["phase"] for data in worker.sink.data(job.id, "job.progress")]
    assert "decoding" in phases and "encoding" not in phases
    await assert_canceled_without_video(worker, job.id)


async def test_cancel_during_encoding_ends_canceled(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await worker.submit()
    encode = cancel_first(worker, job.id, rust_infer.encode_mp4)
    monkeypatch.setattr(rust_infer, "encode_mp4", encode)
    outcome = await worker.runner.handle(job.id)
    assert outcome.result == "canceled"
    phases = [data["phase"] for data in worker.sink.data(job.id, "job.progress")]
    assert "encoding" in phases and COMMITTED_PHASE not in phases
    await assert_canceled_without_video(worker, job.id)


async def test_cancel_before_a_cache_hit_is_published_ends_canceled(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await worker.submit(seed=11)
    assert (await worker.runner.handle(first.id)).result == "succeeded"
    again = await worker.submit(seed=11)

    # The stored video is found, then the cancel lands before the job takes it.
    async def found_then_canceled(*args: Any) -> Any:
        video = await cached_video(*args)
        await worker.rt.store.request_cancel(again.id, at=time.time())
        return video

    monkeypatch.setattr("t2v.worker.runner.cached_video", found_then_canceled)
    assert (await worker.runner.handle(again.id)).result == "canceled"
    job = await worker.job(again.id)
    assert job.status == JobStatus.CANCELED and job.video is None


async def test_once_storing_began_a_cancel_is_refused_and_the_job_succeeds(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await worker.submit()
    refused: list[bool] = []
    store_video = worker.rt.artifacts.put

    async def cancel_then_store(*args: Any, **kwargs: Any) -> None:
        after = await worker.rt.store.request_cancel(job.id, at=time.time())
        refused.append(not after.cancel_requested and after.phase == COMMITTED_PHASE)
        await store_video(*args, **kwargs)

    monkeypatch.setattr(worker.rt.artifacts, "put", cancel_then_store)
    assert (await worker.runner.handle(job.id)).result == "succeeded"
    assert refused == [True]
    done = await worker.job(job.id)
    assert done.status == JobStatus.SUCCEEDED and not done.cancel_requested


async def test_the_commit_is_refused_once_a_cancel_is_flagged(worker: Worker) -> None:
    job = await worker.submit()
    started = JobUpdate(job.id, JobStatus.RUNNING, phase="encoding", progress=Progress(1, 3, 3))
    assert (await worker.rt.store.apply(started)).applied
    flagged = await worker.rt.store.request_cancel(job.id, at=time.time())
    assert flagged.cancel_requested
    commit = JobUpdate(job.id, JobStatus.RUNNING, phase=COMMITTED_PHASE, progress=Progress(1, 3, 3))
    result = await worker.rt.store.apply(commit)
    assert not result.applied and result.job.phase == "encoding"
