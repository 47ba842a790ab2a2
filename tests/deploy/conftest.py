from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.knative_webhooks import EVENTING, SERVING, RunningWebhook, knative_webhook
from tests.deploy.kube_cluster import KubeCluster, build_tools, kube_cluster
from tests.deploy.kustomize import Manifest, build

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod")


@pytest.fixture(scope="session")
def built_overlays() -> dict[str, list[Manifest]]:
    """Each overlay, built once per session (tests deep-copy before changing anything)."""
    return {name: build(REPO / "knative" / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A real kube-apiserver (on kine) for the session, with the CRDs the overlays use."""
    tools = build_tools("kube-apiserver", "kine")
    with kube_cluster(tools, tmp_path_factory.mktemp("kube")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def knative_webhooks(kube: KubeCluster) -> Iterator[dict[str, RunningWebhook]]:
    """Knative Serving's and Eventing's admission webhooks, registered with ``kube`` for the
    namespaces labelled ``knative_webhooks.ADMISSION_LABEL``."""
    tools = build_tools("webhooks")
    with contextlib.ExitStack() as stack:
        yield {
            spec.tool: stack.enter_context(knative_webhook(spec, tools[spec.tool], kube))
            for spec in (SERVING, EVENTING)
        }
