"""infer: turns `job.requested` events into MP4s with Mochi-1, through rust_infer.

Run alone exactly as its container does:
    functions-framework --asgi --target infer --source functions/infer/main.py
"""

from __future__ import annotations

import logging

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from t2v import events
from t2v.errors import MalformedEventError, UnavailableError
from t2v.event_auth import event_sender
from t2v.http import Router, health, metrics_endpoint
from t2v.metrics import instrumented
from t2v.runtime import Lazy, lazy_runtime
from t2v.worker.models import model_runner
from t2v.worker.runner import JobRunner, RetryLater

log = logging.getLogger("t2v.infer")
runtime = lazy_runtime("/t2v/infer")
router = Router()


async def _build_runner() -> JobRunner:
    rt = await runtime.get()
    return JobRunner(rt, model_runner(rt.settings))


runner: Lazy[JobRunner] = Lazy(_build_runner)


async def receive_event(request: Request) -> Response:
    worker = await runner.get()
    body = await request.body()
    event = events.parse_event(request.headers, body)
    event_sender(request.headers, body, event)
    if event["type"] != events.JOB_REQUESTED:
        raise MalformedEventError(f"infer does not take {event['type']} events")
    job_id = str(events.event_data(event).get("job_id") or event.get("subject") or "")
    if not job_id:
        raise MalformedEventError("job.requested names no job")
    try:
        outcome = await worker.handle(job_id)
    except RetryLater as exc:
        # 503 makes the broker redeliver with backoff (Knative retries 5xx).
        log.warning("job %s: retry later (%s)", job_id, exc)
        raise UnavailableError(str(exc), code="retry_later") from exc
    log.info("job %s: %s %s", job_id, outcome.result, outcome.detail)
    return JSONResponse({"job_id": job_id, "result": outcome.result, "detail": outcome.detail})


async def ready(request: Request) -> Response:
    """Readiness means "model loaded": the first probe starts the load. After the model
    process crashed, not ready again until its replacement has loaded."""
    worker = await runner.get()
    models = worker.models
    models.start_loading()
    if models.failed is not None:
        return JSONResponse({"status": "failed", "error": repr(models.failed)}, status_code=500)
    if not models.ready:
        return JSONResponse({"status": "loading"}, status_code=503)
    return JSONResponse(
        {
            "status": "ready",
            "load_seconds": models.load_seconds,
            "warmup_seconds": models.warmup_seconds,
        }
    )


async def stats(request: Request) -> Response:
    worker = await runner.get()
    return JSONResponse(
        {
            "worker": worker.worker_id,
            "generations": worker.generations,
            "cache_hits": worker.cache_hits,
            # Model processes that died and were replaced (0 with the model in a thread).
            "model_crashes": getattr(worker.models, "crashes", 0),
        }
    )


router.add("POST", "/events", receive_event)
router.add("GET", "/readyz", ready)
router.add("GET", "/healthz", health)
router.add("GET", "/stats", stats)


router.add("GET", "/metrics", metrics_endpoint)


@functions_framework.aio.http
async def infer(request: Request) -> Response:
    return await instrumented("infer", router.templates, request, router.dispatch)
