"""The client's table of request limits (t2v_client.limits, shown in `t2v --help`) against
rust_infer's contract, the authority: a contract change the table misses fails here."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from t2v_client.limits import (
    FIELDS,
    MAX_WEBHOOK_CHARS,
    WEBHOOK_EVENTS,
    WEBHOOK_FIELDS,
    FieldLimit,
)
from t2v_client.models import JobFields

import rust_infer

# A request every limit below is checked from: small, 1 s at 7 fps.
BASE: dict[str, Any] = {"prompt": "a cat", "width": 64, "height": 48, "fps": 7, "num_frames": 7}


def refusal(**fields: Any) -> str | None:
    """The field the contract refuses the request for, or None when it accepts it."""
    body = json.dumps({**BASE, **fields})
    try:
        rust_infer.normalize_request(body, profile="mochi-1", fresh_seed=1)
    except rust_infer.InvalidRequest as exc:
        return str(exc.field)
    return None


def test_the_fields_are_the_contracts() -> None:
    with pytest.raises(rust_infer.InvalidRequest) as caught:
        rust_infer.normalize_request(b'{"prompt": "x", "zzz": 1}', fresh_seed=1)
    listed = re.search(r"the fields are: (.*)", caught.value.message)
    assert listed is not None
    assert set(listed.group(1).split(", ")) == set(FIELDS) | set(WEBHOOK_FIELDS)


def test_the_sdk_takes_every_field() -> None:
    assert set(JobFields.__annotations__) == set(FIELDS) - {"prompt"} | set(WEBHOOK_FIELDS)


def test_webhook_limits_are_the_contracts() -> None:
    assert WEBHOOK_EVENTS == rust_infer.WEBHOOK_EVENTS
    url = "https://example.com/"
    assert refusal(webhook=url + "x" * (MAX_WEBHOOK_CHARS - len(url))) is None
    assert refusal(webhook=url + "x" * (MAX_WEBHOOK_CHARS - len(url) + 1)) == "webhook"
    assert refusal(webhook=url, webhook_events=list(WEBHOOK_EVENTS)) is None
    assert refusal(webhook=url, webhook_events=["finished"]) == "webhook_events"


def numeric(field: FieldLimit) -> bool:
    return field.kind in (int, float)


def others(name: str) -> dict[str, Any]:
    """Fields that let `name` reach its own limit: a long side needs a small other side,
    many frames need a high fps, a duration replaces num_frames."""
    if name in ("width", "height"):
        return {"height" if name == "width" else "width": 16}
    if name == "num_frames":
        return {"fps": 60}
    if name == "duration_s":
        return {"num_frames": None}
    return {}


@pytest.mark.parametrize("name", [n for n, f in FIELDS.items() if numeric(f)])
def test_numeric_limits_are_the_contracts(name: str) -> None:
    field = FIELDS[name]
    step = 1 if field.kind is int else 0.001
    unit = field.multiple_of or step
    ctx = others(name)
    if field.maximum is not None:
        assert refusal(**ctx, **{name: field.maximum}) is None
        assert refusal(**ctx, **{name: field.maximum + unit}) == name
    if field.minimum is not None:
        # A float minimum is exclusive (duration_s > 0); an integer one is allowed.
        lowest = field.minimum + (step if field.kind is float and name == "duration_s" else 0)
        assert refusal(**ctx, **{name: lowest}) is None
        assert refusal(**ctx, **{name: field.minimum - step}) == name
    if field.multiple_of is not None:
        assert refusal(**ctx, **{name: field.multiple_of * 3 + field.offset}) is None
        assert refusal(**ctx, **{name: field.multiple_of * 3 + field.offset + 1}) == name


def test_frames_and_sides_follow_the_length_and_768p_rules() -> None:
    # num_frames' maximum is the 10 s limit at the request's fps.
    seconds = FIELDS["duration_s"].maximum
    assert seconds is not None
    fps = 60
    longest = int(seconds * fps - 1) // 6 * 6 + 1
    assert refusal(fps=fps, num_frames=longest) is None
    assert refusal(fps=fps, num_frames=longest + 6) == "num_frames"
    assert refusal(width=768, height=768) is None
    assert refusal(width=784, height=784) is not None
    assert "768" in FIELDS["width"].help


@pytest.mark.parametrize("name", ["prompt", "negative_prompt"])
def test_text_lengths_are_the_contracts(name: str) -> None:
    most = FIELDS[name].maximum
    assert most is not None
    assert refusal(**{name: "a" * int(most)}) is None
    assert refusal(**{name: "a" * (int(most) + 1)}) == name
