"""Delivery over real HTTP: retries, backoff, timeouts, dead letters and replies."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import httpx
import pytest

from tests.broker.conftest import RunningBroker, StartBroker
from tests.broker.harness import (
    Answer,
    Recorder,
    binary_headers,
    broker_doc,
    dead_letter_sink,
    trigger_doc,
    wait_for,
)

SERVICE = "sub"
EVENT_TYPE = "dev.t2v.job.requested"


def _docs(delivery: dict[str, Any], *extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        broker_doc({**delivery, "deadLetterSink": dead_letter_sink(SERVICE, "/dead-letter")}),
        trigger_doc("work", SERVICE, "/events", filters={"type": EVENT_TYPE}),
        *extra,
    ]


def _fast(retry: int, **more: Any) -> dict[str, Any]:
    return {"retry": retry, "backoffPolicy": "exponential", "backoffDelay": "PT0.01S", **more}


def _send(broker: RunningBroker, event_id: str = "e-1", event_type: str = EVENT_TYPE) -> None:
    headers = binary_headers(event_type, event_id, subject="job-1")
    response = httpx.post(broker.url, headers=headers, content=b'{"n": 1}')
    assert response.status_code == 202


def _finished(broker: RunningBroker) -> None:
    """Wait until delivery to the subscriber ended (delivered or failed, no retry pending)."""
    wait_for(
        lambda: any(r["outcome"] != "retrying" for r in broker.log("delivery")),
        what="the end of delivery",
    )


def test_retries_after_500_until_success(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    subscriber.script("/events", Answer(500), Answer(500), Answer(200))
    broker = start_broker(_docs(_fast(5)), {SERVICE: url})
    _send(broker)
    _finished(broker)
    attempts = broker.log("delivery")
    assert [(r["attempt"], r["status"], r["outcome"]) for r in attempts] == [
        (1, 500, "retrying"),
        (2, 500, "retrying"),
        (3, 200, "delivered"),
    ]
    assert attempts[0]["trigger"] == "work"
    assert attempts[0]["subject"] == "job-1"
    assert [item.ce["id"] for item in subscriber.at("/events")] == ["e-1"] * 3
    assert subscriber.at("/dead-letter") == []


@pytest.mark.parametrize("status", [404, 408, 409, 429, 503])
def test_retryable_statuses_are_retried(
    status: int, recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    subscriber.script("/events", Answer(status), Answer(202))
    broker = start_broker(_docs(_fast(3)), {SERVICE: url})
    _send(broker)
    _finished(broker)
    assert [r["status"] for r in broker.log("delivery")] == [status, 202]
    assert subscriber.at("/dead-letter") == []


@pytest.mark.parametrize("status", [400, 401, 403, 422])
def test_other_client_errors_go_straight_to_the_dead_letter_sink(
    status: int, recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    subscriber.script("/events", Answer(status, body=b'{"error": "bad prompt"}'))
    broker = start_broker(_docs(_fast(5)), {SERVICE: url})
    _send(broker)
    wait_for(lambda: subscriber.at("/dead-letter"), what="dead letter")
    assert len(subscriber.at("/events")) == 1
    assert [(r["status"], r["outcome"]) for r in broker.log("delivery")] == [(status, "failed")]
    dead = subscriber.at("/dead-letter")[0]
    assert dead.ce["knativeerrordest"] == f"{url}/events"
    assert dead.ce["knativeerrorcode"] == str(status)
    assert base64.b64decode(dead.ce["knativeerrordata"]) == b'{"error": "bad prompt"}'


def test_exhausted_retries_dead_letter_the_original_event(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    subscriber.script("/events", Answer(503, body=b"busy"))
    broker = start_broker(_docs(_fast(2)), {SERVICE: url})
    _send(broker, "e-dead")
    wait_for(lambda: broker.log("dead_letter"), what="dead letter")
    assert [r["outcome"] for r in broker.log("delivery")] == ["retrying", "retrying", "failed"]
    dead = subscriber.at("/dead-letter")
    assert len(dead) == 1
    assert dead[0].body == b'{"n": 1}'
    assert dead[0].ce["id"] == "e-dead"
    assert dead[0].ce["type"] == EVENT_TYPE
    assert dead[0].ce["subject"] == "job-1"
    assert dead[0].ce["knativeerrordest"] == f"{url}/events"
    assert dead[0].ce["knativeerrorcode"] == "503"
    assert base64.b64decode(dead[0].ce["knativeerrordata"]) == b"busy"
    assert broker.log("dead_letter")[0]["outcome"] == "delivered"


def test_dead_letter_delivery_is_retried_too(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    subscriber.script("/events", Answer(500))
    subscriber.script("/dead-letter", Answer(500), Answer(200))
    broker = start_broker(_docs(_fast(1)), {SERVICE: url})
    _send(broker)
    wait_for(lambda: len(broker.log("dead_letter")) == 2, what="two dead-letter attempts")
    assert [r["status"] for r in broker.log("dead_letter")] == [500, 200]


def test_failure_without_a_dead_letter_sink_is_recorded(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    subscriber.script("/events", Answer(400))
    docs = [broker_doc(_fast(2)), trigger_doc("work", SERVICE, "/events")]
    broker = start_broker(docs, {SERVICE: url})
    _send(broker)
    wait_for(lambda: broker.log("undeliverable"), what="undeliverable record")
    assert broker.log("undeliverable")[0]["target"] == f"{url}/events"


def test_timeout_counts_as_no_response(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    subscriber.script("/events", Answer(200, delay_s=2.0), Answer(200))
    broker = start_broker(_docs(_fast(2, timeout="PT0.2S")), {SERVICE: url})
    _send(broker)
    _finished(broker)
    assert [(r["status"], r["outcome"]) for r in broker.log("delivery")] == [
        (None, "retrying"),
        (200, "delivered"),
    ]


def test_timeouts_exhausted_dead_letter_with_a_dispatch_error(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    subscriber.script("/events", Answer(200, delay_s=2.0))
    broker = start_broker(_docs(_fast(1, timeout="PT0.2S")), {SERVICE: url})
    _send(broker)
    wait_for(lambda: subscriber.at("/dead-letter"), what="dead letter")
    dead = subscriber.at("/dead-letter")[0]
    # Knative reports "no response" as 500 with a base64 "dispatch error: ..." body.
    assert dead.ce["knativeerrorcode"] == "500"
    assert base64.b64decode(dead.ce["knativeerrordata"]).startswith(b"dispatch error: ")


def test_unreachable_subscriber_is_retried_then_dead_lettered(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    docs = [
        broker_doc({**_fast(2), "deadLetterSink": dead_letter_sink(SERVICE, "/dead-letter")}),
        trigger_doc("work", "gone", "/events"),
    ]
    # Port 9 (discard) on loopback: nothing listens there, so connecting fails.
    broker = start_broker(docs, {SERVICE: url, "gone": "http://127.0.0.1:9"})
    _send(broker)
    wait_for(lambda: subscriber.at("/dead-letter"), what="dead letter")
    assert [r["status"] for r in broker.log("delivery")] == [None, None, None]
    assert subscriber.at("/dead-letter")[0].ce["knativeerrordest"] == "http://127.0.0.1:9/events"


@pytest.mark.parametrize(
    ("policy", "expected_waits"),
    [("exponential", [0.2, 0.4, 0.8]), ("linear", [0.1, 0.2, 0.3])],
)
def test_backoff_between_attempts_follows_the_policy(
    policy: str,
    expected_waits: list[float],
    recorder: tuple[Recorder, str],
    start_broker: StartBroker,
) -> None:
    subscriber, url = recorder
    subscriber.script("/events", Answer(500))
    delivery = {"retry": 3, "backoffPolicy": policy, "backoffDelay": "PT0.1S"}
    broker = start_broker(_docs(delivery), {SERVICE: url})
    _send(broker)
    wait_for(lambda: subscriber.at("/dead-letter"), what="dead letter")
    arrivals = [item.at for item in subscriber.at("/events")]
    assert len(arrivals) == 4
    waits = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    for wait, expected in zip(waits, expected_waits, strict=True):
        # Sleeping never ends early; the upper bound only absorbs scheduling noise.
        assert expected * 0.95 <= wait <= expected + 0.5, (waits, expected_waits)


def test_reply_event_is_published_into_the_broker(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    reply_headers = {
        "ce-specversion": "1.0",
        "ce-id": "reply-1",
        "ce-source": "/tests/subscriber",
        "ce-type": "dev.t2v.job.started",
        "ce-subject": "job-1",
        "content-type": "application/json",
    }
    subscriber.script("/events", Answer(200, body=b'{"phase": "starting"}', headers=reply_headers))
    on_reply = trigger_doc(
        "on-started", SERVICE, "/status", filters={"type": "dev.t2v.job.started"}
    )
    broker = start_broker(_docs(_fast(1), on_reply), {SERVICE: url})
    _send(broker)
    wait_for(lambda: subscriber.at("/status"), what="reply delivered")
    reply = subscriber.at("/status")[0]
    assert reply.ce["id"] == "reply-1"
    assert reply.body == b'{"phase": "starting"}'
    assert subscriber.at("/events")[0].headers["prefer"] == "reply"
    assert broker.log("reply")[0]["trigger"] == "work"


def test_structured_reply_is_published_too(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    structured = (
        b'{"specversion": "1.0", "id": "r-2", "source": "/s", "type": "dev.t2v.job.failed",'
        b' "data": {"code": "x"}}'
    )
    answer = Answer(200, body=structured, headers={"content-type": "application/cloudevents+json"})
    subscriber.script("/events", answer)
    on_reply = trigger_doc("on-failed", SERVICE, "/status", filters={"type": "dev.t2v.job.failed"})
    broker = start_broker(_docs(_fast(1), on_reply), {SERVICE: url})
    _send(broker)
    wait_for(lambda: subscriber.at("/status"), what="reply delivered")
    assert subscriber.at("/status")[0].ce["id"] == "r-2"


def test_reply_loops_stop_when_the_broker_ttl_runs_out(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    # The subscriber answers every event with another event of the same type: a loop.
    loop_headers = binary_headers(EVENT_TYPE, "loop")
    subscriber.script("/events", Answer(200, body=b"{}", headers=loop_headers))
    broker = start_broker(_docs(_fast(1)), {SERVICE: url})
    headers = binary_headers(EVENT_TYPE, "first", knativebrokerttl="3")
    assert httpx.post(broker.url, headers=headers, content=b"{}").status_code == 202
    wait_for(lambda: broker.log("dropped"), what="looping reply dropped")
    assert [item.ce["id"] for item in subscriber.at("/events")] == ["first", "loop", "loop"]
