"""Real servers for broker tests: uvicorn in background threads on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` on a free 127.0.0.1 port until the block ends; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, what="server start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "server thread did not stop"


def wait_for(condition: Callable[[], object], *, what: str, timeout_s: float = 15.0) -> None:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@dataclass(frozen=True)
class Answer:
    """How the recording subscriber answers one request."""

    status: int = 200
    delay_s: float = 0.0
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    path: str
    headers: Mapping[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def ce(self) -> dict[str, str]:
        """The CloudEvent attributes sent in binary mode (``ce-*`` headers)."""
        return {key[3:]: value for key, value in self.headers.items() if key.startswith("ce-")}


class Recorder:
    """A subscriber that records every request and answers from a per-path script."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._scripts: dict[str, list[Answer]] = {}
        self._in_flight: dict[str, int] = {}
        self._peak_in_flight: dict[str, int] = {}

    def script(self, path: str, *answers: Answer) -> None:
        """Answer requests to ``path`` in this order; the last answer repeats."""
        with self._lock:
            self._scripts[path] = list(answers)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [item for item in self._received if item.path == path]

    def peak_in_flight(self, path: str) -> int:
        """The most requests to ``path`` that were open at the same time."""
        with self._lock:
            return self._peak_in_flight.get(path, 0)

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            body = await request.body()
            with self._lock:
                self._received.append(
                    Received(request.url.path, dict(request.headers), body, time.monotonic())
                )
                script = self._scripts.get(request.url.path, [])
                answer = (script.pop(0) if len(script) > 1 else script[0]) if script else Answer()
                path = request.url.path
                self._in_flight[path] = self._in_flight.get(path, 0) + 1
                self._peak_in_flight[path] = max(
                    self._peak_in_flight.get(path, 0), self._in_flight[path]
                )
            try:
                await anyio.sleep(answer.delay_s)
                return Response(answer.body, answer.status, headers=dict(answer.headers))
            finally:
                with self._lock:
                    self._in_flight[path] -= 1

        return Starlette(routes=[Route("/{path:path}", handle, methods=["POST"])])


def write_eventing(directory: Path, documents: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "eventing.yaml").write_text(yaml.safe_dump_all(documents), encoding="utf-8")
    return directory


def broker_doc(delivery: Mapping[str, Any] | None = None, name: str = "t2v") -> dict[str, Any]:
    spec: dict[str, Any] = {"delivery": dict(delivery)} if delivery is not None else {}
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {"name": name},
        "spec": spec,
    }


def trigger_doc(
    name: str,
    service: str,
    uri: str,
    *,
    filters: Mapping[str, str] | None = None,
    delivery: Mapping[str, Any] | None = None,
    parallelism: int | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if parallelism is not None:
        metadata["annotations"] = {"rabbitmq.eventing.knative.dev/parallelism": str(parallelism)}
    spec: dict[str, Any] = {
        "broker": "t2v",
        "filter": {"attributes": dict(filters or {})},
        "subscriber": {
            "ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": service},
            "uri": uri,
        },
    }
    if delivery is not None:
        spec["delivery"] = dict(delivery)
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": metadata,
        "spec": spec,
    }


def dead_letter_sink(service: str, uri: str) -> dict[str, Any]:
    return {
        "ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": service},
        "uri": uri,
    }


def binary_headers(event_type: str, event_id: str, **extra: str) -> dict[str, str]:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "/tests/broker",
        "ce-type": event_type,
        "content-type": "application/json",
    }
    headers.update({f"ce-{key}": value for key, value in extra.items()})
    return headers


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
