"""The pipelined Redis connection, which opens its own sockets, works on a loop whose
transports are not `asyncio.Transport`s, as under uvloop (which uvicorn picks wherever it is
installed), against a real redis-server."""

from __future__ import annotations

import uuid

from t2v.redis_pipe import PipelinedRedis
from tests.foreign_loop import run_on_foreign_loop
from tests.services import RedisServer


def test_the_pipelined_redis_connection_works_over_a_foreign_transport(
    redis_service: RedisServer,
) -> None:
    name = f"foreign-test:{uuid.uuid4().hex}"

    async def commands() -> list[object]:
        client = PipelinedRedis(redis_service.url(db=2))
        try:
            await client.execute("SET", name, "here")
            return await client.execute_many([("GET", name), ("DEL", name)])
        finally:
            await client.close()

    assert run_on_foreign_loop(commands()) == ["here", 1]
