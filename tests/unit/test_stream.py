"""`t2v.stream`: what a job's event stream sends, over a real SQLite store."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from t2v.errors import InvalidRequestError
from t2v.jobs import Job, JobStatus, Progress
from t2v.store import JobChange
from t2v.store.sqlite import SqliteJobStore
from t2v.stream import JobStream, StreamTiming, last_event_id, superseding
from tests.contracts.test_job_store import make_job, progress, started, succeeded

FAST = StreamTiming(max_s=5.0, keepalive_s=60.0, refresh_s=0.1, min_gap_s=0.0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteJobStore]:
    opened = SqliteJobStore(tmp_path / "jobs.db")
    try:
        yield opened
    finally:
        await opened.close()


class Renderer:
    """A stand-in for the status function's rendering, with a queue position to move."""

    def __init__(self) -> None:
        self.position: int | None = None

    async def __call__(self, job: Job) -> dict[str, Any]:
        step = job.progress.step if job.progress else None
        queued = job.status == JobStatus.QUEUED
        return {
            "id": job.id,
            "status": job.status.value,
            "phase": job.phase,
            "step": step,
            "queue_position": self.position if queued else None,
            "eta_seconds": None,
        }


def parse(chunks: list[bytes]) -> list[dict[str, Any]]:
    """Each chunk as fields (`data` decoded); a comment as {"comment": text}."""
    parsed: list[dict[str, Any]] = []
    for chunk in chunks:
        fields: dict[str, Any] = {}
        for line in chunk.decode().strip("\n").split("\n"):
            name, _, value = line.partition(": ")
            fields["comment" if name == "" else name] = value
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
        parsed.append(fields)
    return parsed


async def collect(stream: JobStream, *, limit: int = 50) -> list[dict[str, Any]]:
    chunks: list[bytes] = []
    async for chunk in stream.events():
        chunks.append(chunk)
        if len(chunks) >= limit:
            break
    return parse(chunks)


async def finished_job(store: SqliteJobStore) -> Job:
    job = make_job()
    await store.create(job)
    await store.apply(started(job))
    for step in (1, 2, 3):
        await store.apply(progress(job, step))
    await store.apply(progress(job, 3, phase="decoding"))
    await store.apply(succeeded(job))
    return job


async def test_a_finished_job_streams_its_state_then_ends(store: SqliteJobStore) -> None:
    job = await finished_job(store)

    events = await collect(JobStream(store, job, Renderer(), FAST, None))

    assert [(e["id"], e["event"], e["data"]["status"]) for e in events] == [
        ("7", "job", "succeeded")
    ]


async def test_a_resumed_stream_sends_each_milestone_after_the_id_once(
    store: SqliteJobStore,
) -> None:
    job = await finished_job(store)

    events = await collect(JobStream(store, job, Renderer(), FAST, 2))

    # Steps 1 and 2 of denoising are superseded by step 3 in the same read.
    assert [(e["id"], e["data"]["phase"], e["data"]["step"]) for e in events] == [
        ("5", "denoising", 3),
        ("6", "decoding", 3),
        ("7", None, 3),
    ]


async def test_resuming_from_the_terminal_event_sends_nothing(store: SqliteJobStore) -> None:
    job = await finished_job(store)

    assert await collect(JobStream(store, job, Renderer(), FAST, 7)) == []


async def test_a_trimmed_log_resumes_from_its_oldest_entry(
    store: SqliteJobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("t2v.store.sqlite.CHANGE_LOG_LENGTH", 3)
    job = await finished_job(store)  # the log keeps 5, 6 and 7

    events = await collect(JobStream(store, job, Renderer(), FAST, 1))

    assert [e["id"] for e in events] == ["5", "6", "7"]


async def test_a_write_that_shows_nothing_new_is_no_event(store: SqliteJobStore) -> None:
    job = make_job()
    await store.create(job)
    await store.record_sweep(job.id)
    await store.apply(succeeded(job))

    events = await collect(JobStream(store, job, Renderer(), FAST, 1))

    assert [(e["id"], e["data"]["status"]) for e in events] == [("3", "succeeded")]


async def test_a_queue_move_is_sent_under_the_last_changes_id(store: SqliteJobStore) -> None:
    job = make_job()
    await store.create(job)
    render = Renderer()
    render.position = 3
    stream = JobStream(store, job, render, FAST, None).events()

    first = parse([await anext(stream)])
    render.position = 2
    moved = parse([await anext(stream)])
    await store.apply(succeeded(job))
    rest = parse([chunk async for chunk in stream])

    assert [(e["id"], e["data"]["queue_position"]) for e in first + moved] == [("1", 3), ("1", 2)]
    assert [(e["id"], e["data"]["status"]) for e in rest] == [("2", "succeeded")]


async def test_the_stream_ends_after_max_s_with_a_retry_hint(store: SqliteJobStore) -> None:
    job = make_job()
    await store.create(job)
    timing = StreamTiming(max_s=0.3, keepalive_s=0.1, refresh_s=0.05, min_gap_s=0.0)

    events = await collect(JobStream(store, job, Renderer(), timing, None))

    assert events[0]["id"] == "1"
    assert {"comment": "keep-alive"} in events[1:-1]
    assert events[-1] == {"retry": "1000"}


async def test_a_store_failure_ends_the_stream_with_a_retry_hint(tmp_path: Path) -> None:
    (tmp_path / "jobs.db").mkdir()  # not a database: every read fails
    store = SqliteJobStore(tmp_path / "jobs.db")

    events = await collect(JobStream(store, make_job(), Renderer(), FAST, None))

    assert events == [{"retry": "1000"}]


def test_superseding_keeps_the_last_of_each_milestone() -> None:
    job = make_job()
    running = [
        JobChange(
            n,
            dataclasses.replace(
                job, status=JobStatus.RUNNING, phase=phase, progress=Progress(1, n, 8)
            ),
        )
        for n, phase in enumerate(["starting", "denoising", "denoising", "decoding"], start=1)
    ]

    assert [change.seq for change in superseding(running)] == [1, 3, 4]
    assert superseding([]) == []


@pytest.mark.parametrize("raw", ["seven", "-1", "1.5", "٣"])
def test_a_last_event_id_that_is_not_a_seq_is_refused(raw: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        last_event_id(raw)
    assert caught.value.code == "invalid_last_event_id"


def test_a_last_event_id_is_a_seq_or_nothing() -> None:
    assert last_event_id(None) is None
    assert last_event_id("") is None
    assert last_event_id(" 12 ") == 12
