"""Speed options for the denoising step, each timed against the plain diffusers baseline.

Every option reports ``ok``, ``skipped`` (with the reason: not installed, not on this device)
or ``failed`` (with the error); none is left out silently. Order matters: fp8 quantises the
transformer in place, so it runs after everything that needs the bf16 weights. fp8 and the
first-block cache are set up by ``t2v.model.acceleration``, the code infer applies them with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.mochi.stages import StepInputs, denoise, guided_velocity
from bench.mochi.timing import Timing, relative_difference, release_memory, time_call
from t2v.model.acceleration import (
    AccelerationUnavailable,
    compile_blocks,
    first_block_cache_config,
    fp8_unavailable_reason,
    quantize_fp8,
    uncompile_blocks,
)

STEP_TIMESTEP = 500.0  # mid-schedule; the cost of a step does not depend on it


@dataclass
class OptionContext:
    transformer: Any
    inputs: StepInputs
    device: str
    repeats: int
    cache_steps: int
    cache_threshold: float
    baseline: Timing
    compile_backend: str = "inductor"
    fastest_attention: list[str] = field(default_factory=list)
    fastest_speedup: float = 0.0
    fp8_applied: bool = False


@dataclass
class OptionResult:
    name: str
    status: str  # "ok", "skipped" or "failed"
    reason: str | None = None
    timing: Timing | None = None
    speedup: float | None = None  # baseline time / option time, same work
    relative_difference: float | None = None  # vs the baseline's output
    details: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "timing": self.timing.as_dict() if self.timing else None,
            "speedup": self.speedup,
            "relative_difference": self.relative_difference,
            **self.details,
        }


def one_step(ctx: OptionContext, transformer: Any) -> Callable[[], torch.Tensor]:
    return lambda: guided_velocity(transformer, ctx.inputs, STEP_TIMESTEP)


def _step_result(name: str, ctx: OptionContext, timing: Timing) -> OptionResult:
    return OptionResult(
        name=name,
        status="ok",
        timing=timing,
        speedup=ctx.baseline.median_s / timing.median_s,
        relative_difference=relative_difference(timing.result, ctx.baseline.result),
    )


# What takes over for the calls a preferred backend cannot serve: Mochi's attention pooling
# passes a mask, which flash attention rejects, so forcing one backend alone fails the step.
FALLBACK_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH")


def _backend(name: str) -> Any:
    from torch.nn.attention import SDPBackend

    return getattr(SDPBackend, name)


@contextlib.contextmanager
def attention_backends(names: list[str]) -> Iterator[None]:
    """``names`` first, in that order, then the rest of SDPA's backends as fallbacks."""
    if not names:
        yield
        return
    from torch.nn.attention import sdpa_kernel

    order = [*names, *(name for name in FALLBACK_BACKENDS if name not in names)]
    with sdpa_kernel([_backend(name) for name in order], set_priority=True):
        yield


def _probe_attention(backend: str, ctx: OptionContext) -> None:
    """Raise AccelerationUnavailable unless ``backend`` alone runs the joint attention's
    shape (heads x 128, unmasked) here: a preference for a backend with no kernel would
    silently time the fallback."""
    from torch.nn.attention import sdpa_kernel

    config = ctx.transformer.config
    heads, head_dim = int(config.num_attention_heads), int(config.attention_head_dim)
    dtype = ctx.inputs.latents.dtype
    query = torch.zeros(1, heads, 64, head_dim, device=ctx.device, dtype=dtype)
    try:
        with sdpa_kernel([_backend(backend)]):
            torch.nn.functional.scaled_dot_product_attention(query, query, query)
    except RuntimeError as error:
        where = f"{ctx.device} {dtype}".replace("torch.", "")
        raise AccelerationUnavailable(f"no {backend} kernel on {where}") from error


def attention(backend: str) -> Callable[[OptionContext], OptionResult]:
    def run(ctx: OptionContext) -> OptionResult:
        _probe_attention(backend, ctx)
        with attention_backends([backend]):
            timing = time_call(
                one_step(ctx, ctx.transformer), device=ctx.device, repeats=ctx.repeats
            )
        result = _step_result(f"sdpa-{backend.split('_')[0].lower()}", ctx, timing)
        result.details["backend"] = backend
        return result

    return run


