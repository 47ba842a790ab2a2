"""The local gateway: one host and port routing the API as the cluster's HTTPRoute does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from t2v.http import error_response, method_not_allowed, path_pattern
from t2v.prefer import MAX_WAIT_S

# The public routes and their methods, across the functions (tests/local checks this against
# the functions' own routers): another method on one of these paths is answered 405 here,
# with `Allow`, since no single function knows every method its path has.
PUBLIC_ROUTES: dict[str, tuple[str, ...]] = {
    "/": ("GET",),
    "/web/{name}": ("GET",),
    "/v1/jobs": ("GET", "POST"),
    "/v1/jobs/{job_id}": ("GET", "DELETE"),
    "/v1/jobs/{job_id}/cancel": ("POST",),
    "/v1/jobs/{job_id}/video": ("GET",),
    "/openapi.json": ("GET",),
    "/docs": ("GET",),
    "/docs/{name}": ("GET",),
}
_PUBLIC_PATTERNS = [
    (path_pattern(template), methods) for template, methods in PUBLIC_ROUTES.items()
]
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

# Headers that belong to one hop and must not be forwarded (RFC 9110 section 7.6.1).
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}


def route_for(method: str, path: str) -> str | None:
    """Which service serves this request, exactly as `knative/httproute.yaml` routes it."""
    if path in ("/", "/openapi.json", "/docs") or path.startswith(("/web/", "/docs/")):
        # The web page, the API's description and its docs page are served by status.
        return "status" if method in ("GET", "HEAD") else None
    if not path.startswith("/v1/jobs"):
        return None
    if method in ("POST", "DELETE"):
        return "submit"
    if method in ("GET", "HEAD"):
        return "status"
    return None


def allowed_methods(path: str) -> tuple[str, ...] | None:
    """The methods a public path serves, or None when it is not a public path."""
    path = path.rstrip("/") or "/"
    for pattern, methods in _PUBLIC_PATTERNS:
        if pattern.match(path):
            return methods
    return None


def create_gateway_app(services: Mapping[str, str]) -> Starlette:
    # Longer than the longest `Prefer: wait`, so a held answer gets through.
    client = httpx.AsyncClient(timeout=httpx.Timeout(MAX_WAIT_S + 30.0, connect=5.0))

    async def proxy(request: Request) -> Response:
        method, path = request.method, request.url.path
        allowed = allowed_methods(path)
        if (
            allowed is not None
            and method not in allowed
            and not (method == "HEAD" and "GET" in allowed)
        ):
            return error_response(method_not_allowed(method, path, allowed))
        service = route_for(method, path)
        if service is None:
            return JSONResponse(
                {"error": {"code": "not_found", "message": f"no route for {request.url.path}"}},
                status_code=404,
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["x-forwarded-host"] = request.headers.get("host", "")
        headers["x-forwarded-proto"] = request.url.scheme
        try:
            upstream = await client.request(
                request.method,
                services[service] + request.url.path,
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
        except httpx.HTTPError as exc:
            return JSONResponse(
                {"error": {"code": "unavailable", "message": f"{service} unreachable: {exc}"}},
                status_code=503,
            )
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Response(upstream.content, status_code=upstream.status_code, headers=out_headers)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/{path:path}", proxy, methods=_METHODS)],
        lifespan=lifespan,
    )
