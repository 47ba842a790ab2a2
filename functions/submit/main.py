"""submit: takes jobs (HTTP and `job.submit` CloudEvents), cancels them, and runs the sweep.

Run alone exactly as its container does:
    functions-framework --asgi --target submit --source functions/submit/main.py
"""

from __future__ import annotations

import logging
import time

import functions_framework.aio
from cloudevents.http import CloudEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from t2v import events
from t2v.auth import Principal
from t2v.contract import admit, check_idempotency_key, normalize, request_hash
from t2v.errors import (
    ConflictError,
    MalformedEventError,
    NotFoundError,
    UnsupportedMediaTypeError,
)
from t2v.eta import expected_seconds, job_eta, read_figures
from t2v.http import Router, base_url, health, metrics_endpoint
from t2v.jobs import Job, JobError, JobStatus, JobUpdate, is_committed, new_job_id
from t2v.metrics import instrumented
from t2v.ratelimit import SubmitLimiter
from t2v.resources import job_resource, json_response
from t2v.runtime import Lazy, Runtime, lazy_runtime
from t2v.store import CreateResult, IdempotencyClaim

log = logging.getLogger("t2v.submit")
SOURCE = "/t2v/submit"
runtime = lazy_runtime(SOURCE)
router = Router()


async def _build_limiter() -> SubmitLimiter:
    return SubmitLimiter.from_env(None, (await runtime.get()).store)


limiter: Lazy[SubmitLimiter] = Lazy(_build_limiter)


async def _accept(
    rt: Runtime, body: bytes, *, principal: Principal, idempotency_key: str | None
) -> tuple[CreateResult, dict[str, str]]:
    """Validate (nothing is stored on error), count against the tenant's limits, store."""
    settings = rt.settings
    params = normalize(body, profile=settings.model_profile)
    admit(params, profile=settings.model_profile, gpu=settings.gpu)
    figures = await read_figures(rt.store, settings.model_profile, settings.gpu)
    estimated_s = round(expected_seconds(params, figures, settings), 2)
    rate_headers = await (await limiter.get()).check(principal.tenant)
    claim = (
        IdempotencyClaim(check_idempotency_key(idempotency_key), request_hash(body))
        if idempotency_key is not None
        else None
    )
    job = Job(
        id=new_job_id(),
        tenant=principal.tenant,
        status=JobStatus.QUEUED,
        params=params,
        created_at=time.time(),
        estimated_s=estimated_s,
    )
    result = await rt.store.create(job, claim)
    if result.created:
        await _request_generation(rt, result.job)
    return result, rate_headers


async def _request_generation(rt: Runtime, job: Job) -> None:
    """Send `job.requested` once. The job is stored first, so a request the broker never
    gets (the sink counts and logs it) is re-requested by the sweep; infer reads the job's
    params from the store, so the event names only the job and its tenant."""
    data = {"job_id": job.id, "tenant": job.tenant}
    await rt.sink.send(rt.event(events.JOB_REQUESTED, job.id, data))


async def create_job(request: Request) -> Response:
    rt = await runtime.get()
    principal = rt.keys.authenticate(request.headers.get("authorization"))
    content_type = request.headers.get("content-type", "application/json")
    if not content_type.split(";")[0].strip().lower().endswith("json"):
        raise UnsupportedMediaTypeError("send the job as application/json")
    body = await request.body()
    result, rate_headers = await _accept(
        rt, body, principal=principal, idempotency_key=request.headers.get("idempotency-key")
    )
    job = result.job
    base = base_url(request, rt.settings.public_url)
    headers = {"Location": f"{base}/v1/jobs/{job.id}", **rate_headers}
    if not result.created:
        headers["Idempotent-Replayed"] = "true"
    eta_s = await job_eta(rt.store, rt.settings, job, result.queue_position)
    return json_response(
        job_resource(job, base, queue_position=result.queue_position, eta_s=eta_s),
        status_code=202,
        headers=headers,
    )


