"""Tenant isolation over every route, generated from the functions' route tables and the
served /openapi.json, against the local platform with two tenants' keys (issue 18, item 5).

Each route falls in one class by where it is served, never by a list of routes:
- documented (an operation in /openapi.json): unauthenticated is 401 JSON; each parameter that
  names something of a tenant's (a job id, a list cursor, an Idempotency-Key) is tried by
  tenant B with tenant A's value, and B gets the route's denial while A still has its job;
- public but undocumented (the web page, the docs): answered without a key, and nothing in
  the answer is a tenant's;
- internal (not routed by the gateway): 404 through the gateway; on the function's own port
  an event sink refuses an unsigned event (401) and a probe shows no tenant's data.
A route added later lands in one of them, and a parameter of a kind this file does not know
fails until it says how the parameter is kept to its tenant.

The same platform's logs are then read in full: they carry job ids and prompt hashes, never a
prompt, an API key or a sender credential.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.conversion import to_binary

from t2v import events
from t2v.auth import hash_key
from t2v.http import Router
from t2v.local.gateway import PUBLIC_ROUTES
from tests.e2e.harness import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("submit", "status", "infer", "notify")
# Distinctive, so that finding them in a log cannot be a coincidence.
KEYS = {"alice": "t2v_isolation-alice-Qm9vYmFy", "bob": "t2v_isolation-bob-YmF6cXV4"}
PROMPT = "a lighthouse of violet glass, isolation-matrix-7f3a"
SMALL = {"width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 2}
IDEMPOTENCY_KEY = "alice-idempotency-2c91"
# Public routes that no operation documents: pages, fetched at one real path each.
PUBLIC_PAGES = {
    "/": "/",
    "/web/{name}": "/web/app.js",
    "/openapi.json": "/openapi.json",
    "/docs": "/docs",
    "/docs/{name}": "/docs/swagger-ui.css",
}
# Parameters that name nothing of a tenant's: the same value means the same for anyone.
NO_TENANT_REFERENCE = {("query", "status"), ("query", "limit"), ("header", "Prefer")}


def _route_tables() -> dict[str, dict[str, tuple[str, ...]]]:
    """Each function's routes, loaded by path as its container loads it."""
    tables: dict[str, dict[str, tuple[str, ...]]] = {}
    for name in FUNCTIONS:
        module_name = f"isolation_matrix_{name}"
        spec = importlib.util.spec_from_file_location(
            module_name, REPO_ROOT / "functions" / name / "main.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses look it up there
        try:
            spec.loader.exec_module(module)
            router: Router = module.router
            tables[name] = router.methods_by_template()
        finally:
            del sys.modules[module_name]
    return tables


ROUTES = [
    (function, method, template)
    for function, table in _route_tables().items()
    for template, methods in table.items()
    for method in methods
]

ROUTE_IDS = [" ".join(route) for route in ROUTES]


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who]}"}


