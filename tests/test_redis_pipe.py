"""PipelinedRedis against a real redis-server: replies in order under concurrency, errors as
redis-py's, a lost server failing what waits and the next command connecting again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.exceptions as redis_errors

from t2v.redis_pipe import PipelinedRedis, Script
from tests.services import RedisServer, free_port, redis_server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
async def client(redis_service: RedisServer) -> AsyncIterator[PipelinedRedis]:
    pipe = PipelinedRedis(redis_service.url(db=2))
    try:
        yield pipe
    finally:
        await pipe.close()


def key() -> str:
    return f"pipe-test:{uuid.uuid4().hex}"


async def test_concurrent_commands_get_their_own_replies(client: PipelinedRedis) -> None:
    keys = [key() for _ in range(50)]
    await asyncio.gather(*(client.execute("SET", name, name) for name in keys))
    assert await asyncio.gather(*(client.execute("GET", name) for name in keys)) == keys
    assert await client.execute_many([("GET", keys[0]), ("GET", key()), ("ECHO", 7)]) == [
        keys[0], None, "7",
    ]  # fmt: skip


async def test_the_db_in_the_url_is_selected(
    client: PipelinedRedis, redis_service: RedisServer
) -> None:
    name = key()
    await client.execute("SET", name, "here")
    other = PipelinedRedis(redis_service.url(db=3))
    try:
        assert await other.execute("GET", name) is None
    finally:
        await other.close()


async def test_error_replies_raise_and_the_connection_goes_on(client: PipelinedRedis) -> None:
    name = key()
    await client.execute("SET", name, "text")
    with pytest.raises(redis_errors.ResponseError, match="not an integer"):
        await client.execute("INCR", name)
    with pytest.raises(redis_errors.ResponseError):
        await client.execute_many([("GET", name), ("INCR", name), ("GET", name)])
    assert await client.execute("GET", name) == "text"


async def test_a_script_the_server_lost_is_loaded_again(client: PipelinedRedis) -> None:
    script = Script("return ARGV[1] .. KEYS[1]")
    assert await client.run_script(script, ["k"], ["v-"]) == "v-k"
    await client.execute("SCRIPT", "FLUSH")
    assert await client.run_script(script, ["k2"], ["w-"]) == "w-k2"


async def test_no_server_is_a_connection_error() -> None:
    pipe = PipelinedRedis(f"redis://127.0.0.1:{free_port()}/0", timeout_s=2.0)
    with pytest.raises(redis_errors.ConnectionError):
        await pipe.execute("PING")


async def test_a_restarted_server_fails_what_waited_and_serves_the_next(
    own_redis: RedisServer,
) -> None:
    pipe = PipelinedRedis(own_redis.url(), timeout_s=5.0)
    try:
        assert await pipe.execute("PING") == "PONG"
        # BLPOP holds its reply until the server dies under it.
        waiting = asyncio.ensure_future(pipe.execute("BLPOP", key(), 30))
        await asyncio.sleep(0.1)
        own_redis.restart(kill=True)
        with pytest.raises(redis_errors.ConnectionError):
            await waiting
        assert await pipe.execute("PING") == "PONG"
    finally:
        await pipe.close()


async def test_a_reply_that_does_not_come_times_out(redis_service: RedisServer) -> None:
    pipe = PipelinedRedis(redis_service.url(), timeout_s=0.2)
    try:
        with pytest.raises(redis_errors.TimeoutError):
            await pipe.execute("BLPOP", key(), 5)
        # The connection it waited on is given up; the next command gets a new one.
        assert await pipe.execute("PING") == "PONG"
    finally:
        await pipe.close()


async def test_a_password_in_the_url_logs_in(own_redis: RedisServer) -> None:
    import redis

    admin = redis.Redis(port=own_redis.port)
    try:
        admin.config_set("requirepass", "s3cret")
    finally:
        admin.close()
    refused = PipelinedRedis(own_redis.url())
    allowed = PipelinedRedis(f"redis://:s3cret@127.0.0.1:{own_redis.port}/4")
    try:
        with pytest.raises(redis_errors.ResponseError, match="NOAUTH"):
            await refused.execute("PING")
        assert await allowed.execute("PING") == "PONG"
    finally:
        await refused.close()
        await allowed.close()


async def test_a_wrong_password_fails_each_command_and_leaves_no_connection(
    own_redis: RedisServer,
) -> None:
    import redis

    admin = redis.Redis(port=own_redis.port)
    try:
        admin.config_set("requirepass", "right")
        wrong = PipelinedRedis(f"redis://:wrong@127.0.0.1:{own_redis.port}/0")
        try:
            for _ in range(2):
                with pytest.raises(redis_errors.ResponseError):
                    await wrong.execute("PING")
        finally:
            await wrong.close()
        await asyncio.sleep(0.05)
        clients = admin.client_list()
    finally:
        admin.close()
    assert isinstance(clients, list) and len(clients) == 1  # the admin connection alone
