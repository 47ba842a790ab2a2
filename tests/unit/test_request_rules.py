"""The request rules submit applies before anything is stored: the Idempotency-Key's form,
the request hash a replay is compared by, and who may see a job."""

from __future__ import annotations

import json

import pytest

from t2v.auth import KeyRegistry, Principal
from t2v.contract import MAX_IDEMPOTENCY_KEY, check_idempotency_key, request_hash
from t2v.errors import InvalidRequestError


@pytest.mark.parametrize("key", ["k", "order 17/é", "k" * MAX_IDEMPOTENCY_KEY])
def test_a_printable_key_of_1_to_255_characters_is_taken_as_is(key: str) -> None:
    assert check_idempotency_key(key) == key


@pytest.mark.parametrize("key", ["", "k" * (MAX_IDEMPOTENCY_KEY + 1), "tab\there", "nl\n", "\x00"])
def test_any_other_key_is_invalid(key: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        check_idempotency_key(key)
    assert raised.value.code == "invalid_idempotency_key"
    assert raised.value.field == "Idempotency-Key"


def test_the_request_hash_ignores_key_order_and_spacing() -> None:
    body = {"prompt": "a fox", "seed": 3, "params": {"b": 1, "a": 2}}
    reordered = {"params": {"a": 2, "b": 1}, "seed": 3, "prompt": "a fox"}
    spaced = json.dumps(reordered, indent=4).encode()
    assert request_hash(json.dumps(body).encode()) == request_hash(spaced)


def test_the_request_hash_tells_different_requests_apart() -> None:
    assert request_hash(b'{"prompt": "a fox"}') != request_hash(b'{"prompt": "a cat"}')
    assert request_hash(b"{not json") != request_hash(b"{not json!")
    assert len(request_hash(b"{}")) == 64


@pytest.mark.parametrize(
    ("tenant", "job_tenant"),
    [("acme", "acme-labs"), ("acme-labs", "acme"), ("acme", "acm"), ("acme", "")],
)
def test_a_tenant_sees_no_job_of_another_tenant_sharing_a_prefix(
    tenant: str, job_tenant: str
) -> None:
    assert not KeyRegistry.can_see(Principal(tenant, admin=False), job_tenant)
    assert KeyRegistry.can_see(Principal(tenant, admin=False), tenant)
    assert KeyRegistry.can_see(Principal(tenant, admin=True), job_tenant)
