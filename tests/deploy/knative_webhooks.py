"""Knative Serving's and Eventing's own admission webhooks, run out of cluster against the
test API server (tests/deploy/kube_cluster.py).

A webhook is the upstream binary (scripts/build_kube_tools.sh: Eventing v0.50.0, whose CRDs
are the ones in tests/schemas; Serving v0.42.2, Knative 1.15, the newest release the module
proxy here serves all dependencies of) with what it finds in a cluster: a kubeconfig
(SYSTEM_NAMESPACE, WEBHOOK_NAME and WEBHOOK_PORT in its environment), its system namespace
holding every ConfigMap of its release (upstream's, with t2v's patches from
knative/serving-config/ merged in: config-defaults and config-features; config-autoscaler
stays upstream's), and its certificate Secret, which the fixture fills with a certificate of
its own CA so that Knative keeps it. Leader election needs nothing more: the webhook takes
its Leases in its system namespace.

A webhook listens on every interface (and so do its health and metrics servers) and cannot
be told otherwise, so each one runs in a network namespace of its own that holds only a
loopback device (``unshare --net``), and socat joins the two loopbacks through Unix sockets
in the scratch directory: the webhook reaches the API server at 127.0.0.1:6443 inside, and
the API server reaches the webhook at a free 127.0.0.1 port outside. The
Validating/MutatingWebhookConfigurations point at that port by URL (Knative's own
reconciler of them wants a Service and only logs that it found none); they cover only the
namespaces labelled ``ADMISSION_LABEL``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.deploy.kube_api import KubeApi, KubeApiError, Manifest, in_namespace
from tests.deploy.kube_cluster import KubeCluster, start_process, wait_until
from tests.services import _stop, free_port

REPO = Path(__file__).resolve().parents[2]
SERVING_CONFIG = REPO / "knative" / "serving-config"
INNER_API_PORT = 6443
INNER_WEBHOOK_PORT = 8443
# Only namespaces with this label go through the webhooks, so the plain API server tests see
# the API server alone whatever order the tests run in.
ADMISSION_LABEL = {"t2v.test/knative-admission": "enabled"}
PROBE_NAMESPACE = "t2v-knative-probe"


@dataclass(frozen=True)
class WebhookSpec:
    tool: str
    namespace: str
    # The webhook's name (WEBHOOK_NAME, its Service's name in a cluster) and certificate Secret.
    service: str
    secret: str
    # (API group, version, plural) of each kind whose admission goes through the webhook.
    resources: tuple[tuple[str, str, str], ...]
    # An object the webhook defaults (``defaulted`` tells from the server's answer) and that
    # it refuses once ``broken`` has changed it: the API server is calling the webhook when
    # both show.
    probe: Manifest
    defaulted: Callable[[Manifest], bool]
    broken: Callable[[Manifest], None]
    # Where the webhook validates its own ConfigMaps too: one of them, changed so that it
    # refuses it (from the ConfigMaps ``config_maps`` reads).
    broken_config: Callable[[list[Manifest]], Manifest] | None = None


def named(configmaps: list[Manifest], name: str) -> Manifest:
    return next(c for c in configmaps if c["metadata"]["name"] == name)


def _broken_config_defaults(configmaps: list[Manifest]) -> Manifest:
    """config-defaults with a default revision timeout above its maximum."""
    defaults = named(configmaps, "config-defaults")
    maximum = int(defaults["data"].get("max-revision-timeout-seconds", "600"))
    defaults["data"]["revision-timeout-seconds"] = str(maximum + 1)
    return defaults


SERVING = WebhookSpec(
    tool="serving-webhook",
    namespace="knative-serving",
    service="webhook",
    secret="webhook-certs",
    resources=(("serving.knative.dev", "v1", "services"),),
    probe={
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "probe"},
        "spec": {"template": {"spec": {"containers": [{"image": "probe.invalid/probe"}]}}},
    },
    defaulted=lambda answer: "traffic" in answer["spec"],
    broken=lambda probe: probe["spec"]["template"]["spec"].update(timeoutSeconds=10**6),
    broken_config=_broken_config_defaults,
)
EVENTING = WebhookSpec(
    tool="eventing-webhook",
    namespace="knative-eventing",
    service="eventing-webhook",
    secret="eventing-webhook-certs",
    resources=(
        ("eventing.knative.dev", "v1", "brokers"),
        ("eventing.knative.dev", "v1", "triggers"),
        ("sources.knative.dev", "v1", "pingsources"),
        ("sources.knative.dev", "v1", "sinkbindings"),
    ),
    probe={
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": "probe"},
        "spec": {"broker": "probe", "subscriber": {"uri": "http://probe.invalid/"}},
    },
    defaulted=lambda answer: "eventing.knative.dev/broker" in answer["metadata"].get("labels", {}),
    broken=lambda probe: probe["spec"].update(filter={"attributes": {"Not-Valid": "x"}}),
)


def config_maps(configmaps_dir: Path, patches_dir: Path = SERVING_CONFIG) -> list[Manifest]:
    """Upstream's ConfigMaps for one webhook, with the data of t2v's patch of the same name
    and namespace merged in (as ``kubectl patch`` merges it in a cluster)."""
    patches = {
        (doc["metadata"]["namespace"], doc["metadata"]["name"]): doc
        for path in sorted(patches_dir.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc
    }
    found = []
    for path in sorted(configmaps_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "ConfigMap":
                patch = patches.get((doc["metadata"]["namespace"], doc["metadata"]["name"]))
                if patch is not None:
                    doc.setdefault("data", {}).update(patch.get("data", {}))
                found.append(doc)
    return found


def _secret(spec: WebhookSpec, cluster: KubeCluster, cert: bytes, key: bytes) -> Manifest:
    def encoded(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": spec.secret, "namespace": spec.namespace},
        "data": {
            "server-cert.pem": encoded(cert),
            "server-key.pem": encoded(key),
            "ca-cert.pem": encoded(cluster.authority.ca_file.read_bytes()),
        },
    }


def _configuration(
    kind: str,
    name: str,
    client_config: Manifest,
    resources: tuple[tuple[str, str, str], ...],
    namespaces: dict[str, str],
) -> Manifest:
    """A webhook configuration sending the admission of ``resources`` in the namespaces
    labelled ``namespaces`` to ``client_config``."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": name,
                "clientConfig": client_config,
                "rules": [
                    {
                        "apiGroups": [group],
                        "apiVersions": [version],
                        "resources": [plural],
                        "operations": ["CREATE", "UPDATE"],
                    }
                    for group, version, plural in resources
                ],
                "namespaceSelector": {"matchLabels": namespaces},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
            }
        ],
    }


