"""The embedded job store: one SQLite file shared by the local processes.

`JobStoreCore`'s rules over `SqliteBackend`: plain `sqlite3` on worker threads
(`asyncio.to_thread`), the file in WAL mode so that reads never wait for a writer. Each
compare-and-set is one `BEGIN IMMEDIATE` transaction: SQLite serialises those across
processes, and a writer waits up to the busy timeout for another's lock before its change
fails with `UnavailableError`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from t2v.errors import UnavailableError
from t2v.jobs import Job, JobStatus, decode_job, encode_job
from t2v.store.base import CHANGE_LOG_LENGTH, JobChange, Lease
from t2v.store.core import ClaimWrite, IdempotencyRecord, JobStoreCore, video_finished_at

T = TypeVar("T")
# Queue positions past this are reported as this (a lower bound): see count_queued_before.
QUEUE_POSITION_CAP = 100
# Between change-log reads while a stream waits for the job to change.
CHANGE_POLL_S = 0.2

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
-- The jobs holding a video (Job.held_video_key): a table of its own, so that a database
-- made before it needs no migration.
CREATE TABLE IF NOT EXISTS videos (
    job_id TEXT PRIMARY KEY,
    video_key TEXT NOT NULL,
    finished_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS videos_by_key ON videos (video_key);
CREATE INDEX IF NOT EXISTS videos_by_time ON videos (finished_at, job_id);
CREATE TABLE IF NOT EXISTS records (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Each job's change log (JobStore.changes): the job as each write left it.
CREATE TABLE IF NOT EXISTS job_changes (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    job_id TEXT PRIMARY KEY,
    worker_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
"""
_LEASE_COLUMNS = "job_id, worker_id, attempt, expires_at"


