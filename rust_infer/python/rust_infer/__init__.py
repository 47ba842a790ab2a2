"""rust_infer: the t2v worker core (job contract, supervised runs, MP4 artifacts).

The compiled module ``rust_infer._rust_infer`` holds the implementation; this package is the
public face and re-exports it.
"""

from rust_infer._params import NormalizedParams, ProfileDefaults
from rust_infer._rust_infer import (
    FAILURE_CODES,
    FRAME_GROUP,
    GPUS,
    MAX_WEBHOOK_CHARS,
    PROFILES,
    SIDE_MULTIPLE,
    WEBHOOK_EVENTS,
    ConfigurationError,
    DeadlineExceeded,
    InvalidMedia,
    InvalidRequest,
    JobCanceled,
    RunFailed,
    RustInferError,
    StepHook,
    TransientError,
    artifact_key,
    encode_mp4,
    estimate,
    normalize_request,
    probe_mp4,
    profile_defaults,
    request_schema,
    sha256_hex,
    supervise,
)

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
    "NormalizedParams",
    "ProfileDefaults",
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
