"""Group commit for the SQLite job store.

Each store has one writer thread (started by the first change, stopped by `close`) that takes
every change queued, up to `MAX_BATCH`, and runs them in arrival order inside one `BEGIN
IMMEDIATE` transaction, each in its own `SAVEPOINT`: a change that raises (say `NotFoundError`)
rolls back only itself and fails only its caller. SQLite serialises `BEGIN IMMEDIATE` across
processes and each change sees the ones before it, so read-merge-write stays a compare-and-set.
When BEGIN or COMMIT fails, nothing of the batch is kept and every caller in it gets
`UnavailableError`. Outcomes go back with one `call_soon_threadsafe` per event loop per batch,
so callers on any loop and thread work.

Why: with one transaction per change, each run by `asyncio.to_thread`, submit (POST /v1/jobs,
32 concurrent requests) spent about 45% of its CPU in the write path: pool threads fighting
over one lock, and a BEGIN, a COMMIT and a loop wake-up per change. Batched, a change costs
about 80 us of CPU instead of 300, and submit went from about 780 to 990 requests/s, 1.2 to 1.0
ms of server CPU each (BENCHMARKS.md, control plane; 2 cores).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from t2v.errors import UnavailableError

# Changes per transaction: bounds how long one batch holds the file's write lock.
MAX_BATCH = 64


@dataclasses.dataclass
class GroupCommitStats:
    """What a store's writer threads have done (for tests and metrics)."""

    batches: int = 0  # transactions begun or attempted
    operations: int = 0  # changes taken into them
    largest_batch: int = 0


@dataclasses.dataclass(frozen=True)
class Write:
    """A queued change (None: stop the writer) and the loop and future awaiting it."""

    operation: Callable[[sqlite3.Connection], object] | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


_Outcome = tuple[Write, object, BaseException | None]


def unavailable(exc: BaseException) -> UnavailableError:
    error = UnavailableError(f"job store unavailable: {exc}")
    error.__cause__ = exc
    return error


def _settle(outcomes: list[_Outcome]) -> None:
    """On the caller's loop: resolve each future still awaited (its task may be cancelled)."""
    for write, result, error in outcomes:
        if write.future.done():
            continue
        if error is None:
            write.future.set_result(result)
        else:
            write.future.set_exception(error)


class GroupCommitWriter:
    """One thread that owns the write connection and commits queued changes in batches."""

    def __init__(
        self, open_connection: Callable[[], sqlite3.Connection], stats: GroupCommitStats, name: str
    ) -> None:
        self._open_connection = open_connection
        self._stats = stats
        self._queue: queue.SimpleQueue[Write] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, write: Write) -> None:
        self._queue.put(write)

    async def stop(self) -> None:
        """Commit what is queued, close the connection, end the thread."""
        loop = asyncio.get_running_loop()
        stopped = loop.create_future()
        self._queue.put(Write(None, loop, stopped))
        await stopped
        self._thread.join()  # it has delivered its last outcome: only returning is left

    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            # The store queues nothing after the stop, so the stop ends the batch.
            writes = [write for write in batch if write.operation is not None]
            try:
                outcomes = self._commit(writes) if writes else []
            except BaseException as exc:  # a dead writer would hang every later caller
                outcomes = [(write, None, exc) for write in writes]
            stopping = len(writes) < len(batch)
            if stopping:
                if self._conn is not None:
                    self._conn.close()
                outcomes.extend((write, None, None) for write in batch if write.operation is None)
            self._post(outcomes)
            if stopping:
                return

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open_connection()
        return self._conn

    def _commit(self, writes: list[Write]) -> list[_Outcome]:
        self._stats.batches += 1
        self._stats.operations += len(writes)
        self._stats.largest_batch = max(self._stats.largest_batch, len(writes))
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [self._run_one(conn, write) for write in writes]
            conn.execute("COMMIT")
            return outcomes
        except BaseException as exc:
            if conn is not None and conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if not isinstance(exc, sqlite3.Error | OSError):
                raise
            return [(write, None, unavailable(exc)) for write in writes]

    @staticmethod
    def _run_one(conn: sqlite3.Connection, write: Write) -> _Outcome:
        assert write.operation is not None
        conn.execute("SAVEPOINT change")
        try:
            result = write.operation(conn)
        except Exception as exc:
            if not conn.in_transaction:
                # SQLite rolled the whole transaction back (I/O error, full disk): the
                # changes before this one are gone too, so the batch fails.
                raise sqlite3.OperationalError(f"transaction lost: {exc}") from exc
            conn.execute("ROLLBACK TO change")
            conn.execute("RELEASE change")
            if isinstance(exc, sqlite3.OperationalError):
                return (write, None, unavailable(exc))
            return (write, None, exc)
        conn.execute("RELEASE change")
        return (write, result, None)

    @staticmethod
    def _post(outcomes: list[_Outcome]) -> None:
        # One wake-up per loop per batch: the self-pipe write is a large share of a change.
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, mine in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop closed: nobody awaits these
                loop.call_soon_threadsafe(_settle, mine)
