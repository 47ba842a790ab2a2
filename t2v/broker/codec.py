"""CloudEvents over HTTP for the broker: read binary or structured mode, write binary mode."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from cloudevents.conversion import to_binary
from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent, from_http

from t2v.errors import MalformedEventError

REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


def is_cloudevent(headers: Mapping[str, str]) -> bool:
    """Whether an HTTP message carries a CloudEvent (used to spot replies)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    content_type = lowered.get("content-type", "").lower()
    return "ce-specversion" in lowered or content_type.startswith(STRUCTURED_CONTENT_TYPE)


def read_event(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Parse a CloudEvent in binary or structured mode.

    Raises ``MalformedEventError`` when a required attribute (id, source, type,
    specversion) is missing or empty, or the body is not a valid structured event. The
    SDK would invent a missing ``id`` and ``time``; a broker must pass events on as sent.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    content_type = lowered.get("content-type", "").lower()
    if content_type.startswith(BATCH_CONTENT_TYPE):
        raise MalformedEventError("batched CloudEvents are not accepted; send one per request")
    structured = content_type.startswith(STRUCTURED_CONTENT_TYPE)
    if structured:
        attributes = _structured_attributes(body)
    else:
        attributes = {key[3:]: value for key, value in lowered.items() if key.startswith("ce-")}
    missing = [name for name in REQUIRED_ATTRIBUTES if not attributes.get(name)]
    if missing:
        raise MalformedEventError(
            f"CloudEvent is missing required attributes: {', '.join(missing)}",
            field=missing[0],
        )
    try:
        # Binary-mode data stays the exact bytes received; structured data is JSON already.
        event = from_http(dict(lowered), body, None if structured else _keep_bytes)
    except GenericException as error:
        raise MalformedEventError(f"malformed CloudEvent: {error}") from error
    if "time" not in attributes:
        del event["time"]
    return event


def write_binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Encode ``event`` in binary mode: ``ce-*`` headers and the data as the body.

    The SDK's encoder, which does not percent-encode: a broker passes attribute values on as
    it received them, and `read_event` keeps them still percent-encoded (the SDK does not
    decode them), so encoding them again would turn each ``%`` into ``%25``.
    """
    headers, body = to_binary(event)
    return {key: str(value) for key, value in headers.items()}, _as_bytes(body)


def _structured_attributes(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedEventError(f"structured CloudEvent is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise MalformedEventError("structured CloudEvent must be a JSON object")
    if "data_base64" in document:
        _check_base64(document["data_base64"])
    return document


def _check_base64(encoded: object) -> None:
    """The SDK decodes `data_base64` leniently: characters outside the alphabet are dropped,
    so `"!!!!"` passed as an event with no data. A broker passes on only what decodes."""
    if not isinstance(encoded, str):
        raise MalformedEventError("data_base64 must be a string", field="data_base64")
    try:
        base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise MalformedEventError(
            f"data_base64 is not valid base64: {error}", field="data_base64"
        ) from error


def _keep_bytes(data: bytes | str) -> bytes | str:
    return data


def _as_bytes(body: object) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")
