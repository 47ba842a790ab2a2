"""No input to any rust_infer function crashes the Python process.

Every function gets arbitrary arguments; each call must return or raise an ordinary Python
exception of an expected kind. A Rust panic that crossed into Python would surface as
pyo3's ``PanicException`` (a ``BaseException``) and fail these tests; an abort would end the
test run.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rust_infer
from rust_infer import (
    DeadlineExceeded,
    JobCanceled,
    NormalizedParams,
    RunFailed,
    RustInferError,
    StepHook,
)

#: What a bad argument may raise: our hierarchy, or Python's own argument errors
#: (PyO3 raises TypeError/OverflowError while converting arguments).
EXPECTED = (RustInferError, TypeError, ValueError, OverflowError)
FIELDS = [
    "prompt", "negative_prompt", "num_frames", "duration_s", "width", "height", "fps",
    "num_inference_steps", "guidance_scale", "seed",
]  # fmt: skip

odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.just("\ud800"),  # a lone surrogate
    st.builds(object),
    st.builds(bytearray, st.binary(max_size=10)),
)
odd_values = st.recursive(
    odd_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(*EXPECTED):
        function(*args, **kwargs)


def valid_params() -> NormalizedParams:
    return rust_infer.normalize_request(b'{"prompt": "a fox", "seed": 3}', fresh_seed=0)


param_dicts = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), odd_values, max_size=12),
    st.builds(
        lambda edits: {**valid_params(), **edits},
        st.dictionaries(st.sampled_from(FIELDS), odd_values, max_size=3),
    ),
    st.dictionaries(odd_scalars.filter(lambda key: isinstance(key, int)), odd_values, max_size=3),
    odd_values,
)


@settings(max_examples=300, deadline=None)
@given(odd_values, odd_values, odd_values)
def test_normalize_request(body: Any, profile: Any, fresh_seed: Any) -> None:
    call(rust_infer.normalize_request, body, profile=profile, fresh_seed=fresh_seed)
    if isinstance(body, dict):
        call(rust_infer.normalize_request, json.dumps(body, default=repr), fresh_seed=1)


@settings(max_examples=200, deadline=None)
@given(odd_values)
def test_profile_defaults(profile: Any) -> None:
    call(rust_infer.profile_defaults, profile)


@settings(max_examples=300, deadline=None)
@given(odd_values | st.binary(max_size=4096))
def test_probe_mp4_and_sha256_hex(data: Any) -> None:
    call(rust_infer.probe_mp4, data)
    call(rust_infer.sha256_hex, data)


dtypes = st.sampled_from(
    [np.uint8, np.int8, np.uint16, np.float32, np.float64, np.bool_, np.complex64, np.object_]
)
shapes = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=20)
frame_shapes = st.tuples(
    st.integers(0, 3), st.integers(0, 34), st.integers(0, 34), st.integers(1, 4)
)


def strided(array: np.ndarray[Any, Any], how: int) -> np.ndarray[Any, Any]:
    """The same data seen through odd strides: reversed, stepped, transposed, read-only."""
    if how == 1 and array.ndim:
        return array[::-1]
    if how == 2 and array.ndim:
        return array[::2]
    if how == 3:
        return array.T
    if how == 4:
        array = array.copy()
        array.setflags(write=False)
    if how == 5 and array.ndim:
        return np.broadcast_to(array[:1], array.shape)
    return array


@settings(max_examples=300, deadline=None)
@given(
    hnp.arrays(dtypes, shapes) | hnp.arrays(np.uint8, frame_shapes),
    st.integers(0, 5),
    st.integers(-(2**70), 2**70) | st.sampled_from([0, 1, 30, 240, 241]),
    st.none() | st.integers(-(2**70), 2**70) | st.integers(10, 53),
    st.none() | st.integers(-(2**70), 2**70) | st.integers(0, 5000),
)
def test_encode_mp4(
    array: np.ndarray[Any, Any], how: int, fps: int, crf: int | None, bitrate: int | None
) -> None:
    call(rust_infer.encode_mp4, strided(array, how), fps, crf=crf, bitrate_kbps=bitrate)


@settings(max_examples=100, deadline=None)
@given(odd_values, odd_values)
def test_encode_mp4_with_non_arrays(frames: Any, fps: Any) -> None:
    call(rust_infer.encode_mp4, frames, fps)


@settings(max_examples=300, deadline=None)
@given(param_dicts, odd_values, odd_values, odd_values)
def test_artifact_key_and_estimate(params: Any, revision: Any, model: Any, gpu: Any) -> None:
    call(rust_infer.artifact_key, params, revision)
    call(rust_infer.estimate, params)
    call(rust_infer.estimate, params, model=model, gpu=gpu)
    for gpu_name in rust_infer.GPUS:
        for model_name in rust_infer.PROFILES:
            call(rust_infer.estimate, params, model=model_name, gpu=gpu_name)


class Boom(Exception):
    pass


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class BadBool:
    def __bool__(self) -> bool:
        raise Boom("truthiness failed")


raised = st.sampled_from(
    [Boom("x"), Unprintable(), MemoryError(), TimeoutError(), RunFailed("internal", "m")]
)


def raiser(error: BaseException) -> Callable[..., object]:
    def raise_it(*args: object) -> object:
        raise error

    return raise_it


callables = st.one_of(
    st.builds(lambda value: lambda *args: value, odd_values),
    st.builds(raiser, raised),
    st.just(lambda *args: BadBool()),
    st.just(lambda: True),  # wrong arity for every callback
    odd_values,  # not callable at all
)


def odd_run(
    hook_args: list[tuple[Any, Any, Any, Any]],
) -> Callable[[StepHook], object]:
    def run(hook: StepHook) -> object:
        for args in hook_args:
            hook(*args)
        return hook

    return run


hook_calls = st.tuples(odd_values, st.integers(), odd_values, odd_values | st.builds(dict))


@settings(max_examples=300, deadline=None)
@given(
    callables | st.builds(odd_run, st.lists(hook_calls, max_size=3)),
    odd_values | st.integers(-5, 5),
    callables,
    callables,
    st.none() | st.floats(allow_nan=True, allow_infinity=True) | odd_values,
)
def test_supervise(
    run: Any, total_steps: Any, on_progress: Any, is_canceled: Any, deadline_s: Any
) -> None:
    try:
        result = rust_infer.supervise(
            run,
            total_steps=total_steps,
            on_progress=on_progress,
            is_canceled=is_canceled,
            deadline_s=deadline_s,
        )
    except (*EXPECTED, JobCanceled, DeadlineExceeded):
        return
    if isinstance(result, StepHook):
        # A hook kept past its run still behaves.
        call(result, None, 0, None, {})
        assert result.steps_done >= 0
    assert not (isinstance(deadline_s, float) and math.isnan(deadline_s))
