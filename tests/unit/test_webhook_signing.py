"""Our webhook signature is what the `standardwebhooks` reference verifier accepts, and a
tenant's secret survives reads and rotates with a grace period for the previous one."""

from __future__ import annotations

import time

import pytest
import standardwebhooks
from standardwebhooks.webhooks import WebhookVerificationError

from t2v.store import JobStore
from t2v.webhooks import signing

BODY = b'{"type":"job.completed","data":{"id":"job_1"}}'


def test_the_reference_verifier_accepts_our_signature() -> None:
    secret = signing.new_secret()
    now = int(time.time())
    headers = signing.signed_headers([secret], "msg_1", now, BODY)
    assert standardwebhooks.Webhook(secret).verify(BODY, headers) is not None
    with pytest.raises(WebhookVerificationError):
        standardwebhooks.Webhook(signing.new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(BODY + b" ", headers)


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    headers = signing.signed_headers([new, old], "msg_2", int(time.time()), BODY)
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(BODY, headers)


def test_webhook_ids_are_stable_per_event_and_url_safe() -> None:
    first = signing.webhook_id("/t2v/infer", "abc")
    assert first == signing.webhook_id("/t2v/infer", "abc")
    assert first != signing.webhook_id("/t2v/infer", "abd")
    assert first != signing.webhook_id("/t2v/submit", "abc")
    assert first.startswith("msg_") and first.replace("_", "").isalnum()


async def test_a_tenant_secret_is_made_once_and_rotates(job_store: JobStore) -> None:
    first = await signing.tenant_secret(job_store, "acme")
    assert first["secret"].startswith("whsec_")
    assert await signing.tenant_secret(job_store, "acme") == first
    assert (await signing.tenant_secret(job_store, "other"))["secret"] != first["secret"]
    rotated = await signing.rotate_secret(job_store, "acme")
    assert rotated["secret"] != first["secret"] and rotated["previous"] == first["secret"]
    now = rotated["rotated_at"]
    assert signing.signing_secrets(rotated, now=now) == [rotated["secret"], first["secret"]]
    later = now + signing.ROTATION_GRACE_S + 1
    assert signing.signing_secrets(rotated, now=later) == [rotated["secret"]]
