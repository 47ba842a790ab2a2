"""The overlays on a real Kubernetes API server (kube-apiserver with the Knative and Gateway
API CRDs): every object admitted by a server-side dry run and by a real apply, read back
with the server's defaults, the semantic checks passing on what the server returns, and
broken copies refused."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy import semantics
from tests.deploy.conftest import OVERLAYS
from tests.deploy.kube_api import KubeApi, KubeApiError, in_namespace
from tests.deploy.kube_cluster import SERVICE_CIDR, KubeCluster
from tests.deploy.kustomize import Manifest
from tests.deploy.schemas import describe
from tests.deploy.test_semantics import BREAKAGES, every_problem

# Where the dry runs go: the overlays' own namespace, in which nothing is ever stored.
DRY_RUN_NAMESPACE = "t2v"


def missing(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Where ``stored`` lacks or changes what ``sent`` says (what it adds is the server's)."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [f"{path}: {stored!r} is not an object"]
        return [
            problem
            for key, value in sent.items()
            for problem in (
                missing(value, stored[key], f"{path}.{key}")
                if key in stored
                else [f"{path}.{key}: missing"]
            )
        ]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [f"{path}: {stored!r} is not {sent!r}"]
        return [
            problem
            for index, (item, back) in enumerate(zip(sent, stored, strict=True))
            for problem in missing(item, back, f"{path}[{index}]")
        ]
    if ".resources." in path and isinstance(sent, int) and isinstance(stored, str):
        # A resource quantity is a string in the API; a server that decodes the pod spec
        # into Kubernetes' types (Knative's defaulting does) writes a number back as one.
        sent = str(sent)
    return [] if sent == stored else [f"{path}: {stored!r} is not {sent!r}"]


def dry_run(api: KubeApi, objects: list[Manifest]) -> list[Manifest]:
    """The objects as the server would store them, none of them stored."""
    return [api.apply(obj, dry_run=True) for obj in in_namespace(objects, DRY_RUN_NAMESPACE)]


@pytest.fixture(scope="session")
def dry_run_api(kube: KubeCluster) -> KubeApi:
    kube.api.create_namespace(DRY_RUN_NAMESPACE)
    return kube.api


@pytest.fixture(scope="session")
def prod_as_admitted(
    dry_run_api: KubeApi, built_overlays: dict[str, list[Manifest]]
) -> list[Manifest]:
    return dry_run(dry_run_api, built_overlays["prod"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_admitted_by_a_server_side_dry_run(
    overlay: str, dry_run_api: KubeApi, built_overlays: dict[str, list[Manifest]]
) -> None:
    objects = built_overlays[overlay]
    admitted = dry_run(dry_run_api, objects)
    for sent, answer in zip(objects, admitted, strict=True):
        assert missing(sent, answer) == [], describe(sent)
        assert answer["metadata"]["uid"], describe(sent)
        assert dry_run_api.get(answer) is None, f"the dry run stored {describe(sent)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_applied_for_real_reads_back_with_the_server_defaults(
    overlay: str, kube: KubeCluster, built_overlays: dict[str, list[Manifest]]
) -> None:
    namespace = f"t2v-applied-{overlay}"
    kube.api.create_namespace(namespace)
    objects = in_namespace(built_overlays[overlay], namespace)
    for obj in objects:
        kube.api.apply(obj)
    stored = [kube.api.get(obj) for obj in objects]
    assert [describe(obj) for obj, back in zip(objects, stored, strict=True) if back is None] == []
    read_back = [back for back in stored if back is not None]
    for sent, back in zip(objects, read_back, strict=True):
        assert missing(sent, back) == [], describe(sent)
    assert every_problem(read_back, overlay) == []
    # Defaults the server filled in: the objects went through its real storage path.
    for claim in semantics.of_kind(read_back, "", "PersistentVolumeClaim"):
        assert claim["spec"]["volumeMode"] == "Filesystem"
    for service in semantics.of_kind(read_back, "", "Service"):
        assert service["spec"]["type"] == "ClusterIP"
        assert ipaddress.ip_address(service["spec"]["clusterIP"]) in ipaddress.ip_network(
            SERVICE_CIDR
        )
    for deployment in semantics.of_kind(read_back, "apps", "Deployment"):
        assert deployment["spec"]["revisionHistoryLimit"] == 10
        assert deployment["spec"]["template"]["spec"]["restartPolicy"] == "Always"


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_check_catches_a_broken_copy_as_the_server_returns_it(
    breakage: str,
    dry_run_api: KubeApi,
    built_overlays: dict[str, list[Manifest]],
    prod_as_admitted: list[Manifest],
) -> None:
    breaking, check = BREAKAGES[breakage]
    assert check(prod_as_admitted) == [], "the check must pass before the change"
    objects = copy.deepcopy(built_overlays["prod"])
    breaking(objects)
    # The server admits the broken copy: only the check sees what is wrong with it.
    assert check(dry_run(dry_run_api, objects)) != []


def _named(objects: list[Manifest], kind: str, name: str) -> Manifest:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _infer(objects: list[Manifest]) -> Manifest:
    return semantics.knative_services(objects)["t2v-infer"]


def _set(path: str, value: Any) -> Callable[[Manifest], None]:
    def change(obj: Manifest) -> None:
        *parents, last = path.split(".")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value

    return change


# What is broken -> (the object to break, how, what the server's refusal names).
REFUSALS: dict[
    str, tuple[Callable[[list[Manifest]], Manifest], Callable[[Manifest], None], str]
] = {
    "containerConcurrency not a number": (
        _infer,
        _set("spec.template.spec.containerConcurrency", "one"),
        "containerConcurrency",
    ),
    "a misspelt Service field": (
        _infer,
        _set("spec.template.spec.containerConcurency", 1),
        "containerConcurency",
    ),
    "a Trigger subscriber name that is a number": (
        lambda objects: _named(objects, "Trigger", "t2v-infer-job"),
        _set("spec.subscriber.ref.name", 7),
        "subscriber.ref.name",
    ),
    "a ConfigMap value that is a number": (
        lambda objects: _named(objects, "ConfigMap", "t2v-config"),
        _set("data.T2V_LEASE_TTL_S", 30),
        "data.T2V_LEASE_TTL_S",
    ),
    "a volume claim without a size": (
        lambda objects: _named(objects, "PersistentVolumeClaim", "t2v-model-cache"),
        lambda claim: claim["spec"].pop("resources"),
        "spec.resources[storage]",
    ),
    "an HTTP method Gateway API does not know": (
        lambda objects: semantics.of_kind(objects, "gateway.networking.k8s.io", "HTTPRoute")[0],
        _set("spec.rules.0.matches.0.method", "FETCH"),
        "method",
    ),
    "a PingSource schedule that is not a string": (
        lambda objects: _named(objects, "PingSource", "t2v-sweep"),
        _set("spec.schedule", 5),
        "spec.schedule",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_broken_copies_are_refused_and_nothing_is_stored(
    case: str, kube: KubeCluster, built_overlays: dict[str, list[Manifest]]
) -> None:
    namespace = "t2v-refused"
    kube.api.create_namespace(namespace)
    pick, breaking, named = REFUSALS[case]
    (obj,) = in_namespace([pick(built_overlays["prod"])], namespace)
    kube.api.apply(obj, dry_run=True)  # the unbroken object is admitted
    breaking(obj)
    with pytest.raises(KubeApiError) as refused:
        kube.api.apply(obj)
    # 422 from validation; a patch that does not fit the schema's types already fails when
    # server-side apply builds its typed patch, which kube-apiserver answers with 500 ("failed
    # to create typed patch object"), as `kubectl apply --server-side` shows.
    assert refused.value.status in (422, 500)
    assert named in refused.value.message
    assert kube.api.get(obj) is None
