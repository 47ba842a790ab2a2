"""The types of the contract's results (the rules themselves are in ``src/contract.rs``)."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class ProfileDefaults(TypedDict):
    """What a model profile gives the optional fields a request leaves out (``seed`` aside)."""

    negative_prompt: str
    num_frames: int
    width: int
    height: int
    fps: int
    num_inference_steps: int
    guidance_scale: float


class NormalizedParams(ProfileDefaults):
    """A valid, complete request as ``normalize_request`` returns it: every default applied,
    ``duration_s`` turned into ``num_frames``, a seed drawn when the request had none."""

    prompt: str
    seed: int
    # Only when the request names a webhook; the events then default to ["completed"].
    webhook: NotRequired[str]
    webhook_events: NotRequired[list[str]]