def _placeholders(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def _lease(row: tuple[str, str, int, float]) -> Lease:
    return Lease(row[0], row[1], int(row[2]), float(row[3]))


def _load_job(conn: sqlite3.Connection, job_id: str) -> Job | None:
    row = conn.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return decode_job(row[0]) if row else None


def _load_lease(conn: sqlite3.Connection, job_id: str) -> Lease | None:
    query = f"SELECT {_LEASE_COLUMNS} FROM leases WHERE job_id = ?"
    row = conn.execute(query, (job_id,)).fetchone()
    return _lease(row) if row else None


def _load_claim(conn: sqlite3.Connection, tenant: str, key: str) -> IdempotencyRecord | None:
    row = conn.execute(
        "SELECT request_hash, job_id, expires_at FROM idempotency WHERE tenant = ? AND key = ?",
        (tenant, key),
    ).fetchone()
    return IdempotencyRecord(row[0], row[1], float(row[2])) if row else None


def _index_video(conn: sqlite3.Connection, job: Job) -> None:
    key = job.held_video_key
    if key is None:
        conn.execute("DELETE FROM videos WHERE job_id = ?", (job.id,))
    else:
        conn.execute(
            "INSERT OR REPLACE INTO videos (job_id, video_key, finished_at) VALUES (?, ?, ?)",
            (job.id, key, video_finished_at(job)),
        )


def _log_change(conn: sqlite3.Connection, job_id: str, data: str) -> None:
    """Append the job's next change-log entry and drop the ones past `CHANGE_LOG_LENGTH`."""
    row = conn.execute("SELECT MAX(seq) FROM job_changes WHERE job_id = ?", (job_id,)).fetchone()
    seq = int(row[0] or 0) + 1
    conn.execute(
        "INSERT INTO job_changes (job_id, seq, data) VALUES (?, ?, ?)", (job_id, seq, data)
    )
    conn.execute(
        "DELETE FROM job_changes WHERE job_id = ? AND seq <= ?", (job_id, seq - CHANGE_LOG_LENGTH)
    )


def _load_changes(
    conn: sqlite3.Connection, job_id: str, after_seq: int, limit: int
) -> list[JobChange]:
    query = "SELECT seq, data FROM job_changes WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?"
    rows = conn.execute(query, (job_id, after_seq, limit)).fetchall()
    return [JobChange(int(seq), decode_job(data)) for seq, data in rows]


def _load_record(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM records WHERE name = ?", (name,)).fetchone()
    return str(row[0]) if row else None


def _count_unfinished(conn: sqlite3.Connection, tenant: str) -> int:
    query = "SELECT COUNT(*) FROM jobs WHERE tenant = ? AND status IN ('queued', 'running')"
    return int(conn.execute(query, (tenant,)).fetchone()[0])


def _in_transaction(conn: sqlite3.Connection, change: Callable[[], bool]) -> bool:
    """Run `change` in one write transaction, committed only when it returns True."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = change()
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled it back itself (I/O error)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT" if done else "ROLLBACK")
    return done


class SqliteBackend:
    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        # Idle connections, one taken per operation: each worker thread needs its own.
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # One connection opened at a time: the first switches a new file to WAL and creates
        # the schema, and SQLite answers "database is locked" at once, without waiting out
        # the busy timeout, to a second connection doing the same meanwhile.
        self._opening = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout_s,  # SQLite's busy timeout
            isolation_level=None,  # transactions only where this module begins one
            check_same_thread=False,  # handed from one worker thread to the next
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # IF NOT EXISTS on tables that exist takes no write lock.
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            with self._opening:
                conn = self._open()
        try:
            yield conn
        except BaseException:
            conn.close()  # in an unknown state: not reused
            raise
        with self._lock:
            self._idle.append(conn)

    def _call(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        with self._connection() as conn:
            return operation(conn)

    async def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await asyncio.to_thread(self._call, operation)
        except (sqlite3.OperationalError, OSError) as exc:
            raise UnavailableError(f"job store unavailable: {exc}") from exc

    # Reads --------------------------------------------------------------------------------
    async def read_job(self, job_id: str) -> Job | None:
        return await self._run(lambda conn: _load_job(conn, job_id))

    async def read_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        if not job_ids:
            return []
        query = f"SELECT id, data FROM jobs WHERE id IN ({_placeholders(job_ids)})"

        def load(conn: sqlite3.Connection) -> list[Job]:
            found = dict(conn.execute(query, tuple(job_ids)).fetchall())
            return [decode_job(found[job_id]) for job_id in job_ids if job_id in found]

        return await self._run(load)

    async def read_lease(self, job_id: str) -> Lease | None:
        return await self._run(lambda conn: _load_lease(conn, job_id))

    async def read_leases(self, job_ids: Sequence[str]) -> list[Lease | None]:
        if not job_ids:
            return []
        query = f"SELECT {_LEASE_COLUMNS} FROM leases WHERE job_id IN ({_placeholders(job_ids)})"

        def load(conn: sqlite3.Connection) -> list[Lease | None]:
            found = {row[0]: _lease(row) for row in conn.execute(query, tuple(job_ids))}
            return [found.get(job_id) for job_id in job_ids]

        return await self._run(load)

    async def read_claim(self, tenant: str, key: str) -> IdempotencyRecord | None:
        return await self._run(lambda conn: _load_claim(conn, tenant, key))

    # Compare-and-set ----------------------------------------------------------------------
    async def put_job(
        self,
        job: Job,
        *,
        expected: Job | None,
        claim: ClaimWrite | None = None,
        drop_lease: bool = False,
        max_unfinished: int | None = None,
    ) -> bool:
        row = (job.id, job.tenant, job.status.value, job.created_at, encode_job(job).decode())

        def write(conn: sqlite3.Connection) -> bool:
            if _load_job(conn, job.id) != expected:
                return False
            # Counted inside the write transaction (BEGIN IMMEDIATE): no other writer can
            # add a job between this count and the insert.
            if max_unfinished is not None and _count_unfinished(conn, job.tenant) >= max_unfinished:
                return False
            if claim is not None:
                if _load_claim(conn, claim.tenant, claim.key) != claim.expected:
                    return False
                record = claim.record
                conn.execute(
                    "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?)",
                    (
                        claim.tenant,
                        claim.key,
                        record.request_hash,
                        record.job_id,
                        record.expires_at,
                    ),
                )
            # The indexes are the table's own: status is a column.
            conn.execute(
                "INSERT INTO jobs (id, tenant, status, created_at, data) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET status = excluded.status, data = excluded.data",
                row,
            )
            if drop_lease:
                conn.execute("DELETE FROM leases WHERE job_id = ?", (job.id,))
            _index_video(conn, job)
            _log_change(conn, job.id, row[4])
            return True

        return await self._run(lambda conn: _in_transaction(conn, lambda: write(conn)))

    async def delete_job(self, job: Job) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            if _load_job(conn, job.id) != job:
                return False
            tables = (("jobs", "id"), ("leases", "job_id"), ("videos", "job_id"))
            for table, column in (*tables, ("job_changes", "job_id")):
                conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (job.id,))
            return True

        return await self._run(lambda conn: _in_transaction(conn, lambda: delete(conn)))

    async def put_lease(self, lease: Lease, *, expected: Lease | None) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            if _load_lease(conn, lease.job_id) != expected:
                return False
            conn.execute(
                f"INSERT OR REPLACE INTO leases ({_LEASE_COLUMNS}) VALUES (?, ?, ?, ?)",
                (lease.job_id, lease.worker_id, lease.attempt, lease.expires_at),
            )
            return True

        return await self._run(lambda conn: _in_transaction(conn, lambda: write(conn)))

    async def read_record(self, name: str) -> str | None:
        return await self._run(lambda conn: _load_record(conn, name))

    async def put_record(self, name: str, value: str, *, expected: str | None) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            if _load_record(conn, name) != expected:
                return False
            conn.execute("INSERT OR REPLACE INTO records VALUES (?, ?)", (name, value))
            return True

        return await self._run(lambda conn: _in_transaction(conn, lambda: write(conn)))

    # Index queries ------------------------------------------------------------------------
    async def newest(
        self,
        *,
        tenant: str | None,
        status: JobStatus | None,
        limit: int,
        before: tuple[float, str] | None,
    ) -> list[tuple[float, str]]:
        clauses: list[str] = []
        args: list[object] = []
        if tenant is not None:
            clauses.append("tenant = ?")
            args.append(tenant)
        if status is not None:
            clauses.append("status = ?")
            args.append(status.value)
        if before is not None:
            # A row value, not an OR: SQLite then seeks the index instead of scanning it.
            clauses.append("(created_at, id) < (?, ?)")
            args.extend(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT created_at, id FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT ?"
        return await self._run(lambda conn: conn.execute(query, (*args, limit)).fetchall())

    async def oldest(
        self, status: JobStatus, *, created_before: float | None, offset: int, limit: int
    ) -> list[str]:
        before = float("inf") if created_before is None else created_before
        query = (
            "SELECT id FROM jobs WHERE status = ? AND created_at < ? "
            "ORDER BY created_at, id LIMIT ? OFFSET ?"
        )
        args = (status.value, before, limit, offset)
        return await self._run(lambda conn: [row[0] for row in conn.execute(query, args)])

    async def count_queued_before(self, created_at: float, job_id: str) -> int:
        # SQLite counts index entries one by one: stop at the cap, so a read deep in a long
        # queue costs no more than one near its head.
        query = (
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE status = 'queued' "
            "AND (created_at, id) < (?, ?) LIMIT ?)"
        )
        args = (created_at, job_id, QUEUE_POSITION_CAP - 1)
        return await self._run(lambda conn: int(conn.execute(query, args).fetchone()[0]))

    async def count(self, *, tenant: str | None, statuses: Sequence[JobStatus]) -> int:
        args: list[object] = [status.value for status in statuses]
        query = f"SELECT COUNT(*) FROM jobs WHERE status IN ({_placeholders(args)})"
        if tenant is not None:
            query += " AND tenant = ?"
            args.append(tenant)
        return await self._run(lambda conn: int(conn.execute(query, args).fetchone()[0]))

    async def finished_videos(self, *, finished_before: float, limit: int) -> list[str]:
        query = (
            "SELECT job_id FROM videos WHERE finished_at < ? ORDER BY finished_at, job_id LIMIT ?"
        )
        args = (finished_before, limit)
        return await self._run(lambda conn: [row[0] for row in conn.execute(query, args)])

    async def count_video_holders(self, key: str) -> int:
        query = "SELECT COUNT(*) FROM videos WHERE video_key = ?"
        return await self._run(lambda conn: int(conn.execute(query, (key,)).fetchone()[0]))

    # Change log ---------------------------------------------------------------------------
    async def read_changes(self, job_id: str, *, after_seq: int, limit: int) -> list[JobChange]:
        return await self._run(lambda conn: _load_changes(conn, job_id, after_seq, limit))

    async def read_last_change(self, job_id: str) -> JobChange | None:
        query = "SELECT seq, data FROM job_changes WHERE job_id = ? ORDER BY seq DESC LIMIT 1"
        row = await self._run(lambda conn: conn.execute(query, (job_id,)).fetchone())
        return JobChange(int(row[0]), decode_job(row[1])) if row else None

    async def wait_for_changes(
        self, job_id: str, *, after_seq: int, limit: int, timeout_s: float
    ) -> list[JobChange]:
        # SQLite cannot tell another process's reader that a row arrived: poll, cheaply (a
        # primary-key seek that finds nothing), often enough to look live.
        deadline = time.monotonic() + timeout_s
        while True:
            found = await self.read_changes(job_id, after_seq=after_seq, limit=limit)
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            await asyncio.sleep(min(CHANGE_POLL_S, left))

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        """Close the idle connections; the store opens new ones on its next use."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class SqliteJobStore(JobStoreCore):
    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        """`busy_timeout_s`: how long a change waits for another process's write lock."""
        super().__init__(SqliteBackend(path, busy_timeout_s=busy_timeout_s))

    @classmethod
    def from_url(cls, url: str) -> SqliteJobStore:
        return cls(Path(url.removeprefix("sqlite:///").removeprefix("sqlite://")))
