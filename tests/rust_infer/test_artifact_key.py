"""Content addresses: rust_infer.artifact_key over normalised params and a model revision."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rust_infer import (
    InvalidRequest,
    NormalizedParams,
    RustInferError,
    artifact_key,
    normalize_request,
)

KEY = re.compile(r"videos/[0-9a-f]{64}\.mp4")


def params(**request: Any) -> NormalizedParams:
    request.setdefault("prompt", "a red fox in the snow")
    request.setdefault("seed", 42)
    return normalize_request(json.dumps(request), fresh_seed=0)


def test_golden_key() -> None:
    # Pinned (the same value as the Rust test): a change orphans every stored video.
    assert artifact_key(params(), "rev-1") == (
        "videos/618e3d4f3824d73066055f58a2f96fc0d1c5f2750c258618ee4b6a56bc00514e.mp4"
    )


def test_key_is_sha256_of_the_documented_canonical_form() -> None:
    normalised = params(prompt='caf\u00e9 "quoted"\n\tline', guidance_scale=5)
    canonical = json.dumps(normalised, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{canonical}\nrev".encode()).hexdigest()
    assert artifact_key(normalised, "rev") == f"videos/{digest}.mp4"


def test_defaults_and_their_explicit_values_share_a_key() -> None:
    explicit = params(
        negative_prompt="", num_frames=163, width=848, height=480, fps=30,
        num_inference_steps=64, guidance_scale=4.5,
    )  # fmt: skip
    assert artifact_key(params(), "r") == artifact_key(explicit, "r")


def test_key_order_and_number_spelling_do_not_matter() -> None:
    base = params()
    shuffled = dict(reversed(list(base.items())))
    assert artifact_key(shuffled, "r") == artifact_key(base, "r")
    # 4.50 and 4.5 are the same float; 64.0 counts as the integer 64 (as in requests).
    respelled = {**base, "guidance_scale": float("4.50"), "num_inference_steps": 64.0}
    assert artifact_key(respelled, "r") == artifact_key(base, "r")
    assert artifact_key({**base, "guidance_scale": -0.0}, "r") == artifact_key(
        {**base, "guidance_scale": 0}, "r"
    )


def test_a_duration_request_keys_like_its_frame_count() -> None:
    assert artifact_key(params(duration_s=5.4), "r") == artifact_key(params(num_frames=163), "r")


@pytest.mark.parametrize(
    "change",
    [{"seed": 43}, {"prompt": "a red fox in the rain"}, {"negative_prompt": "blur"},
     {"guidance_scale": 4.6}, {"num_inference_steps": 63}, {"fps": 24}, {"width": 832}],
)  # fmt: skip
def test_any_change_changes_the_key(change: dict[str, Any]) -> None:
    assert artifact_key(params(**change), "r") != artifact_key(params(), "r")


def test_the_revision_changes_the_key() -> None:
    assert artifact_key(params(), "r1") != artifact_key(params(), "r2")
    assert KEY.fullmatch(artifact_key(params(), "r1"))


def test_an_empty_revision_is_a_plain_value_error() -> None:
    with pytest.raises(ValueError, match="model_revision") as caught:
        artifact_key(params(), "")
    assert not isinstance(caught.value, RustInferError)


@pytest.mark.parametrize(
    ("edit", "code", "field"),
    [
        ({"seed": None}, "missing_field", "seed"),
        ({"num_frames": 8}, "invalid_value", "num_frames"),
        ({"prompt": 5}, "invalid_type", "prompt"),
        ({"guidance_scale": float("nan")}, "invalid_type", "guidance_scale"),
        ({"width": [848]}, "invalid_type", "width"),
        ({"extra": 1}, "unknown_field", "extra"),
        ({"duration_s": 2}, "conflicting_fields", "duration_s"),
        ({"seed": 2**70}, "out_of_range", "seed"),
    ],
)
def test_params_that_are_not_normalised_are_refused(
    edit: dict[str, object], code: str, field: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        artifact_key({**params(), **edit}, "r")
    assert (caught.value.code, caught.value.field) == (code, field)


def test_a_missing_field_is_refused_rather_than_defaulted() -> None:
    partial = {key: value for key, value in params().items() if key != "fps"}
    with pytest.raises(InvalidRequest, match="fps is missing"):
        artifact_key(partial, "r")


def test_non_mappings_and_non_string_keys_are_type_errors() -> None:
    with pytest.raises(TypeError, match="mapping"):
        artifact_key([("prompt", "a")], "r")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keys must be str"):
        artifact_key({**params(), 1: 2}, "r")  # type: ignore[dict-item]


@settings(max_examples=200, deadline=None)
@given(
    st.text(min_size=1, max_size=50).filter(lambda text: text.strip() != ""),
    st.integers(0, 2**32 - 1),
    st.text(min_size=1, max_size=20),
)
def test_keys_are_stable_and_well_formed(prompt: str, seed: int, revision: str) -> None:
    try:
        normalised = params(prompt=prompt, seed=seed)
    except InvalidRequest:
        return  # a prompt the contract refuses (control characters) has no key
    key = artifact_key(normalised, revision)
    assert KEY.fullmatch(key)
    assert artifact_key(dict(sorted(normalised.items())), revision) == key
