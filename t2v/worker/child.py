"""The model in a child process (the shape of cog's): infer keeps HTTP, the lease and the
heartbeat; a process started with multiprocessing's ``spawn`` holds the model and runs the
supervised generation (`t2v.worker.child_process`, which also describes the pipe).

A crash there (SIGSEGV in a kernel, ``os._exit`` from native code, CUDA out of memory) ends
that process, not infer: the run raises `ModelCrashed` (``worker_crashed`` or
``out_of_memory``), the process is gone with all the GPU memory it held, and a fresh one starts
loading at once. Until it has loaded, `ready` is False (``/readyz`` answers 503) and the next
run waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import rust_infer
from rust_infer import NormalizedParams
from t2v.jobs import WORKER_CRASHED
from t2v.metrics import observe_phase
from t2v.settings import Settings
from t2v.worker.child_process import serve
from t2v.worker.faults import FaultPlan
from t2v.worker.models import ModelIdentity

log = logging.getLogger(__name__)
OUT_OF_MEMORY = "out_of_memory"
# How long a dying process gets to be reaped before its exit status is read.
REAP_TIMEOUT_S = 5.0


class ModelCrashed(Exception):
    """The model process died during a run, or ran out of memory and was replaced."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


class ModelChild:
    """A `t2v.worker.models.ModelRunner` whose model lives in a child process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._faults = FaultPlan(settings.test_faults)
        self._task: asyncio.Task[ModelIdentity] | None = None
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self.load_seconds: float | None = None
        self.warmup_seconds: float | None = None
        # Model processes that died and were replaced (/stats).
        self.crashes = 0

    def start_loading(self) -> asyncio.Task[ModelIdentity]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._start))
        return self._task

    def _start(self) -> ModelIdentity:
        """Spawn a model process and wait until it has loaded (and warmed up) the model."""
        started = time.monotonic()
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=serve, args=(theirs, self._settings), name="t2v-model", daemon=True
        )
        process.start()
        # Only the child holds its end now: its death is EOF on ours.
        theirs.close()
        try:
            message = ours.recv()
        except EOFError:
            process.join(REAP_TIMEOUT_S)
            ours.close()
            raise RuntimeError(
                f"the model process {describe_exit(process.exitcode)} while loading"
            ) from None
        if message[0] != "loaded":
            process.join(REAP_TIMEOUT_S)
            ours.close()
            raise RuntimeError(f"the model process could not load the model: {message[1]}")
        _, identity, load_seconds, warmup_seconds = message
        observe_phase("model_load", load_seconds)
        self.load_seconds, self.warmup_seconds = load_seconds, warmup_seconds
        self._process, self._conn = process, ours
        log.info(
            "model process %s ready in %.1f s (pid %s)",
            identity.name,
            time.monotonic() - started,
            process.pid,
        )
        return identity  # type: ignore[no-any-return]

    @property
    def pid(self) -> int | None:
        """The loaded model process's id (None while none has loaded)."""
        return None if self._process is None else self._process.pid

    @property
    def ready(self) -> bool:
        return self._task is not None and self._task.done() and self._task.exception() is None

    @property
    def failed(self) -> BaseException | None:
        if self._task is None or not self._task.done() or self._task.cancelled():
            return None
        return self._task.exception()

    async def get(self) -> ModelIdentity:
        return await asyncio.shield(self.start_loading())

    async def run(
        self,
        params: NormalizedParams,
        *,
        on_progress: Callable[[int, int], None],
        is_canceled: Callable[[], bool],
        deadline_s: float,
    ) -> Any:
        await self.get()
        fault = self._faults.next_run()
        try:
            return await asyncio.to_thread(
                self._exchange, params, deadline_s, fault, on_progress, is_canceled
            )
        except ModelCrashed as crash:
            log.error("%s; starting a fresh model process", crash.message)
            self.crashes += 1
            self._replace()
            raise

    def _exchange(
        self,
        params: NormalizedParams,
        deadline_s: float,
        fault: object,
        on_progress: Callable[[int, int], None],
        is_canceled: Callable[[], bool],
    ) -> Any:
        """One run, in a thread of infer: relay progress up and cancel answers down."""
        conn, process = self._conn, self._process
        assert conn is not None and process is not None, "run before the model loaded"
        step = 0
        try:
            conn.send(("run", params, deadline_s, fault))
            while True:
                message = conn.recv()
                kind = message[0]
                if kind == "progress":
                    step = message[1]
                    on_progress(message[1], message[2])
                elif kind == "cancel?":
                    conn.send(bool(is_canceled()))
                elif kind == "done":
                    return message[1]
                else:
                    _, code, text, retryable = message
                    if code == OUT_OF_MEMORY:
                        # A fresh process gets all of the GPU's memory back (fragmentation
                        # included): worth one more try.
                        raise ModelCrashed(OUT_OF_MEMORY, f"out of GPU memory at step {step}")
                    raise rust_infer.RunFailed(code, text, retryable=retryable)
        except (EOFError, OSError):
            process.join(REAP_TIMEOUT_S)
            raise ModelCrashed(
                WORKER_CRASHED,
                f"the model process {describe_exit(process.exitcode)} after step {step}",
            ) from None

    def _replace(self) -> None:
        """End the current model process (if it still runs) and start loading a fresh one."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(REAP_TIMEOUT_S)
        self._task = None
        self.start_loading()

    def close(self) -> None:
        """Stop the model process (infer's shutdown; tests)."""
        process = self._process
        if self._conn is not None:
            self._conn.close()
        if process is not None and process.is_alive():
            process.kill()
            process.join(REAP_TIMEOUT_S)
