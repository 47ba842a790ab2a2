"""Submit admission per tenant: a sliding-window rate and a cap on unfinished jobs.

The rate is a sliding window counter: this window's count plus the previous window's,
weighted by how much of it still overlaps. Two counters per tenant, so a check costs the same
at any rate; the exact moving window kept one entry per submission and walked them on every
check (at a rate high enough never to refuse, that walk was a large share of submit's CPU;
BENCHMARKS.md, control plane). Within one window the two agree exactly. On Redis the
counters are `limits`' (shared by every replica); in memory they are `LocalWindows`, the same
arithmetic without `limits`' storage layer, which cost ~30 us per check (two awaited calls,
each under a lock).

Configuration (read once by `SubmitLimiter.from_env`):
- `T2V_SUBMIT_RATE`: submissions per tenant in a sliding window, in the `limits` notation
  (`30/minute`, `5/second`, `500/hour`; default `30/minute`).
- `T2V_MAX_ACTIVE_JOBS`: queued plus running jobs a tenant may have at once (default 20;
  0 turns the cap off). Counted from the job store, so every replica sees the same number;
  two submits racing at the cap may both pass, which a cap of this kind can tolerate.
- `T2V_RATE_LIMIT_STORAGE`: where the windows live: `memory://` (default; one process, the
  local platform) or `redis://host:port/db` on a cluster, so every submit replica shares them.

Responses carry the IETF draft `RateLimit-*` headers (`-Limit`, `-Remaining`, `-Reset` in
seconds, `-Policy` as `limit;w=window`); a refusal adds `Retry-After`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from t2v.errors import RateLimitedError, UnavailableError
from t2v.store.base import JobStore

if TYPE_CHECKING:
    # Imported where used: the local platform runs without redis installed.
    import redis.asyncio as aioredis

DEFAULT_SUBMIT_RATE = "30/minute"
DEFAULT_MAX_ACTIVE_JOBS = 20
# How long a tenant at its cap is told to wait: about how long a short job takes to finish.
ACTIVE_CAP_RETRY_AFTER_S = 30
_NAMESPACE = "t2v-submit"


def _redis_storage(url: str) -> tuple[Storage, aioredis.ConnectionPool]:
    """The `limits` storage for `url`, and the Redis pool behind it (we close it: `limits`
    has no close of its own)."""
    if url.startswith(("redis://", "rediss://")):
        import redis.asyncio as aioredis

        pool = aioredis.ConnectionPool.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        options: dict[str, Any] = {"connection_pool": pool}
        redis_storage = RedisStorage(
            "async+" + url, implementation="redispy", wrap_exceptions=True, **options
        )
        return redis_storage, pool
    raise ValueError(f"T2V_RATE_LIMIT_STORAGE {url!r} must be memory:// or redis://host")


@dataclass(frozen=True)
class WindowCheck:
    allowed: bool
    remaining: int
    reset_at: float  # epoch seconds


class LocalWindows:
    """Sliding window counters in this process, windows aligned to multiples of the expiry."""

    # Tenants kept before the idle ones are dropped (their counts are zero anyway).
    PRUNE_AT = 10_000

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        # tenant -> (window number, count in it, count in the window before it)
        self._windows: dict[str, tuple[int, int, int]] = {}

    def hit(self, rate: RateLimitItem, tenant: str) -> WindowCheck:
        now, expiry = self._clock(), rate.get_expiry()
        number = int(now // expiry)
        current, previous = self._counts(tenant, number)
        previous_left = (number + 1) * expiry - now  # how long the previous window overlaps
        weighted = previous * previous_left / expiry + current
        allowed = weighted + 1 <= rate.amount
        if allowed:
            current += 1
            weighted += 1
            if len(self._windows) >= self.PRUNE_AT:
                self._prune(number)
            self._windows[tenant] = (number, current, previous)
        remaining = max(0, rate.amount - math.floor(weighted))
        # When the weighted count next drops by one: a previous hit leaving, or the window end.
        reset_in = previous_left
        if previous:
            step = expiry / previous  # the weighted count falls by one every step
            reset_in = min(reset_in, previous_left % step or step)
        return WindowCheck(allowed, remaining, now + reset_in)

    def _counts(self, tenant: str, number: int) -> tuple[int, int]:
        stored = self._windows.get(tenant)
        if stored is None or stored[0] < number - 1:
            return 0, 0
        if stored[0] == number - 1:
            return 0, stored[1]
        return stored[1], stored[2]

    def _prune(self, number: int) -> None:
        self._windows = {
            tenant: counts for tenant, counts in self._windows.items() if counts[0] >= number - 1
        }


class SubmitLimiter:
    def __init__(
        self,
        *,
        rate: RateLimitItem,
        max_active_jobs: int,
        storage: Storage | None,
        store: JobStore,
        clock: Callable[[], float] = time.time,
        redis_pool: aioredis.ConnectionPool | None = None,
    ) -> None:
        """``storage``: `limits`' (Redis), or None for this process's `LocalWindows`."""
        self._rate = rate
        self._max_active = max_active_jobs
        self._shared = SlidingWindowCounterRateLimiter(storage) if storage is not None else None
        self._local = LocalWindows(clock)
        self._store = store
        self._clock = clock
        self._policy = f"{rate.amount};w={rate.get_expiry()}"
        self._redis_pool = redis_pool

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
        url = env.get("T2V_RATE_LIMIT_STORAGE") or "memory://"
        storage, pool = (None, None) if url.startswith("memory://") else _redis_storage(url)
        return cls(
            rate=rate, max_active_jobs=max_active, storage=storage, store=store, redis_pool=pool
        )

    async def close(self) -> None:
        if self._redis_pool is not None:
            await self._redis_pool.disconnect()

    async def _active_jobs(self, tenant: str) -> int:
        return await self._store.count_unfinished(tenant)

    def _headers(self, remaining: int, reset_at: float) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self._rate.amount),
            "RateLimit-Remaining": str(max(0, remaining)),
            "RateLimit-Reset": str(max(0, math.ceil(reset_at - self._clock()))),
            "RateLimit-Policy": self._policy,
        }

    async def _hit(self, tenant: str) -> WindowCheck:
        if self._shared is None:
            return self._local.hit(self._rate, tenant)
        try:
            allowed = await self._shared.hit(self._rate, _NAMESPACE, tenant)
            stats = await self._shared.get_window_stats(self._rate, _NAMESPACE, tenant)
        except StorageError as exc:
            raise UnavailableError(f"rate limit storage unavailable: {exc}") from exc
        return WindowCheck(allowed, stats.remaining, stats.reset_time)

    async def check(self, tenant: str) -> dict[str, str]:
        """Count one submission by `tenant`; return the headers for the 202, or raise
        `RateLimitedError` (code `rate_limited`, or `too_many_active_jobs` at the cap)."""
        if self._max_active > 0 and await self._active_jobs(tenant) >= self._max_active:
            retry = ACTIVE_CAP_RETRY_AFTER_S
            error = RateLimitedError(
                f"tenant has {self._max_active} unfinished jobs, the most allowed at once; "
                "wait for one to finish or cancel one",
                retry_after_s=retry,
            )
            error.code = "too_many_active_jobs"
            raise error
        window = await self._hit(tenant)
        headers = self._headers(window.remaining, window.reset_at)
        if window.allowed:
            return headers
        retry = max(1, math.ceil(window.reset_at - self._clock()))
        raise RateLimitedError(
            f"more than {self._rate.amount} submissions per {self._rate.get_expiry()} s; "
            f"retry in {retry} s",
            retry_after_s=retry,
            headers=headers,
        )