@contextlib.contextmanager
def compiled_blocks(ctx: OptionContext) -> Iterator[int]:
    """The transformer's blocks compiled as infer compiles them, for the ``with`` body only
    (options timed later need the plain model)."""
    torch._dynamo.reset()
    try:
        yield compile_blocks(ctx.transformer, ctx.compile_backend)
    finally:
        uncompile_blocks(ctx.transformer)
        torch._dynamo.reset()


def compile_option(ctx: OptionContext) -> OptionResult:
    with compiled_blocks(ctx) as count:
        timing = time_call(one_step(ctx, ctx.transformer), device=ctx.device, repeats=ctx.repeats)
    result = _step_result("torch-compile", ctx, timing)
    result.details["backend"] = ctx.compile_backend
    result.details["compiled_blocks"] = count
    result.details["compile_included_in"] = "timing.warmup_s"
    return result


def fp8_option(ctx: OptionContext) -> OptionResult:
    reason = fp8_unavailable_reason(ctx.device)
    if reason is not None:
        raise AccelerationUnavailable(reason)
    quantize_fp8(ctx.transformer)
    ctx.fp8_applied = True
    release_memory(ctx.device)
    timing = time_call(one_step(ctx, ctx.transformer), device=ctx.device, repeats=ctx.repeats)
    return _step_result("fp8-torchao", ctx, timing)


def first_block_cache(ctx: OptionContext) -> OptionResult:
    transformer = ctx.transformer
    cache_config = first_block_cache_config(transformer, ctx.cache_threshold)
    start = 16  # a stretch from the middle of the schedule, where caches usually hit

    def run_steps() -> torch.Tensor:
        return denoise(transformer, ctx.inputs, start=start, steps=ctx.cache_steps)

    plain = time_call(run_steps, device=ctx.device, repeats=ctx.repeats)
    # The tail blocks only run when the cache misses; count the last block's MLP calls.
    computed: list[int] = []
    handle = transformer.transformer_blocks[-1].ff.register_forward_hook(
        lambda *_: computed.append(1)
    )

    def fresh_cache() -> None:
        if transformer.is_cache_enabled:
            transformer.disable_cache()
        transformer.enable_cache(cache_config)
        computed.clear()

    try:
        cached = time_call(
            run_steps, device=ctx.device, repeats=ctx.repeats, before_each=fresh_cache
        )
    finally:
        handle.remove()
        if transformer.is_cache_enabled:
            transformer.disable_cache()
    return OptionResult(
        name="first-block-cache",
        status="ok",
        timing=cached,
        speedup=plain.median_s / cached.median_s,
        relative_difference=relative_difference(cached.result, plain.result),
        details={
            "steps": ctx.cache_steps,
            "threshold": ctx.cache_threshold,
            "steps_fully_computed": len(computed),
            "baseline_timing": plain.as_dict(),
        },
    )


def combined_option(ctx: OptionContext) -> OptionResult:
    """The fastest attention backend, fp8 when it ran, and torch.compile, together."""
    with compiled_blocks(ctx), attention_backends(ctx.fastest_attention):
        timing = time_call(one_step(ctx, ctx.transformer), device=ctx.device, repeats=ctx.repeats)
    result = _step_result("combined", ctx, timing)
    result.details["parts"] = [*ctx.fastest_attention, "torch-compile"] + (
        ["fp8-torchao"] if ctx.fp8_applied else []
    )
    return result


OPTIONS: dict[str, Callable[[OptionContext], OptionResult]] = {
    "sdpa-flash": attention("FLASH_ATTENTION"),
    "sdpa-cudnn": attention("CUDNN_ATTENTION"),
    "sdpa-efficient": attention("EFFICIENT_ATTENTION"),
    "first-block-cache": first_block_cache,
    "torch-compile": compile_option,
    "fp8-torchao": fp8_option,
    "combined": combined_option,
}


def run_option(name: str, ctx: OptionContext) -> OptionResult:
    try:
        result = OPTIONS[name](ctx)
    except AccelerationUnavailable as reason:
        result = OptionResult(name=name, status="skipped", reason=str(reason))
    except Exception as error:  # a failing option is a finding; the run goes on
        result = OptionResult(name=name, status="failed", reason=f"{type(error).__name__}: {error}")
    finally:
        release_memory(ctx.device)
    speedup = result.speedup or 0.0
    # Only a backend that beats the default dispatch is worth forcing in the combination.
    is_attention = result.status == "ok" and result.name.startswith("sdpa-")
    if is_attention and speedup > max(1.0, ctx.fastest_speedup):
        ctx.fastest_attention = [str(result.details["backend"])]
        ctx.fastest_speedup = speedup
    return result
