"""Speed options and the warm-up, on the tiny model (CPU): same video, or a valid one."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
from prometheus_client import REGISTRY

import rust_infer
from rust_infer import NormalizedParams
from t2v.metrics import metrics
from t2v.model.acceleration import (
    COMPILE,
    FIRST_BLOCK_CACHE,
    AccelerationConfig,
    AccelerationUnavailable,
    parse_acceleration,
)
from t2v.model.pipeline import LoadedModel, generate, load_model, no_step_hook
from t2v.settings import Settings
from t2v.worker.models import ModelHolder, warmup_params
from tests.model.hooks import STEPS, Canceled, job_params

# Far above diffusers' 0.05, which the tiny random model never meets (every step computes):
# at 0.5 the second of two steps reuses the first's residuals, so the cache visibly works.
SKIPPING_THRESHOLD = 0.5


def _params(**overrides: object) -> NormalizedParams:
    return job_params({"num_frames": 7, "width": 64, "height": 32, "seed": 3}, overrides)


def _cancel_after_first_step(
    pipe: Any, step: int, timestep: Any, kwargs: dict[str, object]
) -> dict[str, object]:
    raise Canceled


def _accelerated(model_dir: pathlib.Path, *names: str, **options: Any) -> LoadedModel:
    config = AccelerationConfig(names=parse_acceleration(",".join(names)), **options)
    return load_model(str(model_dir), device="cpu", acceleration=config)


def _compiled_graphs() -> int:
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def _sample(name: str) -> float:
    metrics()  # registers the series on first use
    return REGISTRY.get_sample_value(name) or 0.0


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    """torch.compile's caches and counters start empty and are emptied again afterwards."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield
    torch._dynamo.reset()


@pytest.fixture(scope="module")
def plain_video(tiny_model: LoadedModel) -> npt.NDArray[np.uint8]:
    return generate(tiny_model, _params(), no_step_hook)


def test_parse_keeps_known_names_once_in_applying_order() -> None:
    assert parse_acceleration("") == ()
    assert parse_acceleration(" compile, fp8,compile, ") == ("fp8", "compile")
    assert parse_acceleration("first-block-cache,compile") == (FIRST_BLOCK_CACHE, COMPILE)


def test_unknown_names_are_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"turbo.*allowed: fp8, first-block-cache, compile"):
        parse_acceleration("compile,turbo")


def test_settings_read_the_options() -> None:
    default = Settings.from_env({})
    assert (default.acceleration, default.warmup) == (AccelerationConfig(), True)
    settings = Settings.from_env(
        {
            "T2V_ACCELERATION": "compile,first-block-cache",
            "T2V_COMPILE_BACKEND": "eager",
            "T2V_FBC_THRESHOLD": "0.1",
            "T2V_WARMUP": "false",
        }
    )
    assert settings.acceleration == AccelerationConfig(
        names=(FIRST_BLOCK_CACHE, COMPILE), compile_backend="eager", fbc_threshold=0.1
    )
    assert settings.warmup is False


def test_unset_means_compile_on_cuda_and_nothing_on_cpu() -> None:
    default = Settings.from_env({}).acceleration
    assert default.names is None
    assert default.names_on("cuda") == (COMPILE,)
    assert default.names_on("cuda:1") == (COMPILE,)
    assert default.names_on("cpu") == ()


@pytest.mark.parametrize("raw", ["", "none", " None "])
def test_every_option_can_be_turned_off_on_cuda_too(raw: str) -> None:
    assert Settings.from_env({"T2V_ACCELERATION": raw}).acceleration.names_on("cuda") == ()


