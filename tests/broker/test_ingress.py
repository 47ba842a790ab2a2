"""Broker ingress over real HTTP: both content modes, malformed events, filters."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.broker.conftest import StartBroker
from tests.broker.harness import Recorder, binary_headers, broker_doc, trigger_doc, wait_for

SERVICE = "sub"


def _routing_docs() -> list[dict[str, object]]:
    return [
        broker_doc(),
        trigger_doc("on-a", SERVICE, "/a", filters={"type": "dev.t2v.a"}),
        trigger_doc("on-b", SERVICE, "/b", filters={"type": "dev.t2v.b"}),
        trigger_doc(
            "on-a-urgent", SERVICE, "/urgent", filters={"type": "dev.t2v.a", "priority": "high"}
        ),
        trigger_doc("on-any-subject", SERVICE, "/with-subject", filters={"subject": ""}),
    ]


def test_events_reach_only_the_triggers_whose_filters_match(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    broker = start_broker(_routing_docs(), {SERVICE: url})
    sent = [
        binary_headers("dev.t2v.a", "1"),
        binary_headers("dev.t2v.b", "2", subject="job-2"),
        binary_headers("dev.t2v.a", "3", priority="high"),
        binary_headers("dev.t2v.c", "4"),
        binary_headers("dev.t2v.a", "5", priority="low"),
    ]
    for headers in sent:
        assert httpx.post(broker.url, headers=headers, content=b"{}").status_code == 202
    wait_for(lambda: len(broker.log("ingress")) == 5, what="5 ingress records")
    wait_for(lambda: len(broker.log("delivery")) == 6, what="6 deliveries")

    def ids(path: str) -> list[str]:
        return sorted(item.ce["id"] for item in subscriber.at(path))

    assert ids("/a") == ["1", "3", "5"]
    assert ids("/b") == ["2"]
    assert ids("/urgent") == ["3"]
    assert ids("/with-subject") == ["2"]


def test_binary_event_is_delivered_unchanged_in_binary_mode(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    broker = start_broker(_routing_docs(), {SERVICE: url})
    body = b'{"prompt":"a cat",  "steps": 8}'  # odd spacing must survive byte for byte
    headers = binary_headers("dev.t2v.a", "bin-1", subject="job-1", traceid="abc")
    assert httpx.post(broker.url, headers=headers, content=body).status_code == 202
    wait_for(lambda: subscriber.at("/a"), what="delivery to /a")
    received = subscriber.at("/a")[0]
    assert received.body == body
    assert received.headers["content-type"] == "application/json"
    assert received.ce == {
        "specversion": "1.0",
        "id": "bin-1",
        "source": "/tests/broker",
        "type": "dev.t2v.a",
        "subject": "job-1",
        "traceid": "abc",
    }
    assert "knativebrokerttl" not in received.ce


def test_structured_event_is_delivered_in_binary_mode(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    broker = start_broker(_routing_docs(), {SERVICE: url})
    event = {
        "specversion": "1.0",
        "id": "st-1",
        "source": "/tests/structured",
        "type": "dev.t2v.b",
        "subject": "job-9",
        "time": "2025-01-02T03:04:05Z",
        "datacontenttype": "application/json",
        "data": {"prompt": "a dog"},
    }
    response = httpx.post(
        broker.url,
        headers={"content-type": "application/cloudevents+json"},
        content=json.dumps(event).encode(),
    )
    assert response.status_code == 202
    wait_for(lambda: subscriber.at("/b"), what="delivery to /b")
    received = subscriber.at("/b")[0]
    assert json.loads(received.body) == {"prompt": "a dog"}
    assert received.headers["content-type"] == "application/json"
    assert received.ce["id"] == "st-1"
    assert received.ce["subject"] == "job-9"
    assert received.ce["time"].startswith("2025-01-02T03:04:05")


@pytest.mark.parametrize("missing", ["id", "source", "type", "specversion"])
def test_binary_event_without_a_required_attribute_is_rejected(
    missing: str, recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    _, url = recorder
    broker = start_broker(_routing_docs(), {SERVICE: url})
    headers = binary_headers("dev.t2v.a", "x")
    del headers[f"ce-{missing}"]
    response = httpx.post(broker.url, headers=headers, content=b"{}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "malformed_event"
    assert missing in error["message"]
    assert broker.log("ingress") == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"specversion": "1.0", "source": "/s", "type": "dev.t2v.a"}',
        b"not json",
        b"[1, 2]",
    ],
)
def test_malformed_structured_event_is_rejected(
    body: bytes, recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    _, url = recorder
    broker = start_broker(_routing_docs(), {SERVICE: url})
    response = httpx.post(
        broker.url, headers={"content-type": "application/cloudevents+json"}, content=body
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_event"


def test_broker_path_and_health_endpoint(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    broker = start_broker(_routing_docs(), {SERVICE: url})
    assert httpx.get(f"{broker.url}/healthz").json() == {"status": "ok"}
    # Knative's MT broker ingress address is /<namespace>/<broker>.
    response = httpx.post(
        f"{broker.url}/default/t2v", headers=binary_headers("dev.t2v.b", "p-1"), content=b"{}"
    )
    assert response.status_code == 202
    wait_for(lambda: subscriber.at("/b"), what="delivery to /b")
