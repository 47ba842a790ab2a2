"""Pieces shared by the model tests: request parameters and the step hook's cancellation."""

from __future__ import annotations

import json
from collections.abc import Mapping

import rust_infer
from rust_infer import NormalizedParams

STEPS = 2


def job_params(
    size_and_seed: Mapping[str, object], overrides: Mapping[str, object]
) -> NormalizedParams:
    """A short generation request of the given geometry and seed, normalised as submit does
    (tiny profile); ``overrides`` win."""
    request = {
        "prompt": "a red fox running through a snowy forest",
        "negative_prompt": "",
        "num_inference_steps": STEPS,
        "guidance_scale": 4.5,
        **size_and_seed,
        **overrides,
    }
    return rust_infer.normalize_request(json.dumps(request), profile="tiny", fresh_seed=0)


class Canceled(BaseException):
    """Like the worker's cancellation: a BaseException, so `except Exception` cannot eat it."""
