"""Job stores: the embedded SQLite default and Redis on a cluster, chosen by URL."""

from __future__ import annotations

from t2v.store.base import (
    ApplyResult,
    CreateResult,
    IdempotencyClaim,
    JobChange,
    JobPage,
    JobStore,
    Lease,
    UnfinishedLimitReached,
)

__all__ = [
    "DEFAULT_REDIS_MAX_CONNECTIONS",
    "ApplyResult",
    "CreateResult",
    "IdempotencyClaim",
    "JobChange",
    "JobPage",
    "JobStore",
    "Lease",
    "UnfinishedLimitReached",
    "open_job_store",
]

# Connections one process's Redis store holds at most (`T2V_REDIS_MAX_CONNECTIONS`).
DEFAULT_REDIS_MAX_CONNECTIONS = 32


def open_job_store(
    url: str, *, redis_max_connections: int = DEFAULT_REDIS_MAX_CONNECTIONS
) -> JobStore:
    if url.startswith("sqlite:"):
        from t2v.store.sqlite import SqliteJobStore

        return SqliteJobStore.from_url(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from t2v.store.redis import RedisJobStore

        return RedisJobStore.from_url(url, max_connections=redis_max_connections)
    raise ValueError(f"unsupported job store URL {url!r} (use sqlite:///path or redis://host)")
