"""Opaque list cursors: every backend orders jobs by (created_at, id), newest first."""

from __future__ import annotations

import base64

from t2v.errors import InvalidRequestError


def encode_cursor(created_at: float, job_id: str) -> str:
    raw = f"{created_at!r}|{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, job_id = base64.urlsafe_b64decode(padded.encode()).decode().split("|", 1)
        return float(created), job_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            "cursor is not one this API returned", code="invalid_cursor", field="cursor"
        ) from exc
