"""The clients that open their own sockets work on a loop whose transports are not
`asyncio.Transport`s, as under uvloop (which uvicorn picks wherever it is installed): the
event relay's broker client against a scripted HTTP server, the pipelined Redis connection
against a real redis-server."""

from __future__ import annotations

import uuid

from t2v.keepalive import KeepAliveClient, Reply
from t2v.redis_pipe import PipelinedRedis
from tests.foreign_loop import run_on_foreign_loop
from tests.services import RedisServer
from tests.test_keepalive import scripted_server


def test_the_broker_client_posts_over_a_foreign_transport() -> None:
    async def exchange() -> tuple[list[Reply | Exception], int]:
        async with scripted_server("/broker") as server:
            client = KeepAliveClient(server.url)
            replies: list[Reply | Exception] = [await client.post({"ce-id": "1"}, b"{}")]
            replies += await client.post_many([({"ce-id": "2"}, b"{}"), ({}, b"[]")])
            await client.close()
            return replies, server.connections

    replies, connections = run_on_foreign_loop(exchange())
    assert [reply.status for reply in replies if isinstance(reply, Reply)] == [202] * 3
    assert connections == 1


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
