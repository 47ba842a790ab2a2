"""Sliding window counters per tenant: in this process, or on Redis for every replica.

A sliding window counter is this window's count plus the previous window's, weighted by how
much of it still overlaps; windows are aligned to multiples of the rate's expiry. Two
counters per tenant, so a check costs the same at any rate.

On Redis the check is one Lua script (check, count, expire) by EVALSHA, on the pipelined
connection of `t2v.redis_pipe`. `limits`' Redis
strategy took two round trips per check (hit, then the window's stats for the headers), each
through its storage layer: 0.3-0.5 ms of submit's CPU per request, more than the job's own
create.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from limits import RateLimitItem

from t2v.errors import UnavailableError

if TYPE_CHECKING:
    # Imported where used: the local platform runs without redis installed.
    from t2v.redis_pipe import PipelinedRedis


@dataclass(frozen=True)
class WindowCheck:
    allowed: bool
    remaining: int
    reset_at: float  # epoch seconds


def _previous_left(now: float, expiry: int) -> float:
    """How long the previous window still overlaps the sliding one."""
    return (int(now // expiry) + 1) * expiry - now


def window_check(
    rate: RateLimitItem, now: float, *, current: int, previous: int, allowed: bool
) -> WindowCheck:
    """The outcome, from the counts after the hit (``current`` includes it when allowed)."""
    expiry = rate.get_expiry()
    previous_left = _previous_left(now, expiry)
    weighted = previous * previous_left / expiry + current
    remaining = max(0, rate.amount - math.floor(weighted))
    # When the weighted count next drops by one: a previous hit leaving, or the window end.
    reset_in = previous_left
    if previous:
        step = expiry / previous  # the weighted count falls by one every step
        reset_in = min(reset_in, previous_left % step or step)
    return WindowCheck(allowed, remaining, now + reset_in)


class LocalWindows:
    """The counters in this process (one replica: the local platform)."""

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
        weighted = previous * _previous_left(now, expiry) / expiry + current
        allowed = weighted + 1 <= rate.amount
        if allowed:
            current += 1
            if len(self._windows) >= self.PRUNE_AT:
                self._prune(number)
            self._windows[tenant] = (number, current, previous)
        return window_check(rate, now, current=current, previous=previous, allowed=allowed)

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


# KEYS: this window's counter, the previous window's. ARGV: limit, expiry s, now.
# The same decision as LocalWindows.hit; returns {allowed, current, previous} after the hit.
HIT_LUA = """
local limit, expiry, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local current = tonumber(redis.call('GET', KEYS[1]) or 0)
local previous = tonumber(redis.call('GET', KEYS[2]) or 0)
local previous_left = (math.floor(now / expiry) + 1) * expiry - now
if previous * previous_left / expiry + current + 1 <= limit then
  current = redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], math.ceil(expiry * 2000))
  return {1, current, previous}
end
return {0, current, previous}
"""


class RedisWindows:
    """The counters on Redis, shared by every submit replica. A counter lives two windows:
    while it is the current window's and then the previous one's."""

    def __init__(
        self, client: PipelinedRedis, clock: Callable[[], float], *, namespace: str
    ) -> None:
        import redis.exceptions as redis_errors

        from t2v.redis_pipe import Script

        # Any failure of the storage (lost, silent, refusing the login) is a 503.
        self._failures = (redis_errors.RedisError, OSError)
        self._client = client
        self._clock = clock
        self._namespace = namespace
        self._script = Script(HIT_LUA)

    def _key(self, tenant: str, expiry: int, number: int) -> str:
        # One hash tag per tenant: both counters in one Redis Cluster slot.
        return f"{self._namespace}:{{{len(tenant)}:{tenant}}}:{expiry}:{number}"

    async def hit(self, rate: RateLimitItem, tenant: str) -> WindowCheck:
        now, expiry = self._clock(), rate.get_expiry()
        number = int(now // expiry)
        keys = [self._key(tenant, expiry, number), self._key(tenant, expiry, number - 1)]
        try:
            allowed, current, previous = await self._client.run_script(
                self._script, keys, [rate.amount, expiry, repr(now)]
            )
        except self._failures as exc:
            raise UnavailableError(f"rate limit storage unavailable: {exc}") from exc
        return window_check(
            rate, now, current=int(current), previous=int(previous), allowed=bool(allowed)
        )
