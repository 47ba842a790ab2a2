"""Reading eventing YAML: the project's own files, Knative's delivery rules, validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from t2v.broker import (
    BackoffPolicy,
    BrokerConfigError,
    DeliveryOverride,
    DeliverySpec,
    load_config,
    resolve_routes,
)
from tests.broker.harness import broker_doc, dead_letter_sink, trigger_doc, write_eventing

EVENTING = Path(__file__).resolve().parents[2] / "eventing"
SERVICES = {
    "t2v-submit": "http://127.0.0.1:8101",
    "t2v-status": "http://127.0.0.1:8102",
    "t2v-infer": "http://127.0.0.1:8103",
    "t2v-notify": "http://127.0.0.1:8104",
}


def test_project_eventing_routes_every_event_type() -> None:
    config = load_config(EVENTING)
    routes = {route.trigger: route for route in resolve_routes(config, SERVICES)}
    by_type: dict[str, set[str]] = {}
    for route in routes.values():
        by_type.setdefault(route.filter_attributes["type"], set()).add(route.subscriber_url)
    # status and notify (webhooks) each take every lifecycle event.
    lifecycle = {"http://127.0.0.1:8102/events", "http://127.0.0.1:8104/events"}
    assert by_type == {
        "dev.t2v.job.submit": {"http://127.0.0.1:8101/events"},
        "dev.t2v.job.requested": {"http://127.0.0.1:8103/events"},
        "dev.t2v.job.started": lifecycle,
        "dev.t2v.job.progress": lifecycle,
        "dev.t2v.job.succeeded": lifecycle,
        "dev.t2v.job.failed": lifecycle,
        "dev.t2v.job.canceled": lifecycle,
        "dev.knative.sources.ping": {"http://127.0.0.1:8101/sweep"},
    }
    assert all(len(route.filter_attributes) == 1 for route in routes.values())
    assert {route.dead_letter_url for route in routes.values()} == {
        "http://127.0.0.1:8102/dead-letter"
    }
    assert config.service_names() == set(SERVICES)


def test_project_webhook_completions_are_retried_for_over_an_hour() -> None:
    config = load_config(EVENTING)
    notify = {t.name: config.effective_delivery(t) for t in config.triggers if "notify" in t.name}
    for name in ("t2v-notify-succeeded", "t2v-notify-failed", "t2v-notify-canceled"):
        delivery = notify[name]
        assert delivery.retry is not None and delivery.backoff_delay_s is not None
        waits = [delivery.backoff_delay_s * 2**n for n in range(1, delivery.retry + 1)]
        assert sum(waits) >= 3600, name
    assert notify["t2v-notify-progress"].retry == 0


def test_project_infer_trigger_fits_long_generations() -> None:
    config = load_config(EVENTING)
    (infer,) = [t for t in config.triggers if t.filter_attributes["type"].endswith("requested")]
    delivery = config.effective_delivery(infer)
    assert delivery.timeout_s is not None
    assert delivery.timeout_s <= 1200  # t2v-infer's timeoutSeconds
    assert infer.parallelism >= 1
    assert delivery.dead_letter_sink == config.broker.delivery.dead_letter_sink
    (ping,) = config.ping_sources
    assert ping.schedule == "* * * * *"
    assert ping.data == '{"task":"sweep"}'


def test_project_eventing_is_namespace_less_knative_yaml() -> None:
    kinds = set()
    for path in sorted(EVENTING.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document["kind"] == "Kustomization":
                continue  # kustomize's own file, which the local broker skips
            assert "namespace" not in document["metadata"]  # kustomize sets it
            kinds.add((document["apiVersion"], document["kind"]))
    assert kinds == {
        ("eventing.knative.dev/v1", "Broker"),
        ("eventing.knative.dev/v1", "Trigger"),
        # Who may send to the Broker and the functions; locally the broker's own sender
        # credentials play that part (t2v/broker/identity.py).
        ("eventing.knative.dev/v1alpha1", "EventPolicy"),
        ("sources.knative.dev/v1", "PingSource"),
        ("sources.knative.dev/v1", "SinkBinding"),
    }


def _load(tmp_path: Path, documents: list[dict[str, Any]]) -> Any:
    return load_config(write_eventing(tmp_path, documents))


def test_trigger_delivery_replaces_the_broker_delivery_but_inherits_its_sink(
    tmp_path: Path,
) -> None:
    broker = broker_doc(
        {
            "retry": 5,
            "backoffPolicy": "linear",
            "backoffDelay": "PT2S",
            "timeout": "PT30S",
            "deadLetterSink": dead_letter_sink("dls", "/dead"),
        }
    )
    own = trigger_doc("own", "svc", "/x", delivery={"retry": 1, "timeout": "PT10M"})
    inherits = trigger_doc("inherits", "svc", "/y")
    config = _load(tmp_path, [broker, own, inherits])
    by_name = {t.name: config.effective_delivery(t) for t in config.triggers}
    assert by_name["own"].retry == 1
    assert by_name["own"].timeout_s == 600.0
    assert by_name["own"].backoff_policy is None  # not merged field by field
    assert by_name["own"].dead_letter_sink == config.broker.delivery.dead_letter_sink
    assert by_name["inherits"] == DeliverySpec(
        retry=5,
        backoff_policy=BackoffPolicy.LINEAR,
        backoff_delay_s=2.0,
        timeout_s=30.0,
        dead_letter_sink=config.broker.delivery.dead_letter_sink,
    )


def test_overrides_apply_to_all_triggers_then_to_one(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        [broker_doc({"retry": 5}), trigger_doc("a", "svc", "/a"), trigger_doc("b", "svc", "/b")],
    )
    overrides = {"*": DeliveryOverride(retry=1, timeout_s=2.0), "b": DeliveryOverride(retry=3)}
    routes = {r.trigger: r for r in resolve_routes(config, {"svc": "http://h"}, overrides)}
    assert (routes["a"].policy.retry, routes["a"].policy.timeout_s) == (1, 2.0)
    assert (routes["b"].policy.retry, routes["b"].policy.timeout_s) == (3, 2.0)


def test_unknown_subscriber_is_a_clear_error(tmp_path: Path) -> None:
    config = _load(tmp_path, [broker_doc(), trigger_doc("a", "nowhere", "/events")])
    with pytest.raises(BrokerConfigError, match=r"unknown subscriber.*nowhere"):
        resolve_routes(config, {"svc": "http://h"})


def test_absolute_subscriber_uri_needs_no_service(tmp_path: Path) -> None:
    trigger = trigger_doc("a", "unused", "/x")
    trigger["spec"]["subscriber"] = {"uri": "http://127.0.0.1:9999/hook"}
    config = _load(tmp_path, [broker_doc(), trigger])
    (route,) = resolve_routes(config, {})
    assert route.subscriber_url == "http://127.0.0.1:9999/hook"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t["spec"].update(delivery={"backoffPolicy": "fibonacci"}), "backoffPolicy"),
        (lambda t: t["spec"].update(delivery={"backoffDelay": "1s"}), "ISO 8601"),
        (lambda t: t["spec"].update(delivery={"retry": -1}), "retry"),
        (lambda t: t["spec"].update(broker="other"), "Broker 'other'"),
        (lambda t: t["spec"].update(filters=[{"exact": {"type": "x"}}]), "filter.attributes"),
        (lambda t: t["spec"].pop("subscriber"), "subscriber"),
        (
            lambda t: t["metadata"].update(
                annotations={"rabbitmq.eventing.knative.dev/parallelism": "0"}
            ),
            "parallelism",
        ),
        (lambda t: t["spec"]["subscriber"].pop("ref"), "ref or an absolute uri"),
    ],
)
def test_invalid_trigger_is_rejected(tmp_path: Path, mutate: Any, message: str) -> None:
    trigger = trigger_doc("bad", "svc", "/events")
    mutate(trigger)
    with pytest.raises(BrokerConfigError, match=message):
        _load(tmp_path, [broker_doc(), trigger])


def test_exactly_one_broker_is_required(tmp_path: Path) -> None:
    with pytest.raises(BrokerConfigError, match="exactly one Broker"):
        _load(tmp_path, [trigger_doc("a", "svc", "/a")])
    with pytest.raises(BrokerConfigError, match="duplicate Trigger"):
        _load(tmp_path, [broker_doc(), trigger_doc("a", "s", "/a"), trigger_doc("a", "s", "/b")])
