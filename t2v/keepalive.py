"""A small HTTP/1.1 client that POSTs to one URL over kept-alive connections.

Why not aiohttp or httpx: posting ``job.requested`` to the Broker is part of every submit,
and a general-purpose client spends most of its CPU on what this exchange never needs
(cookies, redirects, proxies, per-request timers and URL parsing). On the control-plane
bench aiohttp's client cost 0.2-0.35 ms of CPU per event, this one about 0.08 ms
(BENCHMARKS.md). Responses are parsed by httptools (llhttp, the parser behind Node.js and
uvicorn), so framing, chunked bodies and keep-alive rules are not hand-written.
`post_many` pipelines a batch on one connection in one write, for the event relay
(`t2v.relay.EventRelay`): one syscall and one wake-up for many events.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

# A Broker's answer is a status and at most a short error text; more is a broken peer.
MAX_RESPONSE_BYTES = 1 << 20


class ExchangeError(Exception):
    """The request could not be sent or no complete response came back."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes


# What became of one request of a batch (`KeepAliveClient.post_many`).
Outcome = Reply | ExchangeError


@dataclass(frozen=True)
class _Origin:
    host: str
    port: int
    target: str  # path and query, as sent on the request line
    tls: bool

    @classmethod
    def parse(cls, url: str) -> _Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, parts.port or (443 if tls else 80), target, tls)

    def host_header(self) -> str:
        default_port = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default_port else f"{host}:{self.port}"


def _checked(text: str) -> str:
    # A CR or LF in a header would let a value start a header (or a request) of its own.
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError(f"header text may not hold CR, LF or NUL: {text!r}")
    return text


