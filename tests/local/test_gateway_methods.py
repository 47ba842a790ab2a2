"""The local gateway answers an unserved method on a public path 405 with `Allow`, and its
table of public routes is the functions' own."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from t2v.http import Router
from t2v.local.gateway import PUBLIC_ROUTES, create_gateway_app
from tests.function_modules import load_function


def test_public_routes_are_what_submit_status_and_notify_serve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: dict[str, set[str]] = {}
    for name in ("submit", "status", "notify"):
        router: Router = load_function(name, monkeypatch).router
        for template, methods in router.methods_by_template().items():
            if template in ("/", "/openapi.json", "/docs") or template.startswith(
                ("/v1/", "/web/", "/docs/")
            ):
                served.setdefault(template, set()).update(methods)
    assert served == {template: set(methods) for template, methods in PUBLIC_ROUTES.items()}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/jobs", "GET, HEAD, POST"),
        ("PUT", "/v1/jobs/", "GET, HEAD, POST"),
        ("POST", "/v1/jobs/job_1", "DELETE, GET, HEAD"),
        ("PUT", "/v1/jobs/job_1", "DELETE, GET, HEAD"),
        ("GET", "/v1/jobs/job_1/cancel", "POST"),
        ("PATCH", "/v1/jobs/job_1/video", "GET, HEAD"),
        ("POST", "/", "GET, HEAD"),
        ("OPTIONS", "/web/app.js", "GET, HEAD"),
        ("POST", "/openapi.json", "GET, HEAD"),
        ("DELETE", "/docs/swagger-ui.css", "GET, HEAD"),
        ("POST", "/v1/webhook-secret", "GET, HEAD"),
        ("GET", "/v1/webhook-secret/rotate", "POST"),
        ("GET", "/v1/jobs/job_1/webhooks/msg_1/replay", "POST"),
    ],
)
def test_unserved_methods_are_405_with_allow(method: str, path: str, allow: str) -> None:
    # No function behind it: a 405 is decided by the gateway, before any forwarding.
    with TestClient(create_gateway_app({})) as client:
        response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_other_paths_are_404() -> None:
    with TestClient(create_gateway_app({})) as client:
        response = client.delete("/v2/things")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/v1/jobs/a%0Ab", "/v1/jobs/%0A%C3%8A", "/v1/jobs%0Ax/video"])
def test_a_path_with_a_newline_is_a_json_404(path: str) -> None:
    # Found by fuzzing: a catch-all route's pattern did not match a decoded newline, and
    # Starlette answered its own plain-text 404.
    with TestClient(create_gateway_app({})) as client:
        response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_method_no_route_serves_is_a_json_405() -> None:
    with TestClient(create_gateway_app({})) as client:
        response = client.request("TRACE", "/v1/jobs")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
