"""A job's live progress as Server-Sent Events (`GET /v1/jobs/{id}/events`).

Each event is `id: <seq>`, `event: job` and the job resource as `GET /v1/jobs/{id}` shows it.
The events come from the job's change log in the store (`JobStore.changes`), not from this
process's memory, so any status process serves any stream, and a client that reconnects with
`Last-Event-ID` resumes after the last change it saw, missing none and seeing none twice.

What is sent:
- on a fresh stream, the job as it is now; on a resumed one, every change after the one named;
- every change of status, phase or cancel flag; progress-only changes that arrive together
  are sent as the newest of them (the rest are superseded), and after each send the stream
  waits `MIN_GAP_S` so that a fast worker's steps coalesce;
- the queue position and ETA as they move without the job changing (read every
  `REFRESH_S`; an ETA only when it strays from counting down by more than `ETA_DRIFT_S`),
  under the id of the last change;
- a comment every `KEEPALIVE_S` of silence, so that proxies keep the connection open.
The stream ends after the terminal event, and after `max_s` with a `retry:` hint so the client
reconnects (a request timeout would otherwise cut it at a random point).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from t2v.errors import InvalidRequestError, T2VError
from t2v.jobs import Job
from t2v.store import JobChange, JobStore

MEDIA_TYPE = "text/event-stream"
KEEPALIVE_S = 15.0
REFRESH_S = 2.0
MIN_GAP_S = 0.25
ETA_DRIFT_S = 5.0
# What the `retry:` hint at a stream's end asks a client to wait before it reconnects.
RETRY_MS = 1000
# Headers that keep proxies from buffering or caching the stream.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

Render = Callable[[Job], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class StreamTiming:
    max_s: float
    keepalive_s: float = KEEPALIVE_S
    refresh_s: float = REFRESH_S
    min_gap_s: float = MIN_GAP_S


def last_event_id(raw: str | None) -> int | None:
    """The seq a reconnecting client saw last (`Last-Event-ID`), None on a first connect."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if not value.isascii() or not value.isdigit():
        raise InvalidRequestError(
            "Last-Event-ID must be the id of an event this stream sent (a whole number)",
            code="invalid_last_event_id",
            field="Last-Event-ID",
        )
    return int(value)


def job_event(seq: int, resource: dict[str, Any]) -> bytes:
    return b"id: %d\nevent: job\ndata: %s\n\n" % (seq, orjson.dumps(resource))


KEEPALIVE = b": keep-alive\n\n"
RETRY = b"retry: %d\n\n" % RETRY_MS


def _milestone(job: Job) -> tuple[object, ...]:
    """What no client may miss: a change of any of these is always sent."""
    return (job.status, job.phase, job.cancel_requested)


def superseding(batch: Sequence[JobChange]) -> list[JobChange]:
    """The changes of `batch` worth sending: each one that the next does not supersede (the
    same milestone, only further on), so every milestone reached is kept."""
    followers: list[JobChange | None] = [*batch[1:], None]
    return [
        change
        for change, following in zip(batch, followers, strict=False)
        if following is None or _milestone(following.job) != _milestone(change.job)
    ]


def _differs(sent: dict[str, Any] | None, resource: dict[str, Any], elapsed_s: float) -> bool:
    """Whether `resource` shows something `sent` (sent `elapsed_s` ago) did not. An ETA that
    only counted down with the clock is no news."""
    if sent is None:
        return True
    if {k: v for k, v in sent.items() if k != "eta_seconds"} != {
        k: v for k, v in resource.items() if k != "eta_seconds"
    }:
        return True
    before, now = sent.get("eta_seconds"), resource.get("eta_seconds")
    if before is None or now is None:
        return before != now
    return abs(float(now) - (float(before) - elapsed_s)) > ETA_DRIFT_S


class JobStream:
    """One client's stream of one job's events."""

    def __init__(
        self, store: JobStore, job: Job, render: Render, timing: StreamTiming, after: int | None
    ) -> None:
        self._store = store
        self._job = job
        self._render = render
        self._timing = timing
        self._after = after
        self._sent: dict[str, Any] | None = None
        self._sent_at = 0.0
        self._output_at = time.monotonic()

    async def events(self) -> AsyncIterator[bytes]:
        """The stream's bytes; a store that fails ends it with the `retry:` hint, as the time
        limit does (the client reconnects and resumes)."""
        try:
            async for chunk in self._events():
                self._output_at = time.monotonic()
                yield chunk
        except T2VError:
            yield RETRY

    async def _events(self) -> AsyncIterator[bytes]:
        deadline = time.monotonic() + self._timing.max_s
        seq, job, send_first = await self._start()
        if job is not None and send_first:
            yield await self._send(seq, job)
        while job is None or not job.status.terminal:
            left = deadline - time.monotonic()
            if left <= 0:
                yield RETRY
                return
            wait_s = min(self._timing.refresh_s, left)
            batch = await self._store.wait_for_changes(
                self._job.id, after_seq=seq, timeout_s=wait_s
            )
            if batch:
                for change in superseding(batch):
                    resource = await self._render(change.job)
                    # A write that changed nothing shown (a sweep's count) is no event.
                    if change.job.status.terminal or _differs(self._sent, resource, 0.0):
                        yield self._remember(change.seq, resource)
                seq, job = batch[-1].seq, batch[-1].job
                if not job.status.terminal:
                    await asyncio.sleep(self._timing.min_gap_s)
                continue
            if job is None:
                continue
            # Nothing changed: the queue position or ETA may have; the job is the last change
            # seen, so an event under the old id never shows a change that comes later.
            resource = await self._render(job)
            if _differs(self._sent, resource, time.monotonic() - self._sent_at):
                yield self._remember(seq, resource)
            elif time.monotonic() - self._output_at >= self._timing.keepalive_s:
                yield KEEPALIVE

    async def _start(self) -> tuple[int, Job | None, bool]:
        """Where the stream starts: the seq it follows on from, the job as of that seq (None:
        unknown, not terminal), and whether that job is sent first. Resuming, the change the
        client named is what it has: later events are compared with it, it is not resent."""
        if self._after is not None:
            named = await self._store.changes(self._job.id, after_seq=self._after - 1, limit=1)
            if named and named[0].seq == self._after:
                self._sent = await self._render(named[0].job)
                self._sent_at = time.monotonic()
                return self._after, named[0].job, False
            # The change named is gone (trimmed): go on from the oldest entry kept after it.
            later = await self._store.changes(self._job.id, after_seq=self._after, limit=1)
            if later:
                return later[0].seq - 1, None, False
        # A first connect, or an id this log never had: the job as it is now.
        latest = await self._store.last_change(self._job.id)
        return (latest.seq, latest.job, True) if latest else (0, self._job, True)

    async def _send(self, seq: int, job: Job) -> bytes:
        return self._remember(seq, await self._render(job))

    def _remember(self, seq: int, resource: dict[str, Any]) -> bytes:
        self._sent, self._sent_at = resource, time.monotonic()
        return job_event(seq, resource)
