"""An event loop whose socket transports are not `asyncio.Transport`s, like uvloop's.

uvicorn runs the functions on uvloop wherever uvloop is installed (its loop setting is
"auto"), and uvloop's transports do not derive from asyncio's classes. This loop hands each
protocol a thin stand-in for the real transport that derives only from `BaseTransport`, so
code that connects its own sockets (the Redis connection) is tested against such a transport
over real sockets, without changing the serving stack of every other test.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class ForeignTransport(asyncio.BaseTransport):
    """A stream transport of another loop implementation: not an `asyncio.Transport`."""

    def __init__(self, inner: asyncio.Transport) -> None:
        super().__init__()
        self._inner = inner

    def write(self, data: bytes) -> None:
        self._inner.write(data)

    def abort(self) -> None:
        self._inner.abort()

    def close(self) -> None:
        self._inner.close()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)


class _Relay(asyncio.Protocol):
    """Sits between the real transport and the protocol, giving it the stand-in."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self._protocol = protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._protocol.connection_made(ForeignTransport(transport))

    def data_received(self, data: bytes) -> None:
        self._protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return self._protocol.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.connection_lost(exc)


class ForeignTransportLoop(asyncio.SelectorEventLoop):
    """Client connections get the stand-in; a server's accepted ones stay asyncio's own."""

    def _make_socket_transport(
        self,
        sock: socket.socket,
        protocol: asyncio.Protocol,
        waiter: asyncio.Future[Any] | None = None,
        *,
        extra: dict[str, Any] | None = None,
        server: asyncio.Server | None = None,
    ) -> asyncio.Transport:
        if server is None:
            protocol = _Relay(protocol)
        return super()._make_socket_transport(  # type: ignore[misc,no-any-return]
            sock, protocol, waiter, extra=extra, server=server
        )


def run_on_foreign_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=ForeignTransportLoop) as runner:
        return runner.run(coroutine)
