"""The cluster job store: `JobStoreCore`'s rules over Redis (`RedisBackend`).

URL: `redis://[:password@]host:port/db?prefix=t2v` (also `rediss://` and `unix://`); any
other query parameter is redis-py's own (e.g. `socket_timeout=5`).

A compare-and-set WATCHes the keys it depends on, reads them, and queues its writes in
MULTI/EXEC: EXEC writes nothing when a watched key changed in between, and writes the job
and all of its indexes together or not at all, so a lost connection never leaves a partial
write; it surfaces as `UnavailableError` (503).

Connections come from one `BlockingConnectionPool` of `max_connections`
(`T2V_REDIS_MAX_CONNECTIONS`): a caller beyond that waits for a free connection (up to the
socket timeout) instead of failing. redis-py 8's plain pool caps itself at 100 connections
when given no size (it was 2**31 before) and raises `MaxConnectionsError` past it, which
concurrent WATCH transactions, each holding a connection, reached.

Keys, all inside the hash tag `{prefix}` so that one Redis Cluster slot holds them and
transactions stay legal there:
- `{p}:job:<id>`: the job as JSON
- `{p}:idx:all`, `{p}:idx:status:<status>`, `{p}:idx:tenant:<tenant>`,
  `{p}:idx:tenant-status:<status>:<tenant>`: sorted sets of job ids scored by `created_at`
  (ties ordered by id, as SQLite orders them)
- `{p}:idx:videos`: sorted set of the ids of jobs holding a video, scored by `finished_at`
- `{p}:video-holders:<artifact key>`: set of the ids of the jobs holding that video
- `{p}:lease:<id>`: hash of worker_id, attempt, expires_at
- `{p}:idem:<len(tenant)>:<tenant>:<key>`: the idempotency record, expiring with its TTL
- `{p}:record:<name>`: a named record as JSON (infer's ETA figures)
- `{p}:changes:<id>`: the job's change log, a Stream with ids `0-<seq>` (XADD `0-*` numbers
  them), field `job` the job as JSON, trimmed to about `CHANGE_LOG_LENGTH` entries

Blocking reads of a change log (XREAD BLOCK) take connections from a pool of their own, so
streams waiting for a change never hold the connections every other operation needs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.typing import EncodableT

from t2v.errors import UnavailableError
from t2v.jobs import Job, JobStatus, decode_job, encode_job
from t2v.store import DEFAULT_REDIS_MAX_CONNECTIONS
from t2v.store.base import CHANGE_LOG_LENGTH, JobChange, Lease
from t2v.store.core import ClaimWrite, IdempotencyRecord, JobStoreCore, video_finished_at

P = ParamSpec("P")
T = TypeVar("T")
# The longest one XREAD BLOCK waits: its connection's socket timeout is this much longer.
MAX_BLOCK_S = 10.0
_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    OSError,
)


def _unavailable_on_connection_loss(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except _UNAVAILABLE as exc:
            raise UnavailableError(f"job store unavailable: {exc}") from exc

    return guarded


def _text(value: bytes | str) -> str:
    # The client decodes replies (decode_responses=True); redis-py types them either way.
    return value.decode() if isinstance(value, bytes) else value


def _job(raw: bytes | str | None) -> Job | None:
    return decode_job(raw) if raw is not None else None


def _lease(job_id: str, raw: Mapping[bytes | str, bytes | str]) -> Lease | None:
    if not raw:
        return None
    fields = {_text(name): _text(value) for name, value in raw.items()}
    return Lease(job_id, fields["worker_id"], int(fields["attempt"]), float(fields["expires_at"]))


def _claim(raw: bytes | str | None) -> IdempotencyRecord | None:
    if raw is None:
        return None
    fields = orjson.loads(raw)
    return IdempotencyRecord(fields["request_hash"], fields["job_id"], fields["expires_at"])


def _changes(entries: Iterable[Any] | None) -> list[JobChange]:
    """Change-log entries from an XRANGE or XREAD reply: `(id, {"job": json})` each."""
    return [
        JobChange(int(_text(entry_id).split("-")[1]), decode_job(fields["job"]))
        for entry_id, fields in entries or ()
    ]


def _members(reply: Iterable[Any]) -> list[str]:
    return [_text(member) for member in reply]


def _scored(reply: Iterable[Any]) -> list[tuple[float, str]]:
    """`(score, member)` from a sorted-set reply with scores."""
    return [(float(score), _text(member)) for member, score in reply]


def _begin_writes(pipe: Pipeline) -> None:
    """End the read phase of a WATCH transaction: later commands queue inside MULTI."""
    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves multi() unannotated


class RedisBackend:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "t2v",
        blocking_client: aioredis.Redis | None = None,
    ) -> None:
        """`blocking_client`: where XREAD BLOCK waits (default `client`)."""
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"Redis key prefix {prefix!r} must be non-empty, without braces")
        self._redis = client
        self._blocking = blocking_client or client
        self._p = "{" + prefix + "}"

    @classmethod
    def from_url(cls, url: str, *, max_connections: int) -> RedisBackend:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "t2v")
        query.setdefault("socket_connect_timeout", "5")
        query.setdefault("socket_timeout", "5")
        socket_timeout = float(query["socket_timeout"])

        def pool(**options: float) -> BlockingConnectionPool:
            return BlockingConnectionPool.from_url(
                urlunsplit(parts._replace(query=urlencode({**query, **options}))),
                max_connections=max_connections,
                timeout=socket_timeout,  # waiting for a free connection
                decode_responses=True,
                # Retry briefly on a dropped connection, then report 503 rather than hang.
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
            )

        blocking = pool(socket_timeout=socket_timeout + MAX_BLOCK_S)
        return cls(
            aioredis.Redis.from_pool(pool()),
            prefix=prefix,
            blocking_client=aioredis.Redis.from_pool(blocking),
        )

    # Key names ----------------------------------------------------------------------------
    def _job_key(self, job_id: str) -> str:
        return f"{self._p}:job:{job_id}"

    def _lease_key(self, job_id: str) -> str:
        return f"{self._p}:lease:{job_id}"

    def _claim_key(self, tenant: str, key: str) -> str:
        return f"{self._p}:idem:{len(tenant)}:{tenant}:{key}"

    def _holders_key(self, video_key: str) -> str:
        return f"{self._p}:video-holders:{video_key}"

    def _changes_key(self, job_id: str) -> str:
        return f"{self._p}:changes:{job_id}"

    def _record_key(self, name: str) -> str:
        return f"{self._p}:record:{name}"

    def _index_key(self, tenant: str | None, status: JobStatus | None) -> str:
        if tenant is None:
            return f"{self._p}:idx:all" if status is None else f"{self._p}:idx:status:{status}"
        if status is None:
            return f"{self._p}:idx:tenant:{tenant}"
        return f"{self._p}:idx:tenant-status:{status}:{tenant}"

    # Reads --------------------------------------------------------------------------------
    @_unavailable_on_connection_loss
    async def read_job(self, job_id: str) -> Job | None:
        return _job(await self._redis.get(self._job_key(job_id)))

    @_unavailable_on_connection_loss
    async def read_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        if not job_ids:
            return []
        raws = await self._redis.mget([self._job_key(job_id) for job_id in job_ids])
        return [job for job in map(_job, raws) if job is not None]

    @_unavailable_on_connection_loss
    async def read_lease(self, job_id: str) -> Lease | None:
        return _lease(job_id, await self._redis.hgetall(self._lease_key(job_id)))

    @_unavailable_on_connection_loss
    async def read_leases(self, job_ids: Sequence[str]) -> list[Lease | None]:
        if not job_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self._lease_key(job_id))
            raws = await pipe.execute()
        return [_lease(job_id, raw) for job_id, raw in zip(job_ids, raws, strict=True)]

    @_unavailable_on_connection_loss
    async def read_claim(self, tenant: str, key: str) -> IdempotencyRecord | None:
        return _claim(await self._redis.get(self._claim_key(tenant, key)))

    # Compare-and-set ----------------------------------------------------------------------
    async def _compare_and_set(
        self, keys: list[str], write: Callable[[Pipeline], Awaitable[bool]]
    ) -> bool:
        """WATCH `keys`, then `write`: it reads them through the pipeline and, when they are
        as expected, calls `_begin_writes` and queues its writes (True), else returns False."""
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(*keys)
                if not await write(pipe):
                    return False
                await pipe.execute()
            except redis_errors.WatchError:
                return False
        return True

    @_unavailable_on_connection_loss
    async def put_job(
        self,
        job: Job,
        *,
        expected: Job | None,
        claim: ClaimWrite | None = None,
        drop_lease: bool = False,
        max_unfinished: int | None = None,
    ) -> bool:
        keys = [self._job_key(job.id)]
        if claim is not None:
            keys.append(self._claim_key(claim.tenant, claim.key))
        # The tenant's queued and running indexes are watched too: a job another writer
        # adds (or starts) between the count and EXEC aborts this transaction.
        unfinished = [self._index_key(job.tenant, s) for s in (JobStatus.QUEUED, JobStatus.RUNNING)]
        watched = keys + unfinished if max_unfinished is not None else keys

        async def write(pipe: Pipeline) -> bool:
            stored = await pipe.mget(keys)
            if _job(stored[0]) != expected:
                return False
            if claim is not None and _claim(stored[1]) != claim.expected:
                return False
            if max_unfinished is not None:
                counts = [int(await pipe.zcard(index)) for index in unfinished]
                if sum(counts) >= max_unfinished:
                    return False
            _begin_writes(pipe)
            encoded = encode_job(job)
            pipe.set(keys[0], encoded)
            # `0-*`: Redis numbers the entry one past the stream's last (0-1 for the first).
            pipe.xadd(self._changes_key(job.id), {"job": encoded}, id="0-*",
                      maxlen=CHANGE_LOG_LENGTH, approximate=True)  # fmt: skip
            self._queue_index_changes(pipe, expected, job)
            if claim is not None:
                record = orjson.dumps(
                    {
                        "request_hash": claim.record.request_hash,
                        "job_id": claim.record.job_id,
                        "expires_at": claim.record.expires_at,
                    }
                )
                pipe.set(keys[1], record, px=max(1, int(claim.ttl_s * 1000)))
            if drop_lease:
                pipe.delete(self._lease_key(job.id))
            return True

        return await self._compare_and_set(watched, write)

    def _queue_index_changes(self, pipe: Pipeline, old: Job | None, new: Job | None) -> None:
        """The index writes that take the stored `old` to `new` (None: absent)."""
        job = new or old
        if job is None:
            return
        member = {job.id: job.created_at}
        for index in (self._index_key(None, None), self._index_key(job.tenant, None)):
            if old is None:
                pipe.zadd(index, member)
            elif new is None:
                pipe.zrem(index, job.id)
        old_status = old.status if old is not None else None
        new_status = new.status if new is not None else None
        if old_status != new_status:
            if old_status is not None:
                pipe.zrem(self._index_key(None, old_status), job.id)
                pipe.zrem(self._index_key(job.tenant, old_status), job.id)
            if new_status is not None:
                pipe.zadd(self._index_key(None, new_status), member)
                pipe.zadd(self._index_key(job.tenant, new_status), member)
        old_video = old.held_video_key if old is not None else None
        new_video = new.held_video_key if new is not None else None
        if old_video != new_video:
            videos = f"{self._p}:idx:videos"
            if old_video is not None:
                pipe.srem(self._holders_key(old_video), job.id)
                pipe.zrem(videos, job.id)
            if new is not None and new_video is not None:
                pipe.sadd(self._holders_key(new_video), job.id)
                pipe.zadd(videos, {job.id: video_finished_at(new)})

    @_unavailable_on_connection_loss
    async def delete_job(self, job: Job) -> bool:
        key = self._job_key(job.id)

        async def delete(pipe: Pipeline) -> bool:
            if _job(await pipe.get(key)) != job:
                return False
            _begin_writes(pipe)
            pipe.delete(key, self._lease_key(job.id), self._changes_key(job.id))
            self._queue_index_changes(pipe, job, None)
            return True

        return await self._compare_and_set([key], delete)

    @_unavailable_on_connection_loss
    async def put_lease(self, lease: Lease, *, expected: Lease | None) -> bool:
        key = self._lease_key(lease.job_id)

        async def write(pipe: Pipeline) -> bool:
            if _lease(lease.job_id, await pipe.hgetall(key)) != expected:
                return False
            _begin_writes(pipe)
            fields: dict[EncodableT, EncodableT] = {
                "worker_id": lease.worker_id,
                "attempt": lease.attempt,
                "expires_at": repr(lease.expires_at),
            }
            pipe.hset(key, mapping=fields)
            return True

        return await self._compare_and_set([key], write)

    @_unavailable_on_connection_loss
    async def read_record(self, name: str) -> str | None:
        raw = await self._redis.get(self._record_key(name))
        return _text(raw) if raw is not None else None

    @_unavailable_on_connection_loss
    async def put_record(self, name: str, value: str, *, expected: str | None) -> bool:
        key = self._record_key(name)

        async def write(pipe: Pipeline) -> bool:
            raw = await pipe.get(key)
            if (_text(raw) if raw is not None else None) != expected:
                return False
            _begin_writes(pipe)
            pipe.set(key, value)
            return True

        return await self._compare_and_set([key], write)

    # Index queries ------------------------------------------------------------------------
    @_unavailable_on_connection_loss
    async def newest(
        self,
        *,
        tenant: str | None,
        status: JobStatus | None,
        limit: int,
        before: tuple[float, str] | None,
    ) -> list[tuple[float, str]]:
        index = self._index_key(tenant, status)
        created_at, last_id = before or (math.inf, "")
        # One MULTI, so both reads see the same index: the entries with the cursor's score
        # (only ids below its id follow it), then the strictly older ones.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrange(index, created_at, created_at, byscore=True, withscores=True)
            pipe.zrange(index, f"({created_at!r}", "-inf", desc=True, byscore=True,
                        offset=0, num=limit, withscores=True)  # fmt: skip
            ties, older = await pipe.execute()
        tied = sorted((entry for entry in _scored(ties) if entry[1] < last_id), reverse=True)
        return (tied + _scored(older))[:limit]

    @_unavailable_on_connection_loss
    async def oldest(
        self, status: JobStatus, *, created_before: float | None, offset: int, limit: int
    ) -> list[str]:
        high = "+inf" if created_before is None else f"({created_before!r}"
        index = self._index_key(None, status)
        reply = await self._redis.zrange(index, "-inf", high, byscore=True, offset=offset,
                                         num=limit)  # fmt: skip
        return _members(reply)

    @_unavailable_on_connection_loss
    async def count_queued_before(self, created_at: float, job_id: str) -> int:
        index = self._index_key(None, JobStatus.QUEUED)
        # One MULTI so both reads see the same queue; the index orders equal scores by id.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zcount(index, "-inf", f"({created_at!r}")
            pipe.zrange(index, created_at, created_at, byscore=True)
            older, ties = await pipe.execute()
        return int(older) + sum(1 for other in _members(ties) if other < job_id)

    @_unavailable_on_connection_loss
    async def count(self, *, tenant: str | None, statuses: Sequence[JobStatus]) -> int:
        async with self._redis.pipeline(transaction=False) as pipe:
            for status in statuses:
                pipe.zcard(self._index_key(tenant, status))
            counts = await pipe.execute()
        return sum(int(n) for n in counts)

    @_unavailable_on_connection_loss
    async def finished_videos(self, *, finished_before: float, limit: int) -> list[str]:
        reply = await self._redis.zrange(f"{self._p}:idx:videos", "-inf",
                                         f"({finished_before!r}", byscore=True, offset=0,
                                         num=limit)  # fmt: skip
        return _members(reply)

    @_unavailable_on_connection_loss
    async def count_video_holders(self, key: str) -> int:
        return int(await self._redis.scard(self._holders_key(key)))

    # Change log ---------------------------------------------------------------------------
    @_unavailable_on_connection_loss
    async def read_changes(self, job_id: str, *, after_seq: int, limit: int) -> list[JobChange]:
        key = self._changes_key(job_id)
        return _changes(await self._redis.xrange(key, f"(0-{after_seq}", "+", count=limit))

    @_unavailable_on_connection_loss
    async def read_last_change(self, job_id: str) -> JobChange | None:
        found = _changes(await self._redis.xrevrange(self._changes_key(job_id), count=1))
        return found[0] if found else None

    @_unavailable_on_connection_loss
    async def wait_for_changes(
        self, job_id: str, *, after_seq: int, limit: int, timeout_s: float
    ) -> list[JobChange]:
        block_ms = max(1, int(min(timeout_s, MAX_BLOCK_S) * 1000))
        key = self._changes_key(job_id)
        reply = await self._blocking.xread({key: f"0-{after_seq}"}, count=limit, block=block_ms)
        # redis-py 8 answers RESP2's [[key, entries]] as is and RESP3's as {key: [entries]}.
        streams = reply.items() if isinstance(reply, dict) else (reply or [])
        return [change for _, entries in streams for change in _changes(entries)]

    @_unavailable_on_connection_loss
    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()  # and its pool: the client owns it (`from_pool`)
        if self._blocking is not self._redis:
            await self._blocking.aclose()


class RedisJobStore(JobStoreCore):
    @classmethod
    def from_url(
        cls, url: str, *, max_connections: int = DEFAULT_REDIS_MAX_CONNECTIONS
    ) -> RedisJobStore:
        return cls(RedisBackend.from_url(url, max_connections=max_connections))
