"""The event sink against a real HTTP receiver on 127.0.0.1: binary mode, one attempt, and a
failed send is one counter increment and one log line, never an exception."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from cloudevents.http import CloudEvent, from_http
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from t2v import events
from tests.services import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    client_port: int


@dataclass
class Receiver:
    """Records every POST and answers each with `status`."""

    url: str
    status: int = 202
    requests: list[Received] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    state = Receiver(url=f"http://127.0.0.1:{port}/")

    async def record(request: Request) -> Response:
        client_port = request.client.port if request.client is not None else 0
        state.requests.append(Received(dict(request.headers), await request.body(), client_port))
        return Response(status_code=state.status)

    app = Starlette(routes=[Route("/", record, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it did not start
        await asyncio.sleep(0.01)
    try:
        yield state
    finally:
        server.should_exit = True
        await task


def _failures(event_type: str) -> float:
    value = REGISTRY.get_sample_value("t2v_events_send_failures_total", {"type": event_type})
    return value or 0.0


def _requested(job_id: str) -> CloudEvent:
    data = {"job_id": job_id, "tenant": "acme"}
    return events.make_event(events.JOB_REQUESTED, source="/t2v/submit", subject=job_id, data=data)


async def test_an_event_is_posted_once_in_binary_mode(receiver: Receiver) -> None:
    sink = events.HttpEventSink(receiver.url)
    event = _requested("job_binary")
    try:
        assert await sink.send(event)
    finally:
        await sink.close()
    [received] = receiver.requests
    assert received.headers["content-type"] == "application/json"
    assert received.headers["ce-specversion"] == "1.0"
    assert received.headers["ce-type"] == events.JOB_REQUESTED
    assert received.headers["ce-subject"] == "job_binary"
    assert received.headers["ce-id"] == event["id"]
    assert received.headers["ce-dataschema"] == events.data_schema(events.JOB_REQUESTED)
    assert json.loads(received.body) == {"job_id": "job_binary", "tenant": "acme"}
    back = events.parse_event(received.headers, received.body)
    assert back.get_attributes() == from_http(received.headers, received.body).get_attributes()
    assert events.event_data(back) == {"job_id": "job_binary", "tenant": "acme"}


async def test_one_client_and_its_connection_serve_every_send(receiver: Receiver) -> None:
    sink = events.HttpEventSink(receiver.url)
    try:
        for index in range(3):
            assert await sink.send(_requested(f"job_reuse_{index}"))
    finally:
        await sink.close()
    assert len({received.client_port for received in receiver.requests}) == 1


async def test_a_5xx_is_one_attempt_one_counted_failure_and_one_log_line(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 503
    sink = events.HttpEventSink(receiver.url)
    before = _failures(events.JOB_REQUESTED)
    with caplog.at_level(logging.WARNING, logger="t2v.events"):
        try:
            assert not await sink.send(_requested("job_refused_5xx"))
        finally:
            await sink.close()
    assert len(receiver.requests) == 1  # not retried: the Broker and the sweep retry
    assert _failures(events.JOB_REQUESTED) == before + 1
    [record] = [r for r in caplog.records if r.name == "t2v.events"]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "job_refused_5xx" in record.getMessage() and "HTTP 503" in record.getMessage()


async def test_a_refused_connection_is_a_counted_failure_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = events.HttpEventSink(f"http://127.0.0.1:{free_port()}/")  # nothing listens there
    event = events.make_event(
        events.JOB_FAILED, source="/t2v/submit", subject="job_unreachable", data={}
    )
    before = _failures(events.JOB_FAILED)
    with caplog.at_level(logging.WARNING, logger="t2v.events"):
        try:
            assert not await sink.send(event)
        finally:
            await sink.close()
    assert _failures(events.JOB_FAILED) == before + 1
    [record] = [r for r in caplog.records if r.name == "t2v.events"]
    assert record.exc_info is None
    assert "job_unreachable" in record.getMessage() and "ConnectError" in record.getMessage()


async def test_without_k_sink_events_are_logged_and_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = events.DiscardingEventSink()
    with caplog.at_level(logging.INFO, logger="t2v.events"):
        assert await sink.send(_requested("job_local"))
    assert any(
        "dropping" in r.getMessage() and "job_local" in r.getMessage() for r in caplog.records
    )
