"""Standard Webhooks signing: the `webhook-*` headers, and each tenant's `whsec_` secret.

A tenant's secret is one record in the job store (`webhook-secret/<tenant>`), made on first
use. Rotating it keeps the previous secret for `ROTATION_GRACE_S`, and deliveries in that
time carry a signature with each (the spec's space-separated list), so a receiver can switch
secrets without refusing a webhook.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Mapping
from typing import Any

from t2v_client.webhooks import SECRET_PREFIX, sign_webhook

from t2v.store import JobStore

SECRET_BYTES = 32
ROTATION_GRACE_S = 24 * 3600.0


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def webhook_id(event_source: str, event_id: str) -> str:
    """The `webhook-id` of an event: the same for every retry of one CloudEvent (its
    source and id), and a segment of URL-safe characters (the replay route names it)."""
    digest = hashlib.sha256(f"{event_source}\n{event_id}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def signed_headers(
    signing_secrets: list[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            sign_webhook(secret, msg_id, timestamp, body) for secret in signing_secrets
        ),
    }


def _record_name(tenant: str) -> str:
    return f"webhook-secret/{tenant}"


def _created(stored: dict[str, Any] | None) -> dict[str, Any]:
    return stored if stored is not None else {"secret": new_secret(), "created_at": time.time()}


async def tenant_secret(store: JobStore, tenant: str) -> dict[str, Any]:
    """The tenant's secret record (`secret`, `created_at`, perhaps `previous` and
    `rotated_at`), made on first use."""
    stored = await store.read_record(_record_name(tenant))
    if stored is not None:
        return stored
    return await store.update_record(_record_name(tenant), _created)


async def rotate_secret(store: JobStore, tenant: str) -> dict[str, Any]:
    def rotated(stored: dict[str, Any] | None) -> dict[str, Any]:
        now = time.time()
        record: dict[str, Any] = {"secret": new_secret(), "created_at": now}
        if stored is not None:
            record.update(previous=stored["secret"], rotated_at=now)
        return record

    return await store.update_record(_record_name(tenant), rotated)


def signing_secrets(record: Mapping[str, Any], *, now: float) -> list[str]:
    """The current secret, and the previous one while its grace time lasts."""
    found = [str(record["secret"])]
    if "previous" in record and now - float(record["rotated_at"]) < ROTATION_GRACE_S:
        found.append(str(record["previous"]))
    return found
