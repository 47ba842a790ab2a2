"""status: reads jobs and videos, and applies lifecycle events and dead letters to the store.

Run alone exactly as its container does:
    functions-framework --asgi --target status --source functions/status/main.py
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from t2v import events, openapi, prefer, recovery, stream
from t2v.artifacts.filesystem import FilesystemArtifactStore
from t2v.auth import Principal
from t2v.errors import ConflictError, GoneError, InvalidRequestError, NotFoundError
from t2v.eta import job_eta
from t2v.event_auth import event_sender
from t2v.http import Router, base_url, health, metrics_endpoint
from t2v.jobs import Job, JobStatus
from t2v.keyguard import KeyGuard
from t2v.lifecycle import apply_lifecycle_event
from t2v.metrics import instrumented, metrics
from t2v.resources import MAX_PAGE, json_body, json_response, resource_for
from t2v.runtime import Lazy, Runtime, lazy_runtime

log = logging.getLogger("t2v.status")
runtime = lazy_runtime("/t2v/status")
router = Router()
PRESIGNED_EXPIRY_S = 3600
key_guard: Lazy[KeyGuard] = Lazy(KeyGuard.build)


async def _authenticate(rt: Runtime, request: Request) -> Principal:
    return await (await key_guard.get()).authenticate(rt.keys, request)


async def _visible_job(rt: Runtime, request: Request, job_id: str) -> Job:
    """The job if the caller may see it; another tenant's job is as unknown as a missing one."""
    return await _visible(rt, request, job_id, await rt.store.get(job_id))


async def _visible(rt: Runtime, request: Request, job_id: str, job: Job | None) -> Job:
    principal = await _authenticate(rt, request)
    if job is None or not rt.keys.can_see(principal, job.tenant):
        raise NotFoundError(f"job {job_id} not found")
    return job


async def _job_resource(rt: Runtime, base: str, job: Job, position: int | None) -> dict[str, Any]:
    """The job as `GET /v1/jobs/{id}` shows it (`position`: its place in the queue)."""
    eta_s = await job_eta(rt.store, rt.settings, job, position)
    return resource_for(job, base, rt.settings, queue_position=position, eta_s=eta_s)


async def get_job(request: Request, job_id: str) -> Response:
    rt = await runtime.get()
    found, position = await rt.store.get_with_position(job_id)
    job = await _visible(rt, request, job_id, found)
    job, position, headers = await prefer.honour_wait(rt.store, request.headers, job, position)
    resource = await _job_resource(rt, base_url(request, rt.settings.public_url), job, position)
    return json_response(resource, headers=headers)


async def job_events(request: Request, job_id: str) -> Response:
    """The job's changes as Server-Sent Events (`t2v.stream`), each the job as `get_job`
    shows it; `Last-Event-ID` resumes after the change it names."""
    rt = await runtime.get()
    job = await _visible_job(rt, request, job_id)
    after = stream.last_event_id(request.headers.get("last-event-id"))
    base = base_url(request, rt.settings.public_url)

    async def render(state: Job) -> dict[str, Any]:
        return await _job_resource(rt, base, state, await rt.store.queue_position(state))

    timing = stream.StreamTiming(max_s=rt.settings.stream_max_s)
    events = stream.JobStream(rt.store, job, render, timing, after).events()
    return StreamingResponse(events, media_type=stream.MEDIA_TYPE, headers=stream.HEADERS)


async def list_jobs(request: Request) -> Response:
    rt = await runtime.get()
    principal = await _authenticate(rt, request)
    query = request.query_params
    status = None
    if "status" in query:
        try:
            status = JobStatus(query["status"])
        except ValueError as exc:
            raise InvalidRequestError(
                f"status must be one of {[s.value for s in JobStatus]}",
                code="invalid_value",
                field="status",
            ) from exc
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(
            f"limit must be an integer from 1 to {MAX_PAGE}", code="out_of_range", field="limit"
        )
    tenant = None if principal.admin else principal.tenant
    page = await rt.store.list(
        tenant=tenant, status=status, limit=limit, cursor=query.get("cursor")
    )
    base = base_url(request, rt.settings.public_url)
    return JSONResponse(
        {
            "object": "list",
            "data": [resource_for(job, base, rt.settings) for job in page.jobs],
            "next_cursor": page.next_cursor,
        }
    )


