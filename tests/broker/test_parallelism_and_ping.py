"""Per-Trigger parallelism, PingSource emission and shutdown, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from t2v.broker import DeliveryOverride, create_broker_app, load_config
from tests.broker.conftest import StartBroker
from tests.broker.harness import (
    Answer,
    Recorder,
    binary_headers,
    broker_doc,
    serve,
    trigger_doc,
    wait_for,
    write_eventing,
)

SERVICE = "sub"


@pytest.mark.parametrize(("parallelism", "events"), [(None, 3), (2, 6), (3, 7)])
def test_in_flight_deliveries_never_exceed_the_trigger_parallelism(
    parallelism: int | None,
    events: int,
    recorder: tuple[Recorder, str],
    start_broker: StartBroker,
) -> None:
    subscriber, url = recorder
    # Slow answers, so all events are published long before the first is answered even on a
    # busy machine: the peak then shows the limit itself, not how fast the test posted.
    subscriber.script("/infer", Answer(200, delay_s=1.0))
    docs = [
        broker_doc(),
        trigger_doc("infer", SERVICE, "/infer", parallelism=parallelism),
        trigger_doc("fast", SERVICE, "/fast"),
    ]
    broker = start_broker(docs, {SERVICE: url})
    for index in range(events):
        headers = binary_headers("dev.t2v.job.requested", f"e-{index}")
        assert httpx.post(broker.url, headers=headers, content=b"{}").status_code == 202
    wait_for(lambda: len(subscriber.at("/infer")) == events, what="all deliveries")
    wait_for(lambda: len(broker.log("delivery")) == 2 * events, what="all deliveries answered")
    # No annotation: one at a time. The peak must also reach the limit, so the limit is real.
    assert subscriber.peak_in_flight("/infer") == (parallelism or 1)
    assert len(subscriber.at("/fast")) == events


def test_delivery_override_replaces_the_annotation(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    subscriber.script("/infer", Answer(200, delay_s=0.3))
    docs = [broker_doc(), trigger_doc("infer", SERVICE, "/infer", parallelism=4)]
    overrides = {"infer": DeliveryOverride(parallelism=1)}
    broker = start_broker(docs, {SERVICE: url}, delivery_overrides=overrides)
    for index in range(3):
        headers = binary_headers("dev.t2v.job.requested", f"e-{index}")
        assert httpx.post(broker.url, headers=headers, content=b"{}").status_code == 202
    wait_for(lambda: len(broker.log("delivery")) == 3, what="all deliveries answered")
    assert subscriber.peak_in_flight("/infer") == 1


def _ping_docs() -> list[dict[str, object]]:
    ping = {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": {"name": "sweeper"},
        "spec": {
            "schedule": "*/5 * * * *",
            "contentType": "application/json",
            "data": '{"task":"sweep"}',
            "sink": {
                "ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "t2v"}
            },
        },
    }
    sweep = trigger_doc("sweep", SERVICE, "/sweep", filters={"type": "dev.knative.sources.ping"})
    return [broker_doc(), sweep, ping]


def test_ping_source_emits_its_event_into_the_broker(
    recorder: tuple[Recorder, str], start_broker: StartBroker
) -> None:
    subscriber, url = recorder
    start_broker(_ping_docs(), {SERVICE: url}, ping_interval_override_s=0.05)
    wait_for(lambda: len(subscriber.at("/sweep")) >= 2, what="two pings")
    first, second = subscriber.at("/sweep")[:2]
    assert json.loads(first.body) == {"task": "sweep"}
    assert first.headers["content-type"] == "application/json"
    assert first.ce["type"] == "dev.knative.sources.ping"
    assert first.ce["source"] == "/apis/v1/namespaces/default/pingsources/sweeper"
    assert "time" in first.ce
    assert first.ce["id"] != second.ce["id"]


def test_shutdown_cancels_deliveries_in_progress(tmp_path: Path) -> None:
    subscriber = Recorder()
    subscriber.script("/slow", Answer(200, delay_s=30.0))
    docs = [broker_doc(), trigger_doc("slow", SERVICE, "/slow", parallelism=2)]
    config = load_config(write_eventing(tmp_path / "eventing", docs))
    with serve(subscriber.app()) as url:
        app = create_broker_app(config, {SERVICE: url})
        with serve(app) as broker_url:
            for index in range(4):
                headers = binary_headers("dev.t2v.job.requested", f"e-{index}")
                assert httpx.post(broker_url, headers=headers, content=b"{}").status_code == 202
            wait_for(lambda: len(subscriber.at("/slow")) == 2, what="two deliveries in flight")
        # Leaving serve() joined the broker's thread: workers were cancelled, not awaited.
        assert app.state.broker.accepting is False