class World:
    """The platform, and what tenant A (alice) owns on it."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.client = platform.client
        self.jobs = [self._finished_job(seed) for seed in (1, 2)]
        listing = self.client.get(
            f"{platform.url}/v1/jobs", params={"limit": 1}, headers=auth("alice")
        ).json()
        assert listing["next_cursor"], listing
        self.cursor: str = listing["next_cursor"]
        self.openapi: dict[str, Any] = self.client.get(f"{platform.url}/openapi.json").json()

    def _finished_job(self, seed: int) -> str:
        headers = {**auth("alice"), "Idempotency-Key": f"{IDEMPOTENCY_KEY}-{seed}"}
        created = self.platform.submit({"prompt": PROMPT, "seed": seed, **SMALL}, headers=headers)
        assert created.status_code == 202, created.text
        job_id: str = created.json()["id"]
        url = f"{self.platform.url}/v1/jobs/{job_id}"
        self.platform.wait_for(
            job_id,
            lambda job: job["status"] == "succeeded",
            fetch=lambda: self.client.get(url, headers=auth("alice")).json(),
        )
        return job_id

    def operation(self, method: str, template: str) -> dict[str, Any] | None:
        path_item = self.openapi["paths"].get(template, {})
        operation: dict[str, Any] | None = path_item.get(method.lower())
        return operation

    def parameters(self, template: str, operation: dict[str, Any]) -> list[dict[str, Any]]:
        """The operation's parameters and its path's, with `$ref`s resolved."""
        listed = [
            *self.openapi["paths"][template].get("parameters", []),
            *operation.get("parameters", []),
        ]
        return [self._resolve(parameter) for parameter in listed]

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.openapi
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def tenant_data(self) -> list[str]:
        """What must appear in no answer to anyone but alice."""
        return [*self.jobs, PROMPT, self.cursor]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Platform]:
    registry = {hash_key(key): {"tenant": who, "role": "user"} for who, key in KEYS.items()}
    env = {"T2V_API_KEYS": json.dumps(registry)}
    running = Platform(tmp_path_factory.mktemp("isolation"), tiny_model_dir, env).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def world(platform: Platform) -> World:
    return World(platform)


def _request(
    world: World, method: str, path: str, headers: dict[str, str], **more: Any
) -> httpx.Response:
    return world.client.request(method, f"{world.platform.url}{path}", headers=headers, **more)


def _check_unauthenticated(world: World, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        answer = _request(world, method, path, headers, json={"prompt": PROMPT})
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["www-authenticate"].startswith("Bearer")


# Path parameters that name something inside a job: any value, under alice's job id.
INSIDE_A_JOB = {"{delivery_id}": "whd_isolation"}


def _concrete(world: World, template: str) -> str:
    path = template.replace("{job_id}", world.jobs[0])
    for name, value in INSIDE_A_JOB.items():
        path = path.replace(name, value)
    return path


def _check_job_id(world: World, method: str, template: str, **headers: str) -> None:
    job_id = world.jobs[0]
    path = _concrete(world, template)
    answer = _request(world, method, path, {**auth("bob"), **headers})
    assert answer.status_code == 404, (method, path, answer.text)
    assert answer.json()["error"]["code"] == "not_found"
    assert job_id in answer.json()["error"]["message"]  # only the id bob sent, nothing more
    mine = world.client.get(f"{world.platform.url}/v1/jobs/{job_id}", headers=auth("alice"))
    assert mine.status_code == 200 and mine.json()["status"] == "succeeded", mine.text


def _check_cursor(world: World, method: str, template: str) -> None:
    # A cursor is a position in a listing that is always the caller's own: alice's cursor
    # pages through bob's jobs (none older here), never hers.
    answer = _request(world, method, template, auth("bob"), params={"cursor": world.cursor})
    assert answer.status_code == 200, answer.text
    assert not {job["id"] for job in answer.json()["data"]} & set(world.jobs)


def _check_idempotency_key(world: World, method: str, template: str) -> None:
    # The same key and body as alice's first job: bob gets a job of his own, not hers.
    headers = {**auth("bob"), "Idempotency-Key": f"{IDEMPOTENCY_KEY}-1"}
    body = {"prompt": PROMPT, "seed": 1, **SMALL}
    answer = _request(world, method, template, headers, json=body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["id"] not in world.jobs
    assert "idempotent-replayed" not in answer.headers


def _check_last_event_id(world: World, method: str, template: str) -> None:
    # A position in one job's change log: with alice's job, bob's resume is refused whole.
    _check_job_id(world, method, template, **{"Last-Event-ID": "0"})


TENANT_REFERENCES = {
    ("path", "job_id"): _check_job_id,
    # Only ever read under its job's id, which the job id check covers.
    ("path", "delivery_id"): _check_job_id,
    ("header", "Last-Event-ID"): _check_last_event_id,
    ("query", "cursor"): _check_cursor,
    ("header", "Idempotency-Key"): _check_idempotency_key,
}


def _unsigned_event(world: World) -> tuple[dict[str, str], bytes]:
    event = events.make_event(
        events.JOB_CANCELED,
        source="/isolation-matrix",
        subject=world.jobs[0],
        data={"job_id": world.jobs[0], "reason": "user"},
    )
    headers, body = to_binary(event)
    return {name: str(value) for name, value in headers.items()}, body


def _check_internal(world: World, function: str, method: str, template: str) -> None:
    concrete = template.replace("{job_id}", world.jobs[0])
    via_gateway = _request(world, method, concrete, auth("alice"))
    # Not forwarded: 404, or the gateway's own liveness answer at its own /healthz.
    gateways_own = template == "/healthz" and via_gateway.json() == {"status": "ok"}
    assert via_gateway.status_code == 404 or gateways_own, (method, concrete, via_gateway.text)
    own_port = f"{world.platform.function_url(function)}{concrete}"
    if method == "POST":
        headers, body = _unsigned_event(world)
        answer = world.client.post(own_port, headers=headers, content=body)
        assert answer.status_code == 401, (function, template, answer.text)
        return
    answer = world.client.request(method, own_port)
    assert not [item for item in world.tenant_data() if item in answer.text], (function, template)


@pytest.mark.parametrize(
    ("function", "method", "template"), ROUTES, ids=[" ".join(r) for r in ROUTES]
)
def test_route_keeps_tenants_apart(world: World, function: str, method: str, template: str) -> None:
    if template not in PUBLIC_ROUTES:
        _check_internal(world, function, method, template)
        return
    assert method in PUBLIC_ROUTES[template], (method, template)
    operation = world.operation(method, template)
    if operation is None:
        assert template in PUBLIC_PAGES, f"{method} {template}: public, undocumented, unlisted"
        answer = world.client.get(f"{world.platform.url}{PUBLIC_PAGES[template]}")
        assert answer.status_code != 401, template
        assert not [item for item in world.tenant_data() if item in answer.text], template
        return
    _check_unauthenticated(world, method, _concrete(world, template))
    for parameter in world.parameters(template, operation):
        kind = (parameter["in"], parameter["name"])
        if kind in NO_TENANT_REFERENCE:
            continue
        assert kind in TENANT_REFERENCES, f"{method} {template}: how is {kind} kept apart?"
        TENANT_REFERENCES[kind](world, method, template)


def test_every_documented_operation_is_a_served_public_route(world: World) -> None:
    served = {(method.lower(), template) for _, method, template in ROUTES}
    for template, path_item in world.openapi["paths"].items():
        for method in path_item.keys() - {"parameters", "summary", "description"}:
            assert (method, template) in served, (method, template)
            assert method.upper() in PUBLIC_ROUTES.get(template, ()), (method, template)


def test_logs_name_jobs_by_id_and_prompt_hash_only(world: World, platform: Platform) -> None:
    logs = sorted(platform.data_dir.rglob("*.log"))
    assert {path.name for path in logs} >= {"platform.log", "submit.log", "status.log"}
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    credentials = platform.credentials()
    secrets = [
        PROMPT,
        *KEYS.values(),
        str(credentials["signing_key"]),
        *map(str, credentials["senders"].values()),
    ]
    assert not [secret for secret in secrets if secret in text]
    prompt_hash = hashlib.sha256(PROMPT.encode()).hexdigest()
    submit_log = (platform.data_dir / "logs" / "submit.log").read_text()
    for job_id in world.jobs:
        assert f"job {job_id} accepted: tenant alice, prompt sha256 {prompt_hash}" in submit_log
