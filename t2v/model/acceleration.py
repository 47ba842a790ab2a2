"""Speed options for the Mochi transformer, applied once when infer loads the model.

On CUDA the default is ``compile`` (each transformer block compiled): it was the fastest
configuration ``bench/gpu_mochi.py`` measured, and its output moved from the plain step's by
no more than swapping the attention kernel moves it (the figures are in BENCHMARKS.md).
fp8 (slower without compilation, and not traceable by torch 2.11's compiler under torchao)
and the first-block cache (whose hit rate needs trained weights to measure) stay opt-in. On
a CPU the default is none. torch is imported inside the functions, so that ``t2v.settings``
can validate the option names without the model stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t2v.model import _stack

FP8 = "fp8"
FIRST_BLOCK_CACHE = "first-block-cache"
COMPILE = "compile"
# Also the order they are applied in: fp8 swaps the linear layers' weights, which the cache
# hooks and the compiled graph must then see; compiling last traces the cache hooks as well.
ACCELERATIONS = (FP8, FIRST_BLOCK_CACHE, COMPILE)

# diffusers' default. The cache skips the transformer's remaining blocks for a step when the
# first block's residual moved less than this (mean absolute relative change) since the last
# fully computed step: higher skips more steps and drifts further from the plain output.
DEFAULT_FBC_THRESHOLD = 0.05
DEFAULT_COMPILE_BACKEND = "inductor"


class AccelerationUnavailable(RuntimeError):
    """An option cannot run in this process; the message says why."""


def default_acceleration(device: str) -> tuple[str, ...]:
    """What runs when T2V_ACCELERATION is unset: the measured-best configuration on CUDA."""
    return (COMPILE,) if device.startswith("cuda") else ()


@dataclass(frozen=True)
class AccelerationConfig:
    # None: the device's default (``default_acceleration``); () turns every option off.
    names: tuple[str, ...] | None = None
    # T2V_COMPILE_BACKEND; CPU tests use "eager" (traces the graph, generates no code).
    compile_backend: str = DEFAULT_COMPILE_BACKEND
    fbc_threshold: float = DEFAULT_FBC_THRESHOLD

    def __post_init__(self) -> None:
        if self.names is not None and self.names != parse_acceleration(",".join(self.names)):
            raise ValueError(f"names must come from parse_acceleration, got {self.names}")
        if not self.fbc_threshold > 0:
            raise ValueError(f"T2V_FBC_THRESHOLD must be > 0 (got {self.fbc_threshold})")

    def names_on(self, device: str) -> tuple[str, ...]:
        return default_acceleration(device) if self.names is None else self.names


def parse_acceleration(text: str) -> tuple[str, ...]:
    """``"compile, fp8"`` to ``("fp8", "compile")``: known names, each once, in applying order."""
    requested = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(requested - set(ACCELERATIONS))
    if unknown:
        raise ValueError(
            f"unknown acceleration option(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(ACCELERATIONS)} (comma-separated, empty for none)"
        )
    return tuple(name for name in ACCELERATIONS if name in requested)


def fp8_unavailable_reason(device: str) -> str | None:
    """Why float8 quantisation cannot run on ``device``, or None when it can."""
    import torch

    if not device.startswith("cuda"):
        return f"float8 matmuls need CUDA (device is {device})"
    try:
        import torchao.quantization  # noqa: F401
    except ImportError:
        return "torchao not installed"
    if torch.cuda.get_device_capability(device) < (8, 9):
        return "float8 matmuls need compute capability 8.9 or newer (Ada, Hopper)"
    return None


def quantize_fp8(transformer: Any) -> None:
    """Quantise the linear layers in place: float8 weights, activations quantised per call."""
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        PerRow,
        quantize_,
    )

    # Row-wise scales keep more accuracy than one scale per tensor at the same speed.
    quantize_(transformer, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))


def _first_block_cache_class() -> Any:
    config_class = getattr(_stack.diffusers().hooks, "FirstBlockCacheConfig", None)
    if config_class is None:
        raise AccelerationUnavailable("the installed diffusers has no first-block cache")
    return config_class


def first_block_cache_config(transformer: Any, threshold: float) -> Any:
    """diffusers' ``FirstBlockCacheConfig``, or AccelerationUnavailable if it cannot apply."""
    config_class = _first_block_cache_class()
    if not hasattr(transformer, "enable_cache"):
        raise AccelerationUnavailable(f"{type(transformer).__name__} takes no diffusers cache")
    return config_class(threshold=threshold)


def check_acceleration(config: AccelerationConfig, *, device: str) -> None:
    """Raise AccelerationUnavailable, naming the option and why, if one cannot run here.

    Cheap: load_model calls it before reading any weights, so a misconfigured worker fails
    at once instead of after minutes of loading.
    """
    names = config.names_on(device)
    if FP8 in names:
        reason = fp8_unavailable_reason(device)
        if reason is not None:
            raise AccelerationUnavailable(f"{FP8}: {reason}")
    if FIRST_BLOCK_CACHE in names:
        try:
            _first_block_cache_class()
        except AccelerationUnavailable as error:
            raise AccelerationUnavailable(f"{FIRST_BLOCK_CACHE}: {error}") from error


def apply_acceleration(pipe: Any, config: AccelerationConfig, *, device: str) -> dict[str, str]:
    """Apply ``config.names_on(device)`` to ``pipe.transformer`` in place; returns what each
    one did.

    Raises AccelerationUnavailable, naming the option and the reason, before changing
    anything when one of them cannot run here.
    """
    check_acceleration(config, device=device)
    names = config.names_on(device)
    transformer = pipe.transformer
    applied: dict[str, str] = {}
    if FP8 in names:
        quantize_fp8(transformer)
        applied[FP8] = "torchao float8 weights and dynamic activations, per-row scales"
    if FIRST_BLOCK_CACHE in names:
        transformer.enable_cache(first_block_cache_config(transformer, config.fbc_threshold))
        applied[FIRST_BLOCK_CACHE] = f"threshold {config.fbc_threshold}"
    if COMPILE in names:
        count = compile_blocks(transformer, config.compile_backend)
        applied[COMPILE] = (
            f"torch.compile of each of the {count} transformer blocks, "
            f"backend {config.compile_backend}, mode default"
        )
    return applied


def compile_blocks(transformer: Any, backend: str) -> int:
    """Regional compilation: compile each transformer block in place; returns how many.

    The 48 blocks share one class, so dynamo compiles that code once and every block reuses
    it: minutes less warm-up than tracing the whole 10-billion-parameter model as one graph,
    for the same fused kernels inside each block. In place (``nn.Module.compile``) rather than
    torch.compile's wrapper, so the pipeline and the cache hooks keep addressing each block
    by its own class.
    """
    blocks = list(transformer.transformer_blocks)
    for block in blocks:
        block.compile(backend=backend)
    return len(blocks)


def uncompile_blocks(transformer: Any) -> None:
    """Undo ``compile_blocks`` (the benchmark times the same model with and without it)."""
    for block in transformer.transformer_blocks:
        # nn.Module.compile stores the compiled call on the instance; without it the class
        # default (None) makes the module call its plain forward again.
        block.__dict__.pop("_compiled_call_impl", None)
