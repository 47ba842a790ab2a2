"""Job stores: the embedded SQLite default and Redis on a cluster, chosen by URL."""

from __future__ import annotations

from t2v.store.base import ApplyResult, CreateResult, IdempotencyClaim, JobPage, JobStore, Lease

__all__ = [
    "ApplyResult",
    "CreateResult",
    "IdempotencyClaim",
    "JobPage",
    "JobStore",
    "Lease",
    "open_job_store",
]


def open_job_store(url: str) -> JobStore:
    if url.startswith("sqlite:"):
        from t2v.store.sqlite import SqliteJobStore

        return SqliteJobStore.from_url(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from t2v.store.redis import RedisJobStore

        return RedisJobStore.from_url(url)
    raise ValueError(f"unsupported job store URL {url!r} (use sqlite:///path or redis://host)")