async def get_video(request: Request, job_id: str) -> Response:
    rt = await runtime.get()
    job = await _visible_job(rt, request, job_id)
    if job.video_expired:
        raise GoneError(
            f"the video of job {job_id} expired: videos are kept "
            f"{rt.settings.video_retention_s / 86400:g} days",
            code="video_expired",
        )
    if job.video is None:
        raise ConflictError(
            f"job {job_id} has no video (status {job.status.value})", code="video_not_ready"
        )
    url = await rt.artifacts.presigned_url(job.video.key, expires_s=PRESIGNED_EXPIRY_S)
    if url is not None:
        return RedirectResponse(url, status_code=302)
    if not isinstance(rt.artifacts, FilesystemArtifactStore):
        raise TypeError(f"{type(rt.artifacts).__name__} neither signs URLs nor keeps files")
    path = rt.artifacts.path_of(job.video.key)
    try:
        stat_result = await asyncio.to_thread(os.stat, path)
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"the video of job {job_id} is missing from the artifact store"
        ) from exc
    # Starlette answers Range (one range, several as multipart/byteranges, 416 past the end),
    # If-Range and HEAD; the ETag is the video's content hash rather than its mtime and size.
    return FileResponse(
        path,
        media_type="video/mp4",
        stat_result=stat_result,
        headers={
            "ETag": f'"{job.video.sha256}"',
            "Cache-Control": "private, max-age=86400, immutable",
        },
    )


async def receive_event(request: Request) -> Response:
    rt = await runtime.get()
    body = await request.body()
    event = events.parse_event(request.headers, body)
    event_sender(request.headers, body, event)
    try:
        result = await apply_lifecycle_event(rt.store, rt.artifacts, event, now=time.time())
    except NotFoundError:
        # Retrying cannot make an unknown job appear; acknowledge so the broker moves on.
        log.warning("%s for unknown job %s ignored", event["type"], event.get("subject"))
        return JSONResponse({"applied": False, "reason": "unknown job"})
    _count_finished(result.job, applied=result.applied)
    answer = {"applied": result.applied, "status": result.job.status.value}
    if result.refused is not None:
        answer["reason"] = result.refused
    return JSONResponse(answer)


async def receive_dead_letter(request: Request) -> Response:
    """Count and log a dead letter, and carry out `t2v.recovery.dead_letter_decision`."""
    rt = await runtime.get()
    body = await request.body()
    event = events.parse_event(request.headers, body)
    event_sender(request.headers, body, event)  # the broker's, with the original sender
    attributes = event.get_attributes()
    metrics().dead_letters.labels(event["type"]).inc()
    log.warning(
        "dead letter: %s %s (dest=%s code=%s)",
        event["type"],
        event.get("subject"),
        event.get("knativeerrordest"),
        event.get("knativeerrorcode"),
    )
    job_id = recovery.dead_letter_target(event["type"], event.get("subject"))
    if job_id is None:
        return JSONResponse({"applied": False, "reason": "nothing to update"})
    job, lease = await rt.store.get(job_id), await rt.store.lease_of(job_id)
    now = time.time()
    decision = recovery.dead_letter_decision(job, lease, attributes, now=now, settings=rt.settings)
    if decision.update is None:
        return JSONResponse({"applied": False, "reason": decision.reason})
    try:
        result = await rt.store.apply(decision.update)
    except NotFoundError:
        return JSONResponse({"applied": False, "reason": "unknown job"})
    _count_finished(result.job, applied=result.applied)
    return JSONResponse({"applied": result.applied, "status": result.job.status.value})


def _count_finished(job: Job, *, applied: bool) -> None:
    """Count a job once, when the update that finished it was applied (not on redelivery)."""
    if applied and job.status.terminal and job.finished_at is not None:
        m = metrics()
        m.jobs_finished.labels(job.status.value).inc()
        m.job_duration.labels(job.status.value).observe(job.finished_at - job.created_at)


# The web UI's built files (web/dist, from `npm run build:web`: Vite gives them fixed names),
# the only names served under /web/, and their content types.
WEB_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "docs.html": "text/html; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
}


@dataclass(frozen=True)
class WebPage:
    directory: Path
    content_security_policy: str


