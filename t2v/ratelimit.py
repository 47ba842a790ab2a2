"""Submit admission per tenant: a sliding-window rate and a cap on unfinished jobs.

The rate is a sliding window counter: this window's count plus the previous window's,
weighted by how much of it still overlaps. Two counters per tenant, so a check costs the same
at any rate; the exact moving window kept one entry per submission and walked them on every
check (at a rate high enough never to refuse, that walk was a large share of submit's CPU;
BENCHMARKS.md, control plane). Within one window the two agree exactly. The counters are
`t2v.rate_windows`': on Redis (shared by every replica) one Lua script per check, in memory
plain arithmetic. `limits` parses the rate; its strategies cost more than the counting
(in memory ~30 us per check, on Redis two round trips).

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
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse

from t2v.errors import RateLimitedError
from t2v.rate_windows import LocalWindows, RedisWindows, WindowCheck
from t2v.store.base import JobStore

if TYPE_CHECKING:
    # Imported where used: the local platform runs without redis installed.
    from t2v.redis_pipe import PipelinedRedis

DEFAULT_SUBMIT_RATE = "30/minute"
DEFAULT_MAX_ACTIVE_JOBS = 20
# How long a tenant at its cap is told to wait: about how long a short job takes to finish.
ACTIVE_CAP_RETRY_AFTER_S = 30
_NAMESPACE = "t2v-submit"


def _redis_client(url: str) -> PipelinedRedis:
    if not url.startswith(("redis://", "rediss://")):
        raise ValueError(f"T2V_RATE_LIMIT_STORAGE {url!r} must be memory:// or redis://host")
    from t2v.redis_pipe import PipelinedRedis

    return PipelinedRedis(url, timeout_s=5.0)


class SubmitLimiter:
    def __init__(
        self,
        *,
        rate: RateLimitItem,
        max_active_jobs: int,
        store: JobStore,
        redis: PipelinedRedis | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``redis``: where the windows live, shared by every replica; None: this process."""
        self._rate = rate
        self._max_active = max_active_jobs
        self._shared = None
        if redis is not None:
            self._shared = RedisWindows(redis, clock, namespace=_NAMESPACE)
        self._local = LocalWindows(clock)
        self._store = store
        self._clock = clock
        self._policy = f"{rate.amount};w={rate.get_expiry()}"
        self._redis = redis

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
        redis = None if url.startswith("memory://") else _redis_client(url)
        return cls(rate=rate, max_active_jobs=max_active, store=store, redis=redis)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()

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
        return await self._shared.hit(self._rate, tenant)

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