async def cancel_job(request: Request, job_id: str) -> Response:
    rt = await runtime.get()
    principal = rt.keys.authenticate(request.headers.get("authorization"))
    before = await rt.store.get(job_id)
    if before is None or not rt.keys.can_see(principal, before.tenant):
        raise NotFoundError(f"job {job_id} not found")
    job = await rt.store.request_cancel(job_id, at=time.time())
    if is_committed(job):
        # Never a 202 that the job then ignores: its video is stored, or being stored.
        raise ConflictError(
            f"job {job_id} is past canceling: its video is "
            f"{'stored' if job.status.terminal else 'being stored'}",
            code="too_late",
        )
    if before is not None and not before.status.terminal and job.status == JobStatus.CANCELED:
        data = {"job_id": job.id, "reason": "user"}
        await rt.sink.send(rt.event(events.JOB_CANCELED, job.id, data))
    return JSONResponse(
        job_resource(job, base_url(request, rt.settings.public_url)), status_code=202
    )


async def receive_event(request: Request) -> Response:
    rt = await runtime.get()
    event = events.parse_event(request.headers, await request.body())
    if event["type"] != events.JOB_SUBMIT:
        raise MalformedEventError(f"submit does not take {event['type']} events")
    body = _event_body(event)
    tenant = event.get(events.TENANT_EXTENSION)
    principal = rt.keys.event_principal(str(tenant) if tenant is not None else None)
    # A redelivered event has the same (source, id): it maps to the same job.
    key = f"ce:{event['source']}:{event['id']}"
    result, _ = await _accept(rt, body, principal=principal, idempotency_key=key[:255])
    job = result.job
    return JSONResponse({"job_id": job.id, "status": job.status.value}, status_code=202)


def _event_body(event: CloudEvent) -> bytes:
    data = event.get_data()
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, dict):
        import json

        return json.dumps(data).encode()
    raise MalformedEventError("job.submit data must be a JSON object")


def _due_for_rerequest(job: Job, now: float, queued_stale_s: float) -> bool:
    """A queued job may simply be waiting its turn in the broker: ask again only after
    exponentially longer waits, so a long queue is not flooded with duplicates."""
    if job.status != JobStatus.QUEUED:
        return True
    return now - job.created_at >= queued_stale_s * (1 << job.sweeps)


async def sweep(request: Request) -> Response:
    """Re-request jobs no live worker holds: running jobs whose lease expired (at most
    `T2V_MAX_ATTEMPTS` times, then they fail with `worker_lost`), and queued jobs whose
    request the broker may have lost (never failed here: they stay cancelable)."""
    rt = await runtime.get()
    events.parse_event(request.headers, await request.body())
    now = time.time()
    stale_s = rt.settings.queued_stale_s
    stale = await rt.store.stale_jobs(now=now, queued_before=now - stale_s)
    requested = failed = 0
    for job in stale:
        if not _due_for_rerequest(job, now, stale_s):
            continue
        if job.status == JobStatus.RUNNING and job.sweeps >= rt.settings.max_attempts:
            error = JobError(
                "worker_lost",
                f"no worker finished the job after {job.sweeps} re-requests",
                retryable=True,
            )
            result = await rt.store.apply(JobUpdate(job.id, JobStatus.FAILED, at=now, error=error))
            if result.applied:
                failed += 1
                data = {"job_id": job.id, "error": error.summary()}
                await rt.sink.send(rt.event(events.JOB_FAILED, job.id, data))
            continue
        job = await rt.store.record_sweep(job.id)
        await _request_generation(rt, job)
        requested += 1
    if stale:
        log.info("sweep: re-requested %d, failed %d", requested, failed)
    return JSONResponse({"rerequested": requested, "failed": failed})


router.add("POST", "/v1/jobs", create_job)
router.add("POST", "/v1/jobs/{job_id}/cancel", cancel_job)
router.add("POST", "/events", receive_event)
router.add("POST", "/sweep", sweep)
router.add("GET", "/healthz", health)


router.add("GET", "/metrics", metrics_endpoint)


@functions_framework.aio.http
async def submit(request: Request) -> Response:
    return await instrumented("submit", router.templates, request, router.dispatch)
