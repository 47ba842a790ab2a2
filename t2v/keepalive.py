"""A small HTTP/1.1 client that POSTs to one URL over kept-alive connections.

Why not aiohttp or httpx: posting ``job.requested`` to the Broker is part of every submit,
and a general-purpose client spends most of its CPU on what this exchange never needs
(cookies, redirects, proxies, per-request timers and URL parsing). On the control-plane
bench aiohttp's client cost 0.2-0.35 ms of CPU per event, this one about 0.08 ms
(BENCHMARKS.md). Responses are parsed by httptools (llhttp, the parser behind Node.js and
uvicorn), so framing, chunked bodies and keep-alive rules are not hand-written.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

# A Broker's answer is a status and at most a short error text; more is a broken peer.
MAX_RESPONSE_BYTES = 1 << 20


class ExchangeError(Exception):
    """The request could not be sent or no complete response came back."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


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
    """One TCP connection; carries one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Reply] | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self.received_any = False
        self.reusable = True

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def exchange(self, data: bytes) -> asyncio.Future[Reply]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._body, self._size, self._headers_done, self.received_any = [], 0, False, False
        self.transport.write(data)
        return self._waiter

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
    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > MAX_RESPONSE_BYTES:
            self._fail(ExchangeError(f"response body over {MAX_RESPONSE_BYTES} bytes"))
            return
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        status = int(self._parser.get_status_code())
        if status < 200:  # an informational response (103 Early Hints): the real one follows
            self._body, self._size, self._headers_done = [], 0, False
            return
        self.reusable = self.reusable and bool(self._parser.should_keep_alive())
        self._resolve(Reply(status, b"".join(self._body)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.reusable = False
        if self._headers_done:
            # A body that runs to the end of the connection (no length given) ends here.
            self._resolve(Reply(int(self._parser.get_status_code()), b"".join(self._body)))
        else:
            self._fail(ExchangeError(f"connection closed before a response: {exc!r}"))

    def _resolve(self, reply: Reply) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def _fail(self, error: ExchangeError) -> None:
        self.reusable = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
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

    async def post(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """Send ``body`` with ``headers`` (Host and Content-Length are added)."""
        head = self._request_line + "".join(
            f"{_checked(name)}: {_checked(value)}\r\n" for name, value in headers.items()
        )
        data = f"{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._send(data)
        except TimeoutError as exc:
            raise ExchangeError(f"no response within {self._timeout_s} s") from exc

    async def _send(self, data: bytes) -> Reply:
        idle = self._idle.setdefault(asyncio.get_running_loop(), [])
        while idle:
            connection = idle.pop()
            if not connection.open:
                continue
            try:
                return await self._exchange(connection, data, idle)
            except ExchangeError:
                # The server may close an idle connection just as we reuse it. Nothing of
                # an answer arrived, so send again on a new connection; a handler that did
                # see the request gets it twice, which at-least-once delivery allows.
                if connection.received_any:
                    raise
        return await self._exchange(await self._connect(), data, idle)

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
        self, connection: _Connection, data: bytes, idle: list[_Connection]
    ) -> Reply:
        try:
            reply = await connection.exchange(data)
        except BaseException:
            connection.close()  # cancelled or failed mid-exchange: its state is unknown
            raise
        if connection.reusable and connection.open and len(idle) < self._max_idle:
            idle.append(connection)
        else:
            connection.close()
        return reply

    async def close(self) -> None:
        """Close the idle connections of the running loop (others close with their loop)."""
        for connection in self._idle.pop(asyncio.get_running_loop(), []):
            connection.close()
