"""Timing and memory measurement that is honest on CUDA (synchronised) and on CPU."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

GIB = 1024**3


def synchronize(device: str) -> None:
    # CUDA kernels run asynchronously: a clock read without a sync times the launch only.
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib(device: str) -> float | None:
    """Peak allocated GPU memory since the last reset; None on CPU (not tracked there)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / GIB
    return None


def release_memory(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


@dataclass
class Timing:
    """``repeats`` timed runs after ``warmup_runs`` untimed ones (compilation, autotuning and
    allocator growth happen in the warm-up)."""

    runs_s: list[float]
    warmup_s: float
    peak_memory_gib: float | None
    result: Any = field(default=None, repr=False)

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    def as_dict(self) -> dict[str, object]:
        return {
            "median_s": self.median_s,
            "runs_s": self.runs_s,
            "warmup_s": self.warmup_s,
            "peak_memory_gib": self.peak_memory_gib,
        }


def time_call(
    fn: Callable[[], Any],
    *,
    device: str,
    repeats: int,
    warmup_runs: int = 1,
    before_each: Callable[[], None] | None = None,
) -> Timing:
    """Median-ready timings of ``fn``; the last run's return value is kept in ``result``.
    ``before_each`` runs untimed before every run (e.g. to reset a step cache)."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    reset_peak_memory(device)
    synchronize(device)
    started = time.perf_counter()
    result = None
    for _ in range(warmup_runs):
        if before_each is not None:
            before_each()
        result = fn()
    synchronize(device)
    warmup_s = time.perf_counter() - started
    runs: list[float] = []
    for _ in range(repeats):
        if before_each is not None:
            before_each()
        synchronize(device)
        started = time.perf_counter()
        result = fn()
        synchronize(device)
        runs.append(time.perf_counter() - started)
    return Timing(
        runs_s=runs, warmup_s=warmup_s, peak_memory_gib=peak_memory_gib(device), result=result
    )


def relative_difference(candidate: torch.Tensor, reference: torch.Tensor) -> float | None:
    """||candidate - reference|| / ||reference|| in float32; None when either is not finite
    (random weights can overflow bf16, and then there is nothing to compare)."""
    candidate32 = candidate.detach().float()
    reference32 = reference.detach().float()
    if not (torch.isfinite(candidate32).all() and torch.isfinite(reference32).all()):
        return None
    norm = float(torch.linalg.vector_norm(reference32))
    if norm == 0.0:
        return None
    return float(torch.linalg.vector_norm(candidate32 - reference32)) / norm
