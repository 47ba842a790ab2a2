"""notify: delivers webhooks for lifecycle events, and serves their secrets, history and replay.

Run alone exactly as its container does:
    functions-framework --asgi --target notify --source functions/notify/main.py
"""

from __future__ import annotations

import functions_framework.aio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from t2v import events
from t2v.event_auth import event_sender
from t2v.http import Router, health, metrics_endpoint
from t2v.metrics import instrumented
from t2v.runtime import Lazy, lazy_runtime
from t2v.webhooks import api, dispatch, sender
from t2v.webhooks.guard import configured_policy as policy

runtime = lazy_runtime("/t2v/notify")
router = Router()


async def _build_client() -> httpx.AsyncClient:
    return sender.new_client()


client: Lazy[httpx.AsyncClient] = Lazy(_build_client)


async def receive_event(request: Request) -> Response:
    rt = await runtime.get()
    body = await request.body()
    event = events.parse_event(request.headers, body)
    event_sender(request.headers, body, event)
    sent = await dispatch.deliver_event(rt, event, client=await client.get(), policy=policy())
    return JSONResponse(sent.body, status_code=sent.status_code)


async def read_secret(request: Request) -> Response:
    return JSONResponse(await api.read_secret(await runtime.get(), request))


async def rotate_secret(request: Request) -> Response:
    return JSONResponse(await api.rotate_secret(await runtime.get(), request))


async def list_deliveries(request: Request, job_id: str) -> Response:
    return JSONResponse(await api.list_deliveries(await runtime.get(), request, job_id))


async def replay_delivery(request: Request, job_id: str, delivery_id: str) -> Response:
    rt = await runtime.get()
    attempt = await api.replay_delivery(
        rt, request, job_id, delivery_id, client=await client.get(), policy=policy()
    )
    return JSONResponse(attempt, status_code=202)


router.add("GET", "/v1/webhook-secret", read_secret)
router.add("POST", "/v1/webhook-secret/rotate", rotate_secret)
router.add("GET", "/v1/jobs/{job_id}/webhooks", list_deliveries)
router.add("POST", "/v1/jobs/{job_id}/webhooks/{delivery_id}/replay", replay_delivery)
router.add("POST", "/events", receive_event)
router.add("GET", "/healthz", health)
router.add("GET", "/metrics", metrics_endpoint)


@functions_framework.aio.http
async def notify(request: Request) -> Response:
    return await instrumented("notify", router.templates, request, router.dispatch)
