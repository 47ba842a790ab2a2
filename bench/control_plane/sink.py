"""An event sink that accepts everything: ``python -m bench.control_plane.sink PORT``.

A bare ASGI callable on uvicorn, so its cost next to submit's is as small as it gets.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Message = MutableMapping[str, Any]


async def accept(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the body before answering
        message = await receive()
        more = bool(message.get("more_body"))
    await send(
        {"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


def main(argv: list[str]) -> int:
    uvicorn.run(accept, host="127.0.0.1", port=int(argv[0]), log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
