"""Typed, read-once view of the Knative Eventing YAML in ``eventing/``.

The same files drive the cluster and the local broker, so this module reads real
Broker, Trigger and PingSource manifests (SinkBindings and other kinds are cluster-only
and skipped) and rejects whatever the local broker could not honour faithfully.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urljoin, urlsplit

import yaml

from t2v.broker.durations import parse_duration

PARALLELISM_ANNOTATION = "rabbitmq.eventing.knative.dev/parallelism"
DEFAULT_PARALLELISM = 1

_EVENTING_GROUP = "eventing.knative.dev"
_SOURCES_GROUP = "sources.knative.dev"


class BrokerConfigError(ValueError):
    """The eventing YAML cannot be run by the local broker; the message says where and why."""


class BackoffPolicy(enum.StrEnum):
    EXPONENTIAL = "exponential"
    LINEAR = "linear"


@dataclass(frozen=True)
class Destination:
    """A Knative ``Destination``: a ``ref`` plus optional relative ``uri``, or an absolute URI."""

    ref_kind: str | None
    ref_name: str | None
    uri: str | None

    def describe(self) -> str:
        if self.ref_name is None:
            return str(self.uri)
        return f"{self.ref_kind}/{self.ref_name}{self.uri or ''}"


@dataclass(frozen=True)
class DeliverySpec:
    """``spec.delivery`` as written; ``None`` means "not set here"."""

    retry: int | None = None
    backoff_policy: BackoffPolicy | None = None
    backoff_delay_s: float | None = None
    timeout_s: float | None = None
    dead_letter_sink: Destination | None = None


@dataclass(frozen=True)
class BrokerSpec:
    name: str
    delivery: DeliverySpec


@dataclass(frozen=True)
class TriggerSpec:
    name: str
    broker: str
    # Exact match on context attributes; "" means "present and non-empty" as in Knative.
    filter_attributes: Mapping[str, str]
    subscriber: Destination
    # None when the Trigger has no spec.delivery (then the Broker's applies).
    delivery: DeliverySpec | None
    parallelism: int


@dataclass(frozen=True)
class PingSourceSpec:
    name: str
    schedule: str
    data: str
    content_type: str | None
    sink: Destination


@dataclass(frozen=True)
class BrokerConfig:
    broker: BrokerSpec
    triggers: tuple[TriggerSpec, ...]
    ping_sources: tuple[PingSourceSpec, ...] = ()

    def effective_delivery(self, trigger: TriggerSpec) -> DeliverySpec:
        """The delivery spec Knative applies to ``trigger``.

        As the MT channel-based broker does: a Trigger's ``spec.delivery``, when present,
        replaces the Broker's as a whole (retry, backoff, timeout); only the dead-letter
        sink falls back to the Broker's when the Trigger names none.
        """
        broker_delivery = self.broker.delivery
        if trigger.delivery is None:
            return broker_delivery
        if trigger.delivery.dead_letter_sink is not None:
            return trigger.delivery
        return dataclasses.replace(
            trigger.delivery, dead_letter_sink=broker_delivery.dead_letter_sink
        )

    def service_names(self) -> frozenset[str]:
        """Every Knative Service the configuration sends events to."""
        destinations = [trigger.subscriber for trigger in self.triggers]
        destinations += [
            sink
            for trigger in self.triggers
            if (sink := self.effective_delivery(trigger).dead_letter_sink) is not None
        ]
        return frozenset(d.ref_name for d in destinations if d.ref_name is not None)


def resolve_destination(destination: Destination, services: Mapping[str, str]) -> str:
    """The URL of ``destination``; Service refs are looked up in ``services`` (name -> base URL)."""
    if destination.ref_name is None:
        assert destination.uri is not None  # guaranteed by the loader
        return destination.uri
    base_url = services.get(destination.ref_name)
    if base_url is None:
        known = ", ".join(sorted(services)) or "none"
        raise BrokerConfigError(
            f"unknown subscriber {destination.describe()}: no local URL for service "
            f"{destination.ref_name!r} (known services: {known})"
        )
    # Relative URIs resolve against the ref's address, as Knative's URL resolution does.
    return urljoin(base_url, destination.uri) if destination.uri else base_url


def load_config(directory: Path) -> BrokerConfig:
    """Read every YAML document in ``directory`` (``*.yaml``, ``*.yml``) into a ``BrokerConfig``."""
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise BrokerConfigError(f"no YAML files in {directory}")
    brokers: list[BrokerSpec] = []
    triggers: list[TriggerSpec] = []
    pings: list[PingSourceSpec] = []
    for path in files:
        with path.open(encoding="utf-8") as stream:
            documents = list(yaml.safe_load_all(stream))
        for index, document in enumerate(documents):
            if document is None:
                continue
            where = f"{path.name} document {index + 1}"
            doc = _mapping(document, where)
            group = str(doc.get("apiVersion", "")).split("/")[0]
            kind = doc.get("kind")
            if group == _EVENTING_GROUP and kind == "Broker":
                brokers.append(_broker(doc, where))
            elif group == _EVENTING_GROUP and kind == "Trigger":
                triggers.append(_trigger(doc, where))
            elif group == _SOURCES_GROUP and kind == "PingSource":
                pings.append(_ping_source(doc, where))
            elif not isinstance(kind, str) or not kind:
                raise BrokerConfigError(f"{where}: not a Kubernetes object (no kind)")
    return build_config(brokers, triggers, pings)


def build_config(
    brokers: list[BrokerSpec], triggers: list[TriggerSpec], pings: list[PingSourceSpec]
) -> BrokerConfig:
    """Check the parts fit together (one Broker, unique names, refs to that Broker)."""
    if len(brokers) != 1:
        raise BrokerConfigError(f"expected exactly one Broker, found {len(brokers)}")
    broker = brokers[0]
    names = [trigger.name for trigger in triggers]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BrokerConfigError(f"duplicate Trigger names: {', '.join(duplicates)}")
    for trigger in triggers:
        if trigger.broker != broker.name:
            raise BrokerConfigError(
                f"Trigger {trigger.name} refers to Broker {trigger.broker!r}, "
                f"but the only Broker is {broker.name!r}"
            )
    for ping in pings:
        if ping.sink.ref_kind != "Broker" or ping.sink.ref_name != broker.name:
            raise BrokerConfigError(
                f"PingSource {ping.name}: sink must be the Broker {broker.name!r}, "
                f"got {ping.sink.describe()}"
            )
    return BrokerConfig(broker=broker, triggers=tuple(triggers), ping_sources=tuple(pings))


def _broker(doc: Mapping[str, Any], where: str) -> BrokerSpec:
    spec = _mapping(doc.get("spec") or {}, f"{where} spec")
    return BrokerSpec(name=_name(doc, where), delivery=_delivery(spec.get("delivery"), where))


def _trigger(doc: Mapping[str, Any], where: str) -> TriggerSpec:
    name = _name(doc, where)
    where = f"{where} (Trigger {name})"
    spec = _mapping(doc.get("spec"), f"{where} spec")
    if spec.get("filters"):
        raise BrokerConfigError(f"{where}: only spec.filter.attributes is supported, not filters")
    attributes = _mapping((spec.get("filter") or {}).get("attributes") or {}, f"{where} filter")
    for key, value in attributes.items():
        if not isinstance(value, str):
            raise BrokerConfigError(f"{where}: filter value for {key!r} must be a string")
    broker = spec.get("broker")
    if not isinstance(broker, str) or not broker:
        raise BrokerConfigError(f"{where}: spec.broker is required")
    if "subscriber" not in spec:
        raise BrokerConfigError(f"{where}: spec.subscriber is required")
    annotations = _mapping(_mapping(doc.get("metadata"), where).get("annotations") or {}, where)
    return TriggerSpec(
        name=name,
        broker=broker,
        filter_attributes=MappingProxyType(dict(attributes)),
        subscriber=_destination(spec["subscriber"], f"{where} subscriber"),
        delivery=_delivery(spec["delivery"], where) if "delivery" in spec else None,
        parallelism=_parallelism(annotations.get(PARALLELISM_ANNOTATION), where),
    )


def _ping_source(doc: Mapping[str, Any], where: str) -> PingSourceSpec:
    name = _name(doc, where)
    spec = _mapping(doc.get("spec"), f"{where} spec")
    if "dataBase64" in spec:
        raise BrokerConfigError(f"{where}: PingSource dataBase64 is not supported, use data")
    content_type = spec.get("contentType")
    return PingSourceSpec(
        name=name,
        schedule=str(spec.get("schedule") or "* * * * *"),  # Knative's default
        data=str(spec.get("data") or ""),
        content_type=str(content_type) if content_type else None,
        sink=_destination(spec.get("sink"), f"{where} sink"),
    )


def _delivery(raw: object, where: str) -> DeliverySpec:
    delivery = _mapping(raw if raw is not None else {}, f"{where} delivery")
    retry = delivery.get("retry")
    if retry is not None and (not isinstance(retry, int) or isinstance(retry, bool) or retry < 0):
        raise BrokerConfigError(f"{where}: delivery.retry must be a non-negative integer")
    policy = delivery.get("backoffPolicy")
    if policy is not None and policy not in {p.value for p in BackoffPolicy}:
        raise BrokerConfigError(f"{where}: backoffPolicy must be exponential or linear")
    sink = delivery.get("deadLetterSink")
    return DeliverySpec(
        retry=retry,
        backoff_policy=BackoffPolicy(policy) if policy is not None else None,
        backoff_delay_s=_duration(delivery.get("backoffDelay"), f"{where} backoffDelay"),
        timeout_s=_duration(delivery.get("timeout"), f"{where} timeout"),
        dead_letter_sink=_destination(sink, f"{where} deadLetterSink") if sink else None,
    )


def _destination(raw: object, where: str) -> Destination:
    destination = _mapping(raw, where)
    uri = destination.get("uri")
    if uri is not None and not isinstance(uri, str):
        raise BrokerConfigError(f"{where}: uri must be a string")
    ref = destination.get("ref")
    if ref is None:
        if not uri or not urlsplit(uri).scheme:
            raise BrokerConfigError(f"{where}: needs a ref or an absolute uri")
        return Destination(ref_kind=None, ref_name=None, uri=uri)
    ref_map = _mapping(ref, f"{where} ref")
    name, kind = ref_map.get("name"), ref_map.get("kind")
    if not isinstance(name, str) or not name or not isinstance(kind, str) or not kind:
        raise BrokerConfigError(f"{where}: ref needs kind and name")
    return Destination(ref_kind=kind, ref_name=name, uri=uri or None)


def _duration(raw: object, where: str) -> float | None:
    if raw is None:
        return None
    try:
        return parse_duration(str(raw))
    except ValueError as error:
        raise BrokerConfigError(f"{where}: {error}") from error


def _parallelism(raw: object, where: str) -> int:
    if raw is None:
        return DEFAULT_PARALLELISM
    try:
        value = int(str(raw))
    except ValueError:
        value = 0
    if value < 1:
        raise BrokerConfigError(f"{where}: {PARALLELISM_ANNOTATION} must be a positive integer")
    return value


def _name(doc: Mapping[str, Any], where: str) -> str:
    name = _mapping(doc.get("metadata"), f"{where} metadata").get("name")
    if not isinstance(name, str) or not name:
        raise BrokerConfigError(f"{where}: metadata.name is required")
    return name


def _mapping(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise BrokerConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    return raw
