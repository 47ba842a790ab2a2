"""The client's webhook check against the `standardwebhooks` package, the reference
verifier: each signs what the other verifies, and both refuse the same forgeries."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceError
from t2v_client import WebhookVerificationError, verify_webhook
from t2v_client.webhooks import sign_webhook

SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes....").decode()
BODY = json.dumps({"type": "job.succeeded", "data": {"job_id": "job_1"}}).encode()


def headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_verifies_what_the_reference_signs() -> None:
    now = int(time.time())
    signature = standardwebhooks.Webhook(SECRET).sign(
        "msg_1", datetime.fromtimestamp(now, UTC), BODY
    )
    assert verify_webhook(SECRET, headers("msg_1", now, signature), BODY) == json.loads(BODY)


def test_the_reference_verifies_what_it_signs() -> None:
    now = int(time.time())
    signed = headers("msg_2", now, sign_webhook(SECRET, "msg_2", now, BODY))
    assert standardwebhooks.Webhook(SECRET).verify(BODY, signed) == json.loads(BODY)


def test_a_rotated_secret_list_verifies_with_one_match() -> None:
    now = int(time.time())
    other = "whsec_" + base64.b64encode(b"another secret").decode()
    both = f"{sign_webhook(other, 'm', now, BODY)} {sign_webhook(SECRET, 'm', now, BODY)}"
    assert verify_webhook(SECRET, headers("m", now, both), BODY)


@pytest.mark.parametrize(
    "forgery",
    ["tampered body", "other id", "stale timestamp", "wrong secret", "no signature header"],
)
def test_both_refuse_a_forgery(forgery: str) -> None:
    now = int(time.time())
    msg_id, stamp, body, secret = "msg_3", now, BODY, SECRET
    if forgery == "stale timestamp":
        stamp = now - 600
    if forgery == "wrong secret":
        secret = "whsec_" + base64.b64encode(b"not the secret").decode()
    sent = headers(msg_id, stamp, sign_webhook(secret, msg_id, stamp, body))
    if forgery == "tampered body":
        body = BODY.replace(b"succeeded", b"failed")
    if forgery == "other id":
        sent["webhook-id"] = "msg_4"
    if forgery == "no signature header":
        del sent["webhook-signature"]
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, sent, body)
    with pytest.raises(ReferenceError):
        standardwebhooks.Webhook(SECRET).verify(body, sent)
