"""Group commit for the SQLite job store, on the callers' event loop.

Changes queued on a loop are committed together by one callback on that loop, scheduled by
the first change queued since the last batch: up to `MAX_BATCH` changes, in arrival order,
inside one `BEGIN IMMEDIATE` transaction, each in its own `SAVEPOINT`, so a change that
raises (say `NotFoundError`) rolls back only itself and fails only its caller. SQLite
serialises `BEGIN IMMEDIATE` across processes and each change sees the ones before it, so
read-merge-write stays a compare-and-set. When BEGIN or COMMIT fails, nothing of the batch is
kept and every caller in it gets `UnavailableError`.

The write lock is never waited for on the loop: the connection's busy timeout is zero, and a
batch that finds the file locked (another process or thread is writing) is retried by a
timer, backing off from 1 ms to 50 ms, until the store's busy timeout has passed; then the
batch fails with `UnavailableError`. Changes queued meanwhile wait for the next batch.

A `BulkChange` is a change that cannot fail on its own (inserting a new job whose row was
encoded before it was queued): consecutive ones of the same kind in a batch run as one call
inside one SAVEPOINT.

Why on the loop and not on a writer thread (the first design): the thread cost more than the
writing. Under wrk, a store write served with a writer thread cost about 0.16 ms more CPU per
request than the same batches committed on the loop: the two threads handing the GIL back and
forth, and a cross-thread wake-up per batch (BENCHMARKS.md, control plane). SQLite's own work
per batch is tens of microseconds, WAL appends without fsync (`synchronous=NORMAL`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from t2v.errors import UnavailableError

# Changes per transaction: bounds how long one batch holds the file's write lock.
MAX_BATCH = 64
# Retry delays while another connection holds the write lock.
FIRST_RETRY_S = 0.001
LAST_RETRY_S = 0.05


@dataclasses.dataclass
class GroupCommitStats:
    """What a store's committer has done (for tests and metrics)."""

    batches: int = 0  # batches formed (a batch retried while the file is locked counts once)
    operations: int = 0  # changes taken into them
    largest_batch: int = 0


@dataclasses.dataclass(frozen=True)
class BulkChange:
    """One item for ``run``, which takes a list of them and returns one result per item, in
    order. Consecutive changes with the same ``run`` share a call and all fail together."""

    run: Callable[[sqlite3.Connection, list[Any]], list[object]]
    item: Any


Operation = Callable[[sqlite3.Connection], object] | BulkChange


@dataclasses.dataclass(frozen=True)
class Write:
    """A queued change (None: a flush marker, settled once everything before it is
    committed) and the loop and future awaiting it."""

    operation: Operation | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


_Outcome = tuple[Write, object, BaseException | None]


def unavailable(exc: BaseException) -> UnavailableError:
    error = UnavailableError(f"job store unavailable: {exc}")
    error.__cause__ = exc
    return error


@dataclasses.dataclass
class _LoopQueue:
    """One loop's queued changes and the batch it is committing or retrying."""

    waiting: collections.deque[Write] = dataclasses.field(default_factory=collections.deque)
    batch: list[Write] | None = None
    deadline: float = 0.0
    retry_s: float = FIRST_RETRY_S
    scheduled: bool = False


class _Busy(Exception):
    """The file's write lock is held elsewhere: try the batch again later."""


