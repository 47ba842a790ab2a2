"""Validate Kubernetes objects against the schemas copied in tests/schemas/.

Knative (and RabbitMQ broker) kinds use their CRD's ``openAPIV3Schema``, made strict the way
the API server's strict field validation is: an object schema that lists ``properties``
rejects other fields unless it says ``x-kubernetes-preserve-unknown-fields``. Core kinds use
the v1.30.0 standalone-strict JSON schemas. Kinds without a schema here get a structural
check of the fields t2v relies on.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"

CRD_FILES = (
    "knative-serving-service-v1.crd.yaml",
    "knative-eventing-broker-v1.crd.yaml",
    "knative-eventing-trigger-v1.crd.yaml",
    "knative-sources-pingsource-v1.crd.yaml",
    "knative-sources-sinkbinding-v1.crd.yaml",
    "knative-eventing-rabbitmqbrokerconfig-v1alpha1.crd.yaml",
    "knative-eventing-eventpolicy-v1alpha1.crd.yaml",
)
CORE_SCHEMAS = {
    ("v1", "ConfigMap"): "k8s-v1.30.0-standalone-strict-configmap-v1.json",
    ("v1", "Secret"): "k8s-v1.30.0-standalone-strict-secret-v1.json",
    ("v1", "Service"): "k8s-v1.30.0-standalone-strict-service-v1.json",
    ("apps/v1", "Deployment"): "k8s-v1.30.0-standalone-strict-deployment-apps-v1.json",
}
# Kinds with no schema in the shared folder: the fields each must have.
STRUCTURAL = {
    ("v1", "PersistentVolumeClaim"): ("spec.accessModes", "spec.resources.requests.storage"),
    ("v1", "ServiceAccount"): (),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): ("spec.parentRefs", "spec.rules"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("spec.groups",),
    ("monitoring.coreos.com/v1", "PodMonitor"): ("spec.selector", "spec.podMetricsEndpoints"),
}


_ROOT_FIELDS = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}


class SchemaError(ValueError):
    """An object does not validate; the message names the object and the failing path."""


def strict(schema: Any) -> Any:
    """A copy of ``schema`` in which listed properties are the only ones allowed."""
    schema = copy.deepcopy(schema)
    for node in _schema_nodes(schema):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
    return schema


def _schema_nodes(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _schema_nodes(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _schema_nodes(item)


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """``(apiVersion, kind)`` -> strict openAPIV3Schema, for every served CRD version."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for name in CRD_FILES:
        for crd in yaml.safe_load_all((SCHEMAS / name).read_text(encoding="utf-8")):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    # The API server always accepts these at the root (and checks metadata
                    # itself); some CRDs leave them out of their schema.
                    schema.setdefault("properties", {}).update(_ROOT_FIELDS)
                    found[(f"{group}/{version['name']}", kind)] = schema
    return found


@cache
def _core_schema(file_name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / file_name).read_text(encoding="utf-8"))
    return schema


def describe(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def validate(obj: dict[str, Any]) -> None:
    """Raise SchemaError unless ``obj`` validates against its kind's schema."""
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    if key in STRUCTURAL:
        _check_structure(obj, STRUCTURAL[key])
        return
    schema = crd_schemas().get(key)
    if schema is None and key in CORE_SCHEMAS:
        schema = _core_schema(CORE_SCHEMAS[key])
    if schema is None:
        raise SchemaError(f"{describe(obj)}: no schema for {key[0]} {key[1]}")
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda error: list(error.path)
    )
    if errors:
        details = "; ".join(
            f"{'.'.join(str(part) for part in error.path) or '<root>'}: {error.message}"
            for error in errors[:5]
        )
        raise SchemaError(f"{describe(obj)}: {details}")


def _check_structure(obj: dict[str, Any], required: tuple[str, ...]) -> None:
    if not obj.get("metadata", {}).get("name"):
        raise SchemaError(f"{describe(obj)}: metadata.name is required")
    for path in required:
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value in (None, "", [], {}):
            raise SchemaError(f"{describe(obj)}: {path} is required")


def example_keys(configmap_file: str) -> frozenset[str]:
    """The setting names a Knative ConfigMap documents in its ``_example`` block."""
    configmap = yaml.safe_load((SCHEMAS / configmap_file).read_text(encoding="utf-8"))
    example = yaml.safe_load(configmap["data"]["_example"])
    return frozenset(example) if isinstance(example, dict) else frozenset()
