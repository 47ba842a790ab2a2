"""Pieces shared by the model tests: request parameters and the step hook's cancellation."""

from __future__ import annotations

from collections.abc import Mapping

STEPS = 2


def job_params(
    size_and_seed: Mapping[str, object], overrides: Mapping[str, object]
) -> dict[str, object]:
    """A short generation request of the given geometry and seed; ``overrides`` win."""
    return {
        "prompt": "a red fox running through a snowy forest",
        "negative_prompt": "",
        "num_inference_steps": STEPS,
        "guidance_scale": 4.5,
        **size_and_seed,
        **overrides,
    }


class Canceled(BaseException):
    """Like the worker's cancellation: a BaseException, so `except Exception` cannot eat it."""