# Resolved at import: the path walk touches the file system, which an async handler must not.
_REPOSITORY_WEB_DIR = Path(__file__).resolve().parents[2] / "web" / "dist"


async def _build_web_page() -> WebPage:
    """Where the page's built files are (`T2V_WEB_DIR`, else `web/dist` beside `functions/`: the
    repository locally, /app in the image) and its Content-Security-Policy. When the
    artifact store answers videos with presigned redirects, the browser follows them to
    the store's origin, so that one origin (not `*`) is added to media-src and connect-src."""
    configured = os.environ.get("T2V_WEB_DIR")
    directory = Path(configured) if configured else _REPOSITORY_WEB_DIR
    rt = await runtime.get()
    probe = await rt.artifacts.presigned_url("csp-origin-probe", expires_s=60)
    store_origin = ""
    if probe is not None:
        parts = urlsplit(probe)
        store_origin = f" {parts.scheme}://{parts.netloc}"
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"media-src 'self' blob:{store_origin}; connect-src 'self'{store_origin}; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return WebPage(directory, policy)


web_page: Lazy[WebPage] = Lazy(_build_web_page)


async def web_file(request: Request, name: str) -> Response:
    if name not in WEB_FILES:
        raise NotFoundError(f"no web file {name}")
    page = await web_page.get()
    return await _static_file(request, page, page.directory / name, WEB_FILES[name])


async def _static_file(request: Request, page: WebPage, path: Path, media_type: str) -> Response:
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError as exc:
        if path.parent == page.directory:
            raise NotFoundError(
                f"the web UI is not built: {path.name} is missing from {path.parent} "
                "(run scripts/build_web.sh)",
                code="web_ui_not_built",
            ) from exc
        raise NotFoundError(f"{path.name} is missing from {path.parent}") from exc
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {
        "ETag": etag,
        # File names are not versioned: revalidate every time (a 304 is cheap).
        "Cache-Control": "no-cache",
        "Content-Security-Policy": page.content_security_policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        body = b""
    return Response(body, headers=headers, media_type=media_type)


async def web_index(request: Request) -> Response:
    return await web_file(request, "index.html")


# The docs page's renderer: Swagger UI's standalone bundle from npm (package.json), beside
# functions/ as web/ is (`T2V_DOCS_RENDERER_DIR` overrides).
DOCS_RENDERER_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
_REPOSITORY_RENDERER_DIR = _REPOSITORY_WEB_DIR.parents[1] / "node_modules" / "swagger-ui-dist"


async def docs_page(request: Request) -> Response:
    return await web_file(request, "docs.html")


async def docs_file(request: Request, name: str) -> Response:
    if name not in DOCS_RENDERER_FILES:
        raise NotFoundError(f"no docs file {name}")
    configured = os.environ.get("T2V_DOCS_RENDERER_DIR")
    directory = Path(configured) if configured else _REPOSITORY_RENDERER_DIR
    page = await web_page.get()
    return await _static_file(request, page, directory / name, DOCS_RENDERER_FILES[name])


async def _build_openapi_body() -> bytes:
    return json_body(openapi.document((await runtime.get()).settings.model_profile))


openapi_body: Lazy[bytes] = Lazy(_build_openapi_body)


async def openapi_document(request: Request) -> Response:
    return Response(await openapi_body.get(), media_type="application/json")


async def status_metrics(request: Request) -> Response:
    rt = await runtime.get()
    metrics().queue_depth.set(await rt.store.count(JobStatus.QUEUED))
    return await metrics_endpoint(request)


router.add("GET", "/v1/jobs", list_jobs)
router.add("GET", "/v1/jobs/{job_id}", get_job)
router.add("GET", "/v1/jobs/{job_id}/video", get_video)
router.add("GET", "/v1/jobs/{job_id}/events", job_events)
router.add("POST", "/events", receive_event)
router.add("POST", "/dead-letter", receive_dead_letter)
router.add("GET", "/healthz", health)
router.add("GET", "/", web_index)
router.add("GET", "/web/{name}", web_file)
router.add("GET", "/openapi.json", openapi_document)
router.add("GET", "/docs", docs_page)
router.add("GET", "/docs/{name}", docs_file)


router.add("GET", "/metrics", status_metrics)


@functions_framework.aio.http
async def status(request: Request) -> Response:
    return await instrumented("status", router.templates, request, router.dispatch)
