"""submit's work in parts, served like submit, to price each part under real serving.

    functions-framework --asgi --target accept --source bench/control_plane/accept/main.py

POST validates the body as submit does and answers 202 with a small JSON body; ``T2V_PARTS``
adds, by name, the two things submit does for a job: ``store`` (the job created in the
embedded SQLite store, group commit and all, before the 202) and ``event`` (``job.requested``
queued for K_SINK on the event sink's relay, as submit does). Any GET answers 200 (the
readiness probe).
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from t2v import events
from t2v.contract import normalize
from t2v.jobs import Job, JobStatus, new_job_id
from t2v.store.sqlite import SqliteJobStore

PARTS = {part.strip() for part in os.environ.get("T2V_PARTS", "").split(",") if part.strip()}
if PARTS - {"store", "event"}:
    raise ValueError(f"T2V_PARTS takes store and event, got {sorted(PARTS)}")
_store = (
    SqliteJobStore(pathlib.Path(os.environ["T2V_DATA_DIR"]) / "accept.db")
    if "store" in PARTS
    else None
)
_sink = events.HttpEventSink(os.environ["K_SINK"]) if "event" in PARTS else None


@functions_framework.aio.http
async def accept(request: Request) -> Response:
    if request.method == "GET":
        return Response(b"ok")
    params = normalize(await request.body(), profile="tiny")
    job = Job(new_job_id(), "bench", JobStatus.QUEUED, params, time.time())
    if _store is not None:
        await _store.create(job)
    if _sink is not None:
        data = {"job_id": job.id, "tenant": job.tenant, "params": params}
        _sink.post_soon(events.OutgoingEvent(events.JOB_REQUESTED, "/bench/accept", job.id, data))
    body = json.dumps({"id": job.id, "status": job.status.value, "params": params})
    return Response(body, status_code=202, media_type="application/json")
