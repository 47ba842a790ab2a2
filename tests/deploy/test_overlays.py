"""Every overlay builds and every object validates; the Knative config patches and the
Secret template are well-formed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.deploy import schemas, semantics
from tests.deploy.conftest import OVERLAYS, REPO
from tests.deploy.kustomize import Manifest, build

SERVING_CONFIG = REPO / "knative" / "serving-config"
CONFIG_PATCHES = {
    "config-defaults.yaml": "knative-serving-config-defaults.configmap.yaml",
    "config-features.yaml": "knative-serving-config-features.configmap.yaml",
}


def _load(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_every_kind_t2v_needs(
    overlay: str, built_overlays: dict[str, list[Manifest]]
) -> None:
    objects = built_overlays[overlay]
    assert set(semantics.knative_services(objects)) == {
        "t2v-submit",
        "t2v-status",
        "t2v-infer",
        "t2v-notify",
    }
    kinds = {obj["kind"] for obj in objects}
    assert {"Broker", "Trigger", "PingSource", "SinkBinding", "HTTPRoute", "ConfigMap"} <= kinds
    assert all(obj["metadata"].get("namespace") == "t2v" for obj in objects)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_built_object_validates(
    overlay: str, built_overlays: dict[str, list[Manifest]]
) -> None:
    for obj in built_overlays[overlay]:
        schemas.validate(obj)


def test_validation_rejects_unknown_and_mistyped_fields(
    built_overlays: dict[str, list[Manifest]],
) -> None:
    objects = built_overlays["prod"]
    infer = copy.deepcopy(semantics.knative_services(objects)["t2v-infer"])
    infer["spec"]["template"]["spec"]["containerConcurency"] = 1
    with pytest.raises(schemas.SchemaError, match="containerConcurency"):
        schemas.validate(infer)
    trigger = copy.deepcopy(semantics.of_kind(objects, "eventing.knative.dev", "Trigger")[0])
    trigger["spec"]["subscriber"]["ref"]["name"] = 7
    with pytest.raises(schemas.SchemaError, match="subscriber"):
        schemas.validate(trigger)
    config = copy.deepcopy(semantics.of_kind(objects, "", "ConfigMap")[0])
    config["data"]["T2V_LEASE_TTL_S"] = 30
    with pytest.raises(schemas.SchemaError, match="T2V_LEASE_TTL_S"):
        schemas.validate(config)
    claim = copy.deepcopy(semantics.of_kind(objects, "", "PersistentVolumeClaim")[0])
    del claim["spec"]["resources"]
    with pytest.raises(schemas.SchemaError, match="storage"):
        schemas.validate(claim)
    with pytest.raises(schemas.SchemaError, match="no schema"):
        schemas.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})


def test_prod_runs_infer_on_h100_nodes_with_the_rabbitmq_broker(
    built_overlays: dict[str, list[Manifest]],
) -> None:
    objects = built_overlays["prod"]
    infer = semantics.knative_services(objects)["t2v-infer"]["spec"]["template"]
    annotations = infer["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    assert annotations["autoscaling.knative.dev/max-scale"] == "8"
    assert "autoscaling.knative.dev/scale-to-zero-pod-retention-period" in annotations
    assert "serving.knative.dev/progress-deadline" in annotations
    spec = infer["spec"]
    assert spec["containerConcurrency"] == 1
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["nodeSelector"] and spec["tolerations"]
    assert any("persistentVolumeClaim" in volume for volume in spec["volumes"])
    broker = semantics.of_kind(objects, "eventing.knative.dev", "Broker")[0]
    assert broker["metadata"]["annotations"][semantics.BROKER_CLASS_ANNOTATION] == "RabbitMQBroker"
    config_ref = broker["spec"]["config"]
    assert (
        semantics.of_kind(objects, "eventing.knative.dev", "RabbitmqBrokerConfig")[0]["metadata"][
            "name"
        ]
        == config_ref["name"]
    )


def test_dev_uses_the_channel_broker_the_tiny_model_and_redis_with_aof(
    built_overlays: dict[str, list[Manifest]],
) -> None:
    objects = built_overlays["dev"]
    broker = semantics.of_kind(objects, "eventing.knative.dev", "Broker")[0]
    assert (
        broker["metadata"]["annotations"][semantics.BROKER_CLASS_ANNOTATION]
        == "MTChannelBasedBroker"
    )
    config = next(
        o
        for o in semantics.of_kind(objects, "", "ConfigMap")
        if o["metadata"]["name"] == "t2v-config"
    )
    assert config["data"]["T2V_MODEL_PROFILE"] == "tiny"
    redis = semantics.of_kind(objects, "apps", "Deployment")[0]
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"


@pytest.mark.parametrize(("patch_file", "knative_file"), sorted(CONFIG_PATCHES.items()))
def test_serving_config_patches_use_documented_keys(patch_file: str, knative_file: str) -> None:
    (patch,) = _load(SERVING_CONFIG / patch_file)
    schemas.validate(patch)
    knative = yaml.safe_load((schemas.SCHEMAS / knative_file).read_text(encoding="utf-8"))
    assert patch["metadata"]["name"] == knative["metadata"]["name"]
    assert patch["metadata"]["namespace"] == knative["metadata"]["namespace"]
    assert semantics.unknown_config_keys(patch, schemas.example_keys(knative_file)) == []
    broken = copy.deepcopy(patch)
    broken["data"]["max-revision-timeout"] = "1800"
    assert semantics.unknown_config_keys(broken, schemas.example_keys(knative_file)) != []


def test_config_features_enable_every_pod_spec_field_the_services_use(
    built_overlays: dict[str, list[Manifest]],
) -> None:
    (features,) = _load(SERVING_CONFIG / "config-features.yaml")
    enabled = {key for key, value in features["data"].items() if value == "enabled"}
    needs = {
        "nodeSelector": "kubernetes.podspec-nodeselector",
        "tolerations": "kubernetes.podspec-tolerations",
        "initContainers": "kubernetes.podspec-init-containers",
        "securityContext": "kubernetes.podspec-securitycontext",
    }
    for objects in built_overlays.values():
        for service in semantics.knative_services(objects).values():
            spec = service["spec"]["template"]["spec"]
            for field, flag in needs.items():
                assert field not in spec or flag in enabled, (field, flag)
            for volume in spec.get("volumes", []):
                if "persistentVolumeClaim" in volume:
                    assert "kubernetes.podspec-persistent-volume-claim" in enabled
                    assert "kubernetes.podspec-persistent-volume-write" in enabled
                if "emptyDir" in volume:
                    assert "kubernetes.podspec-volumes-emptydir" in enabled


def test_secret_template_has_every_key_the_services_read_and_no_values(
    built_overlays: dict[str, list[Manifest]],
) -> None:
    secrets = {s["metadata"]["name"]: s for s in _load(REPO / "knative" / "secrets.template.yaml")}
    for secret in secrets.values():
        schemas.validate(secret)
        assert all(value == "" for value in secret.get("stringData", {}).values())
        assert "data" not in secret
    for objects in built_overlays.values():
        for service in semantics.knative_services(objects).values():
            spec = service["spec"]["template"]["spec"]
            for container in spec["containers"]:
                for source in container.get("envFrom", []):
                    if "secretRef" in source:
                        assert source["secretRef"]["name"] in secrets
            for volume in spec.get("volumes", []):
                if "secret" in volume:
                    assert volume["secret"]["secretName"] in secrets


def test_monitoring_kustomization_builds_and_validates() -> None:
    objects = build(REPO / "monitoring")
    assert {obj["kind"] for obj in objects} == {"ConfigMap", "PrometheusRule", "PodMonitor"}
    for obj in objects:
        schemas.validate(obj)
