"""The cluster's HTTPRoutes route the public API and the web page, and nothing else: no
internal endpoint of a function (event sinks, the sweep, metrics, probes) is reachable from
the public host, however the path is spelled. Checked with the HTTPRoute's own match rules
(Exact, PathPrefix, RegularExpression) against the local gateway's table of public routes."""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest

from t2v.http import Router
from t2v.local.gateway import PUBLIC_ROUTES, route_for
from tests.deploy import semantics
from tests.deploy.kustomize import Manifest
from tests.function_modules import load_function

JOB_ID = "job_0123456789abcdef0123456789abcdef"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Ways a client has spelled an internal path under a public prefix: dot segments, encoded
# slashes and dots, backslashes.
ESCAPES = (
    "/v1/jobs/../{name}",
    "/v1/jobs/../../{name}",
    "/v1/jobs/..%2f..%2f{name}",
    "/v1/jobs/..%2F{name}",
    "/v1/jobs/%2e%2e/%2e%2e/{name}",
    "/v1/jobs/x/../../{name}",
    "/v1/jobs/..\\..\\{name}",
    "/v1/jobs/" + JOB_ID + "/../../{name}",
    "/web/../{name}",
    "/web/..%2f{name}",
    "/{name}",
)


def _match(match: Manifest, method: str, path: str) -> bool:
    if match.get("method", method) != method:
        return False
    rule = match.get("path", {"type": "PathPrefix", "value": "/"})
    value = str(rule["value"])
    kind = rule.get("type", "PathPrefix")
    if kind == "Exact":
        return path == value
    if kind == "PathPrefix":
        prefix = value.rstrip("/")
        return path in (value, prefix) or path.startswith(prefix + "/")
    assert kind == "RegularExpression", kind
    return re.fullmatch(value, path) is not None


def routed(routes: Iterable[Manifest], method: str, path: str) -> str | None:
    """The backend Service this request reaches through the routes, or None."""
    for route in routes:
        for rule in route["spec"]["rules"]:
            if any(_match(match, method, path) for match in rule["matches"]):
                return str(rule["backendRefs"][0]["name"])
    return None


@pytest.fixture(params=["dev", "prod"])
def routes(
    request: pytest.FixtureRequest, built_overlays: dict[str, list[Manifest]]
) -> list[Manifest]:
    return semantics.of_kind(
        built_overlays[request.param], "gateway.networking.k8s.io", "HTTPRoute"
    )


def _internal_templates(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    templates: set[str] = set()
    for name in ("submit", "status", "infer", "notify"):
        router: Router = load_function(name, monkeypatch).router
        templates.update(t for t in router.methods_by_template() if t not in PUBLIC_ROUTES)
    return templates


def test_no_rule_matches_a_path_prefix(routes: list[Manifest]) -> None:
    # A prefix is what `..` escapes: every match is Exact or a whole-path expression.
    for route in routes:
        for rule in route["spec"]["rules"]:
            for match in rule["matches"]:
                assert match["path"]["type"] in ("Exact", "RegularExpression"), match


def _served_files(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, ...]]:
    """The file names status serves under each public `{name}` route."""
    status = load_function("status", monkeypatch)
    return {
        "/web/{name}": tuple(status.WEB_FILES),
        "/docs/{name}": tuple(status.DOCS_RENDERER_FILES),
    }


def test_every_public_route_reaches_the_service_the_local_gateway_picks(
    routes: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _served_files(monkeypatch)
    for template in PUBLIC_ROUTES:
        names = files[template] if "{name}" in template else ("",)
        for name in names:
            path = template.replace("{job_id}", JOB_ID).replace("{name}", name)
            path = path.replace("{delivery_id}", "msg_0123abcd")
            for method in METHODS:
                expected = route_for(method, path)
                assert routed(routes, method, path) == (
                    None if expected is None else f"t2v-{expected}"
                ), (method, path)


def test_no_internal_endpoint_is_routed_however_spelled(
    routes: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    internal = _internal_templates(monkeypatch)
    assert {"/events", "/dead-letter", "/sweep", "/metrics"} <= internal
    for template in internal:
        name = template.lstrip("/")
        for escape in ESCAPES:
            path = escape.format(name=name)
            for method in METHODS:
                assert routed(routes, method, path) is None, (method, path)
    for other in ("/web/secret.txt", "/web/", "/v1/jobs/a/b", "/v1/jobs/" + JOB_ID + "/video/x"):
        assert routed(routes, "GET", other) is None, other


def test_the_check_catches_a_prefix_route(routes: list[Manifest]) -> None:
    # The old rule: a PathPrefix on /v1/jobs routes `/v1/jobs/../events` to submit.
    prefix = {
        "spec": {
            "rules": [
                {
                    "matches": [
                        {"method": "POST", "path": {"type": "PathPrefix", "value": "/v1/jobs"}}
                    ],
                    "backendRefs": [{"name": "t2v-submit"}],
                }
            ]
        }
    }
    assert routed([prefix], "POST", "/v1/jobs/../events") == "t2v-submit"


def test_services_have_no_public_route_of_their_own(
    built_overlays: dict[str, list[Manifest]],
) -> None:
    # Knative gives every Service a public domain unless it is cluster-local; there its
    # internal endpoints would be reachable past the HTTPRoute.
    for objects in built_overlays.values():
        for name, service in semantics.knative_services(objects).items():
            labels = service["metadata"].get("labels", {})
            assert labels.get("networking.knative.dev/visibility") == "cluster-local", name


def test_every_rule_bounds_the_whole_request(
    routes: list[Manifest], built_overlays: dict[str, list[Manifest]]
) -> None:
    # Slow headers and stalled bodies are cut off at the Gateway, no later than the Service
    # behind the rule would give up itself.
    services = semantics.knative_services(built_overlays["prod"])
    for route in routes:
        for rule in route["spec"]["rules"]:
            timeout = rule["timeouts"]["request"]
            assert timeout.endswith("s") and timeout[:-1].isdigit(), timeout
            service = services[rule["backendRefs"][0]["name"]]
            assert int(timeout[:-1]) <= service["spec"]["template"]["spec"]["timeoutSeconds"]
