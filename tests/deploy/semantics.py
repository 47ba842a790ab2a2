"""Checks that span several objects of a built overlay, which no schema can express.

Each check takes the built objects and returns its problems as sentences (empty: fine), so
a test can show both that the real overlays pass and that a broken copy is caught.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from t2v import events
from t2v.broker.config import PARALLELISM_ANNOTATION, TriggerSpec, load_config
from t2v.broker.durations import parse_duration

Manifest = dict[str, Any]

# Knative Serving's defaults when a Service or config-defaults does not say.
DEFAULT_TIMEOUT_S = 300
DEFAULT_MAX_REVISION_TIMEOUT_S = 600
BROKER_CLASS_ANNOTATION = "eventing.knative.dev/broker.class"
MAX_SCALE_ANNOTATION = "autoscaling.knative.dev/max-scale"
GPU_RESOURCE = "nvidia.com/gpu"
INFER_SERVICE = "t2v-infer"
PRODUCED_EVENT_TYPES = (
    events.JOB_SUBMIT,
    events.JOB_REQUESTED,
    *events.LIFECYCLE_TYPES,
    events.PING,
)


def api_group(obj: Manifest) -> str:
    """``serving.knative.dev`` for ``serving.knative.dev/v1``; ``""`` for core ``v1``."""
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


def of_kind(objects: Iterable[Manifest], group: str, kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj.get("kind") == kind and api_group(obj) == group]


def knative_services(objects: Iterable[Manifest]) -> dict[str, Manifest]:
    return {
        obj["metadata"]["name"]: obj for obj in of_kind(objects, "serving.knative.dev", "Service")
    }


def _name(obj: Manifest) -> str:
    return str(obj["metadata"]["name"])


def _broker(objects: Iterable[Manifest]) -> Manifest:
    brokers = of_kind(objects, "eventing.knative.dev", "Broker")
    if len(brokers) != 1:
        raise ValueError(f"expected one Broker, found {len(brokers)}")
    return brokers[0]


def _delivery_timeout_s(trigger: Manifest, broker: Manifest) -> float | None:
    # A Trigger's delivery replaces the Broker's as a whole (see t2v.broker.config).
    delivery = trigger["spec"].get("delivery") or broker.get("spec", {}).get("delivery") or {}
    timeout = delivery.get("timeout")
    return parse_duration(str(timeout)) if timeout is not None else None


def timeout_problems(objects: list[Manifest], max_revision_timeout_s: float) -> list[str]:
    """Trigger delivery timeout <= subscriber's timeouts <= max-revision-timeout-seconds."""
    problems: list[str] = []
    broker, services = _broker(objects), knative_services(objects)
    for service_name, service in services.items():
        spec = service["spec"]["template"]["spec"]
        timeout = spec.get("timeoutSeconds", DEFAULT_TIMEOUT_S)
        response_start = spec.get("responseStartTimeoutSeconds", DEFAULT_TIMEOUT_S)
        for field, value in (
            ("timeoutSeconds", timeout),
            ("responseStartTimeoutSeconds", response_start),
        ):
            if value > max_revision_timeout_s:
                problems.append(
                    f"{service_name} {field} {value} exceeds max-revision-timeout-seconds "
                    f"{max_revision_timeout_s:g}"
                )
    for trigger in of_kind(objects, "eventing.knative.dev", "Trigger"):
        ref = trigger["spec"]["subscriber"].get("ref") or {}
        subscriber = services.get(ref.get("name", ""))
        delivery_timeout = _delivery_timeout_s(trigger, broker)
        if subscriber is None or delivery_timeout is None:
            continue
        spec = subscriber["spec"]["template"]["spec"]
        # infer answers only when the video is done: the response starts at the end.
        limit = min(
            spec.get("timeoutSeconds", DEFAULT_TIMEOUT_S),
            spec.get("responseStartTimeoutSeconds", DEFAULT_TIMEOUT_S),
        )
        if delivery_timeout > limit:
            problems.append(
                f"Trigger {_name(trigger)} delivery timeout {delivery_timeout:g}s exceeds "
                f"{_name(subscriber)}'s request timeout {limit}s"
            )
    return problems


