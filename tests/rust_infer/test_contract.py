"""The job contract as Python sees it: rust_infer.normalize_request and profile_defaults."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rust_infer
from rust_infer import (
    InvalidRequest,
    NormalizedParams,
    RustInferError,
    normalize_request,
    profile_defaults,
)
from t2v.openapi import CONTRACT_CODES

FIELDS = {
    "prompt",
    "negative_prompt",
    "num_frames",
    "width",
    "height",
    "fps",
    "num_inference_steps",
    "guidance_scale",
    "seed",
}


def normalize(body: dict[str, Any], profile: str = "mochi-1", seed: int = 42) -> NormalizedParams:
    return normalize_request(json.dumps(body), profile=profile, fresh_seed=seed)


def rejection(body: dict[str, Any] | str | bytes, profile: str = "mochi-1") -> InvalidRequest:
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    with pytest.raises(InvalidRequest) as caught:
        normalize_request(raw, profile=profile, fresh_seed=1)
    return caught.value


def test_mochi_defaults() -> None:
    assert normalize({"prompt": "a red fox"}, seed=99) == {
        "prompt": "a red fox",
        "negative_prompt": "",
        "num_frames": 163,
        "width": 848,
        "height": 480,
        "fps": 30,
        "num_inference_steps": 64,
        "guidance_scale": 4.5,
        "seed": 99,
    }


def test_tiny_defaults() -> None:
    params = normalize({"prompt": "a red fox"}, profile="tiny")
    expected = {"width": 224, "height": 128, "num_frames": 19, "num_inference_steps": 8}
    assert expected.items() <= params.items()
    assert profile_defaults("tiny") == {
        "negative_prompt": "",
        "num_frames": 19,
        "width": 224,
        "height": 128,
        "fps": 30,
        "num_inference_steps": 8,
        "guidance_scale": 4.5,
    }


def test_profiles_and_their_defaults_agree() -> None:
    assert rust_infer.PROFILES == ("mochi-1", "tiny")
    for profile in rust_infer.PROFILES:
        params = normalize({"prompt": "p"}, profile=profile)
        defaults = profile_defaults(profile)
        assert defaults.items() <= params.items()


def test_unknown_profile_is_a_plain_value_error() -> None:
    with pytest.raises(ValueError, match="unknown profile") as caught:
        profile_defaults("mochi-2")
    assert not isinstance(caught.value, RustInferError)
    with pytest.raises(ValueError, match="unknown profile") as caught:
        normalize_request(b"{}", profile="mochi-2", fresh_seed=1)
    assert not isinstance(caught.value, RustInferError)


def test_bytes_and_str_bodies_are_equivalent() -> None:
    body = '{"prompt": "caf\\u00e9 \u00e9t\u00e9", "seed": 3}'
    assert normalize_request(body, fresh_seed=1) == normalize_request(body.encode(), fresh_seed=1)


def test_other_body_types_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="body must be bytes or str"):
        normalize_request(bytearray(b"{}"), fresh_seed=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"\xff\xfe", "invalid_json", None),
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        ("\ud800", "invalid_json", None),
        ({"prompt": "a", "style": "noir"}, "unknown_field", "style"),
        ({}, "missing_field", "prompt"),
        ({"prompt": None}, "missing_field", "prompt"),
        ({"prompt": ["a"]}, "invalid_type", "prompt"),
        ({"prompt": " \n\t"}, "empty", "prompt"),
        ({"prompt": "x" * 2001}, "too_long", "prompt"),
        ({"prompt": "bell\x07"}, "control_character", "prompt"),
        ({"prompt": "a", "negative_prompt": "\r"}, "control_character", "negative_prompt"),
        ({"prompt": "a", "width": 850}, "invalid_value", "width"),
        ({"prompt": "a", "width": True}, "invalid_type", "width"),
        ({"prompt": "a", "height": 8}, "out_of_range", "height"),
        ({"prompt": "a", "num_frames": 50}, "invalid_value", "num_frames"),
        ({"prompt": "a", "num_frames": 49.5}, "invalid_type", "num_frames"),
        ({"prompt": "a", "num_frames": 49, "duration_s": 2}, "conflicting_fields", "duration_s"),
        ({"prompt": "a", "fps": 61}, "out_of_range", "fps"),
        ({"prompt": "a", "num_inference_steps": 0}, "out_of_range", "num_inference_steps"),
        ({"prompt": "a", "guidance_scale": "high"}, "invalid_type", "guidance_scale"),
        ({"prompt": "a", "guidance_scale": 20.01}, "out_of_range", "guidance_scale"),
        ({"prompt": "a", "seed": 2**32}, "out_of_range", "seed"),
        ({"prompt": "a", "seed": -1}, "out_of_range", "seed"),
    ],
)
def test_error_codes(body: dict[str, Any] | str | bytes, code: str, field: str | None) -> None:
    error = rejection(body)
    assert (error.code, error.field, error.retryable) == (code, field, False)
    assert isinstance(error, ValueError)
    assert str(error) == error.message
    if field is not None:
        assert field in error.message


def test_messages_name_the_field_and_the_rule() -> None:
    assert rejection({"prompt": "a", "width": 100}).message == (
        "width must be a multiple of 16 (got 100)"
    )
    assert rejection({"prompt": "a", "fps": 0}).message == "fps must be between 1 and 60 (got 0)"
    assert rejection({}).message == "prompt is required"


def test_prompt_text_is_kept_as_given() -> None:
    prompt = "  two lines\n\tindented  "
    assert normalize({"prompt": prompt})["prompt"] == prompt
    assert normalize({"prompt": "\u00e9" * 2000})["prompt"] == "\u00e9" * 2000


def test_duration_becomes_the_nearest_6k_plus_1_frames() -> None:
    def frames(seconds: float, fps: int = 30) -> object:
        return normalize({"prompt": "a", "duration_s": seconds, "fps": fps})["num_frames"]

    assert frames(5.4) == 163
    assert frames(2) == 61
    assert frames(0.001) == 1
    assert frames(10) == 295  # the nearest, 301, would be past 10 s
    assert frames(1, fps=24) == 25
    for seconds in (0, -2, 10.5):
        assert rejection({"prompt": "a", "duration_s": seconds}).field == "duration_s"


def test_videos_are_at_most_ten_seconds() -> None:
    assert normalize({"prompt": "a", "num_frames": 295})["num_frames"] == 295
    error = rejection({"prompt": "a", "num_frames": 301})
    assert (error.code, error.field) == ("out_of_range", "num_frames")
    assert normalize({"prompt": "a", "num_frames": 595, "fps": 60})["num_frames"] == 595
    # The default 163 frames last 20 s at 8 fps.
    assert rejection({"prompt": "a", "fps": 8}).code == "out_of_range"


def test_resolution_is_at_most_768p() -> None:
    assert normalize({"prompt": "a", "width": 1360, "height": 768})["width"] == 1360
    assert normalize({"prompt": "a", "width": 768, "height": 1360})["height"] == 1360
    cases = [((784, 784), "height"), ((1024, 784), "height"), ((784, 1024), "width")]
    for (width, height), field in cases:
        error = rejection({"prompt": "a", "width": width, "height": height})
        assert (error.code, error.field) == ("out_of_range", field)
        assert "768p" in error.message
    error = rejection({"prompt": "a", "width": 1376, "height": 480})
    assert (error.code, error.field) == ("out_of_range", "width")


def test_floats_are_parsed_exactly() -> None:
    # A subnormal that a fast, inexact float parser reads one ulp off.
    scale = 1.9663171961050084e-41
    assert normalize({"prompt": "a", "guidance_scale": scale})["guidance_scale"] == scale


def test_integral_floats_count_as_integers() -> None:
    assert normalize({"prompt": "a", "width": 64.0, "seed": 7.0})["width"] == 64


def test_seed_comes_from_the_request_or_the_fresh_seed() -> None:
    assert normalize({"prompt": "a", "seed": 0}, seed=5)["seed"] == 0
    assert normalize({"prompt": "a", "seed": None}, seed=5)["seed"] == 5
    assert normalize({"prompt": "a"}, seed=2**32 - 1)["seed"] == 2**32 - 1


@pytest.mark.parametrize("fresh_seed", [-1, 2**32, 2**200])
def test_an_out_of_range_fresh_seed_is_an_invalid_request(fresh_seed: int) -> None:
    with pytest.raises(InvalidRequest) as caught:
        normalize_request('{"prompt": "a"}', fresh_seed=fresh_seed)
    assert (caught.value.code, caught.value.field) == ("out_of_range", "seed")


def test_the_first_error_in_the_documented_order_wins() -> None:
    assert rejection({"prompt": "", "width": 3, "zzz": 1}).field == "zzz"
    assert rejection({"prompt": "", "width": 3}).field == "prompt"
    assert rejection({"prompt": "a", "seed": -1, "fps": 0, "width": 3}).field == "width"


def test_errors_pickle_with_their_attributes() -> None:
    error = rejection({"prompt": "a", "width": 100})
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is InvalidRequest
    assert (copy.code, copy.message, copy.field, copy.retryable, str(copy)) == (
        error.code,
        error.message,
        error.field,
        False,
        str(error),
    )


# Hypothesis: arbitrary input is rejected cleanly, and valid output is a fixed point.

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
field_values = {
    "prompt": st.text(max_size=40) | json_values,
    "negative_prompt": st.text(max_size=10) | json_values,
    "num_frames": st.integers(-10, 700) | st.floats(-1, 700),
    "duration_s": st.floats(-1, 12) | st.integers(-1, 12),
    "width": st.integers(-32, 1500).map(lambda n: n * 16 if n % 3 else n) | json_scalars,
    "height": st.integers(-32, 1500).map(lambda n: n * 16 if n % 3 else n) | json_scalars,
    "fps": st.integers(-2, 70) | json_scalars,
    "num_inference_steps": st.integers(-2, 210) | json_scalars,
    "guidance_scale": st.floats(-1, 25) | json_scalars,
    "seed": st.integers(-5, 2**33) | json_scalars,
}
request_bodies = st.fixed_dictionaries(
    {}, optional={name: strategy for name, strategy in field_values.items()}
)


prompts = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\n\t"), max_size=60
).filter(str.strip)
sides = st.integers(1, 85).map(lambda n: n * 16)
valid_bodies = st.fixed_dictionaries(
    {"prompt": prompts},
    optional={
        "negative_prompt": prompts,
        "width": sides.filter(lambda n: n <= 768),
        "height": sides.filter(lambda n: n <= 768),
        "fps": st.integers(17, 60),  # the default 163 frames must fit in 10 s
        "duration_s": st.floats(0.01, 10),
        "num_inference_steps": st.integers(2, 200),
        "guidance_scale": st.floats(0, 20) | st.integers(0, 20),
        "seed": st.integers(0, 2**32 - 1) | st.none(),
    },
)


def outcome(raw: str | bytes, profile: str, seed: int) -> NormalizedParams | InvalidRequest:
    try:
        return normalize_request(raw, profile=profile, fresh_seed=seed)
    except InvalidRequest as error:
        # The codes the API documents (/openapi.json) are every code the contract has.
        assert error.code in CONTRACT_CODES
        assert error.message
        return error


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_input_is_rejected_cleanly(raw: bytes | str) -> None:
    outcome(raw, "mochi-1", 1)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_is_rejected_cleanly(value: object) -> None:
    outcome(json.dumps(value), "tiny", 1)


@settings(max_examples=300, deadline=None)
@given(valid_bodies, st.sampled_from(["mochi-1", "tiny"]), st.integers(0, 2**32 - 1))
def test_valid_requests_are_accepted_as_a_fixed_point(
    body: dict[str, Any], profile: str, seed: int
) -> None:
    first = normalize_request(json.dumps(body), profile=profile, fresh_seed=seed)
    assert first["prompt"] == body["prompt"]
    assert normalize_request(json.dumps(first), profile=profile, fresh_seed=0) == first


@settings(max_examples=500, deadline=None)
@given(
    request_bodies,
    st.sampled_from(["mochi-1", "tiny"]),
    st.integers(0, 2**32 - 1),
)
def test_normalising_twice_is_a_fixed_point(body: dict[str, Any], profile: str, seed: int) -> None:
    first = outcome(json.dumps(body), profile, seed)
    if isinstance(first, InvalidRequest):
        return
    assert set(first) == FIELDS
    assert isinstance(first["guidance_scale"], float)
    assert all(
        type(first[key]) is int
        for key in ("num_frames", "width", "height", "fps", "num_inference_steps", "seed")
    )
    other_profile = "tiny" if profile == "mochi-1" else "mochi-1"
    assert normalize_request(json.dumps(first), profile=profile, fresh_seed=seed) == first
    assert normalize_request(json.dumps(first), profile=other_profile, fresh_seed=0) == first
