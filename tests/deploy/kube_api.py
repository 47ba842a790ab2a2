"""The few Kubernetes API calls the deploy tests make, over plain HTTP with httpx.

Objects go in by server-side apply (a PATCH of ``application/apply-patch+yaml``, JSON being
YAML) with strict field validation, as ``kubectl apply --server-side`` sends them;
``dry_run=True`` adds ``dryRun=All``: the server admits (and defaults) the object and
answers with it, but stores nothing.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

Manifest = dict[str, Any]
FIELD_MANAGER = "t2v-deploy-tests"


class KubeApiError(RuntimeError):
    """The API server refused a request; ``status`` is its HTTP status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Resource:
    plural: str
    namespaced: bool


def _check(response: httpx.Response) -> Manifest:
    if response.is_error:
        try:
            message = str(response.json().get("message", response.text))
        except ValueError:
            message = response.text
        raise KubeApiError(response.status_code, message)
    body: Manifest = response.json()
    return body


def _group_path(api_version: str) -> str:
    return f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"


@dataclass
class KubeApi:
    client: httpx.Client
    _resources: dict[str, dict[str, Resource]] = field(default_factory=dict)

    def resource(self, api_version: str, kind: str) -> Resource:
        """The plural name and scope of ``kind``, from the server's discovery document."""
        if kind not in self._resources.get(api_version, {}):
            listing = _check(self.client.get(_group_path(api_version)))
            self._resources[api_version] = {
                entry["kind"]: Resource(entry["name"], entry["namespaced"])
                for entry in listing["resources"]
                if "/" not in entry["name"]
            }
        if kind not in self._resources[api_version]:
            raise KubeApiError(404, f"the server serves no {kind} in {api_version}")
        return self._resources[api_version][kind]

    def path(self, obj: Manifest) -> str:
        resource = self.resource(obj["apiVersion"], obj["kind"])
        prefix = _group_path(obj["apiVersion"])
        if resource.namespaced:
            prefix += f"/namespaces/{obj['metadata']['namespace']}"
        return f"{prefix}/{resource.plural}/{obj['metadata']['name']}"

    def apply(self, obj: Manifest, *, dry_run: bool = False) -> Manifest:
        """Server-side apply ``obj``; the object as the server stores (or would store) it."""
        params = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict", "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        return _check(
            self.client.patch(
                self.path(obj),
                params=params,
                content=json.dumps(obj),
                headers={"Content-Type": "application/apply-patch+yaml"},
            )
        )

    def get(self, obj: Manifest) -> Manifest | None:
        """The stored object with ``obj``'s kind, namespace and name; None if there is none."""
        response = self.client.get(self.path(obj))
        return None if response.status_code == 404 else _check(response)

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        metadata = {"name": name, "labels": labels or {}}
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})

    def install_crd(self, crd: Manifest, timeout_s: float = 60.0) -> None:
        """Apply a CustomResourceDefinition and wait until the server serves its kind."""
        self.apply(crd)

        def established() -> bool:
            conditions = (self.get(crd) or {}).get("status", {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        poll_until(established, f"CRD {crd['metadata']['name']} established", timeout_s)


def poll_until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Return once ``condition()`` holds; TimeoutError if it does not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} within {timeout_s} s")
        time.sleep(0.1)


def in_namespace(objects: list[Manifest], namespace: str) -> list[Manifest]:
    """Copies of ``objects`` moved to ``namespace`` (cluster-scoped kinds are not in the
    overlays)."""
    moved = copy.deepcopy(objects)
    for obj in moved:
        obj["metadata"]["namespace"] = namespace
    return moved