def job_deadline_problems(objects: list[Manifest], config_name: str = "t2v-config") -> list[str]:
    """T2V_JOB_DEADLINE_S must end a job before the infer Trigger's delivery times out."""
    configs = [obj for obj in of_kind(objects, "", "ConfigMap") if _name(obj) == config_name]
    if not configs or "T2V_JOB_DEADLINE_S" not in configs[0].get("data", {}):
        return [f"ConfigMap {config_name} sets no T2V_JOB_DEADLINE_S"]
    deadline = float(configs[0]["data"]["T2V_JOB_DEADLINE_S"])
    broker = _broker(objects)
    problems = []
    for trigger in _triggers_to(objects, INFER_SERVICE):
        timeout = _delivery_timeout_s(trigger, broker)
        if timeout is not None and deadline >= timeout:
            problems.append(
                f"T2V_JOB_DEADLINE_S {deadline:g} is not below Trigger {_name(trigger)}'s "
                f"delivery timeout {timeout:g}s"
            )
    return problems


def _triggers_to(objects: list[Manifest], service: str) -> list[Manifest]:
    return [
        trigger
        for trigger in of_kind(objects, "eventing.knative.dev", "Trigger")
        if (trigger["spec"]["subscriber"].get("ref") or {}).get("name") == service
    ]


def untriggered_event_types(
    objects: list[Manifest], produced: Iterable[str] = PRODUCED_EVENT_TYPES
) -> list[str]:
    """Event types that are produced but that no Trigger's filter routes anywhere."""
    routed = {
        (trigger["spec"].get("filter") or {}).get("attributes", {}).get("type")
        for trigger in of_kind(objects, "eventing.knative.dev", "Trigger")
    }
    return [
        f"no Trigger routes {event_type}" for event_type in produced if event_type not in routed
    ]


def missing_destinations(objects: list[Manifest]) -> list[str]:
    """Trigger subscribers, dead-letter sinks and SinkBinding subjects that name a Knative
    Service not in the build, and sinks that name another Broker."""
    services = knative_services(objects)
    broker_name = _name(_broker(objects))
    problems = []
    references: list[tuple[str, dict[str, Any]]] = []
    for trigger in of_kind(objects, "eventing.knative.dev", "Trigger"):
        references.append((f"Trigger {_name(trigger)} subscriber", trigger["spec"]["subscriber"]))
        sink = (trigger["spec"].get("delivery") or {}).get("deadLetterSink")
        if sink:
            references.append((f"Trigger {_name(trigger)} deadLetterSink", sink))
        if trigger["spec"].get("broker") != broker_name:
            problems.append(
                f"Trigger {_name(trigger)} names Broker {trigger['spec'].get('broker')}"
            )
    broker_sink = (_broker(objects).get("spec", {}).get("delivery") or {}).get("deadLetterSink")
    if broker_sink:
        references.append(("Broker deadLetterSink", broker_sink))
    for binding in of_kind(objects, "sources.knative.dev", "SinkBinding"):
        references.append(
            (f"SinkBinding {_name(binding)} subject", {"ref": binding["spec"]["subject"]})
        )
    for where, destination in references:
        ref = destination.get("ref") or {}
        if ref.get("kind") == "Service" and ref.get("name") not in services:
            problems.append(f"{where}: no Knative Service {ref.get('name')}")
    return problems


def gpu_workloads(objects: list[Manifest]) -> set[str]:
    """Names of the Knative Services whose containers ask for a GPU."""
    asking = set()
    for name, service in knative_services(objects).items():
        spec = service["spec"]["template"]["spec"]
        for container in [*spec.get("containers", []), *spec.get("initContainers", [])]:
            resources = container.get("resources") or {}
            if any(GPU_RESOURCE in (resources.get(part) or {}) for part in ("limits", "requests")):
                asking.add(name)
    return asking


def gpu_problems(objects: list[Manifest], *, gpu_expected: bool) -> list[str]:
    """Only infer asks for a GPU, and it does exactly where the overlay runs on GPUs."""
    expected = {INFER_SERVICE} if gpu_expected else set()
    found = gpu_workloads(objects)
    return [f"{name} asks for a GPU" for name in sorted(found - expected)] + [
        f"{name} asks for no GPU" for name in sorted(expected - found)
    ]


