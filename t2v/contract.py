"""The job contract as the API applies it: rust_infer validates and normalises (the only
place the request rules are written), and its errors become API errors here.

The normalised request is a `NormalizedParams`: what submit stores as a job's params and
what infer hands to the model as they are, checked nowhere else."""

from __future__ import annotations

import hashlib
import json
import random

import rust_infer
from rust_infer import NormalizedParams
from t2v.errors import InvalidRequestError

__all__ = [
    "NormalizedParams",
    "admit",
    "check_idempotency_key",
    "normalize",
    "prompt_hash",
    "request_hash",
]

MAX_IDEMPOTENCY_KEY = 255


def normalize(body: bytes, *, profile: str) -> NormalizedParams:
    """Validate and normalise a request body; an unseeded request gets a fresh random seed.

    The seed is shown to the user and only makes the video repeatable: it needs no
    cryptographic randomness (Python's generator, reseeded in every forked worker)."""
    try:
        seed = random.getrandbits(32)
        return rust_infer.normalize_request(body, profile=profile, fresh_seed=seed)
    except rust_infer.InvalidRequest as exc:
        raise InvalidRequestError(exc.message, code=exc.code, field=exc.field) from exc


def request_hash(body: bytes) -> str:
    """Hash of the request as sent (key order and spacing do not matter), for Idempotency-Key."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    return hashlib.sha256(canonical.encode()).hexdigest()


def prompt_hash(prompt: str) -> str:
    """What the logs say of a prompt: its SHA-256, enough to match a job to a prompt someone
    already has, and never the prompt itself (the logs are read by more people than jobs)."""
    return hashlib.sha256(prompt.encode()).hexdigest()


def check_idempotency_key(key: str) -> str:
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise InvalidRequestError(
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters",
            code="invalid_idempotency_key",
            field="Idempotency-Key",
        )
    return key


def admit(params: NormalizedParams, *, profile: str, gpu: str) -> float:
    """Refuse a request that cannot fit the GPU's memory; return its estimated seconds."""
    estimate = rust_infer.estimate(params, model=profile, gpu=gpu)
    if estimate["vram_bytes"] > estimate["gpu_memory_bytes"]:
        need = estimate["vram_bytes"] / 2**30
        have = estimate["gpu_memory_bytes"] / 2**30
        raise InvalidRequestError(
            f"this request needs about {need:.0f} GiB of GPU memory and the {gpu} has "
            f"{have:.0f} GiB: lower the resolution or the number of frames",
            code="exceeds_gpu_memory",
        )
    return float(estimate["seconds"])
