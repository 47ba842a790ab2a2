"""The embedded JobStore: one SQLite file shared by the local processes.

Changes go through group commit (`t2v.store.group_commit`): the changes queued on an event
loop are committed together by a callback on that loop, one `BEGIN IMMEDIATE` transaction
per batch, so read-merge-write stays a compare-and-set across processes.

Reads are single statements on a second connection, on the caller's thread: in WAL mode they
never wait for writers, and a thread hop per read cost more than the read itself.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

import orjson

from t2v.errors import IdempotencyConflictError, NotFoundError, UnavailableError
from t2v.jobs import Job, JobStatus, JobUpdate, cancel, decode_job, merge
from t2v.store.base import ApplyResult, CreateResult, IdempotencyClaim, JobPage, Lease
from t2v.store.cursor import decode_cursor, encode_cursor
from t2v.store.group_commit import BulkChange, GroupCommitStats, GroupCommitter, Operation, Write
from t2v.store.read_cache import VersionedReadCache

T = TypeVar("T")
# Queue positions past this are reported as this (a lower bound): see queue_position.
QUEUE_POSITION_CAP = 100
# A jobs row: id, tenant, status, created_at, data (the job as JSON).
_Row = tuple[str, str, str, float, str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (created_at, id);
CREATE INDEX IF NOT EXISTS jobs_by_status_time ON jobs (status, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_status ON jobs (tenant, status);
CREATE TABLE IF NOT EXISTS idempotency (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    job_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE TABLE IF NOT EXISTS leases (
    job_id TEXT PRIMARY KEY,
    worker_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
"""


