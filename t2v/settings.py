"""Typed settings, read once from the environment at start-up and never mutated."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from t2v.model.acceleration import (
    DEFAULT_COMPILE_BACKEND,
    DEFAULT_FBC_THRESHOLD,
    AccelerationConfig,
    parse_acceleration,
)
from t2v.model.manifest import PROFILE_MOCHI, PROFILE_TINY, read_manifest
from t2v.store import DEFAULT_REDIS_MAX_CONNECTIONS
from t2v.worker.faults import parse_faults

# Where the tiny model lives inside the data directory (`t2v build-tiny-model` builds it).
TINY_MODEL_SUBDIR = Path("models") / "tiny-mochi"
DEFAULT_VIDEO_RETENTION_S = 7 * 24 * 3600.0
DEFAULT_STREAM_MAX_S = 240.0
# A Hugging Face repository id ("org/name"), as opposed to a path on this machine.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
N = TypeVar("N", int, float)


def user_data_dir(env: Mapping[str, str]) -> Path:
    """The per-user data directory: ``$XDG_DATA_HOME/t2v``, else ``~/.local/share/t2v``
    (the XDG base directory rules: a relative XDG_DATA_HOME is ignored)."""
    xdg = env.get("XDG_DATA_HOME") or ""
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "t2v"
    home = env.get("HOME") or ""
    if not home:
        try:
            home = str(Path.home())
        except RuntimeError:
            # No HOME and no passwd entry (an arbitrary container user): somewhere writable.
            home = str(Path(tempfile.gettempdir()) / f"t2v-{os.getuid()}")
    return Path(home) / ".local" / "share" / "t2v"


def tiny_model_dir(data_dir: Path) -> Path:
    """Where the tiny model is expected when no model is named."""
    return data_dir / TINY_MODEL_SUBDIR


def looks_like_hub_id(model: str) -> bool:
    return bool(_HUB_ID.match(model)) and not Path(model).exists()


def _model(raw: str | None, data_dir: Path) -> str:
    """The model as an absolute path, unless it names a Hugging Face repository."""
    if not raw:
        return str(tiny_model_dir(data_dir))
    if looks_like_hub_id(raw):
        return raw
    return str(Path(raw).expanduser().absolute())


def _profile(env: Mapping[str, str], model: str, data_dir: Path) -> str:
    """T2V_MODEL_PROFILE, else what the model's manifest says, else by where the model is."""
    named = env.get("T2V_MODEL_PROFILE")
    if named:
        return named
    manifest = None if looks_like_hub_id(model) else read_manifest(Path(model))
    if manifest is not None:
        return manifest.profile
    return PROFILE_TINY if model == str(tiny_model_dir(data_dir)) else PROFILE_MOCHI


def _number(env: Mapping[str, str], name: str, default: N, parse: Callable[[str], N]) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        kind = "an integer" if parse is int else "a number"
        raise ValueError(f"{name} must be {kind} (got {raw!r})") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, float)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _number(env, name, default, int)


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if not value > 0:
        raise ValueError(f"{name} must be a number of seconds above 0 (got {value!r})")
    return value


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw not in _TRUE | _FALSE:
        raise ValueError(f"{name} must be one of {sorted(_TRUE | _FALSE)} (got {raw!r})")
    return raw in _TRUE


def _test_faults(env: Mapping[str, str]) -> str:
    """T2V_TEST_FAULTS (t2v/worker/faults.py), only where T2V_ENABLE_TEST_FAULTS says so."""
    if not _flag(env, "T2V_ENABLE_TEST_FAULTS", False):
        return ""
    raw = env.get("T2V_TEST_FAULTS") or ""
    parse_faults(raw)  # a typo fails at start-up, not as a fault that never fires
    return raw


def _acceleration_names(raw: str | None) -> tuple[str, ...] | None:
    # Unset: the device's default (compile on CUDA); set to "" or "none": no option.
    if raw is None:
        return None
    return () if raw.strip().lower() == "none" else parse_acceleration(raw)