class _Connection(asyncio.Protocol):
    """One TCP connection; carries one exchange at a time, of one or more pipelined requests."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        # One future per exchange (not per response): it resolves when every response is in.
        self._waiter: asyncio.Future[list[Outcome]] | None = None
        self._outcomes: list[Outcome] = []
        self._expected = 0
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self.received_any = False
        self.reusable = True

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, whatever the loop's class: uvloop's (which uvicorn picks when
        # it is installed) does not derive from asyncio.Transport, so no isinstance here.
        self.transport = cast(asyncio.Transport, transport)

    def exchange(self, data: bytes, count: int) -> asyncio.Future[list[Outcome]]:
        """Write ``data`` (``count`` requests); the future gets one outcome per request."""
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._outcomes, self._expected = [], count
        self._body, self._size, self._headers_done, self.received_any = [], 0, False, False
        self.transport.write(data)
        return self._waiter

    def abandon(self, error: ExchangeError) -> list[Outcome]:
        """Give up waiting (a timeout): what arrived, and ``error`` for the rest."""
        self._fail(error)
        return self._outcomes

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        if self._waiter is None:
            # Nothing was asked (e.g. a server's 408 on an idle connection): never reuse it.
            self._fail(ExchangeError("unsolicited data from the server"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ExchangeError(f"malformed response: {exc}"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self._waiter is None:  # more responses than requests in one read
            self.reusable = False

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, chunk: bytes) -> None:
        if self._waiter is None:
            return
        self._size += len(chunk)
        if self._size > MAX_RESPONSE_BYTES:
            self._fail(ExchangeError(f"response body over {MAX_RESPONSE_BYTES} bytes"))
            return
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        if self._waiter is None:
            return
        status = int(self._parser.get_status_code())
        if status < 200:  # an informational response (103 Early Hints): the real one follows
            self._body, self._size, self._headers_done = [], 0, False
            return
        keep_alive = bool(self._parser.should_keep_alive())
        self.reusable = self.reusable and keep_alive
        self._add(Reply(status, b"".join(self._body) if self._body else b""))
        if not keep_alive:
            # The server closes after this one: what it was also sent goes unanswered, and
            # is left to the caller (a resend here could duplicate a request it did take).
            done = len(self._outcomes)
            self._fail(ExchangeError(f"server closed the connection after {done} responses"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.reusable = False
        if self._waiter is not None and self._headers_done:
            # A body that runs to the end of the connection (no length given) ends here.
            self._add(Reply(int(self._parser.get_status_code()), b"".join(self._body)))
        self._fail(ExchangeError(f"connection closed before a response: {exc!r}"))

    def _add(self, reply: Reply) -> None:
        self._outcomes.append(reply)
        self._body, self._size, self._headers_done = [], 0, False
        if len(self._outcomes) >= self._expected:
            self._finish()

    def _finish(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self._outcomes)

    def _fail(self, error: ExchangeError) -> None:
        self.reusable = False
        if self._waiter is not None:
            self._outcomes.extend([error] * (self._expected - len(self._outcomes)))
            self._finish()
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class KeepAliveClient:
    """POSTs to one URL; idle connections are kept per event loop and reused."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        max_idle: int = 64,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context`` for https URLs; the default verifies against the system CAs."""
        self._origin = _Origin.parse(url)
        self._timeout_s = timeout_s
        self._max_idle = max_idle
        self._ssl = (ssl_context or ssl.create_default_context()) if self._origin.tls else None
        self._idle: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Connection]] = (
            weakref.WeakKeyDictionary()
        )
        origin = self._origin
        self._request_line = (
            f"POST {_checked(origin.target)} HTTP/1.1\r\nHost: {origin.host_header()}\r\n"
        )

    def prepare(self, headers: Mapping[str, str], body: bytes) -> bytes:
        """The bytes of one POST of ``body`` with ``headers`` (Host and Content-Length added).

        Raises ValueError where a header name or value holds CR, LF or NUL.
        """
        head = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        # One scan of the whole head instead of three per name and value: a CR or LF in
        # either shows as one too many here, and `_checked` then names the culprit.
        lines = len(headers)
        if head.count("\n") != lines or head.count("\r") != lines or "\0" in head:
            for name, value in headers.items():
                _checked(name)
                _checked(value)
        return (
            f"{self._request_line}{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1")
            + body
        )

    async def post(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """Send ``body`` with ``headers`` (Host and Content-Length are added)."""
        (outcome,) = await self._send(self.prepare(headers, body), 1)
        if isinstance(outcome, ExchangeError):
            raise outcome
        return outcome

    async def post_many(self, requests: Sequence[tuple[Mapping[str, str], bytes]]) -> list[Outcome]:
        """Send every (headers, body) on one connection in one write (HTTP/1.1 pipelining).

        One outcome per request, in order: its Reply, or an ExchangeError where no response
        came back (the connection broke or timed out, or the server closed it after an
        earlier response). Such a request may or may not have reached the server; it is
        not sent again here.
        """
        return await self.post_prepared([self.prepare(headers, body) for headers, body in requests])

    async def post_prepared(self, requests: Sequence[bytes]) -> list[Outcome]:
        """`post_many` of requests already built by `prepare`."""
        if not requests:
            return []
        return await self._send(b"".join(requests), len(requests))

    async def _send(self, data: bytes, count: int) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        idle = self._idle.get(loop)
        if idle is None:
            idle = self._idle[loop] = []
        while idle:
            connection = idle.pop()
            if not connection.open:
                continue
            outcomes = await self._exchange(connection, data, count, deadline, idle)
            # The server may close an idle connection just as we reuse it. Nothing of an
            # answer arrived, so send again on a new connection; a handler that did see the
            # request gets it twice, which at-least-once delivery allows.
            if connection.received_any or loop.time() >= deadline:
                return outcomes
        try:
            async with asyncio.timeout_at(deadline):
                connection = await self._connect()
        except ExchangeError as exc:
            return [exc] * count
        except TimeoutError:
            return [self._timed_out()] * count
        return await self._exchange(connection, data, count, deadline, idle)

    def _timed_out(self) -> ExchangeError:
        return ExchangeError(f"no response within {self._timeout_s} s")

    async def _connect(self) -> _Connection:
        origin = self._origin
        try:
            _, connection = await asyncio.get_running_loop().create_connection(
                _Connection, origin.host, origin.port, ssl=self._ssl
            )
        except OSError as exc:
            raise ExchangeError(f"cannot connect to {origin.host}:{origin.port}: {exc}") from exc
        return connection

    async def _exchange(
        self,
        connection: _Connection,
        data: bytes,
        count: int,
        deadline: float,
        idle: list[_Connection],
    ) -> list[Outcome]:
        try:
            async with asyncio.timeout_at(deadline):
                outcomes = await connection.exchange(data, count)
        except TimeoutError:
            return connection.abandon(self._timed_out())
        except BaseException:
            connection.close()  # cancelled mid-exchange: its state is unknown
            raise
        if connection.reusable and connection.open and len(idle) < self._max_idle:
            idle.append(connection)
        else:
            connection.close()
        return outcomes

    async def close(self) -> None:
        """Close the idle connections of the running loop (others close with their loop)."""
        for connection in self._idle.pop(asyncio.get_running_loop(), []):
            connection.close()
