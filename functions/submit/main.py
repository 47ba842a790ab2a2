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

from t2v import events, prefer, recovery, retention
from t2v.auth import Principal
from t2v.contract import admit, check_idempotency_key, normalize, prompt_hash, request_hash
from t2v.errors import (
    ConflictError,
    MalformedEventError,
    NotFoundError,
    UnsupportedMediaTypeError,
)
from t2v.eta import expected_seconds, job_eta, read_figures
from t2v.event_auth import event_sender
from t2v.http import Router, base_url, health, metrics_endpoint
from t2v.jobs import Job, JobStatus, is_committed, new_job_id
from t2v.keyguard import KeyGuard
from t2v.metrics import instrumented
from t2v.ratelimit import SubmitLimiter
from t2v.resources import json_response, resource_for
from t2v.runtime import Lazy, Runtime, lazy_runtime
from t2v.store import CreateResult, IdempotencyClaim, UnfinishedLimitReached
from t2v.webhooks.guard import check_submitted, configured_policy

log = logging.getLogger("t2v.submit")
SOURCE = "/t2v/submit"
runtime = lazy_runtime(SOURCE)
router = Router()


async def _build_limiter() -> SubmitLimiter:
    return SubmitLimiter.from_env(None, (await runtime.get()).store)


limiter: Lazy[SubmitLimiter] = Lazy(_build_limiter)
key_guard: Lazy[KeyGuard] = Lazy(KeyGuard.build)


async def _authenticate(rt: Runtime, request: Request) -> Principal:
    return await (await key_guard.get()).authenticate(rt.keys, request)


async def _accept(
    rt: Runtime, body: bytes, *, principal: Principal, idempotency_key: str | None
) -> tuple[CreateResult, dict[str, str]]:
    """Validate (nothing is stored on error), count against the tenant's limits, store."""
    settings = rt.settings
    params = normalize(body, profile=settings.model_profile)
    if "webhook" in params:
        # A target refused by what its URL says is a 400 now; its resolved addresses are
        # checked at each delivery (notify).
        check_submitted(params["webhook"], configured_policy())
    admit(params, profile=settings.model_profile, gpu=settings.gpu)
    figures = await read_figures(rt.store, settings.model_profile, settings.gpu)
    estimated_s = round(expected_seconds(params, figures, settings), 2)
    submit_limiter = await limiter.get()
    claim = (
        IdempotencyClaim(check_idempotency_key(idempotency_key), request_hash(body))
        if idempotency_key is not None
        else None
    )
    # One tenant's submits are admitted one at a time here, job.requested included, so its
    # jobs are stored and requested (and so run) in the order they were admitted.
    async with submit_limiter.admission(principal.tenant):
        rate_headers = await submit_limiter.check(principal.tenant)
        job = Job(
            id=new_job_id(),
            tenant=principal.tenant,
            status=JobStatus.QUEUED,
            params=params,
            created_at=time.time(),
            estimated_s=estimated_s,
        )
        try:
            # The cap again, in the store's own transaction: across replicas, submits of one
            # tenant can still read the same count in `check`.
            result = await rt.store.create(
                job, claim, max_unfinished=submit_limiter.max_active_jobs
            )
        except UnfinishedLimitReached:
            raise await submit_limiter.at_cap(principal.tenant) from None
        if result.created:
            log.info(
                "job %s accepted: tenant %s, prompt sha256 %s",
                job.id,
                job.tenant,
                prompt_hash(params["prompt"]),
            )
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
    principal = await _authenticate(rt, request)
    content_type = request.headers.get("content-type", "application/json")
    if not content_type.split(";")[0].strip().lower().endswith("json"):
        raise UnsupportedMediaTypeError("send the job as application/json")
    body = await request.body()
    result, rate_headers = await _accept(
        rt, body, principal=principal, idempotency_key=request.headers.get("idempotency-key")
    )
    job, position, waited = await prefer.honour_wait(
        rt.store, request.headers, result.job, result.queue_position
    )
    base = base_url(request, rt.settings.public_url)
    headers = {"Location": f"{base}/v1/jobs/{job.id}", **rate_headers, **waited}
    if not result.created:
        headers["Idempotent-Replayed"] = "true"
    eta_s = await job_eta(rt.store, rt.settings, job, position)
    return json_response(
        resource_for(job, base, rt.settings, queue_position=position, eta_s=eta_s),
        status_code=202,
        headers=headers,
    )


async def _visible_job(rt: Runtime, request: Request, job_id: str) -> Job:
    """The job if the caller may see it; another tenant's job is as unknown as a missing one."""
    principal = await _authenticate(rt, request)
    job = await rt.store.get(job_id)
    if job is None or not rt.keys.can_see(principal, job.tenant):
        raise NotFoundError(f"job {job_id} not found")
    return job


async def cancel_job(request: Request, job_id: str) -> Response:
    rt = await runtime.get()
    before = await _visible_job(rt, request, job_id)
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
    base = base_url(request, rt.settings.public_url)
    return JSONResponse(resource_for(job, base, rt.settings), status_code=202)


async def delete_job(request: Request, job_id: str) -> Response:
    """Remove a finished job and, unless another job holds the same video, its video."""
    rt = await runtime.get()
    await _visible_job(rt, request, job_id)
    await retention.delete_job(rt, job_id)
    return Response(status_code=204)


async def receive_event(request: Request) -> Response:
    rt = await runtime.get()
    raw = await request.body()
    event = events.parse_event(request.headers, raw)
    sender = event_sender(request.headers, raw, event)
    if event["type"] != events.JOB_SUBMIT:
        raise MalformedEventError(f"submit does not take {event['type']} events")
    body = _event_body(event)
    # The tenant its authenticated sender maps to, never one the event names itself.
    principal = rt.keys.event_principal(sender.tenant)
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


async def sweep(request: Request) -> Response:
    """Carry out `t2v.recovery.sweep_action` for each job no live worker holds."""
    rt = await runtime.get()
    body = await request.body()
    tick = events.parse_event(request.headers, body)
    event_sender(request.headers, body, tick)
    if tick["type"] != events.PING:
        raise MalformedEventError(f"the sweep does not take {tick['type']} events")
    now = time.time()
    cutoff = recovery.queued_cutoff(now, rt.settings)
    stale = await rt.store.stale_jobs(now=now, queued_before=cutoff)
    requested = failed = 0
    for job in stale:
        action = recovery.sweep_action(job, now=now, settings=rt.settings)
        if action == recovery.SweepAction.FAIL:
            result = await rt.store.apply(recovery.worker_lost(job, now=now))
            if result.applied and result.job.error is not None:
                failed += 1
                data = {"job_id": job.id, "error": result.job.error.summary()}
                await rt.sink.send(rt.event(events.JOB_FAILED, job.id, data))
        elif action == recovery.SweepAction.REREQUEST:
            await _request_generation(rt, await rt.store.record_sweep(job.id))
            requested += 1
    if stale:
        log.info("sweep: re-requested %d, failed %d", requested, failed)
    await retention.expire_videos(rt, now=now)
    return JSONResponse({"rerequested": requested, "failed": failed})


router.add("POST", "/v1/jobs", create_job)
router.add("POST", "/v1/jobs/{job_id}/cancel", cancel_job)
router.add("DELETE", "/v1/jobs/{job_id}", delete_job)
router.add("POST", "/events", receive_event)
router.add("POST", "/sweep", sweep)
router.add("GET", "/healthz", health)


router.add("GET", "/metrics", metrics_endpoint)


@functions_framework.aio.http
async def submit(request: Request) -> Response:
    return await instrumented("submit", router.templates, request, router.dispatch)
