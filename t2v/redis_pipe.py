"""PipelinedRedis: the Redis commands on submit's and status's request path, written as they
come and answered in order, on one connection per event loop.

redis-py's asyncio client costs 60-130 us of CPU per command (a pooled connection taken and
given back, a retry wrapper and a timeout around every read); a connection that writes the
commands of each pass of the loop at once and matches replies to waiters in order, parsed by
hiredis, costs 5-9 us (`python -m bench.redis_client`; BENCHMARKS.md, control plane). Only
the hot commands go here (the create and rate-limit scripts, a job's GET, its queue rank);
everything else stays on redis-py.

Errors are redis-py's, so callers keep one set of except clauses: a lost or timed-out
connection fails every command waiting on it with `ConnectionError` or `TimeoutError` (the
next command connects again), an error reply raises `ResponseError` (`NoScriptError` for
NOSCRIPT).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
import weakref
from typing import Any, cast

import hiredis
import redis.exceptions as redis_errors
from redis.asyncio.connection import SSLConnection, parse_url

Arg = str | bytes | int | float


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.reader = hiredis.Reader(encoding="utf-8")
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.sent_at: collections.deque[float] = collections.deque()  # loop.time(), per waiter
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        self.loop = loop
        self._timeout_s = timeout_s
        # One timer per connection, not one per command (asyncio.timeout around each await
        # cost a third of a command's CPU): replies come in order, so only the oldest waiter
        # can be the first overdue.
        self._watchdog: asyncio.TimerHandle | None = None
        self._unsent: list[bytes] = []  # commands sent in this pass of the loop, not written

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, whatever the loop's class: uvloop's (which uvicorn picks when
        # it is installed) does not derive from asyncio.Transport, so no isinstance here.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, args: tuple[Arg, ...]) -> asyncio.Future[Any]:
        if self.lost is not None or self.transport is None:
            raise self.lost or redis_errors.ConnectionError("Redis connection not open")
        loop = self.loop
        waiter: asyncio.Future[Any] = loop.create_future()
        self.waiters.append(waiter)
        self.sent_at.append(loop.time())
        # hiredis's stub types the argument as a 1-tuple; it takes any number.
        self._unsent.append(hiredis.pack_command(args))  # type: ignore[arg-type]
        if len(self._unsent) == 1:
            loop.call_soon(self._write_unsent)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout_s, self._check_overdue)
        return waiter

    def _write_unsent(self) -> None:
        """Everything sent in one pass of the loop goes out in one write (one system call)."""
        unsent, self._unsent = self._unsent, []
        if self.transport is not None and self.lost is None:
            self.transport.write(b"".join(unsent))

    def _check_overdue(self) -> None:
        self._watchdog = None
        if not self.sent_at:
            return
        due = self.sent_at[0] + self._timeout_s
        if self.loop.time() >= due:
            self.fail(redis_errors.TimeoutError(f"no reply from Redis in {self._timeout_s} s"))
        else:
            self._watchdog = self.loop.call_at(due, self._check_overdue)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if not self.waiters:
                self.fail(redis_errors.ConnectionError("Redis sent a reply nobody asked for"))
                return
            waiter = self.waiters.popleft()
            self.sent_at.popleft()
            if waiter.done():
                continue  # its caller gave up (cancelled); the reply still had to be read
            if isinstance(reply, hiredis.ReplyError):
                waiter.set_exception(_reply_error(str(reply)))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = redis_errors.ConnectionError(f"Redis connection lost: {exc or 'closed'}")
        self._fail_waiters(self.lost)

    def fail(self, error: Exception) -> None:
        """Give up the connection: later replies could not be matched to their commands."""
        self.lost = error
        if self.transport is not None:
            self.transport.abort()
        self._fail_waiters(error)

    def _fail_waiters(self, error: Exception) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.sent_at.clear()
        self._unsent.clear()
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)


def _reply_error(message: str) -> redis_errors.ResponseError:
    if message.startswith("NOSCRIPT"):
        return redis_errors.NoScriptError(message)
    return redis_errors.ResponseError(message)


class Script:
    """A Lua script run by EVALSHA, loaded again where the server has lost it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class PipelinedRedis:
    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        """``url`` as redis-py takes it (`redis://`, `rediss://`, `unix://`; user, password
        and db honoured)."""
        self._options: dict[str, Any] = dict(parse_url(url))
        self._timeout_s = timeout_s
        self._connections: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Future[_Connection]
        ] = weakref.WeakKeyDictionary()
        self._last: _Connection | None = None  # the connection used last

    async def execute(self, *args: Arg) -> Any:
        loop = asyncio.get_running_loop()
        connection = self._current(loop) or await self._connection(loop)
        return await connection.send(args)

    async def execute_many(self, commands: list[tuple[Arg, ...]]) -> list[Any]:
        """Send ``commands`` together, one round trip; their replies in order (the first
        error raised). Not a transaction: another client's command may run in between."""
        loop = asyncio.get_running_loop()
        connection = self._current(loop) or await self._connection(loop)
        waiters = [connection.send(command) for command in commands]
        replies: list[Any] = []
        try:
            for waiter in waiters:
                replies.append(await waiter)
        finally:
            for waiter in waiters[len(replies) + 1 :]:
                # Read or dropped, so no error goes unretrieved (its reply is skipped).
                if waiter.done() and not waiter.cancelled():
                    waiter.exception()
                else:
                    waiter.cancel()
        return replies

    async def run_script(self, script: Script, keys: list[str], args: list[Arg]) -> Any:
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis_errors.NoScriptError:
            await self.execute("SCRIPT", "LOAD", script.source)
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def close(self) -> None:
        for loop, pending in list(self._connections.items()):
            # A closed loop's transports went with it (tests run a loop per test).
            if not loop.is_closed() and pending.done() and pending.exception() is None:
                transport = pending.result().transport
                if transport is not None:
                    transport.close()
        self._connections.clear()
        self._last = None

    def _current(self, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        """The usual case, without a coroutine call: this loop's connection, open."""
        connection = self._last
        if connection is None or connection.loop is not loop or connection.lost is not None:
            return None
        return connection

    async def _connection(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        pending = self._connections.get(loop)
        if pending is not None and pending.done():
            if pending.exception() is None and pending.result().lost is None:
                self._last = pending.result()
                return self._last
            pending = None  # lost, or never made: connect again
        if pending is None:
            pending = loop.create_future()
            self._connections[loop] = pending
            try:
                pending.set_result(await self._connect(loop))
            except BaseException as exc:
                # Failed or cancelled: whoever waits on this connect sees it fail (retrieved
                # here, raised to them), and the next command connects again.
                failed = exc if isinstance(exc, Exception) else None
                pending.set_exception(failed or redis_errors.ConnectionError("connect cancelled"))
                pending.exception()
                if failed is None:
                    raise
        # Callers that came while this loop was connecting share the one connection.
        self._last = await asyncio.shield(pending)
        return self._last

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        options = self._options
        try:
            async with asyncio.timeout(self._timeout_s):
                if "path" in options:
                    _, protocol = await loop.create_unix_connection(
                        lambda: _Connection(loop, self._timeout_s), options["path"]
                    )
                else:
                    tls = ssl.create_default_context() if _wants_tls(options) else None
                    _, protocol = await loop.create_connection(
                        lambda: _Connection(loop, self._timeout_s),
                        options.get("host", "localhost"), options.get("port", 6379), ssl=tls,
                    )  # fmt: skip
        except (OSError, TimeoutError) as exc:
            raise redis_errors.ConnectionError(f"cannot connect to Redis: {exc}") from exc
        # Written before anyone else may write: every later command runs logged in, on db.
        setup: list[tuple[Arg, ...]] = []
        if options.get("password"):
            user = [options["username"]] if options.get("username") else []
            setup.append(("AUTH", *user, options["password"]))
        if options.get("db"):
            setup.append(("SELECT", int(options["db"])))
        try:
            for waiter in [protocol.send(command) for command in setup]:
                await waiter
        except BaseException:
            protocol.fail(redis_errors.ConnectionError("Redis refused the login or the db"))
            raise
        return protocol


def _wants_tls(options: dict[str, Any]) -> bool:
    connection_class = options.get("connection_class")
    return isinstance(connection_class, type) and issubclass(connection_class, SSLConnection)