class SqliteJobStore:
    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        """`busy_timeout_s`: how long a batch waits for another process's write lock before
        its changes fail with `UnavailableError`."""
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        # Guards creating and stopping the committer (so no change is queued behind a stop)
        # and opening the reader; never held while SQLite works.
        self._lock = threading.Lock()
        self._writer: GroupCommitter | None = None
        self._reader: sqlite3.Connection | None = None
        self._stats = GroupCommitStats()
        # Job reads and queue positions, answered from memory until anything commits.
        self._read_cache = VersionedReadCache()

    @classmethod
    def from_url(cls, url: str) -> SqliteJobStore:
        return cls(Path(url.removeprefix("sqlite:///").removeprefix("sqlite://")))

    @property
    def group_commit_stats(self) -> GroupCommitStats:
        return dataclasses.replace(self._stats)

    def _open(self, timeout: float) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self._path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Each batch's SAVEPOINT journals the pages it changes; past 64 KiB SQLite spilled
            # that journal to a temporary file, created and unlinked on every batch.
            conn.execute("PRAGMA temp_store=MEMORY")
            # IF NOT EXISTS on tables that exist takes no write lock: cheap for the reader.
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _read_connection(self) -> sqlite3.Connection:
        reader = self._reader
        if reader is None:
            with self._lock:
                if self._reader is None:
                    self._reader = self._open(timeout=5.0)
                reader = self._reader
        return reader

    async def _read(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return operation(self._read_connection())
        except sqlite3.OperationalError as exc:
            raise UnavailableError(f"job store unavailable: {exc}") from exc

    async def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        return cast(T, await self._queue(operation))

    async def _queue(self, operation: Operation) -> object:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        with self._lock:
            if self._writer is None:
                # Busy timeout zero: the committer retries a locked file by timer instead
                # of waiting on the loop.
                self._writer = GroupCommitter(
                    lambda: self._open(0.0), self._stats, busy_timeout_s=self._busy_timeout_s
                )
            self._writer.submit(Write(operation, loop, future))
        return await future

    @staticmethod
    def _load(conn: sqlite3.Connection, job_id: str) -> Job | None:
        row = conn.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return decode_job(row[0]) if row else None

    @staticmethod
    def _save(conn: sqlite3.Connection, job: Job) -> None:
        conn.execute(
            "INSERT INTO jobs (id, tenant, status, created_at, data) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET status = excluded.status, data = excluded.data",
            _row(job),
        )

    @staticmethod
    def _insert_new(
        conn: sqlite3.Connection, new: builtins.list[tuple[Job, _Row]]
    ) -> builtins.list[object]:
        """New jobs, in one statement run once per job, and their queue positions from one
        count: the jobs of one batch are queued in arrival order, one after another."""
        conn.executemany(
            "INSERT INTO jobs (id, tenant, status, created_at, data) VALUES (?, ?, ?, ?, ?)",
            [row for _, row in new],
        )
        jobs = [job for job, _ in new]
        queued = sorted(
            (job for job in jobs if job.status == JobStatus.QUEUED),
            key=lambda job: (job.created_at, job.id),
        )
        positions: dict[str, int] = {}
        if queued:
            ahead = SqliteJobStore._queue_position(conn, queued[0])
            for offset, job in enumerate(queued):
                positions[job.id] = min(ahead + offset, QUEUE_POSITION_CAP)
        return [
            CreateResult(job, created=True, queue_position=positions.get(job.id)) for job in jobs
        ]

    async def create(self, job: Job, idempotency: IdempotencyClaim | None = None) -> CreateResult:
        if idempotency is None:
            # Encoded here, so a job that cannot be stored fails alone, before its batch.
            change = BulkChange(self._insert_new, (job, _row(job)))
            return cast(CreateResult, await self._queue(change))

        def op(conn: sqlite3.Connection) -> CreateResult:
            row = conn.execute(
                "SELECT request_hash, job_id FROM idempotency "
                "WHERE tenant = ? AND key = ? AND expires_at > ?",
                (job.tenant, idempotency.key, job.created_at),
            ).fetchone()
            if row is not None:
                if row[0] != idempotency.request_hash:
                    raise IdempotencyConflictError(
                        "this Idempotency-Key was already used with a different request"
                    )
                existing = self._load(conn, row[1])
                if existing is not None:
                    return CreateResult(existing, created=False)
            conn.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?)",
                (
                    job.tenant,
                    idempotency.key,
                    idempotency.request_hash,
                    job.id,
                    job.created_at + idempotency.ttl_s,
                ),
            )
            self._save(conn, job)
            # Counted in the same transaction: the 202 shows where the job stands in the queue.
            queued = job.status == JobStatus.QUEUED
            position = self._queue_position(conn, job) if queued else None
            return CreateResult(job, created=True, queue_position=position)

        return await self._run(op)

    async def get(self, job_id: str) -> Job | None:
        return await self._read(
            lambda conn: self._cached_job(conn, self._read_cache.version(conn), job_id)
        )

    def _cached_job(self, conn: sqlite3.Connection, version: int, job_id: str) -> Job | None:
        return self._read_cache.at(version, ("job", job_id), lambda: self._load(conn, job_id))

    def _cached_position(self, conn: sqlite3.Connection, version: int, job: Job) -> int:
        key = ("queue_position", job.id, job.created_at)
        return self._read_cache.at(version, key, lambda: self._queue_position(conn, job))

    async def list(
        self,
        *,
        tenant: str | None,
        status: JobStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        clauses: list[str] = []
        args: list[object] = []
        if tenant is not None:
            clauses.append("tenant = ?")
            args.append(tenant)
        if status is not None:
            clauses.append("status = ?")
            args.append(status.value)
        if cursor is not None:
            created_at, job_id = decode_cursor(cursor)
            # A row value, not an OR: SQLite then seeks the index instead of scanning it.
            clauses.append("(created_at, id) < (?, ?)")
            args.extend([created_at, job_id])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT data FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT ?"

        def op(conn: sqlite3.Connection) -> JobPage:
            rows = conn.execute(query, (*args, limit + 1)).fetchall()
            jobs = [decode_job(row[0]) for row in rows[:limit]]
            more = len(rows) > limit
            next_cursor = encode_cursor(jobs[-1].created_at, jobs[-1].id) if more else None
            return JobPage(jobs, next_cursor)

        return await self._read(op)

    async def apply(self, update: JobUpdate) -> ApplyResult:
        def op(conn: sqlite3.Connection) -> ApplyResult:
            job = self._load(conn, update.job_id)
            if job is None:
                raise NotFoundError(f"job {update.job_id} not found")
            merged = merge(job, update)
            if merged is None:
                return ApplyResult(job, applied=False)
            self._save(conn, merged)
            if merged.status.terminal:
                conn.execute("DELETE FROM leases WHERE job_id = ?", (job.id,))
            return ApplyResult(merged, applied=True)

        return await self._run(op)

    async def request_cancel(self, job_id: str, *, at: float) -> Job:
        def op(conn: sqlite3.Connection) -> Job:
            job = self._load(conn, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id} not found")
            changed = cancel(job, at=at)
            if changed is None:
                return job
            self._save(conn, changed)
            return changed

        return await self._run(op)

    async def is_cancel_requested(self, job_id: str) -> bool:
        job = await self.get(job_id)
        return bool(job and (job.cancel_requested or job.status == JobStatus.CANCELED))

    async def claim(self, job_id: str, worker_id: str, *, ttl_s: float, now: float) -> Lease | None:
        def op(conn: sqlite3.Connection) -> Lease | None:
            row = conn.execute(
                "SELECT worker_id, attempt, expires_at FROM leases WHERE job_id = ?", (job_id,)
            ).fetchone()
            if row is not None and row[0] != worker_id and row[2] > now:
                return None
            if row is not None and row[0] == worker_id:
                attempt = int(row[1])
            else:
                attempt = int(row[1]) + 1 if row is not None else 1
            lease = Lease(job_id, worker_id, attempt, now + ttl_s)
            conn.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)",
                (job_id, worker_id, attempt, lease.expires_at),
            )
            return lease

        return await self._run(op)

    async def renew(self, lease: Lease, *, ttl_s: float, now: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE leases SET expires_at = ? WHERE job_id = ? AND worker_id = ? "
                "AND attempt = ?",
                (now + ttl_s, lease.job_id, lease.worker_id, lease.attempt),
            )
            return cursor.rowcount == 1

        return await self._run(op)

    async def release(self, lease: Lease) -> None:
        def op(conn: sqlite3.Connection) -> None:
            # Keep the row (it remembers the attempt count) but let anyone take it at once.
            conn.execute(
                "UPDATE leases SET expires_at = 0 WHERE job_id = ? AND worker_id = ? "
                "AND attempt = ?",
                (lease.job_id, lease.worker_id, lease.attempt),
            )

        await self._run(op)

    async def lease_of(self, job_id: str) -> Lease | None:
        def op(conn: sqlite3.Connection) -> Lease | None:
            row = conn.execute(
                "SELECT worker_id, attempt, expires_at FROM leases WHERE job_id = ?", (job_id,)
            ).fetchone()
            return Lease(job_id, row[0], int(row[1]), float(row[2])) if row else None

        return await self._read(op)

    async def stale_jobs(
        self, *, now: float, queued_before: float, limit: int = 100
    ) -> builtins.list[Job]:
        def op(conn: sqlite3.Connection) -> builtins.list[Job]:
            rows = conn.execute(
                "SELECT j.data FROM jobs j LEFT JOIN leases l ON l.job_id = j.id "
                "WHERE (j.status = 'running' AND (l.expires_at IS NULL OR l.expires_at <= ?)) "
                "OR (j.status = 'queued' AND j.created_at < ? "
                "    AND (l.expires_at IS NULL OR l.expires_at <= ?)) "
                "ORDER BY j.created_at LIMIT ?",
                (now, queued_before, now, limit),
            ).fetchall()
            return [decode_job(row[0]) for row in rows]

        return await self._read(op)

    async def record_sweep(self, job_id: str) -> Job:
        def op(conn: sqlite3.Connection) -> Job:
            job = self._load(conn, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id} not found")
            changed = dataclasses.replace(job, sweeps=job.sweeps + 1)
            self._save(conn, changed)
            return changed

        return await self._run(op)

    async def get_with_position(self, job_id: str) -> tuple[Job | None, int | None]:
        def op(conn: sqlite3.Connection) -> tuple[Job | None, int | None]:
            # One version check for both reads: each check is a read transaction, and its
            # two file-lock calls were most of a status read's system calls besides the
            # response's own writes.
            version = self._read_cache.version(conn)
            job = self._cached_job(conn, version, job_id)
            if job is None or job.status != JobStatus.QUEUED:
                return job, None
            return job, self._cached_position(conn, version, job)

        return await self._read(op)

    async def queue_position(self, job: Job) -> int | None:
        if job.status != JobStatus.QUEUED:
            return None  # most status reads: nothing to count, nothing to ask the database
        return await self._read(
            lambda conn: self._cached_position(conn, self._read_cache.version(conn), job)
        )

    @staticmethod
    def _queue_position(conn: sqlite3.Connection, job: Job) -> int:
        """Where the queued ``job`` stands: 1 + the queued jobs created before it."""
        # SQLite counts index entries one by one: stop at the cap, so a read deep in a long
        # queue costs no more than one near its head.
        row = conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE status = 'queued' "
            "AND (created_at, id) < (?, ?) LIMIT ?)",
            (job.created_at, job.id, QUEUE_POSITION_CAP - 1),
        ).fetchone()
        return int(row[0]) + 1

    async def count(self, status: JobStatus) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status.value,))
            return int(row.fetchone()[0])

        return await self._read(op)

    async def count_unfinished(self, tenant: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE tenant = ? AND status IN ('queued', 'running')",
                (tenant,),
            )
            return int(row.fetchone()[0])

        return await self._read(op)

    async def ping(self) -> None:
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        """Commit the changes queued on the running loop and close both connections. The
        store reopens on its next use."""
        with self._lock:
            writer, self._writer = self._writer, None
            reader, self._reader = self._reader, None
        if writer is not None:
            await writer.stop()
        if reader is not None:
            reader.close()


def _row(job: Job) -> _Row:
    # orjson: a fifth of json.dumps's time for a job, and this runs on every write.
    data = orjson.dumps(job.to_dict()).decode()
    return (job.id, job.tenant, job.status.value, job.created_at, data)
