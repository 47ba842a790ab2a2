"""The estimator as Python sees it: rust_infer.estimate (constants in docs/estimator.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rust_infer import (
    GPUS,
    ConfigurationError,
    InvalidRequest,
    NormalizedParams,
    estimate,
    normalize_request,
)


def params(profile: str = "mochi-1", **request: Any) -> NormalizedParams:
    request.setdefault("prompt", "a red fox")
    return normalize_request(json.dumps(request), profile=profile, fresh_seed=1)


def tiny(**request: Any) -> dict[str, float | int]:
    return estimate(params("tiny", **request), model="tiny", gpu="cpu-tiny")


def test_result_keys_and_types() -> None:
    cost = estimate(params())
    seconds = ("seconds", "seconds_per_step", "decode_seconds", "encode_seconds", "fixed_seconds")
    assert set(cost) == {"vram_bytes", "visual_tokens", "gpu_memory_bytes", *seconds}
    assert all(isinstance(cost[key], int) for key in ("vram_bytes", "visual_tokens"))
    assert all(isinstance(cost[key], float) for key in seconds)


@pytest.mark.parametrize("target", [("mochi-1", "h200"), ("tiny", "cpu-tiny")])
def test_the_phases_add_up_to_the_whole(target: tuple[str, str]) -> None:
    model, gpu = target
    request = params(model)
    cost = estimate(request, model=model, gpu=gpu)
    steps = int(request["num_inference_steps"])
    parts = steps * cost["seconds_per_step"] + cost["decode_seconds"]
    parts += cost["encode_seconds"] + cost["fixed_seconds"]
    assert parts == pytest.approx(cost["seconds"])
    assert min(cost["decode_seconds"], cost["encode_seconds"]) > 0


# BENCHMARKS.md, "The default video": 163 x 480 x 848, 64 steps, compiled, on an H200.
MEASURED_DEFAULT_VIDEO_S = 397.0


def test_full_size_on_an_h200_is_the_measured_default_video() -> None:
    cost = estimate(params(), gpu="h200")
    assert cost["visual_tokens"] == 44_520
    # The MFU is the one measured with infer's default (compiled) at this size.
    assert cost["seconds"] == pytest.approx(MEASURED_DEFAULT_VIDEO_S, rel=0.05)
    # bf16 weights (30.5 GB) and the tiled VAE decode fit an H100's memory too.
    assert 30e9 < cost["vram_bytes"] < estimate(params(), gpu="h100")["gpu_memory_bytes"]


def test_h200_has_the_h100s_speed_and_more_memory() -> None:
    h100, h200 = estimate(params(), gpu="h100"), estimate(params(), gpu="h200")
    assert h200["seconds"] == h100["seconds"]
    assert h200["vram_bytes"] == h100["vram_bytes"]
    assert h200["gpu_memory_bytes"] > h100["gpu_memory_bytes"]
    assert GPUS == ("h100", "h200", "cpu-tiny")


@pytest.mark.parametrize(
    ("request_", "measured_s"),
    [
        ({"width": 224, "height": 128, "num_frames": 19, "num_inference_steps": 8}, 1.8),
        ({"width": 432, "height": 240, "num_frames": 31, "num_inference_steps": 4}, 9.8),
    ],
)
def test_tiny_calibration_points_within_30_percent(
    request_: dict[str, int], measured_s: float
) -> None:
    assert tiny(**request_)["seconds"] == pytest.approx(measured_s, rel=0.3)


@pytest.mark.parametrize(
    ("field", "small", "large"),
    [
        ("num_frames", 19, 31),
        ("width", 224, 240),
        ("height", 128, 144),
        ("num_inference_steps", 8, 9),
    ],
)
@pytest.mark.parametrize("target", [("mochi-1", "h100"), ("tiny", "cpu-tiny")])
def test_cost_grows_with_frames_resolution_and_steps(
    field: str, small: int, large: int, target: tuple[str, str]
) -> None:
    model, gpu = target
    base = {"width": 224, "height": 128, "num_frames": 19, "num_inference_steps": 8}
    lower = estimate(params(model, **{**base, field: small}), model=model, gpu=gpu)
    upper = estimate(params(model, **{**base, field: large}), model=model, gpu=gpu)
    assert upper["seconds"] > lower["seconds"]
    assert upper["vram_bytes"] >= lower["vram_bytes"]


def test_guidance_doubles_the_step_cost() -> None:
    guided = estimate(params(guidance_scale=4.5))
    unguided = estimate(params(guidance_scale=1.0))
    overhead = 0.02  # the assumed per-step overhead, outside the FLOPs
    ratio = (guided["seconds_per_step"] - overhead) / (unguided["seconds_per_step"] - overhead)
    assert ratio == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [({"gpu": "a100"}, "unknown_gpu"), ({"model": "mochi-2"}, "unknown_model")],
)
def test_unknown_names_are_configuration_errors(kwargs: dict[str, str], code: str) -> None:
    with pytest.raises(ConfigurationError, match="known: ") as caught:
        estimate(params(), **kwargs)
    assert (caught.value.code, caught.value.retryable) == (code, False)
    assert isinstance(caught.value, ValueError)


def test_params_must_be_normalised() -> None:
    with pytest.raises(InvalidRequest) as caught:
        estimate({"prompt": "a fox"})
    assert caught.value.code == "missing_field"
