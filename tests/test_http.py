"""The shared HTTP plumbing: the base URL clients reach, and what the router records."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from t2v.http import Router, base_url
from t2v.metrics import ROUTE_SCOPE_KEY


def _request(method: str, path: str, headers: dict[str, str] | None = None) -> Request:
    raw = [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    scope = {
        "type": "http", "method": method, "path": path, "headers": raw, "scheme": "http",
        "query_string": b"", "server": ("127.0.0.1", 8080),
    }  # fmt: skip
    return Request(scope)


def test_base_url_is_the_configured_one_else_this_server_never_a_client_header() -> None:
    # Links built from Host or X-Forwarded-* would point wherever a client said.
    spoofed = _request(
        "GET",
        "/",
        {"host": "evil.example", "x-forwarded-host": "evil.example", "x-forwarded-proto": "ftp"},
    )
    assert base_url(spoofed, "https://t2v.example") == "https://t2v.example"
    assert base_url(spoofed, None) == "http://127.0.0.1:8080"
    assert base_url(_request("GET", "/"), None) == "http://127.0.0.1:8080"


@pytest.mark.asyncio
async def test_router_records_the_template_it_dispatched_to() -> None:
    router = Router()

    async def show(request: Request, job_id: str) -> Response:
        return JSONResponse({"id": job_id})

    router.add("GET", "/v1/jobs/{job_id}", show)
    request = _request("GET", "/v1/jobs/job_1/")
    response = await router.dispatch(request)
    assert response.body == b'{"id":"job_1"}'
    assert request.scope[ROUTE_SCOPE_KEY] == "/v1/jobs/{job_id}"
    missing = _request("GET", "/v1/nothing")
    assert (await router.dispatch(missing)).status_code == 404
    assert ROUTE_SCOPE_KEY not in missing.scope
    wrong_method = await router.dispatch(_request("DELETE", "/v1/jobs/job_1"))
    assert wrong_method.status_code == 405
