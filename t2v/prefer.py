"""`Prefer: wait=N` (RFC 7240): hold a job's answer until it is finished or N seconds pass.

N above `MAX_WAIT_S` is clamped to it (and `Preference-Applied` says so); a `wait` that is
not a whole number of seconds is ignored, as RFC 7240 asks of a preference a server cannot
honour. The wait polls the store, which every function shares, so it sees a change that any
other process made.
"""

from __future__ import annotations

import asyncio
import re
import time

from starlette.datastructures import Headers

from t2v.jobs import Job
from t2v.store import JobStore

MAX_WAIT_S = 60
# Between store reads while waiting: short next to a job, long next to a store read.
POLL_INTERVAL_S = 0.25
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d+)\"?\s*(?:$|[,;\s])", re.IGNORECASE)


def requested_wait(headers: Headers) -> int | None:
    """The seconds `Prefer: wait=N` asks for, clamped to `MAX_WAIT_S` (None: not asked)."""
    for value in headers.getlist("prefer"):
        match = _WAIT.search(value)
        if match:
            return min(int(match.group(1)), MAX_WAIT_S)
    return None


async def until_finished(store: JobStore, job: Job, wait_s: int) -> Job:
    """The job once it is finished, or as it is after `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    while not job.status.terminal:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await asyncio.sleep(min(POLL_INTERVAL_S, left))
        job = await store.get(job.id) or job
    return job


async def honour_wait(
    store: JobStore, headers: Headers, job: Job, queue_position: int | None
) -> tuple[Job, int | None, dict[str, str]]:
    """The job (and its queue position) to answer with, after the wait the request asked
    for, and the `Preference-Applied` header to answer it with."""
    wait_s = requested_wait(headers)
    if wait_s is None:
        return job, queue_position, {}
    if not job.status.terminal:
        job = await until_finished(store, job, wait_s)
        queue_position = await store.queue_position(job)
    return job, queue_position, {"Preference-Applied": f"wait={wait_s}"}
