"""What runs inside the model process (`t2v.worker.child`): load the model, then generate.

The pipe carries tuples. Up: ``("loaded", identity, load_s, warmup_s)`` or
``("load_failed", message)`` once; then, per run, ``("progress", step, steps)`` for each step,
``("cancel?",)`` after each (answered ``True``/``False`` down, before the next step starts:
a cancel lands within one step, as in a thread) and ``("done", frames)`` or ``("failed", code,
message, retryable)``. Down: ``("run", params, deadline_s, fault)``.
"""

from __future__ import annotations

import logging
import sys
from multiprocessing.connection import Connection
from typing import Any

import rust_infer
from rust_infer import NormalizedParams
from t2v.model.pipeline import generate
from t2v.settings import Settings
from t2v.worker.faults import Fault, inject
from t2v.worker.models import ModelIdentity, load_and_warm

log = logging.getLogger("t2v.model_process")


def serve(conn: Connection, settings: Settings) -> None:
    """The model process's main function: runs until the server closes its end."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s model-process %(message)s"
    )
    try:
        loaded = load_and_warm(settings)
    except Exception as exc:
        log.exception("model load failed")
        conn.send(("load_failed", repr(exc)))
        return
    model = loaded.model
    identity = ModelIdentity(model.name, model.revision, model.profile, dict(model.acceleration))
    conn.send(("loaded", identity, loaded.load_seconds, loaded.warmup_seconds))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return  # the server is gone
        _, params, deadline_s, fault = message
        conn.send(_run(conn, model, params, deadline_s, fault))


def _run(
    conn: Connection,
    model: Any,
    params: NormalizedParams,
    deadline_s: float,
    fault: Fault | None,
) -> tuple[Any, ...]:
    def on_progress(step: int, steps: int) -> None:
        if fault is not None and step == fault.step:
            inject(fault)
        conn.send(("progress", step, steps))

    def is_canceled() -> bool:
        conn.send(("cancel?",))
        return bool(conn.recv())

    try:
        frames = rust_infer.supervise(
            lambda hook: generate(model, params, hook),
            total_steps=params["num_inference_steps"],
            on_progress=on_progress,
            is_canceled=is_canceled,
            deadline_s=deadline_s,
        )
    except rust_infer.RunFailed as failure:
        return ("failed", failure.code, failure.message, failure.retryable)
    return ("done", frames)