def webhook_configurations(spec: WebhookSpec, url: str, ca: bytes) -> list[Manifest]:
    """Knative's defaulting (mutating) and resource validation webhooks, by URL, and where
    the webhook validates its ConfigMaps, that one for its system namespace."""

    def configuration(kind: str, path: str, resources: Any, namespaces: Any) -> Manifest:
        client_config = {"url": url + path, "caBundle": base64.b64encode(ca).decode()}
        name = f"{path.strip('/')}.{spec.tool}.t2v.test"
        return _configuration(kind, name, client_config, resources, namespaces)

    mutating, validating = "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"
    configurations = [
        configuration(mutating, "/defaulting", spec.resources, ADMISSION_LABEL),
        configuration(validating, "/resource-validation", spec.resources, ADMISSION_LABEL),
    ]
    if spec.broken_config is not None:
        system = {"kubernetes.io/metadata.name": spec.namespace}
        configurations.append(
            configuration(validating, "/config-validation", (("", "v1", "configmaps"),), system)
        )
    return configurations


def _in_network_namespace(directory: Path, command: list[str]) -> list[str]:
    """``command`` as PID 1 of new network and PID namespaces (it ending ends the relays
    started beside it), with socat relaying the API server and the webhook's port through
    Unix sockets in ``directory``."""
    relays = (
        "set -e; ip link set lo up; "
        f"socat TCP-LISTEN:{INNER_API_PORT},bind=127.0.0.1,reuseaddr,fork "
        f"UNIX-CONNECT:{directory / 'api.sock'} & "
        f"socat UNIX-LISTEN:{directory / 'webhook.sock'},fork "
        f"TCP:127.0.0.1:{INNER_WEBHOOK_PORT} & "
        'exec "$@"'
    )
    namespaces = ["unshare", "--net", "--pid", "--fork", "--kill-child"]
    if os.geteuid() != 0:  # new namespaces need root, or a user namespace of their own
        namespaces += ["--user", "--map-root-user"]
    return [*namespaces, "sh", "-c", relays, "sh", *command]


