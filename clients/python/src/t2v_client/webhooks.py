"""Checking a webhook the platform sent, the Standard Webhooks way.

payload = verify_webhook(secret, request.headers, body)   # raises if it is not ours
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from t2v_client.errors import WebhookVerificationError

SECRET_PREFIX = "whsec_"
# A message older (or further ahead) than this is refused: a captured one cannot be replayed.
TOLERANCE_S = 300


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of "id.timestamp.body"."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """The webhook's JSON payload, once its signature and timestamp check out; otherwise
    WebhookVerificationError. `headers` may be any case-insensitive or lower-case mapping."""
    lower = {name.lower(): value for name, value in headers.items()}
    try:
        msg_id = lower["webhook-id"]
        timestamp = int(lower["webhook-timestamp"])
        signatures = lower["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise WebhookVerificationError("missing or malformed webhook headers") from exc
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        raise WebhookVerificationError("webhook timestamp is outside the tolerance")
    expected = sign_webhook(secret, msg_id, timestamp, body)
    # Several signatures are sent while a secret is being rotated: one match is enough.
    if not any(
        hmac.compare_digest(expected, candidate)
        for candidate in signatures
        if candidate.startswith("v1,")
    ):
        raise WebhookVerificationError("no webhook signature matches")
    return json.loads(body)


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise WebhookVerificationError("the secret is not whsec_ and base64") from exc
