"""Loading a saved Mochi pipeline and generating with it, on the tiny model (CPU)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from rust_infer import NormalizedParams
from t2v.model.manifest import MANIFEST_FILE, config_digest, read_manifest
from t2v.model.pipeline import LoadedModel, frames_to_uint8, generate, load_model, no_step_hook
from tests.model.hooks import Canceled, job_params


def _params(**overrides: object) -> NormalizedParams:
    return job_params(
        {"num_frames": 19, "width": 224, "height": 128, "fps": 30, "seed": 11}, overrides
    )


@pytest.fixture(scope="module")
def reference_video(tiny_model: LoadedModel) -> npt.NDArray[np.uint8]:
    return generate(tiny_model, _params(), no_step_hook)


def test_load_model_reads_the_manifest(
    tiny_model: LoadedModel, tiny_model_dir: pathlib.Path
) -> None:
    import torch

    manifest = read_manifest(tiny_model_dir)
    assert manifest is not None
    assert (tiny_model.name, tiny_model.profile) == ("tiny-mochi", "tiny")
    assert tiny_model.revision == manifest.revision
    assert (tiny_model.device, tiny_model.dtype) == ("cpu", torch.float32)
    assert type(tiny_model.pipe).__name__ == "MochiPipeline"


def test_generate_returns_contiguous_uint8_frames(reference_video: npt.NDArray[np.uint8]) -> None:
    assert reference_video.shape == (19, 128, 224, 3)
    assert reference_video.dtype == np.uint8
    assert reference_video.flags.c_contiguous
    assert reference_video.std() > 0  # random weights make noise, not a flat image


def test_same_seed_gives_identical_frames(
    tiny_model: LoadedModel, reference_video: npt.NDArray[np.uint8]
) -> None:
    np.testing.assert_array_equal(generate(tiny_model, _params(), no_step_hook), reference_video)


def test_other_seed_or_prompt_gives_other_frames(
    tiny_model: LoadedModel, reference_video: npt.NDArray[np.uint8]
) -> None:
    assert not np.array_equal(generate(tiny_model, _params(seed=12), no_step_hook), reference_video)
    other_prompt = generate(tiny_model, _params(prompt="a blue whale in the ocean"), no_step_hook)
    assert not np.array_equal(other_prompt, reference_video)


def test_step_hook_runs_once_per_step_in_order(tiny_model: LoadedModel) -> None:
    seen: list[tuple[int, float, bool]] = []

    def record(pipe: Any, step: int, timestep: Any, kwargs: dict[str, object]) -> dict[str, object]:
        seen.append((step, float(timestep), "latents" in kwargs))
        return kwargs

    generate(tiny_model, _params(num_inference_steps=3, guidance_scale=1.0), record)
    assert [step for step, _, _ in seen] == [0, 1, 2]
    assert all(has_latents for _, _, has_latents in seen)
    assert len({timestep for _, timestep, _ in seen}) == 3


@pytest.mark.parametrize("error", [Canceled("job canceled"), RuntimeError("deadline")])
def test_hook_exception_propagates_unchanged(
    tiny_model: LoadedModel, reference_video: npt.NDArray[np.uint8], error: BaseException
) -> None:
    steps: list[int] = []

    def stop_at_second_step(
        pipe: Any, step: int, timestep: Any, kwargs: dict[str, object]
    ) -> dict[str, object]:
        steps.append(step)
        if step == 1:
            raise error
        return kwargs

    with pytest.raises(type(error)) as raised:
        generate(tiny_model, _params(num_inference_steps=4), stop_at_second_step)
    assert raised.value is error
    assert steps == [0, 1]
    # An aborted run leaves nothing behind that changes the next one.
    np.testing.assert_array_equal(generate(tiny_model, _params(), no_step_hook), reference_video)


def test_guidance_off_and_negative_prompt_are_accepted(
    tiny_model: LoadedModel, reference_video: npt.NDArray[np.uint8]
) -> None:
    unguided = generate(tiny_model, _params(guidance_scale=1.0, negative_prompt=None), no_step_hook)
    assert unguided.shape == reference_video.shape
    assert not np.array_equal(unguided, reference_video)
    negative = generate(tiny_model, _params(negative_prompt="blurry, low quality"), no_step_hook)
    assert not np.array_equal(negative, reference_video)


def test_without_manifest_revision_is_a_config_digest(
    tiny_model_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    plain = tmp_path / "plain-mochi"
    shutil.copytree(tiny_model_dir, plain)
    (plain / MANIFEST_FILE).unlink()
    loaded = load_model(str(plain), device="cpu")
    assert (loaded.name, loaded.profile) == ("plain-mochi", "mochi-1")
    assert loaded.revision == config_digest(plain)


def test_hub_cache_snapshot_revision_is_its_commit(
    tiny_model_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "models--genmo--mochi-1-preview" / "snapshots" / commit
    shutil.copytree(tiny_model_dir, snapshot)
    (snapshot / MANIFEST_FILE).unlink()
    loaded = load_model(str(snapshot), device="cpu")
    assert (loaded.name, loaded.revision, loaded.profile) == (
        "genmo/mochi-1-preview",
        commit,
        "mochi-1",
    )


def test_frames_to_uint8_rounds_and_clips() -> None:
    frames = np.array([[-0.5, 0.0, 0.499 / 255, 0.501 / 255, 1.0, 1.5]], dtype=np.float32)
    assert frames_to_uint8(frames).tolist() == [[0, 0, 0, 1, 255, 255]]


def test_importing_the_package_does_not_import_the_model_stack() -> None:
    code = (
        "import sys, t2v.model; "
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
