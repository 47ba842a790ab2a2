"""Reads served from memory while the SQLite database has not changed.

Clients poll a job's status far more often than the job changes (the web page polls every
second while a job waits in the queue). SQLite's ``PRAGMA data_version`` changes on a
connection whenever another connection (a writer thread, another process) has committed since
its last call, so one cheap pragma tells whether a remembered result is still the database's
answer. The reader connection never writes, so its own commits cannot go unnoticed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Hashable
from typing import TypeVar, cast

T = TypeVar("T")
DEFAULT_MAX_ENTRIES = 4096


class VersionedReadCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        # Each entry keeps the version it was read at: a read that raced a change stores an
        # entry no later lookup accepts, whatever thread it ran on.
        self._entries: dict[Hashable, tuple[int, object]] = {}
        self._version: int | None = None
        self.hits = 0
        self.misses = 0

    def version(self, conn: sqlite3.Connection) -> int:
        """The database's version now, as ``conn`` sees it; entries of any other are dropped.

        Each check is a read transaction (two file-lock system calls in WAL mode): a request
        that looks up several keys checks once and passes the version to `at`."""
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            # Every entry is stale now; dropping them keeps memory to what one version reads.
            self._entries = {}
            self._version = version
        return version

    def at(self, version: int, key: Hashable, compute: Callable[[], T]) -> T:
        """The value of ``key`` remembered at ``version`` (from `version`), else computed."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] == version:
            self.hits += 1
            return cast(T, entry[1])
        self.misses += 1
        value = compute()
        if len(self._entries) >= self._max_entries:
            self._entries = {}
        self._entries[key] = (version, value)
        return value
