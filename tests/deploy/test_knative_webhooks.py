"""The overlays through Knative's own admission webhooks (Serving's and Eventing's, run out
of cluster against the test API server, with t2v's config-defaults and config-features
patches merged into upstream's ConfigMaps): every Knative object admitted and defaulted,
and what only Knative's validation knows refused."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import semantics
from tests.deploy.conftest import OVERLAYS
from tests.deploy.knative_webhooks import (
    ADMISSION_LABEL,
    SERVING,
    RunningWebhook,
    config_maps,
    named,
    webhook_refusal,
)
from tests.deploy.kube_api import KubeApi, KubeApiError, in_namespace, poll_until
from tests.deploy.kube_cluster import KubeCluster
from tests.deploy.kustomize import Manifest
from tests.deploy.schemas import describe
from tests.deploy.test_api_server import missing
from tests.deploy.test_semantics import _max_revision_timeout_s, every_problem

NAMESPACE = "t2v-knative"
KNATIVE_GROUPS = ("serving.knative.dev", "eventing.knative.dev", "sources.knative.dev")


@pytest.fixture(scope="session")
def knative_api(kube: KubeCluster, knative_webhooks: dict[str, RunningWebhook]) -> KubeApi:
    kube.api.create_namespace(NAMESPACE, labels=ADMISSION_LABEL)
    return kube.api


def _knative_objects(objects: list[Manifest]) -> list[Manifest]:
    knative = [obj for obj in objects if semantics.api_group(obj) in KNATIVE_GROUPS]
    return in_namespace(knative, NAMESPACE)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_knative_admits_and_defaults_every_knative_object(
    overlay: str, knative_api: KubeApi, built_overlays: dict[str, list[Manifest]]
) -> None:
    objects = _knative_objects(built_overlays[overlay])
    assert {semantics.api_group(obj) for obj in objects} == set(KNATIVE_GROUPS)
    admitted = [knative_api.apply(obj, dry_run=True) for obj in objects]
    for sent, answer in zip(objects, admitted, strict=True):
        assert missing(sent, answer) == [], describe(sent)
    # Knative's defaulting ran: every Service sends all traffic to its latest revision and
    # records who made it, every Trigger is labelled with its Broker.
    for service in semantics.knative_services(admitted).values():
        assert service["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]
        assert service["metadata"]["annotations"]["serving.knative.dev/creator"] == "admin"
    for trigger in semantics.of_kind(admitted, "eventing.knative.dev", "Trigger"):
        labels = trigger["metadata"]["labels"]
        assert labels["eventing.knative.dev/broker"] == trigger["spec"]["broker"]
    # Knative's defaults break none of the semantic checks.
    others = [o for o in built_overlays[overlay] if semantics.api_group(o) not in KNATIVE_GROUPS]
    assert every_problem([*admitted, *others], overlay) == []


def _named(objects: list[Manifest], kind: str, name: str) -> Manifest:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _infer_template(objects: list[Manifest]) -> Manifest:
    template: Manifest = semantics.knative_services(objects)["t2v-infer"]["spec"]["template"]
    return template


def _infer(objects: list[Manifest]) -> Manifest:
    return semantics.knative_services(objects)["t2v-infer"]


# What is wrong -> (the object to break, how, what Knative's refusal names). The CRD schemas
# admit every one of them: only Knative's validation knows.
REFUSALS: dict[str, tuple[Callable[[list[Manifest]], Manifest], Callable[[Manifest], Any], str]] = {
    "timeoutSeconds above max-revision-timeout-seconds": (
        _infer,
        lambda infer: infer["spec"]["template"]["spec"].update(
            timeoutSeconds=int(_max_revision_timeout_s()) + 1
        ),
        "timeoutSeconds",
    ),
    "containerConcurrency above the limit": (
        _infer,
        lambda infer: infer["spec"]["template"]["spec"].update(containerConcurrency=1001),
        "containerConcurrency",
    ),
    "min-scale above max-scale": (
        _infer,
        lambda infer: infer["spec"]["template"]["metadata"]["annotations"].update(
            {"autoscaling.knative.dev/min-scale": "9"}
        ),
        "min-scale",
    ),
    "a Trigger filter attribute that is no CloudEvents attribute name": (
        lambda objects: _named(objects, "Trigger", "t2v-infer-job"),
        lambda trigger: trigger["spec"]["filter"]["attributes"].update({"Type": "x"}),
        "Type",
    ),
    "a delivery backoff delay that is no ISO 8601 duration": (
        lambda objects: _named(objects, "Trigger", "t2v-infer-job"),
        lambda trigger: trigger["spec"]["delivery"].update(backoffDelay="5 seconds"),
        "backoffDelay",
    ),
    "a PingSource schedule that is no cron expression": (
        lambda objects: _named(objects, "PingSource", "t2v-sweep"),
        lambda ping: ping["spec"].update(schedule="every minute"),
        "schedule",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_knative_refuses_what_its_validation_forbids(
    case: str, kube: KubeCluster, knative_api: KubeApi, built_overlays: dict[str, list[Manifest]]
) -> None:
    pick, breaking, field = REFUSALS[case]
    (obj,) = _knative_objects([pick(built_overlays["prod"])])
    broken = copy.deepcopy(obj)
    breaking(broken)
    # The API server alone (a namespace the webhooks do not see) admits the broken copy.
    plain = copy.deepcopy(broken)
    plain["metadata"]["namespace"] = "t2v"
    kube.api.create_namespace("t2v")
    kube.api.apply(plain, dry_run=True)
    assert webhook_refusal(knative_api, obj) is None
    refusal = webhook_refusal(knative_api, broken)
    assert refusal is not None and field in refusal, refusal


# Each serving-config patch -> what Knative says of a Service without it.
PATCH_NEEDED_FOR = {
    # infer asks for more than upstream's ceiling of 600 s.
    "config-defaults": "timeoutSeconds",
    # The Services use pod spec fields upstream leaves disabled.
    "config-features": "must not set the field",
}


@pytest.mark.parametrize(("name", "without_it"), sorted(PATCH_NEEDED_FOR.items()))
def test_the_services_are_admitted_only_with_the_serving_config_patch(
    name: str,
    without_it: str,
    knative_api: KubeApi,
    knative_webhooks: dict[str, RunningWebhook],
    built_overlays: dict[str, list[Manifest]],
    tmp_path: Path,
) -> None:
    # The webhook reads the ConfigMap as the cluster has it: upstream's, then with the patch
    # from knative/serving-config/ merged in.
    configmaps_dir = knative_webhooks["serving-webhook"].configmaps_dir
    upstream = named(config_maps(configmaps_dir, patches_dir=tmp_path), name)
    patched = named(config_maps(configmaps_dir), name)
    services = [
        service
        for objects in built_overlays.values()
        for service in _knative_objects(list(semantics.knative_services(objects).values()))
    ]

    def refusals() -> list[str]:
        return [
            why for why in (webhook_refusal(knative_api, s) for s in services) if why is not None
        ]

    assert refusals() == []
    knative_api.apply(upstream)
    try:
        poll_until(lambda: refusals() != [], f"a Service refused with upstream's {name}")
        assert all(without_it in why for why in refusals())
    finally:
        knative_api.apply(patched)
        poll_until(lambda: refusals() == [], f"every Service admitted with t2v's {name}")


def test_knative_validates_the_serving_config_t2v_patches_in(
    knative_api: KubeApi, knative_webhooks: dict[str, RunningWebhook]
) -> None:
    # As `kubectl patch` changes them in a cluster: upstream's ConfigMaps with the patches
    # from knative/serving-config/ merged in, through Serving's config validation.
    configmaps = config_maps(knative_webhooks["serving-webhook"].configmaps_dir)
    for configmap in configmaps:
        knative_api.apply(configmap, dry_run=True)
    assert SERVING.broken_config is not None
    with pytest.raises(KubeApiError) as refused:
        knative_api.apply(SERVING.broken_config(configmaps), dry_run=True)
    assert "admission webhook" in refused.value.message
    assert "revision-timeout-seconds" in refused.value.message
