"""API-key guessing, slowed: failed authentications are rate-limited per client address.

A request that presents a key (any `Authorization` header) which is not valid counts once
against its client address, in `limits`' sliding window counter (as `t2v.ratelimit` counts
submissions). Past the rate, that address is answered 429 `too_many_failed_keys` with
`Retry-After`, before its key is even looked at, so a right guess made while refused cannot be
told from a wrong one. A request with no key at all reveals nothing: it is neither counted nor
refused. An address shared by many clients (a NAT) shares its allowance: while a guesser
behind it is refused, so are the others' keys, valid ones included.

The client address is the socket's peer, unless requests come through proxies that append it
to `X-Forwarded-For`: with `T2V_TRUSTED_PROXY_HOPS=n`, the n-th entry from the right is the
client (each trusted proxy appended one; entries left of it are whatever the client wrote,
and are never believed). The local gateway appends its peer, and `t2v local` sets 1.

Configuration (read once, on first use):
- `T2V_FAILED_KEY_RATE`: failed authentications per client address, in the `limits` notation
  (default `10/minute`), or `off` where the function cannot see client addresses: on the
  cluster every request's peer is the pod's own queue-proxy, and the proxies that append
  `X-Forwarded-For` before it differ with the activator in the path or not, so one count
  would refuse every client together (a guesser could lock all users out).
- `T2V_TRUSTED_PROXY_HOPS`: proxies in front of the function that append `X-Forwarded-For`
  (default 0: the socket's peer is the client).
- `T2V_RATE_LIMIT_STORAGE`: where the counters live, as for `t2v.ratelimit`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from starlette.requests import Request

from t2v.auth import KeyRegistry, Principal
from t2v.errors import RateLimitedError, UnauthorizedError, UnavailableError
from t2v.ratelimit import redis_storage

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool

DEFAULT_FAILED_KEY_RATE = "10/minute"
UNKNOWN_CLIENT = "unknown"


def client_address(
    peer: tuple[str, int] | None, forwarded_for: list[str], trusted_hops: int
) -> str:
    """The client's address: the socket's `peer`, or, behind `trusted_hops` proxies, the
    `X-Forwarded-For` entry the outermost trusted proxy appended. `forwarded_for` holds the
    header's values in order (a header may be sent more than once)."""
    if trusted_hops > 0:
        entries = [entry.strip() for value in forwarded_for for entry in value.split(",")]
        entries = [entry for entry in entries if entry]
        if len(entries) >= trusted_hops:
            return entries[-trusted_hops]
    return peer[0] if peer else UNKNOWN_CLIENT


class KeyGuard:
    def __init__(
        self, *, rate: RateLimitItem | None, trusted_hops: int, storage_url: str = "memory://"
    ) -> None:
        """`rate` None: nothing is counted (`T2V_FAILED_KEY_RATE=off`)."""
        self._rate = rate
        self._trusted_hops = trusted_hops
        self._pool: ConnectionPool | None = None
        storage: Storage
        if storage_url.startswith("memory://"):
            storage = MemoryStorage()
        else:
            storage, self._pool = redis_storage(storage_url)
        self._windows = SlidingWindowCounterRateLimiter(storage)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KeyGuard:
        env = os.environ if env is None else env
        rate_text = env.get("T2V_FAILED_KEY_RATE") or DEFAULT_FAILED_KEY_RATE
        rate: RateLimitItem | None = None
        if rate_text != "off":
            try:
                rate = parse(rate_text)
            except ValueError as exc:
                raise ValueError(
                    f"T2V_FAILED_KEY_RATE {rate_text!r} is not like '10/minute' or 'off'"
                ) from exc
        hops_text = env.get("T2V_TRUSTED_PROXY_HOPS") or "0"
        if not hops_text.isdigit():
            raise ValueError(f"T2V_TRUSTED_PROXY_HOPS must be 0 or more (got {hops_text!r})")
        storage_url = env.get("T2V_RATE_LIMIT_STORAGE") or "memory://"
        return cls(rate=rate, trusted_hops=int(hops_text), storage_url=storage_url)

    @classmethod
    async def build(cls) -> KeyGuard:
        """`from_env`, as a `t2v.runtime.Lazy` factory."""
        return cls.from_env()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    def client_of(self, request: Request) -> str:
        forwarded = request.headers.getlist("x-forwarded-for")
        return client_address(request.scope.get("client"), forwarded, self._trusted_hops)

    async def authenticate(self, keys: KeyRegistry, request: Request) -> Principal:
        """The caller's principal, as `keys.authenticate` finds it, or `UnauthorizedError`;
        `RateLimitedError` once the client's address has failed too often, and
        `UnavailableError` when the counters' storage fails."""
        header = request.headers.get("authorization")
        if keys.open_mode or header is None or self._rate is None:
            return keys.authenticate(header)  # no key (or no count): nothing counted
        address = self.client_of(request)
        try:
            if not await self._windows.test(self._rate, address):
                raise await self._refusal(self._rate, address)
            try:
                return keys.authenticate(header)
            except UnauthorizedError as error:
                if not await self._windows.hit(self._rate, address):
                    raise await self._refusal(self._rate, address) from error
                raise
        except (StorageError, OSError) as exc:
            raise UnavailableError(f"rate limit storage unavailable: {exc}") from exc

    async def _refusal(self, rate: RateLimitItem, address: str) -> RateLimitedError:
        stats = await self._windows.get_window_stats(rate, address)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        return RateLimitedError(
            f"more than {rate.amount} failed authentications from this address per "
            f"{rate.get_expiry()} s; retry in {retry} s",
            retry_after_s=retry,
            code="too_many_failed_keys",
        )