def test_a_cpu_worker_loads_the_plain_model_by_default(tiny_model_dir: pathlib.Path) -> None:
    model = load_model(str(tiny_model_dir), device="cpu", acceleration=AccelerationConfig())
    assert dict(model.acceleration) == {}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"T2V_ACCELERATION": "fast"}, r"T2V_ACCELERATION: unknown .*fast.*allowed"),
        ({"T2V_FBC_THRESHOLD": "0"}, r"T2V_FBC_THRESHOLD must be > 0"),
        ({"T2V_WARMUP": "maybe"}, r"T2V_WARMUP must be one of"),
    ],
)
def test_bad_settings_fail_at_start_up(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_fp8_is_refused_on_cpu_before_any_weights_are_read(tmp_path: pathlib.Path) -> None:
    # No model at this path: the refusal must come first, naming the option and the reason.
    with pytest.raises(AccelerationUnavailable, match=r"^fp8: float8 matmuls need CUDA"):
        _accelerated(tmp_path / "missing", "fp8")


@pytest.mark.usefixtures("fresh_dynamo")
def test_compile_gives_the_same_frames_as_plain(
    tiny_model_dir: pathlib.Path, plain_video: npt.NDArray[np.uint8]
) -> None:
    compiled = _accelerated(tiny_model_dir, "compile", compile_backend="eager")
    assert list(compiled.acceleration) == [COMPILE]
    video = generate(compiled, _params(), no_step_hook)
    assert _compiled_graphs() > 0
    # The eager backend runs the traced graph with the same kernels in the same order, so the
    # frames are bit-identical; any difference would mean the trace changed the computation.
    np.testing.assert_array_equal(video, plain_video)


def test_first_block_cache_skips_steps_and_keeps_the_video_valid(
    tiny_model_dir: pathlib.Path, plain_video: npt.NDArray[np.uint8]
) -> None:
    cached = _accelerated(tiny_model_dir, FIRST_BLOCK_CACHE, fbc_threshold=SKIPPING_THRESHOLD)
    assert cached.pipe.transformer.is_cache_enabled
    # The last block only runs on steps the cache did not skip.
    computed: list[int] = []
    last_block = cached.pipe.transformer.transformer_blocks[-1]
    handle = last_block.ff.register_forward_hook(lambda *_: computed.append(1))
    try:
        video = generate(cached, _params(), no_step_hook)
    finally:
        handle.remove()
    assert len(computed) < STEPS
    assert video.shape == plain_video.shape
    assert video.dtype == np.dtype(np.uint8)
    difference = np.abs(video.astype(np.int16) - plain_video.astype(np.int16))
    # Measured: mean 1.3 and max 15 levels of 255. A skipped step is an approximation, not
    # a different video; a mean beyond 8 levels would be a broken cache, not an approximation.
    assert 0 < difference.mean() < 8


def test_an_interrupted_cached_run_does_not_leak_into_the_next(
    tiny_model_dir: pathlib.Path,
) -> None:
    cached = _accelerated(tiny_model_dir, FIRST_BLOCK_CACHE, fbc_threshold=SKIPPING_THRESHOLD)
    taller = _params(height=48)
    expected = generate(cached, taller, no_step_hook)
    with pytest.raises(Canceled):
        generate(cached, _params(), _cancel_after_first_step)
    # Without the reset, the cache compares against the canceled run's 32-pixel residuals.
    np.testing.assert_array_equal(generate(cached, taller, no_step_hook), expected)


def test_warmup_geometry_is_valid_and_small_unless_compiled(tiny_model: LoadedModel) -> None:
    assert {key: warmup_params(tiny_model)[key] for key in ("num_frames", "height", "width")} == {
        "num_frames": 7,
        "height": 32,
        "width": 64,
    }
    mochi = dataclasses.replace(tiny_model, profile="mochi-1")
    small = warmup_params(mochi)
    assert (small["num_frames"], small["height"], small["width"]) == (7, 128, 224)
    assert (small["num_inference_steps"], small["guidance_scale"]) == (2, 4.5)
    full = warmup_params(dataclasses.replace(mochi, acceleration={COMPILE: "compiled"}))
    assert (full["num_frames"], full["height"], full["width"]) == (163, 480, 848)


def _holder(model_dir: pathlib.Path, **env: str) -> ModelHolder:
    return ModelHolder(Settings.from_env({"T2V_MODEL": str(model_dir), "T2V_DEVICE": "cpu", **env}))


async def _wait_ready(holder: ModelHolder) -> LoadedModel:
    holder.start_loading()
    while not holder.ready:
        assert holder.failed is None
        await asyncio.sleep(0.01)
    return await holder.get()


async def test_warmup_runs_before_ready_and_is_not_a_generation(
    tiny_model_dir: pathlib.Path,
) -> None:
    generations, steps = _sample("t2v_generations_total"), _sample("t2v_denoise_step_seconds_count")
    holder = _holder(tiny_model_dir)
    assert holder.warmup_seconds is None
    await _wait_ready(holder)
    assert holder.load_seconds is not None
    assert holder.warmup_seconds is not None and holder.warmup_seconds > 0
    assert _sample("t2v_generations_total") == generations
    assert _sample("t2v_denoise_step_seconds_count") == steps


async def test_warmup_can_be_turned_off(tiny_model_dir: pathlib.Path) -> None:
    holder = _holder(tiny_model_dir, T2V_WARMUP="0")
    await _wait_ready(holder)
    assert holder.load_seconds is not None
    assert holder.warmup_seconds is None


@pytest.mark.usefixtures("fresh_dynamo")
async def test_a_compiled_model_compiles_before_ready_not_in_the_first_job(
    tiny_model_dir: pathlib.Path,
) -> None:
    holder = _holder(tiny_model_dir, T2V_ACCELERATION="compile", T2V_COMPILE_BACKEND="eager")
    model = await _wait_ready(holder)
    assert list(model.acceleration) == [COMPILE]
    compiled_in_warmup = _compiled_graphs()
    assert compiled_in_warmup > 0
    # Jobs with the profile's defaults (what most jobs ask for) compile nothing new, whatever
    # their prompts' lengths (the text tokens are the one shape that changes from job to job).
    defaults = rust_infer.profile_defaults(model.profile)
    geometry = {key: defaults[key] for key in ("num_frames", "height", "width")}
    prompts = ["a cat", "a red fox running through a snowy forest at night under the stars"]
    for seed, prompt in enumerate(prompts):
        generate(model, _params(prompt=prompt, seed=seed, **geometry), no_step_hook)
        assert _compiled_graphs() == compiled_in_warmup