def _acceleration(env: Mapping[str, str]) -> AccelerationConfig:
    threshold = _float(env, "T2V_FBC_THRESHOLD", DEFAULT_FBC_THRESHOLD)
    try:
        return AccelerationConfig(
            names=_acceleration_names(env.get("T2V_ACCELERATION")),
            compile_backend=env.get("T2V_COMPILE_BACKEND") or DEFAULT_COMPILE_BACKEND,
            fbc_threshold=threshold,
        )
    except ValueError as exc:
        raise ValueError(f"T2V_ACCELERATION: {exc}") from exc


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    store_url: str
    redis_max_connections: int
    artifacts_url: str
    event_sink: str | None
    model: str
    model_profile: str
    device: str | None
    lease_ttl_s: float
    heartbeat_s: float
    max_attempts: int
    job_deadline_s: float
    progress_interval_s: float
    queued_stale_s: float
    public_url: str | None
    gpu: str
    infer_workers: int
    acceleration: AccelerationConfig
    warmup: bool
    video_retention_s: float
    share_video_cache: bool
    model_process: bool
    test_faults: str
    # How long the server keeps one job event stream open before it ends it with a `retry:`
    # hint (the client reconnects with Last-Event-ID): under Knative's request timeout.
    stream_max_s: float = DEFAULT_STREAM_MAX_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        # Absolute from here on: the processes `t2v local` starts, and the user's next
        # command, may run from any folder.
        raw_data_dir = env.get("T2V_DATA_DIR")
        data_dir = (
            Path(raw_data_dir).expanduser().absolute() if raw_data_dir else user_data_dir(env)
        )
        lease_ttl_s = _float(env, "T2V_LEASE_TTL_S", 30.0)
        model = _model(env.get("T2V_MODEL"), data_dir)
        profile = _profile(env, model, data_dir)
        return cls(
            data_dir=data_dir,
            store_url=env.get("T2V_STORE_URL") or f"sqlite:///{data_dir / 'jobs.db'}",
            # Per process; callers beyond it wait for a free connection.
            redis_max_connections=max(
                1, _int(env, "T2V_REDIS_MAX_CONNECTIONS", DEFAULT_REDIS_MAX_CONNECTIONS)
            ),
            artifacts_url=env.get("T2V_ARTIFACTS_URL") or f"file://{(data_dir / 'artifacts')}",
            # K_SINK is injected by Knative's SinkBinding (and by the local runner).
            event_sink=env.get("K_SINK") or None,
            model=model,
            model_profile=profile,
            device=env.get("T2V_DEVICE") or None,
            lease_ttl_s=lease_ttl_s,
            heartbeat_s=_float(env, "T2V_HEARTBEAT_S", lease_ttl_s / 3),
            max_attempts=_int(env, "T2V_MAX_ATTEMPTS", 3),
            job_deadline_s=_float(env, "T2V_JOB_DEADLINE_S", 1080.0),
            progress_interval_s=_float(env, "T2V_PROGRESS_INTERVAL_S", 1.0),
            queued_stale_s=_float(env, "T2V_QUEUED_STALE_S", 120.0),
            public_url=(env.get("T2V_PUBLIC_URL") or "").rstrip("/") or None,
            # The GPU kind infer runs on (rust_infer.GPUS), for estimates and admission.
            gpu=env.get("T2V_GPU") or ("cpu-tiny" if profile == "tiny" else "h100"),
            # How many generations run at once (infer's max-scale): for queue ETAs.
            infer_workers=max(1, _int(env, "T2V_INFER_WORKERS", 1)),
            # Speed options for infer's transformer: unset, the device's default (compile on
            # CUDA, none on a CPU; docs/architecture.md).
            acceleration=_acceleration(env),
            # One short generation before infer reports ready, so no job pays for warm-up.
            warmup=_flag(env, "T2V_WARMUP", True),
            # How long a video is kept after its job finished; the sweep then removes it.
            video_retention_s=_positive(env, "T2V_VIDEO_RETENTION_S", DEFAULT_VIDEO_RETENTION_S),
            # Off: a cached video is reused only for its own tenant, so no tenant learns that
            # another asked for the same prompt and seed (docs/architecture.md).
            share_video_cache=_flag(env, "T2V_SHARE_VIDEO_CACHE", False),
            # infer runs the model in a child process (a crash there is not infer's); off:
            # in a thread of infer itself.
            model_process=_flag(env, "T2V_MODEL_PROCESS", True),
            test_faults=_test_faults(env),
            stream_max_s=_positive(env, "T2V_STREAM_MAX_S", DEFAULT_STREAM_MAX_S),
        )