class GroupCommitter:
    """Owns the write connection; commits each loop's queued changes in batches on it."""

    def __init__(
        self,
        open_connection: Callable[[], sqlite3.Connection],
        stats: GroupCommitStats,
        *,
        busy_timeout_s: float,
    ) -> None:
        """``open_connection`` must give a connection with a busy timeout of zero."""
        self._open_connection = open_connection
        self._stats = stats
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        # Callers on other threads' loops share the connection: one batch at a time. Never
        # waited for: a loop that finds it taken retries like a locked file.
        self._conn_lock = threading.Lock()
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue] = (
            weakref.WeakKeyDictionary()
        )

    def submit(self, write: Write) -> None:
        """Queue ``write``; called on ``write.loop``."""
        queue = self._queues.get(write.loop)
        if queue is None:
            queue = self._queues.setdefault(write.loop, _LoopQueue())
        queue.waiting.append(write)
        self._schedule(write.loop, queue)

    async def stop(self) -> None:
        """Commit what the running loop has queued, then close the connection."""
        loop = asyncio.get_running_loop()
        flushed: asyncio.Future[Any] = loop.create_future()
        self.submit(Write(None, loop, flushed))
        await flushed
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _schedule(self, loop: asyncio.AbstractEventLoop, queue: _LoopQueue) -> None:
        if not queue.scheduled and queue.batch is None:
            queue.scheduled = True
            loop.call_soon(self._flush, loop, queue)

    def _flush(self, loop: asyncio.AbstractEventLoop, queue: _LoopQueue) -> None:
        queue.scheduled = False
        if queue.batch is None:
            queue.batch = self._take(queue)
            self._count([write for write in queue.batch if write.operation is not None])
            queue.deadline = time.monotonic() + self._busy_timeout_s
            queue.retry_s = FIRST_RETRY_S
        batch = queue.batch
        try:
            outcomes = self._commit(batch)
        except _Busy as exc:
            if time.monotonic() < queue.deadline:
                loop.call_later(queue.retry_s, self._retry, loop, queue)
                queue.retry_s = min(queue.retry_s * 2, LAST_RETRY_S)
                return
            outcomes = [(write, None, unavailable(exc.__cause__ or exc)) for write in batch]
        except Exception as exc:  # raised out of a loop callback, it would hang the batch
            outcomes = [(write, None, exc) for write in batch]
        queue.batch = None
        _settle(outcomes)
        if queue.waiting:
            self._schedule(loop, queue)

    def _retry(self, loop: asyncio.AbstractEventLoop, queue: _LoopQueue) -> None:
        if queue.batch is not None:
            self._flush(loop, queue)

    def _take(self, queue: _LoopQueue) -> list[Write]:
        """The next batch: up to MAX_BATCH changes, or the flush marker at the front."""
        batch: list[Write] = []
        while queue.waiting and len(batch) < MAX_BATCH:
            if queue.waiting[0].operation is None and batch:
                break  # a marker ends the batch before it: it is settled after a commit
            batch.append(queue.waiting.popleft())
            if batch[-1].operation is None:
                break
        return batch

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open_connection()
        return self._conn

    def _commit(self, batch: list[Write]) -> list[_Outcome]:
        writes = [write for write in batch if write.operation is not None]
        if not writes:
            return [(write, None, None) for write in batch]
        if not self._conn_lock.acquire(blocking=False):
            raise _Busy("another thread is committing on this store")
        try:
            return self._commit_locked(writes)
        finally:
            self._conn_lock.release()

    def _count(self, writes: list[Write]) -> None:
        if not writes:
            return
        self._stats.batches += 1
        self._stats.operations += len(writes)
        self._stats.largest_batch = max(self._stats.largest_batch, len(writes))

    def _commit_locked(self, writes: list[Write]) -> list[_Outcome]:
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                    raise _Busy(str(exc)) from exc
                raise
            outcomes = [
                outcome for group in _groups(writes) for outcome in self._run_group(conn, group)
            ]
            conn.execute("COMMIT")
            return outcomes
        except _Busy:
            raise
        except BaseException as exc:
            if conn is not None and conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if not isinstance(exc, sqlite3.Error | OSError):
                raise
            return [(write, None, unavailable(exc)) for write in writes]

    @staticmethod
    def _run_group(conn: sqlite3.Connection, group: list[Write]) -> list[_Outcome]:
        conn.execute("SAVEPOINT change")
        try:
            results = _run(conn, group)
        except Exception as exc:
            if not conn.in_transaction:
                # SQLite rolled the whole transaction back (I/O error, full disk): the
                # changes before this one are gone too, so the batch fails.
                raise sqlite3.OperationalError(f"transaction lost: {exc}") from exc
            conn.execute("ROLLBACK TO change")
            conn.execute("RELEASE change")
            error = unavailable(exc) if isinstance(exc, sqlite3.OperationalError) else exc
            return [(write, None, error) for write in group]
        conn.execute("RELEASE change")
        return [(write, result, None) for write, result in zip(group, results, strict=True)]


def _settle(outcomes: list[_Outcome]) -> None:
    """Resolve each future still awaited (its task may have been cancelled)."""
    for write, result, error in outcomes:
        if write.future.done():
            continue
        if error is None:
            write.future.set_result(result)
        else:
            write.future.set_exception(error)


def _groups(writes: list[Write]) -> list[list[Write]]:
    """Consecutive bulk changes of one kind together; every other change alone."""
    groups: list[list[Write]] = []
    for write in writes:
        operation = write.operation
        if isinstance(operation, BulkChange) and groups:
            previous = groups[-1][0].operation
            if isinstance(previous, BulkChange) and previous.run == operation.run:
                groups[-1].append(write)
                continue
        groups.append([write])
    return groups


def _run(conn: sqlite3.Connection, group: list[Write]) -> list[object]:
    first = group[0].operation
    if isinstance(first, BulkChange):
        items = [write.operation.item for write in group if isinstance(write.operation, BulkChange)]
        results = first.run(conn, items)
        if len(results) != len(items):
            name = getattr(first.run, "__name__", "bulk change")
            raise RuntimeError(f"{name} gave {len(results)} results for {len(items)} changes")
        return results
    assert first is not None
    return [first(conn)]
