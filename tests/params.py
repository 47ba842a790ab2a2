"""Normalised params for tests that need a job, not a particular request."""

from __future__ import annotations

import json

import rust_infer
from rust_infer import NormalizedParams


def job_params(prompt: str = "a cat") -> NormalizedParams:
    return rust_infer.normalize_request(json.dumps({"prompt": prompt}), fresh_seed=0)
