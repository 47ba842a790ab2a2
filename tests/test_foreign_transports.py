"""The clients that open their own sockets work on a loop whose transports are not
`asyncio.Transport`s, as under uvloop (which uvicorn picks wherever it is installed): the
event relay's broker client against a scripted HTTP server."""

from __future__ import annotations

from t2v.keepalive import KeepAliveClient, Reply
from tests.foreign_loop import run_on_foreign_loop
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
