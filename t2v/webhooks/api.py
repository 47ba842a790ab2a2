"""The public webhook routes (served by notify): the tenant's signing secret, each job's
delivery history, and replaying a delivery. A tenant sees only its own jobs' deliveries
(another tenant's job answers 404) and only its own secret."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request

from t2v.errors import NotFoundError
from t2v.jobs import Job
from t2v.runtime import Runtime
from t2v.webhooks import deliveries, dispatch, signing
from t2v.webhooks.guard import WebhookPolicy


def _tenant(rt: Runtime, request: Request) -> str:
    return rt.keys.authenticate(request.headers.get("authorization")).tenant


async def visible_job(rt: Runtime, request: Request, job_id: str) -> Job:
    principal = rt.keys.authenticate(request.headers.get("authorization"))
    job = await rt.store.get(job_id)
    if job is None or not rt.keys.can_see(principal, job.tenant):
        raise NotFoundError(f"job {job_id} not found")
    return job


def secret_resource(record: dict[str, Any]) -> dict[str, Any]:
    resource = {
        "object": "webhook_secret",
        "secret": record["secret"],
        "created_at": record["created_at"],
    }
    if "rotated_at" in record:
        # The previous secret still signs (beside this one) until then.
        resource["previous_valid_until"] = record["rotated_at"] + signing.ROTATION_GRACE_S
    return resource


async def read_secret(rt: Runtime, request: Request) -> dict[str, Any]:
    return secret_resource(await signing.tenant_secret(rt.store, _tenant(rt, request)))


async def rotate_secret(rt: Runtime, request: Request) -> dict[str, Any]:
    return secret_resource(await signing.rotate_secret(rt.store, _tenant(rt, request)))


def delivery_resource(delivery: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "webhook_delivery",
        "id": delivery["id"],
        "event": delivery["event"],
        "event_type": delivery["event_type"],
        "created_at": delivery["created_at"],
        "attempts": delivery["attempts"],
    }


async def list_deliveries(rt: Runtime, request: Request, job_id: str) -> dict[str, Any]:
    job = await visible_job(rt, request, job_id)
    found = await deliveries.history(rt.store, job.id)
    return {"object": "list", "data": [delivery_resource(d) for d in found]}


async def replay_delivery(
    rt: Runtime,
    request: Request,
    job_id: str,
    delivery_id: str,
    *,
    client: httpx.AsyncClient,
    policy: WebhookPolicy,
) -> dict[str, Any]:
    job = await visible_job(rt, request, job_id)
    attempt = await dispatch.replay(rt, job, delivery_id, client=client, policy=policy)
    return {"object": "webhook_attempt", "delivery_id": delivery_id, **attempt}
