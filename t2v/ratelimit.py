"""Submit admission per tenant: a sliding-window rate and a cap on unfinished jobs.

The rate is `limits`' sliding window counter: this window's count plus the previous window's,
weighted by how much of it still overlaps. Two counters per tenant, so a check costs the same
at any rate (the moving window keeps one entry per submission and walks them on every check).
The counters live in `limits`' async storage: in this process locally, on Redis (through
redis-py's asyncio client, which the cluster extra installs) where every replica shares them.

Configuration (read once by `SubmitLimiter.from_env`):
- `T2V_SUBMIT_RATE`: submissions per tenant in a sliding window, in the `limits` notation
  (`30/minute`, `5/second`, `500/hour`; default `30/minute`).
- `T2V_MAX_ACTIVE_JOBS`: queued plus running jobs a tenant may have at once (default 20;
  0 turns the cap off). Counted from the job store, so every replica sees the same number.
  `check` refuses a tenant already at the cap before counting its rate; the job store then
  checks the cap again in the transaction that stores the job (`max_active_jobs`, passed
  to `JobStore.create`), so submits racing at the cap never overshoot it. One that loses
  that race has used one submission of its rate.
- `T2V_RATE_LIMIT_STORAGE`: where the counters live: `memory://` (default; one process, the
  local platform) or `redis://host:port/db` on a cluster, so every submit replica shares them.

Every answer, the 202 and both 429s, carries the IETF draft `RateLimit-*` headers (`-Limit`,
`-Remaining`, `-Reset` in seconds, `-Policy` as `limit;w=window`); a refusal adds
`Retry-After`. Any failure of the Redis storage is a 503 `unavailable`.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from t2v.errors import RateLimitedError, UnavailableError
from t2v.store.base import JobStore

if TYPE_CHECKING:
    # Imported where used: the local platform runs without redis installed.
    from redis.asyncio import ConnectionPool

DEFAULT_SUBMIT_RATE = "30/minute"
DEFAULT_MAX_ACTIVE_JOBS = 20
# How long a tenant at its cap is told to wait: about how long a short job takes to finish.
ACTIVE_CAP_RETRY_AFTER_S = 30
REDIS_TIMEOUT_S = 5.0
_KEY_PREFIX = "t2v-submit"


def redis_storage(url: str) -> tuple[Storage, ConnectionPool]:
    """`limits`' Redis storage on redis-py's asyncio client (`limits` defaults to coredis,
    which is not installed), over a pool of our own so that `close` can release it. Shared
    with `t2v.keyguard`, whose counters live in the same storage."""
    if not url.startswith(("redis://", "rediss://")):
        raise ValueError(f"T2V_RATE_LIMIT_STORAGE {url!r} must be memory:// or redis://host")
    from redis.asyncio import ConnectionPool

    pool = ConnectionPool.from_url(
        url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    # `limits` types its pass-through options as scalars; the pool goes to redis-py as is.
    client_options: dict[str, Any] = {"connection_pool": pool}
    storage = RedisStorage(
        f"async+{url}",
        wrap_exceptions=True,
        implementation="redispy",
        key_prefix=_KEY_PREFIX,
        **client_options,
    )
    return storage, pool


class SubmitLimiter:
    def __init__(
        self,
        *,
        rate: RateLimitItem,
        max_active_jobs: int,
        store: JobStore,
        storage_url: str = "memory://",
    ) -> None:
        self._rate = rate
        self._max_active = max_active_jobs
        self._store = store
        self._policy = f"{rate.amount};w={rate.get_expiry()}"
        self._pool: ConnectionPool | None = None
        storage: Storage
        if storage_url.startswith("memory://"):
            storage = MemoryStorage()
        else:
            storage, self._pool = redis_storage(storage_url)
        self._windows = SlidingWindowCounterRateLimiter(storage)
        # One admission at a time per tenant in this process: a burst of one tenant's submits
        # then reads the count one after another (most are refused by `check` alone) instead
        # of all racing into the store's compare-and-set, each holding a store connection.
        # Kept only while someone holds or waits for it.
        self._admitting: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None, store: JobStore) -> SubmitLimiter:
        env = os.environ if env is None else env
        rate_text = env.get("T2V_SUBMIT_RATE") or DEFAULT_SUBMIT_RATE
        try:
            rate = parse(rate_text)
        except ValueError as exc:
            raise ValueError(f"T2V_SUBMIT_RATE {rate_text!r} is not like '30/minute'") from exc
        max_active_text = env.get("T2V_MAX_ACTIVE_JOBS") or str(DEFAULT_MAX_ACTIVE_JOBS)
        try:
            max_active = int(max_active_text)
        except ValueError as exc:
            raise ValueError(
                f"T2V_MAX_ACTIVE_JOBS must be an integer (got {max_active_text!r})"
            ) from exc
        storage_url = env.get("T2V_RATE_LIMIT_STORAGE") or "memory://"
        return cls(rate=rate, max_active_jobs=max_active, store=store, storage_url=storage_url)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    def _headers(self, remaining: int, reset_in_s: int) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self._rate.amount),
            "RateLimit-Remaining": str(max(0, remaining)),
            "RateLimit-Reset": str(max(0, reset_in_s)),
            "RateLimit-Policy": self._policy,
        }

    async def _window(self, tenant: str) -> tuple[int, int]:
        """The tenant's remaining submissions and the seconds until that number next grows."""
        stats = await self._windows.get_window_stats(self._rate, tenant)
        return stats.remaining, math.ceil(stats.reset_time - time.time())

    async def check(self, tenant: str) -> dict[str, str]:
        """Count one submission by `tenant`; return the headers for the 202, or raise
        `RateLimitedError` (code `rate_limited`, or `too_many_active_jobs` at the cap), or
        `UnavailableError` when the storage fails."""
        try:
            return await self._admit(tenant)
        except (StorageError, OSError) as exc:
            raise UnavailableError(f"rate limit storage unavailable: {exc}") from exc

    def admission(self, tenant: str) -> asyncio.Lock:
        """Hold while checking and storing one submission of `tenant` (this process only;
        the store's own check keeps the cap across replicas)."""
        lock = self._admitting.get(tenant)
        if lock is None:
            lock = self._admitting[tenant] = asyncio.Lock()
        return lock

    @property
    def max_active_jobs(self) -> int | None:
        """The cap on a tenant's unfinished jobs, None when there is none."""
        return self._max_active if self._max_active > 0 else None

    async def at_cap(self, tenant: str) -> RateLimitedError:
        """The 429 `too_many_active_jobs` for a tenant at its cap, with the rate's headers."""
        try:
            headers = self._headers(*await self._window(tenant))
        except (StorageError, OSError) as exc:
            raise UnavailableError(f"rate limit storage unavailable: {exc}") from exc
        error = RateLimitedError(
            f"tenant has {self._max_active} unfinished jobs, the most allowed at once; "
            "wait for one to finish or cancel one",
            retry_after_s=ACTIVE_CAP_RETRY_AFTER_S,
            headers=headers,
        )
        error.code = "too_many_active_jobs"
        return error

    async def _admit(self, tenant: str) -> dict[str, str]:
        if self._max_active > 0 and await self._store.count_unfinished(tenant) >= self._max_active:
            # Refused before counting: a refusal at the cap uses none of the tenant's rate.
            raise await self.at_cap(tenant)
        allowed = await self._windows.hit(self._rate, tenant)
        remaining, reset_in_s = await self._window(tenant)
        if allowed:
            return self._headers(remaining, reset_in_s)
        retry = max(1, reset_in_s)
        raise RateLimitedError(
            f"more than {self._rate.amount} submissions per {self._rate.get_expiry()} s; "
            f"retry in {retry} s",
            retry_after_s=retry,
            # Refused: nothing is left now, whatever the weighted count rounds to.
            headers=self._headers(0, retry),
        )
