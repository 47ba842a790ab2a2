"""Test-only faults for the model process: crash it on purpose at a chosen step.

``T2V_TEST_FAULTS`` lists faults, comma-separated, each ``KIND@stepN`` with an optional
``xCOUNT`` (the runs it hits; ``x*`` every run; default one): ``segfault@step2``,
``exit@step1x2``, ``oom@step1x*``. Each run takes the first fault with runs left, so
``segfault@step2,exit@step1`` crashes the first run with SIGSEGV and the second with
``os._exit``. Honoured only with ``T2V_ENABLE_TEST_FAULTS=1`` as well (settings drop them
otherwise): a stray variable must never crash a production worker.
"""

from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass

SEGFAULT = "segfault"  # a real invalid memory access: the kernel kills the process
EXIT = "exit"  # os._exit, as native code calling exit() does
OOM = "oom"  # torch's CUDA out-of-memory error, raised from the step hook
KINDS = (SEGFAULT, EXIT, OOM)
EVERY_RUN = -1
_FAULT = re.compile(r"^(?P<kind>[a-z]+)@step(?P<step>\d+)(?:x(?P<runs>\d+|\*))?$")
EXIT_STATUS = 3


@dataclass(frozen=True)
class Fault:
    kind: str
    step: int


def parse_faults(raw: str) -> list[tuple[Fault, int]]:
    """The faults of ``raw``, each with its run count (EVERY_RUN: no limit)."""
    faults: list[tuple[Fault, int]] = []
    for part in filter(None, (piece.strip() for piece in raw.split(","))):
        match = _FAULT.match(part)
        if match is None or match["kind"] not in KINDS:
            raise ValueError(
                f"T2V_TEST_FAULTS: {part!r} is not KIND@stepN[xCOUNT] with KIND in {KINDS}"
            )
        runs = match["runs"] or "1"
        count = EVERY_RUN if runs == "*" else int(runs)
        faults.append((Fault(match["kind"], int(match["step"])), count))
    return faults


class FaultPlan:
    """Hands each run its fault, in order, counting the runs each has left (server side:
    the model process is replaced after a crash and remembers nothing)."""

    def __init__(self, raw: str) -> None:
        self._left = parse_faults(raw)

    def next_run(self) -> Fault | None:
        for index, (fault, runs) in enumerate(self._left):
            if runs == EVERY_RUN:
                return fault
            if runs > 0:
                self._left[index] = (fault, runs - 1)
                return fault
        return None


def inject(fault: Fault) -> None:
    """Make ``fault`` happen, here and now (inside the model process's step hook)."""
    if fault.kind == SEGFAULT:
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    elif fault.kind == EXIT:
        os._exit(EXIT_STATUS)
    elif fault.kind == OOM:
        import torch

        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected test fault)")