def ping_source_problems(objects: list[Manifest]) -> list[str]:
    broker_name = _name(_broker(objects))
    problems = []
    for ping in of_kind(objects, "sources.knative.dev", "PingSource"):
        ref = ping["spec"].get("sink", {}).get("ref") or {}
        if ref.get("kind") != "Broker" or ref.get("name") != broker_name:
            problems.append(f"PingSource {_name(ping)} sink is not the Broker {broker_name}")
    return problems


def parallelism_problems(objects: list[Manifest]) -> list[str]:
    """With the RabbitMQ broker, infer's Trigger parallelism equals infer's max-scale."""
    broker = _broker(objects)
    if broker["metadata"].get("annotations", {}).get(BROKER_CLASS_ANNOTATION) != "RabbitMQBroker":
        return []
    infer = knative_services(objects).get(INFER_SERVICE)
    if infer is None:
        return [f"no Knative Service {INFER_SERVICE}"]
    max_scale = (
        infer["spec"]["template"]["metadata"].get("annotations", {}).get(MAX_SCALE_ANNOTATION)
    )
    problems = []
    for trigger in _triggers_to(objects, INFER_SERVICE):
        parallelism = trigger["metadata"].get("annotations", {}).get(PARALLELISM_ANNOTATION)
        if parallelism != max_scale:
            problems.append(
                f"Trigger {_name(trigger)} parallelism {parallelism} != {INFER_SERVICE} "
                f"max-scale {max_scale}"
            )
    return problems


def local_broker_problems(objects: list[Manifest], eventing_dir: Path) -> list[str]:
    """The local broker (``load_config(eventing_dir)``) reads the Triggers the cluster gets.

    The built Triggers go through the same loader; overlays may only change parallelism
    (a RabbitMQ setting), so that is left out of the comparison.
    """

    def comparable(specs: Iterable[TriggerSpec]) -> dict[str, TriggerSpec]:
        return {spec.name: dataclasses.replace(spec, parallelism=0) for spec in specs}

    local = comparable(load_config(eventing_dir).triggers)
    kinds = ("Broker", "Trigger", "PingSource")
    built_eventing = [obj for obj in objects if obj.get("kind") in kinds]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "built.yaml"
        path.write_text(yaml.safe_dump_all(built_eventing), encoding="utf-8")
        cluster = comparable(load_config(Path(tmp)).triggers)
    problems = [f"Trigger {name} is only local" for name in sorted(local.keys() - cluster.keys())]
    problems += [
        f"Trigger {name} is only in the build" for name in sorted(cluster.keys() - local.keys())
    ]
    problems += [
        f"Trigger {name} differs: local {local[name]} != built {cluster[name]}"
        for name in sorted(local.keys() & cluster.keys())
        if local[name] != cluster[name]
    ]
    return problems


def every_problem(
    objects: list[Manifest],
    *,
    gpu_expected: bool,
    max_revision_timeout_s: float,
    eventing_dir: Path,
) -> list[str]:
    """The problems every check above finds in one overlay's objects."""
    return [
        *timeout_problems(objects, max_revision_timeout_s),
        *job_deadline_problems(objects),
        *untriggered_event_types(objects),
        *missing_destinations(objects),
        *gpu_problems(objects, gpu_expected=gpu_expected),
        *ping_source_problems(objects),
        *parallelism_problems(objects),
        *local_broker_problems(objects, eventing_dir),
    ]


def unknown_config_keys(patch: Manifest, documented: Iterable[str]) -> list[str]:
    """Keys of a ConfigMap patch that the Knative ConfigMap does not document."""
    known = set(documented)
    return [
        f"{_name(patch)}: unknown key {key}" for key in patch.get("data", {}) if key not in known
    ]


def max_revision_timeout_s(config_defaults_patch: Manifest) -> float:
    raw = config_defaults_patch.get("data", {}).get("max-revision-timeout-seconds")
    return float(raw) if raw is not None else DEFAULT_MAX_REVISION_TIMEOUT_S
