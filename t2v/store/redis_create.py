"""A new job created on Redis in one round trip: a Lua script run by EVALSHA.

The general path (`RedisJobStore._transact`) is WATCH, GET, MULTI/EXEC and then a queue
position: four round trips and redis-py's pipeline machinery, over half of a submit's CPU
(in-process, BENCHMARKS.md). A job id is new (a millisecond clock and 80 random
bits), so a create rarely needs the read-merge-write: the script checks the idempotency
claim, writes the job and its indexes and ranks the job in its status index, atomically on the
server. What it does not handle (the id exists already, or a claim names a job that is gone)
it hands back, and the store takes the general path.

Keys all share the store's hash tag, and the script names every key it touches, so it is
legal on Redis Cluster too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from t2v.redis_pipe import Arg, PipelinedRedis, Script

# KEYS: job, idx:all, idx:tenant, idx:status, idx:tenant-status[, idempotency claim]
# ARGV: job JSON, created_at, job id, "1" to rank the job[, request hash, claim JSON, TTL ms]
CREATE_LUA = """
if KEYS[6] then
  local raw = redis.call('GET', KEYS[6])
  if raw then
    local claim = cjson.decode(raw)
    if claim['expires_at'] > tonumber(ARGV[2]) then
      if claim['request_hash'] ~= ARGV[5] then
        return {'conflict'}
      end
      return {'replay', claim['job_id']}
    end
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, 5 do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[3])
end
if KEYS[6] then
  redis.call('SET', KEYS[6], ARGV[6], 'PX', ARGV[7])
end
if ARGV[4] == '1' then
  return {'created', redis.call('ZRANK', KEYS[4], ARGV[3])}
end
return {'created'}
"""


class Outcome(Enum):
    CREATED = "created"
    CONFLICT = "conflict"  # the claim was made with a different request
    REPLAY = "replay"  # the claim names an earlier job: `job_id`
    EXISTS = "exists"  # the job id is taken: the general path decides


@dataclass(frozen=True)
class CreateReply:
    outcome: Outcome
    queue_position: int | None = None  # CREATED and ranked
    job_id: str | None = None  # REPLAY


@dataclass(frozen=True)
class CreateKeys:
    job: str
    indexes: tuple[str, str, str, str]  # all, tenant, status, tenant-status
    claim: str | None


@dataclass(frozen=True)
class Claim:
    request_hash: str
    record: str  # the claim as stored (JSON)
    ttl_ms: int


class CreateScript:
    def __init__(self, client: PipelinedRedis) -> None:
        self._client = client
        self._script = Script(CREATE_LUA)

    async def run(
        self,
        keys: CreateKeys,
        *,
        job_json: bytes,
        job_id: str,
        created_at: float,
        rank: bool,
        claim: Claim | None,
    ) -> CreateReply:
        names = [keys.job, *keys.indexes]
        args: list[Arg] = [job_json, repr(created_at), job_id, "1" if rank else "0"]
        if keys.claim is not None and claim is not None:
            names.append(keys.claim)
            args += [claim.request_hash, claim.record, claim.ttl_ms]
        reply = await self._client.run_script(self._script, names, args)
        outcome = Outcome(reply[0])
        if outcome is Outcome.CREATED and len(reply) > 1 and reply[1] is not None:
            return CreateReply(outcome, queue_position=int(reply[1]) + 1)
        if outcome is Outcome.REPLAY:
            return CreateReply(outcome, job_id=str(reply[1]))
        return CreateReply(outcome)
