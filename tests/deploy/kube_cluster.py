"""A real Kubernetes API server for the deploy tests: kube-apiserver on kine (SQLite).

Both run as child processes on free 127.0.0.1 ports with a scratch directory (the SQLite
file, certificates, a token file, service-account keys, their logs); nothing else runs, so
nothing reconciles: the server admits, validates, defaults and stores objects, which is all
the tests ask of it. The programs come from scripts/build_kube_tools.sh, which builds each
once per version into the project's cache directory.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from tests.deploy import schemas
from tests.deploy.certs import CertificateAuthority, service_account_keys
from tests.deploy.kube_api import KubeApi
from tests.services import _stop, free_port

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build_kube_tools.sh"
# A cold build of all of them takes minutes; the script returns at once when they are built.
BUILD_TIMEOUT_S = 3600
START_TIMEOUT_S = 180.0
# The Gateway API's HTTPRoute, besides the Knative CRDs the schema checks use.
CRD_FILES = (*schemas.CRD_FILES, "gateway-api-v1.6.1-httproutes.crd.yaml")
# The cluster IP range Services get addresses from: only allocated, never routed to.
SERVICE_CIDR = "10.96.0.0/16"


def build_tools(*targets: str) -> dict[str, Path]:
    """Build (or find) the programs ``targets`` name; program name -> path."""
    result = subprocess.run(
        [str(BUILD_SCRIPT), *targets],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT.name} {' '.join(targets)} failed:\n{result.stderr}")
    return {
        name: Path(path) for name, path in (line.split("=", 1) for line in result.stdout.split())
    }


@dataclass(frozen=True)
class KubeCluster:
    url: str
    token: str
    authority: CertificateAuthority
    directory: Path
    api: KubeApi

    def kubeconfig(self, server: str | None = None) -> Path:
        """A kubeconfig for a client of this server (at ``server`` if it reaches it there)."""
        path = self.directory / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": server or self.url,
                        "certificate-authority": str(self.authority.ca_file),
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path


def _log_tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def start_process(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)


def wait_until(
    ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_log_tail(log)}")
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} was not ready in {START_TIMEOUT_S} s:\n{_log_tail(log)}")


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _kine_command(kine: Path, directory: Path, port: int) -> list[str]:
    return [
        str(kine),
        f"--endpoint=sqlite://{directory / 'kine.sqlite'}?_journal=WAL&cache=shared",
        f"--listen-address=127.0.0.1:{port}",
        "--metrics-bind-address=0",  # no metrics listener
    ]


def _apiserver_command(
    apiserver: Path, directory: Path, port: int, etcd_port: int, authority: CertificateAuthority
) -> list[str]:
    serving = authority.issue("apiserver", ["127.0.0.1", "localhost"])
    sa_public, sa_private = service_account_keys(directory)
    return [
        str(apiserver),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={serving.cert_file}",
        f"--tls-private-key-file={serving.key_file}",
        f"--cert-dir={directory / 'certs'}",
        f"--token-auth-file={directory / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        f"--service-account-key-file={sa_public}",
        f"--service-account-signing-key-file={sa_private}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # Nothing here answers for the default Service's endpoints or a cloud.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
    ]


def _crds() -> Iterator[dict[str, object]]:
    for name in CRD_FILES:
        for doc in yaml.safe_load_all((schemas.SCHEMAS / name).read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                yield doc


@contextlib.contextmanager
def kube_cluster(tools: dict[str, Path], directory: Path) -> Iterator[KubeCluster]:
    """kine and kube-apiserver running, every CRD of ``CRD_FILES`` installed."""
    token = secrets.token_hex(16)
    (directory / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n")
    authority = CertificateAuthority.create(directory / "pki")
    etcd_port, port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    url = f"https://127.0.0.1:{port}"
    client = httpx.Client(
        base_url=url,
        verify=ssl.create_default_context(cafile=authority.ca_file),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    try:
        log = directory / "kine.log"
        processes.append(start_process(_kine_command(tools["kine"], directory, etcd_port), log))
        wait_until(lambda: _port_open(etcd_port), "kine", processes[-1], log)
        log = directory / "kube-apiserver.log"
        command = _apiserver_command(tools["kube-apiserver"], directory, port, etcd_port, authority)
        processes.append(start_process(command, log))
        wait_until(lambda: _ready(client), "kube-apiserver", processes[-1], log)
        api = KubeApi(client)
        for crd in _crds():
            api.install_crd(crd)
        yield KubeCluster(url, token, authority, directory, api)
    finally:
        client.close()
        for process in reversed(processes):
            _stop(process)
