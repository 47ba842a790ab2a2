"""t2v.relay and the sinks' post_soon against a real HTTP server on 127.0.0.1, and the fast
binary-mode encoding against the CloudEvents path it replaces."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from t2v import events
from t2v.keepalive import KeepAliveClient
from t2v.relay import EventRelay
from tests.test_keepalive import (
    Answer,
    ScriptedServer,
    closed_port_url,
    ok,
    scripted_server,
    silent,
)

pytestmark = pytest.mark.asyncio


def event_id(request: bytes) -> str:
    return request.split(b"\r\nce-id: ", 1)[1].split(b"\r\n", 1)[0].decode()


def seen(server: ScriptedServer) -> dict[str, int]:
    """How many times the server got each event."""
    return dict(collections.Counter(map(event_id, server.requests)))


def by_event(status: Callable[[str, int], int], *, close_every: int = 0) -> Answer:
    """Answer ``status(event id, times it came)``; with ``close_every``, close the connection
    (saying so) after every that many answers."""
    times: collections.Counter[str] = collections.Counter()
    answered = 0

    def answer(request: bytes) -> tuple[bytes, bool]:
        nonlocal answered
        times[event_id(request)] += 1
        answered += 1
        closing = close_every > 0 and answered % close_every == 0
        extra = "Connection: close\r\n" if closing else ""
        reply = ok(status(event_id(request), times[event_id(request)]), extra=extra)
        return reply(request)[0], closing

    return answer


@pytest.fixture
async def sink() -> AsyncIterator[ScriptedServer]:
    async with scripted_server("/broker") as server:
        yield server


def relay_to(
    url: str, *, attempts: int = 4, max_queued: int = 10_000, batch_size: int = 64
) -> EventRelay:
    return EventRelay(
        KeepAliveClient(url, timeout_s=2),
        attempts=attempts,
        max_queued=max_queued,
        batch_size=batch_size,
        first_retry_s=0.01,
    )


def post(relay: EventRelay, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        relay.post_soon({"ce-id": f"e{number}"}, b"{}", description=f"event e{number}")


async def test_delivers_everything_in_batches_over_a_few_connections(sink: ScriptedServer) -> None:
    relay = relay_to(sink.url)
    post(relay, 300)
    assert relay.pending == 300
    await relay.drain(5)
    assert set(seen(sink)) == {f"e{number}" for number in range(300)}
    assert (relay.delivered, relay.failed, relay.dropped, relay.pending) == (300, 0, 0, 0)
    assert relay.batches == 5  # 300 queued at once: 64 at a time
    assert sink.connections <= 4
    post(relay, 3, start=300)  # the idle workers and connections are used again
    await relay.drain(5)
    assert relay.delivered == 303 and sink.connections <= 4
    await relay.close()


async def test_retries_failed_answers_with_backoff(sink: ScriptedServer) -> None:
    sink.answer = by_event(lambda _id, times: 503 if times <= 2 else 202)
    relay = relay_to(sink.url)
    post(relay, 10)
    await relay.drain(5)
    assert (relay.delivered, relay.failed) == (10, 0)
    assert set(seen(sink).values()) == {3}
    await relay.close()


async def test_retries_what_a_closing_connection_left_unanswered(sink: ScriptedServer) -> None:
    sink.answer = by_event(lambda _id, _times: 202, close_every=2)
    relay = relay_to(sink.url, batch_size=5)
    post(relay, 5)
    await relay.drain(5)
    # Each connection answers two and closes: two delivered per attempt, the rest retried.
    assert (relay.delivered, relay.failed, relay.batches) == (5, 0, 3)
    assert set(seen(sink)) == {f"e{number}" for number in range(5)}
    await relay.close()


async def test_gives_up_after_the_attempts_and_says_which(
    sink: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    sink.answer = by_event(lambda _id, _times: 503)
    relay = relay_to(sink.url, attempts=3)
    with caplog.at_level(logging.WARNING, logger="t2v.relay"):
        post(relay, 2)
        await relay.drain(5)
    assert (relay.delivered, relay.failed, relay.pending) == (0, 2, 0)
    assert seen(sink) == {"e0": 3, "e1": 3}
    given_up = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert sorted(record.getMessage().split()[4] for record in given_up) == ["e0", "e1"]
    assert all("after 3 attempts (HTTP 503)" in record.getMessage() for record in given_up)
    await relay.close()


async def test_gives_up_on_an_unreachable_sink(caplog: pytest.LogCaptureFixture) -> None:
    relay = relay_to(await closed_port_url(), attempts=2)
    post(relay, 1)
    await relay.drain(5)
    assert (relay.delivered, relay.failed) == (0, 1)
    assert "cannot connect" in caplog.text
    await relay.close()


async def test_drops_beyond_max_queued(
    sink: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    relay = relay_to(sink.url, max_queued=5)
    with caplog.at_level(logging.WARNING, logger="t2v.relay"):
        post(relay, 8)
    assert (relay.dropped, relay.pending) == (3, 5)
    assert "dropped event e7" in caplog.text
    await relay.drain(5)
    assert relay.delivered == 5
    assert set(seen(sink)) == {f"e{number}" for number in range(5)}
    await relay.close()


async def test_drain_waits_for_the_answers(
    sink: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    sink.gate = asyncio.Event()
    relay = relay_to(sink.url)
    post(relay, 3)
    await relay.drain(0.2)  # the sink holds its answers: drain gives up waiting, and says so
    assert relay.pending == 3 and relay.delivered == 0
    assert "3 events still pending" in caplog.text
    waiting = asyncio.ensure_future(relay.drain(5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert sink.gate is not None
    sink.gate.set()
    await waiting
    assert (relay.delivered, relay.pending) == (3, 0)
    await relay.close()


async def test_close_gives_up_what_it_could_not_deliver(
    sink: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    sink.answer = silent
    relay = relay_to(sink.url)
    post(relay, 2)
    await relay.close(0.1)
    assert (relay.delivered, relay.failed, relay.pending) == (0, 2, 0)
    assert "gave up sending event e0" in caplog.text


async def test_a_header_that_cannot_be_sent_is_refused_at_once(sink: ScriptedServer) -> None:
    relay = relay_to(sink.url)
    with pytest.raises(ValueError, match="CR, LF"):
        relay.post_soon({"ce-id": "x\r\nX-Evil: 1"}, b"", description="bad")
    assert relay.pending == 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    gate: ClassVar[threading.Event] = threading.Event()
    seen: ClassVar[collections.Counter[str]] = collections.Counter()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.gate.wait(10)
        self.seen[self.headers["ce-id"]] += 1
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_relay_moves_to_a_new_event_loop_and_sends_what_the_old_one_held() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        relay = relay_to(f"http://127.0.0.1:{server.server_address[1]}/")  # no loop needed

        async def first() -> None:
            post(relay, 3)
            await relay.drain(0.2)  # the server holds its answers; this loop then ends

        asyncio.run(first())
        assert (relay.delivered, relay.pending) == (0, 3)
        _Handler.gate.set()
        asyncio.run(relay.drain(5))
        assert (relay.delivered, relay.failed, relay.pending) == (3, 0, 0)
        assert set(_Handler.seen) == {"e0", "e1", "e2"}  # some perhaps twice: at least once
    finally:
        server.shutdown()
        server.server_close()


async def test_http_sink_post_soon_sends_a_cloudevent(sink: ScriptedServer) -> None:
    data = {"job_id": "job_1", "tenant": "local", "params": {"prompt": "a fox"}}
    http_sink = events.HttpEventSink(sink.url)
    at = "2026-11-27T06:00:00.5Z"
    http_sink.post_soon(
        events.OutgoingEvent(events.JOB_REQUESTED, "/t2v/submit", "job_1", data, at)
    )
    await http_sink.relay.drain(5)
    await http_sink.close()
    (request,) = sink.requests
    head, body = request.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")[1:]
    event = events.parse_event(dict(line.split(": ", 1) for line in lines), body)
    assert (event["type"], event["source"], event["subject"]) == (
        events.JOB_REQUESTED, "/t2v/submit", "job_1"
    )  # fmt: skip
    assert event.get_data() == data and event["time"] == at


async def test_discarding_sink_post_soon_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="t2v.events"):
        events.DiscardingEventSink().post_soon(
            events.OutgoingEvent(events.JOB_REQUESTED, "/s", "job_9", {})
        )
    assert "dropping dev.t2v.job.requested for job_9" in caplog.text


@pytest.mark.parametrize(
    ("subject", "extensions"),
    [("job_1", None), ('a b"%é', {"t2vtenant": "acme"})],
)
def test_binary_event_equals_binary_http_of_make_event(
    subject: str, extensions: dict[str, str] | None
) -> None:
    data = {"job_id": "job_1", "params": {"prompt": "ü fox", "seed": 7, "guidance": 4.5}}
    event = events.make_event(
        events.JOB_REQUESTED, source="/t2v/submit", subject=subject, data=data,
        extensions=extensions,
    )  # fmt: skip
    expected_headers, expected_body = events.binary_http(event)
    headers, body = events.binary_event(
        events.JOB_REQUESTED,
        source="/t2v/submit",
        subject=subject,
        data=data,
        event_id=str(event["id"]),
        time=str(event["time"]),
        extensions=extensions,
    )
    assert headers == expected_headers
    assert list(headers) == list(expected_headers)
    assert json.loads(body) == json.loads(expected_body) == data


def test_binary_event_defaults_a_fresh_id_and_the_time_now() -> None:
    first, _ = events.binary_event("dev.t2v.x", source="/s", subject="j", data={})
    second, _ = events.binary_event("dev.t2v.x", source="/s", subject="j", data={})
    assert first["ce-id"] != second["ce-id"] and len(first["ce-id"]) == 32
    sent = datetime.fromisoformat(first["ce-time"])
    assert sent.utcoffset() is not None
    assert abs((datetime.now(sent.tzinfo) - sent).total_seconds()) < 60