def _serves(url: str, ca_file: Path) -> bool:
    try:
        httpx.get(url, verify=ssl.create_default_context(cafile=ca_file), timeout=2)
    except httpx.HTTPError:
        return False
    return True


def webhook_refusal(api: KubeApi, obj: Manifest) -> str | None:
    """Why an admission webhook refuses ``obj`` in a dry run; None if it is admitted (a
    refusal by the API server itself is raised)."""
    try:
        api.apply(obj, dry_run=True)
    except KubeApiError as refused:
        if "admission webhook" not in refused.message:
            raise
        return refused.message
    return None


def _admits_through(spec: WebhookSpec, api: KubeApi, configmaps_dir: Path) -> bool:
    """Whether the API server sends ``spec.probe`` through the webhook, both ways, and its
    ConfigMaps too where it validates them."""
    api.create_namespace(PROBE_NAMESPACE, labels=ADMISSION_LABEL)
    (probe,) = in_namespace([spec.probe], PROBE_NAMESPACE)
    if not spec.defaulted(api.apply(probe, dry_run=True)):
        return False
    spec.broken(probe)
    if webhook_refusal(api, probe) is None:
        return False
    if spec.broken_config is None:
        return True
    return webhook_refusal(api, spec.broken_config(config_maps(configmaps_dir))) is not None


@dataclass(frozen=True)
class RunningWebhook:
    spec: WebhookSpec
    url: str
    # Upstream's ConfigMaps, as ``config_maps`` reads them.
    configmaps_dir: Path


@contextlib.contextmanager
def knative_webhook(
    spec: WebhookSpec, binary: Path, cluster: KubeCluster
) -> Iterator[RunningWebhook]:
    """The webhook running and serving TLS, its ConfigMaps (from the ``configmaps`` folder
    the build script puts beside it) and Secret in the API server, and the API server
    sending it the admission of ``spec.resources``."""
    api: KubeApi = cluster.api
    configmaps_dir = binary.parent / "configmaps"
    directory = cluster.directory / spec.tool
    directory.mkdir()
    api.create_namespace(spec.namespace)
    for config_map in config_maps(configmaps_dir):
        api.apply(config_map)
    dns = f"{spec.service}.{spec.namespace}.svc"
    issued = cluster.authority.issue(spec.tool, ["127.0.0.1", dns, f"{dns}.cluster.local"])
    api.apply(_secret(spec, cluster, *issued.pem()))
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    api_port = int(cluster.url.rsplit(":", 1)[1])
    processes: list[subprocess.Popen[bytes]] = []
    try:
        relays = {
            "api": [f"UNIX-LISTEN:{directory / 'api.sock'},fork", f"TCP:127.0.0.1:{api_port}"],
            "webhook": [
                f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                f"UNIX-CONNECT:{directory / 'webhook.sock'}",
            ],
        }
        for name, addresses in relays.items():
            processes.append(start_process(["socat", *addresses], directory / f"{name}.log"))
        kubeconfig = cluster.kubeconfig(f"https://127.0.0.1:{INNER_API_PORT}")
        env = {
            "SYSTEM_NAMESPACE": spec.namespace,
            "WEBHOOK_NAME": spec.service,
            "WEBHOOK_PORT": str(INNER_WEBHOOK_PORT),
            "POD_NAME": f"{spec.service}-0",
            "METRICS_DOMAIN": f"knative.dev/{spec.namespace.removeprefix('knative-')}",
            "KUBECONFIG": str(kubeconfig),
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        }
        log = directory / "webhook.log"
        command = _in_network_namespace(directory, [str(binary), f"--kubeconfig={kubeconfig}"])
        with log.open("wb") as output:
            processes.append(
                subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
            )
        wait_until(lambda: _serves(url, cluster.authority.ca_file), spec.tool, processes[-1], log)
        for configuration in webhook_configurations(
            spec, url, cluster.authority.ca_file.read_bytes()
        ):
            api.apply(configuration)
        wait_until(
            lambda: _admits_through(spec, api, configmaps_dir),
            f"{spec.tool} admission",
            processes[-1],
            log,
        )
        yield RunningWebhook(spec, url, configmaps_dir)
    finally:
        for configuration in webhook_configurations(spec, url, b""):
            with contextlib.suppress(Exception):
                api.client.delete(api.path(configuration))
        # SIGKILL: a webhook drains for a while on SIGTERM, and it holds nothing to keep.
        for process in reversed(processes):
            _stop(process, kill=True)
