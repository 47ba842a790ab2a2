"""The cluster JobStore: Redis, with the same semantics as `SqliteJobStore`.

URL: `redis://[:password@]host:port/db?prefix=t2v` (also `rediss://` and `unix://`); any
other query parameter is redis-py's own (e.g. `socket_timeout=5`).

Every change is read-merge-write inside WATCH/MULTI/EXEC: the transaction commits only when
no watched key changed since it was read, otherwise it is retried, so `t2v.jobs.merge` runs
in Python as a compare-and-set. MULTI/EXEC applies the job and all of its indexes together or
not at all, so a lost connection never leaves a partial write; it surfaces as
`UnavailableError` (503).

Keys, all inside the hash tag `{prefix}` so that one Redis Cluster slot holds them and
transactions stay legal there:
- `{p}:job:<id>`: the job as JSON
- `{p}:idx:all`, `{p}:idx:status:<status>`, `{p}:idx:tenant:<tenant>`,
  `{p}:idx:tenant-status:<status>:<tenant>`: sorted sets of job ids scored by `created_at`
  (ties ordered by id, as SQLite orders them)
- `{p}:lease:<id>`: hash of worker_id, attempt, expires_at (kept after release: it remembers
  the attempt count)
- `{p}:idem:<len(tenant)>:<tenant>:<key>`: the request hash and job id, expiring with its TTL
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import inspect
import json
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from t2v.errors import IdempotencyConflictError, NotFoundError, UnavailableError
from t2v.jobs import Job, JobStatus, JobUpdate, cancel, decode_job, merge
from t2v.redis_pipe import PipelinedRedis
from t2v.store.base import ApplyResult, CreateResult, IdempotencyClaim, JobPage, Lease
from t2v.store.cursor import decode_cursor, encode_cursor
from t2v.store.redis_create import Claim, CreateKeys, CreateScript, Outcome

T = TypeVar("T")

# Optimistic transactions retry on contention; a few hundred rounds is far beyond what a
# single job's event stream produces, so running out means something is wrong.
_MAX_TRANSACTION_ROUNDS = 500
_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    OSError,
)


def _begin_writes(pipe: Pipeline) -> None:
    """End the read phase of a WATCH transaction: later commands queue inside MULTI."""
    pipe.multi()  # type: ignore[no-untyped-call]


def _key_reused() -> IdempotencyConflictError:
    return IdempotencyConflictError(
        "this Idempotency-Key was already used with a different request"
    )


def _encode(job: Job) -> bytes:
    # orjson, as the SQLite store: a fifth of the json module's time for a job.
    return orjson.dumps(job.to_dict())


async def _resolved(result: Awaitable[T] | T) -> T:
    """redis-py types its commands as sync-or-async; on the asyncio client they are async."""
    if inspect.isawaitable(result):
        value: T = await result
        return value
    return result


class RedisJobStore:
    def __init__(self, client: aioredis.Redis, hot: PipelinedRedis, *, prefix: str = "t2v") -> None:
        """``hot`` carries the commands on submit's and status's request path (a new job,
        a job read, a queue rank); ``client`` everything else."""
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"Redis key prefix {prefix!r} must be non-empty, without braces")
        self._redis = client
        self._hot = hot
        self._p = "{" + prefix + "}"
        self._create_script = CreateScript(hot)

    @classmethod
    def from_url(cls, url: str) -> RedisJobStore:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "t2v")
        query.setdefault("socket_connect_timeout", "5")
        query.setdefault("socket_timeout", "5")
        url = urlunsplit(parts._replace(query=urlencode(query)))
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            # Retry briefly on a dropped connection, then report 503 rather than hang.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        )
        return cls(
            client, PipelinedRedis(url, timeout_s=float(query["socket_timeout"])), prefix=prefix
        )

    # Key names -------------------------------------------------------------------------
    def _job_key(self, job_id: str) -> str:
        return f"{self._p}:job:{job_id}"

    def _lease_key(self, job_id: str) -> str:
        return f"{self._p}:lease:{job_id}"

    def _idem_key(self, tenant: str, key: str) -> str:
        return f"{self._p}:idem:{len(tenant)}:{tenant}:{key}"

    def _index_key(self, tenant: str | None, status: JobStatus | None) -> str:
        if tenant is None:
            return f"{self._p}:idx:all" if status is None else f"{self._p}:idx:status:{status}"
        if status is None:
            return f"{self._p}:idx:tenant:{tenant}"
        return f"{self._p}:idx:tenant-status:{status}:{tenant}"

    # Plumbing --------------------------------------------------------------------------
    @contextmanager
    def _unavailable_on_connection_loss(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:
            raise UnavailableError(f"job store unavailable: {exc}") from exc

    async def _transact(self, watch: list[str], operation: Callable[[Pipeline], Awaitable[T]]) -> T:
        """Run `operation` under WATCH: it reads through the pipeline, then calls
        `pipe.multi()` and queues its writes (or returns without writing)."""
        with self._unavailable_on_connection_loss():
            for round_ in range(_MAX_TRANSACTION_ROUNDS):
                async with self._redis.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(*watch)
                        result = await operation(pipe)
                        if pipe.explicit_transaction:
                            await pipe.execute()
                        return result
                    except redis_errors.WatchError:
                        # Someone else committed first: back off a little, read again.
                        await asyncio.sleep(random.uniform(0, 0.001 * min(round_, 20)))
            raise UnavailableError("job store too contended: transaction kept conflicting")

    async def _read(self, operation: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        with self._unavailable_on_connection_loss():
            return await operation(self._redis)

    @staticmethod
    def _parse(raw: str | None) -> Job | None:
        return decode_job(raw) if raw is not None else None

    async def _load(self, pipe: Pipeline, job_id: str) -> Job | None:
        raw: str | None = await pipe.get(self._job_key(job_id))
        return self._parse(raw)

    def _queue_save(self, pipe: Pipeline, old: Job | None, new: Job) -> None:
        """Queue the job and the index changes it needs (inside MULTI)."""
        pipe.set(self._job_key(new.id), _encode(new))
        member = {new.id: new.created_at}
        if old is None:
            pipe.zadd(self._index_key(None, None), member)
            pipe.zadd(self._index_key(new.tenant, None), member)
        elif old.status != new.status:
            pipe.zrem(self._index_key(None, old.status), new.id)
            pipe.zrem(self._index_key(old.tenant, old.status), new.id)
        if old is None or old.status != new.status:
            pipe.zadd(self._index_key(None, new.status), member)
            pipe.zadd(self._index_key(new.tenant, new.status), member)

    async def _load_many(self, job_ids: builtins.list[str]) -> builtins.list[Job]:
        if not job_ids:
            return []
        raws: list[str | None] = await self._read(
            lambda r: r.mget([self._job_key(job_id) for job_id in job_ids])
        )
        return [job for job in map(self._parse, raws) if job is not None]

    # JobStore --------------------------------------------------------------------------
    async def create(self, job: Job, idempotency: IdempotencyClaim | None = None) -> CreateResult:
        idem_key = self._idem_key(job.tenant, idempotency.key) if idempotency else None
        with self._unavailable_on_connection_loss():
            result = await self._create_by_script(job, idempotency, idem_key)
        if result is not None:
            return result
        return await self._create_by_transaction(job, idempotency, idem_key)

    async def _create_by_script(
        self, job: Job, idempotency: IdempotencyClaim | None, idem_key: str | None
    ) -> CreateResult | None:
        """One round trip (`t2v.store.redis_create`); None where the general path must
        decide: the id is taken, or the claim names a job that is gone."""
        claim = None
        if idempotency is not None:
            claim = Claim(
                idempotency.request_hash,
                self._claim_record(job, idempotency),
                self._ttl_ms(idempotency),
            )
        indexes = (
            self._index_key(None, None),
            self._index_key(job.tenant, None),
            self._index_key(None, job.status),
            self._index_key(job.tenant, job.status),
        )
        reply = await self._create_script.run(
            CreateKeys(self._job_key(job.id), indexes, idem_key),
            job_json=_encode(job),
            job_id=job.id,
            created_at=job.created_at,
            rank=job.status == JobStatus.QUEUED,
            claim=claim,
        )
        if reply.outcome is Outcome.CREATED:
            return CreateResult(job, created=True, queue_position=reply.queue_position)
        if reply.outcome is Outcome.CONFLICT:
            raise _key_reused()
        if reply.outcome is Outcome.REPLAY and reply.job_id is not None:
            existing = await self.get(reply.job_id)
            if existing is not None:
                return CreateResult(existing, created=False)
        return None

    @staticmethod
    def _ttl_ms(idempotency: IdempotencyClaim) -> int:
        return max(1, int(idempotency.ttl_s * 1000))

    @staticmethod
    def _claim_record(job: Job, idempotency: IdempotencyClaim) -> str:
        record = {
            "request_hash": idempotency.request_hash,
            "job_id": job.id,
            "expires_at": job.created_at + idempotency.ttl_s,
        }
        return json.dumps(record)

    async def _create_by_transaction(
        self, job: Job, idempotency: IdempotencyClaim | None, idem_key: str | None
    ) -> CreateResult:
        watch = [self._job_key(job.id), *([idem_key] if idem_key else [])]

        async def op(pipe: Pipeline) -> CreateResult:
            if idempotency is not None and idem_key is not None:
                raw: str | None = await pipe.get(idem_key)
                claim = json.loads(raw) if raw is not None else None
                if claim is not None and claim["expires_at"] > job.created_at:
                    if claim["request_hash"] != idempotency.request_hash:
                        raise _key_reused()
                    existing = await self._load(pipe, claim["job_id"])
                    if existing is not None:
                        return CreateResult(existing, created=False)
            old = await self._load(pipe, job.id)
            _begin_writes(pipe)
            self._queue_save(pipe, old, job)
            if idempotency is not None and idem_key is not None:
                record = self._claim_record(job, idempotency)
                pipe.set(idem_key, record, px=self._ttl_ms(idempotency))
            return CreateResult(job, created=True)

        return await self._transact(watch, op)

    async def get(self, job_id: str) -> Job | None:
        with self._unavailable_on_connection_loss():
            raw: str | None = await self._hot.execute("GET", self._job_key(job_id))
        return self._parse(raw)

    async def list(
        self,
        *,
        tenant: str | None,
        status: JobStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        index = self._index_key(tenant, status)

        async def page_entries(r: aioredis.Redis) -> list[tuple[str, float]]:
            if cursor is None:
                newest: list[tuple[str, float]] = await r.zrevrange(
                    index, 0, limit, withscores=True
                )
                return newest
            created_at, last_id = decode_cursor(cursor)
            # Same score as the cursor: only ids below it; then strictly older scores.
            ties: list[tuple[str, float]] = await r.zrangebyscore(
                index, created_at, created_at, withscores=True
            )
            older: list[tuple[str, float]] = await r.zrevrangebyscore(
                index, f"({created_at!r}", "-inf", start=0, num=limit + 1, withscores=True
            )
            return sorted((e for e in ties if e[0] < last_id), reverse=True) + older

        entries = (await self._read(page_entries))[: limit + 1]
        jobs = await self._load_many([job_id for job_id, _ in entries[:limit]])
        if status is not None:
            # The index and the job are read one after the other: drop a job that moved on.
            jobs = [job for job in jobs if job.status == status]
        next_cursor = None
        if len(entries) > limit > 0:
            last_id, last_created_at = entries[limit - 1]
            next_cursor = encode_cursor(last_created_at, last_id)
        return JobPage(jobs, next_cursor)

    async def apply(self, update: JobUpdate) -> ApplyResult:
        async def op(pipe: Pipeline) -> ApplyResult:
            job = await self._load(pipe, update.job_id)
            if job is None:
                raise NotFoundError(f"job {update.job_id} not found")
            merged = merge(job, update)
            if merged is None:
                return ApplyResult(job, applied=False)
            _begin_writes(pipe)
            self._queue_save(pipe, job, merged)
            if merged.status.terminal:
                pipe.delete(self._lease_key(job.id))
            return ApplyResult(merged, applied=True)

        return await self._transact(
            [self._job_key(update.job_id), self._lease_key(update.job_id)], op
        )

    async def request_cancel(self, job_id: str, *, at: float) -> Job:
        async def op(pipe: Pipeline) -> Job:
            job = await self._load(pipe, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id} not found")
            changed = cancel(job, at=at)
            if changed is None:
                return job
            _begin_writes(pipe)
            self._queue_save(pipe, job, changed)
            return changed

        return await self._transact([self._job_key(job_id)], op)

    async def is_cancel_requested(self, job_id: str) -> bool:
        job = await self.get(job_id)
        return bool(job and (job.cancel_requested or job.status == JobStatus.CANCELED))

    @staticmethod
    def _parse_lease(job_id: str, raw: dict[str, str]) -> Lease | None:
        if not raw:
            return None
        return Lease(job_id, raw["worker_id"], int(raw["attempt"]), float(raw["expires_at"]))

    @staticmethod
    def _lease_fields(lease: Lease) -> dict[str, Any]:
        return {
            "worker_id": lease.worker_id,
            "attempt": lease.attempt,
            "expires_at": repr(lease.expires_at),
        }

    async def claim(self, job_id: str, worker_id: str, *, ttl_s: float, now: float) -> Lease | None:
        key = self._lease_key(job_id)

        async def op(pipe: Pipeline) -> Lease | None:
            held = self._parse_lease(job_id, await _resolved(pipe.hgetall(key)))
            if held is not None and held.worker_id != worker_id and held.expires_at > now:
                return None
            if held is not None and held.worker_id == worker_id:
                attempt = held.attempt
            else:
                attempt = held.attempt + 1 if held is not None else 1
            lease = Lease(job_id, worker_id, attempt, now + ttl_s)
            _begin_writes(pipe)
            pipe.hset(key, mapping=self._lease_fields(lease))
            return lease

        return await self._transact([key], op)

    async def _set_lease_expiry(self, lease: Lease, expires_at: float) -> bool:
        key = self._lease_key(lease.job_id)

        async def op(pipe: Pipeline) -> bool:
            held = self._parse_lease(lease.job_id, await _resolved(pipe.hgetall(key)))
            if held is None or (held.worker_id, held.attempt) != (lease.worker_id, lease.attempt):
                return False
            _begin_writes(pipe)
            pipe.hset(key, "expires_at", repr(expires_at))
            return True

        return await self._transact([key], op)

    async def renew(self, lease: Lease, *, ttl_s: float, now: float) -> bool:
        return await self._set_lease_expiry(lease, now + ttl_s)

    async def release(self, lease: Lease) -> None:
        # Keep the hash (it remembers the attempt count) but let anyone take it at once.
        await self._set_lease_expiry(lease, 0.0)

    async def lease_of(self, job_id: str) -> Lease | None:
        raw: dict[str, str] = await self._read(
            lambda r: _resolved(r.hgetall(self._lease_key(job_id)))
        )
        return self._parse_lease(job_id, raw)

    async def _without_live_lease(
        self, job_ids: builtins.list[str], now: float
    ) -> builtins.list[str]:
        if not job_ids:
            return []

        async def expiries(r: aioredis.Redis) -> builtins.list[str | None]:
            async with r.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.hget(self._lease_key(job_id), "expires_at")
                result: builtins.list[str | None] = await pipe.execute()
                return result

        found = await self._read(expiries)
        return [
            i for i, exp in zip(job_ids, found, strict=True) if exp is None or float(exp) <= now
        ]

    async def stale_jobs(
        self, *, now: float, queued_before: float, limit: int = 100
    ) -> builtins.list[Job]:
        running_ids: builtins.list[str] = await self._read(
            lambda r: r.zrange(self._index_key(None, JobStatus.RUNNING), 0, -1)
        )
        candidates = await self._without_live_lease(running_ids, now)
        queued_index = self._index_key(None, JobStatus.QUEUED)
        batch = max(limit, 1)

        async def queued_page(start: int) -> builtins.list[str]:
            ids: builtins.list[str] = await self._read(
                lambda r: r.zrangebyscore(
                    queued_index, "-inf", f"({queued_before!r}", start=start, num=batch
                )
            )
            return ids

        stale_queued: builtins.list[str] = []
        offset = 0
        while len(stale_queued) < limit:
            page = await queued_page(offset)
            stale_queued += await self._without_live_lease(page, now)
            if len(page) < batch:
                break
            offset += batch
        jobs = await self._load_many(candidates + stale_queued[:limit])
        stale = [
            job
            for job in jobs
            if job.status == JobStatus.RUNNING
            or (job.status == JobStatus.QUEUED and job.created_at < queued_before)
        ]
        return sorted(stale, key=lambda job: (job.created_at, job.id))[:limit]

    async def record_sweep(self, job_id: str) -> Job:
        async def op(pipe: Pipeline) -> Job:
            job = await self._load(pipe, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id} not found")
            changed = dataclasses.replace(job, sweeps=job.sweeps + 1)
            _begin_writes(pipe)
            self._queue_save(pipe, job, changed)
            return changed

        return await self._transact([self._job_key(job_id)], op)

    async def get_with_position(self, job_id: str) -> tuple[Job | None, int | None]:
        # Both asked at once: the rank is only used if the job turns out to be queued.
        queued = self._index_key(None, JobStatus.QUEUED)
        with self._unavailable_on_connection_loss():
            raw, rank = await self._hot.execute_many(
                [("GET", self._job_key(job_id)), ("ZRANK", queued, job_id)]
            )
        job = self._parse(raw)
        if job is None:
            return None, None
        return job, await self._queue_position(job, rank)

    async def queue_position(self, job: Job) -> int | None:
        if job.status != JobStatus.QUEUED:
            return None
        index = self._index_key(None, JobStatus.QUEUED)
        # The index orders equal scores by id, as SQLite orders (created_at, id): a rank.
        with self._unavailable_on_connection_loss():
            rank: int | None = await self._hot.execute("ZRANK", index, job.id)
        return await self._queue_position(job, rank)

    async def _queue_position(self, job: Job, rank: int | None) -> int | None:
        """From the job's ``rank`` in the queued index (None: not in it)."""
        if job.status != JobStatus.QUEUED:
            return None
        if rank is not None:
            return int(rank) + 1
        index = self._index_key(None, JobStatus.QUEUED)

        async def count(r: aioredis.Redis) -> int:
            # `job` has left the queue since it was read: count the queued jobs before it.
            # One MULTI so both reads see the same queue.
            async with r.pipeline(transaction=True) as pipe:
                pipe.zcount(index, "-inf", f"({job.created_at!r}")
                pipe.zrangebyscore(index, job.created_at, job.created_at)
                older, ties = await pipe.execute()
            return int(older) + sum(1 for other in ties if other < job.id) + 1

        return await self._read(count)

    async def count(self, status: JobStatus) -> int:
        index = self._index_key(None, status)
        return int(await self._read(lambda r: _resolved(r.zcard(index))))

    async def count_unfinished(self, tenant: str) -> int:
        # On every submit while the cap is on: the pipelined connection, one round trip.
        queued = self._index_key(tenant, JobStatus.QUEUED)
        running = self._index_key(tenant, JobStatus.RUNNING)
        with self._unavailable_on_connection_loss():
            counts = await self._hot.execute_many([("ZCARD", queued), ("ZCARD", running)])
        return sum(int(n) for n in counts)

    async def ping(self) -> None:
        await self._read(lambda r: _resolved(r.ping()))

    async def close(self) -> None:
        await self._hot.close()
        await self._redis.aclose()
