from collections.abc import Callable, Mapping
from typing import Final, TypeVar, final

import numpy as np
import numpy.typing as npt

from rust_infer._errors import ConfigurationError as ConfigurationError
from rust_infer._errors import DeadlineExceeded as DeadlineExceeded
from rust_infer._errors import InvalidMedia as InvalidMedia
from rust_infer._errors import InvalidRequest as InvalidRequest
from rust_infer._errors import JobCanceled as JobCanceled
from rust_infer._errors import RunFailed as RunFailed
from rust_infer._errors import RustInferError as RustInferError
from rust_infer._errors import TransientError as TransientError
from rust_infer._params import NormalizedParams, ProfileDefaults

__all__ = [
    "FAILURE_CODES",
    "FRAME_GROUP",
    "GPUS",
    "MAX_WEBHOOK_CHARS",
    "PROFILES",
    "SIDE_MULTIPLE",
    "WEBHOOK_EVENTS",
    "ConfigurationError",
    "DeadlineExceeded",
    "InvalidMedia",
    "InvalidRequest",
    "JobCanceled",
    "RunFailed",
    "RustInferError",
    "StepHook",
    "TransientError",
    "artifact_key",
    "encode_mp4",
    "estimate",
    "normalize_request",
    "probe_mp4",
    "profile_defaults",
    "request_schema",
    "sha256_hex",
    "supervise",
]

_T = TypeVar("_T")

FAILURE_CODES: Final[tuple[str, ...]]
GPUS: Final[tuple[str, ...]]
PROFILES: Final[tuple[str, ...]]
# The geometry Mochi's VAE needs: sides are multiples of SIDE_MULTIPLE, clips 6k+1 frames.
SIDE_MULTIPLE: Final[int]
FRAME_GROUP: Final[int]
# A request's webhook: its longest URL and the events it may ask for.
MAX_WEBHOOK_CHARS: Final[int]
WEBHOOK_EVENTS: Final[tuple[str, ...]]

def normalize_request(
    body: bytes | str, *, profile: str = "mochi-1", fresh_seed: int
) -> NormalizedParams: ...
def profile_defaults(profile: str) -> ProfileDefaults: ...
def request_schema(profile: str = "mochi-1") -> str: ...

@final
class StepHook:
    @property
    def steps_done(self) -> int: ...
    def __call__(
        self, pipe: object, step_index: int, timestep: object, callback_kwargs: dict[str, object]
    ) -> dict[str, object]: ...

def supervise(
    run: Callable[[StepHook], _T],
    *,
    total_steps: int,
    on_progress: Callable[[int, int], object],
    is_canceled: Callable[[], bool],
    deadline_s: float | None = None,
) -> _T: ...

# MP4 artifacts (src/video/, docs/video.md).
def encode_mp4(
    frames: npt.NDArray[np.uint8],
    fps: int,
    *,
    crf: int | None = None,
    bitrate_kbps: int | None = None,
) -> bytes: ...
def probe_mp4(data: bytes) -> dict[str, object]: ...
def sha256_hex(data: bytes) -> str: ...

# Content addresses and the estimator (src/artifact.rs, src/estimate.rs, docs/estimator.md).
def artifact_key(params: Mapping[str, object], model_revision: str) -> str: ...
def estimate(
    params: Mapping[str, object], *, model: str = "mochi-1", gpu: str = "h100"
) -> dict[str, float | int]: ...
