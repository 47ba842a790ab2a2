"""The parts of sender identity that need no platform: the broker's credential registry, the
delivery signature the functions check, the credentials file, and the sender's token."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent, from_http

from t2v import events
from t2v.auth import hash_key
from t2v.broker.identity import EXTERNAL, LocalCredentials
from t2v.errors import UnauthorizedError
from t2v.event_auth import (
    INFER,
    SENDER_ATTRIBUTE,
    SIGNATURE_HEADER,
    DeliveryCheck,
    ForbiddenEventError,
    Sender,
    signature,
)
from tests.test_event_sink import Receiver
from tests.test_event_sink import receiver as receiver  # the fixture

KEY = b"k" * 32
API_KEYS = json.dumps({hash_key("key-a"): {"tenant": "tenantA"}})


def event(event_type: str, **attributes: str) -> CloudEvent:
    return CloudEvent(
        {"type": event_type, "source": "/x", "id": "1", **attributes}, {"job_id": "job_1"}
    )


def signed(ev: CloudEvent, key: bytes = KEY) -> tuple[dict[str, str], bytes]:
    headers, body = to_binary(ev)
    headers = {name: str(value) for name, value in headers.items()}
    headers[SIGNATURE_HEADER] = signature(key, headers, body)
    return headers, body


def test_the_registry_knows_the_platforms_senders_and_tenants_keys() -> None:
    credentials = LocalCredentials.generate(open_mode=False)
    registry = credentials.registry({"T2V_API_KEYS": API_KEYS})
    assert registry.identify(f"Bearer {credentials.tokens[INFER]}") == Sender(INFER)
    assert registry.identify("Bearer key-a") == Sender.of_tenant("tenantA")
    assert EXTERNAL not in credentials.tokens  # with API keys, other systems use theirs
    for bad in (None, "", "Bearer", "Basic key-a", "Bearer not-a-key"):
        with pytest.raises(UnauthorizedError):
            registry.identify(bad)


def test_in_open_mode_only_the_external_token_sends_as_tenant_local() -> None:
    credentials = LocalCredentials.generate(open_mode=True)
    registry = credentials.registry({})
    assert registry.identify(f"Bearer {credentials.tokens[EXTERNAL]}") == Sender("tenant:local")
    with pytest.raises(UnauthorizedError):
        registry.identify("Bearer anything")  # open mode opens the API, not the broker


def test_configured_sender_keys_map_to_their_tenant() -> None:
    keys = json.dumps({hash_key("partner-key"): {"tenant": "acme"}})
    registry = LocalCredentials.generate(open_mode=True).registry({"T2V_EVENT_SENDER_KEYS": keys})
    assert registry.identify("Bearer partner-key").tenant == "acme"


def test_each_sender_may_send_only_its_types() -> None:
    assert Sender(INFER).may_send(events.JOB_SUCCEEDED)
    assert not Sender(INFER).may_send(events.JOB_SUBMIT)
    assert Sender.of_tenant("acme").may_send(events.JOB_SUBMIT)
    assert not Sender.of_tenant("acme").may_send(events.JOB_SUCCEEDED)
    assert not Sender("tenant:").may_send(events.JOB_SUBMIT)  # names no tenant
    assert not Sender("").may_send(events.JOB_STARTED)


def test_a_function_takes_only_a_delivery_the_broker_signed() -> None:
    check = DeliveryCheck(KEY, trust_transport=False)
    ev = event(events.JOB_SUCCEEDED, **{SENDER_ATTRIBUTE: INFER})
    headers, body = signed(ev)
    assert check.sender(headers, body, from_http(headers, body)) == Sender(INFER)
    tampered = {**headers, "ce-subject": "job_2"}
    for bad_headers, bad_body in (
        ({k: v for k, v in headers.items() if k != SIGNATURE_HEADER}, body),
        (tampered, body),
        (headers, body + b" "),
        (signed(ev, b"another key")[0], body),
    ):
        with pytest.raises(UnauthorizedError):
            check.sender(bad_headers, bad_body, from_http(bad_headers, bad_body))
    as_tenant = event(events.JOB_SUCCEEDED, **{SENDER_ATTRIBUTE: "tenant:tenantA"})
    headers, body = signed(as_tenant)
    with pytest.raises(ForbiddenEventError):
        check.sender(headers, body, from_http(headers, body))


def test_on_knative_the_transport_vouches_and_without_either_nothing_is_taken() -> None:
    submit = event(events.JOB_SUBMIT, **{events.TENANT_EXTENSION: "acme"})
    headers, body = to_binary(submit)
    oidc = DeliveryCheck(None, trust_transport=True)
    assert oidc.sender(headers, body, submit).tenant == "acme"
    with pytest.raises(UnauthorizedError, match="cannot be authenticated"):
        DeliveryCheck(None, trust_transport=False).sender(headers, body, submit)
    assert DeliveryCheck.from_env({"T2V_EVENT_AUTH": "knative-oidc"}).trust_transport
    assert not DeliveryCheck.from_env({"T2V_EVENT_AUTH": "yes"}).trust_transport


def test_the_credentials_file_is_private_from_the_start(tmp_path: Path) -> None:
    credentials = LocalCredentials.generate(open_mode=True)
    path = credentials.write(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["senders"] == dict(credentials.tokens)
    assert credentials.write(tmp_path) == path  # a restart replaces it
    env = credentials.function_env("status")
    assert set(env) == {"T2V_EVENT_SIGNING_KEY"}  # status sends nothing: no token
    assert credentials.function_env("infer")["T2V_EVENT_SENDER_TOKEN"] == credentials.tokens[INFER]


async def test_the_sink_presents_its_token_from_a_file_read_for_each_post(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("oidc-token-1\n")
    monkeypatch.setenv(events.SENDER_TOKEN_FILE_ENV, str(token_file))
    monkeypatch.delenv(events.SENDER_TOKEN_ENV, raising=False)
    sink = events.HttpEventSink(receiver.url)
    try:
        assert await sink.send(event(events.JOB_STARTED))
        token_file.write_text("oidc-token-2")  # rotated
        assert await sink.send(event(events.JOB_STARTED))
    finally:
        await sink.close()
    seen = [r.headers.get("authorization") for r in receiver.requests]
    assert seen == ["Bearer oidc-token-1", "Bearer oidc-token-2"]
    with_token = events.HttpEventSink(receiver.url, token="broker-token")
    try:
        assert await with_token.send(event(events.JOB_STARTED))
    finally:
        await with_token.close()
    assert receiver.requests[-1].headers["authorization"] == "Bearer broker-token"
