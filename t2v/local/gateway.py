"""The local gateway: one host and port routing the API as the cluster's HTTPRoute does.

It forwards only the public routes, and only paths it can forward exactly as it matched them:
the functions' internal endpoints (event sinks, the sweep, metrics) share their ports with the
API, so a path that a client, a proxy or the function could read differently from the gateway
(an encoded slash or backslash, a dot segment) is refused, and what is forwarded is the path
that was matched, byte for byte, never decoded again on the way.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketClose

from t2v.errors import InvalidRequestError, NotFoundError, T2VError, UnavailableError
from t2v.http import checked_request, client_went_away, error_response, method_not_allowed
from t2v.prefer import MAX_WAIT_S

log = logging.getLogger(__name__)

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
    "/v1/jobs/{job_id}/events": ("GET",),
    "/openapi.json": ("GET",),
    "/docs": ("GET",),
    "/docs/{name}": ("GET",),
    "/v1/webhook-secret": ("GET",),
    "/v1/webhook-secret/rotate": ("POST",),
    "/v1/jobs/{job_id}/webhooks": ("GET",),
    "/v1/jobs/{job_id}/webhooks/{delivery_id}/replay": ("POST",),
}
# The routes notify serves (webhooks); the others go to submit (writes) and status (reads).
NOTIFY_ROUTES = frozenset(template for template in PUBLIC_ROUTES if "webhook" in template)
# A path parameter is one segment of RFC 3986 unreserved characters: the same bytes encoded
# and decoded, so the function reads exactly the path the gateway matched. Job ids and web
# file names are made of these; any other path is not a public one.
_SEGMENT = "[A-Za-z0-9._~-]+"
_PUBLIC_PATTERNS = [
    (re.compile("^" + re.sub(r"\{\w+\}", _SEGMENT, template) + "$"), template, methods)
    for template, methods in PUBLIC_ROUTES.items()
]
# Encoded "/" and "\" (and a literal "\"): a segment that some reader splits and another
# does not.
_AMBIGUOUS_SEPARATOR = re.compile(r"%2f|%5c|\\", re.IGNORECASE)
_DOT_SEGMENTS = {".", "..", "%2e", "%2e.", ".%2e", "%2e%2e"}

# Headers that belong to one hop and must not be forwarded (RFC 9110 section 7.6.1).
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}
_HOP_BY_HOP_RAW = {name.encode() for name in _HOP_BY_HOP}
_FORWARDED_FOR = b"x-forwarded-for"


def public_path(raw_path: bytes) -> str:
    """The path to match and forward: the request's own bytes, with a trailing "/" dropped.
    Raises `InvalidRequestError` (`invalid_path`) for an encoded separator or a dot segment,
    whatever the route: such a path means different things to different readers."""
    path = raw_path.decode("latin-1")
    if _AMBIGUOUS_SEPARATOR.search(path) or any(
        segment.lower() in _DOT_SEGMENTS for segment in path.split("/")
    ):
        raise InvalidRequestError(
            "the path has an encoded separator or a dot segment", code="invalid_path"
        )
    return path.rstrip("/") or "/"


def _public_route(path: str) -> tuple[str, tuple[str, ...]] | None:
    for pattern, template, methods in _PUBLIC_PATTERNS:
        if pattern.match(path):
            return template, methods
    return None


def allowed_methods(path: str) -> tuple[str, ...] | None:
    """The methods a public path serves, or None when it is not a public path."""
    route = _public_route(path)
    return route[1] if route is not None else None


def route_for(method: str, path: str) -> str | None:
    """Which service serves this public path, exactly as `knative/base/httproute.yaml`
    routes it, or None when it is not a public path or not served with this method."""
    route = _public_route(path)
    if route is None:
        return None
    template, allowed = route
    if method == "HEAD" and "GET" in allowed:
        method = "GET"
    if method not in allowed:
        return None
    if template in NOTIFY_ROUTES:
        return "notify"
    return "submit" if method in ("POST", "DELETE") else "status"


def _forwarded_headers(request: Request) -> list[tuple[bytes, bytes]]:
    # The raw bytes, as the client sent them: the function judges them (a non-ASCII byte in
    # Authorization is its 401), and nothing here decodes and re-encodes them.
    headers = [(k, v) for k, v in request.scope["headers"] if k not in _HOP_BY_HOP_RAW]
    # The client's address appended to X-Forwarded-For, as a proxy does: the functions
    # believe this one entry (T2V_TRUSTED_PROXY_HOPS=1), never those the client wrote.
    forwarded = [v for k, v in headers if k == _FORWARDED_FOR]
    peer = request.scope.get("client")
    own = (peer[0] if peer else "unknown").encode("latin-1")
    headers = [(k, v) for k, v in headers if k != _FORWARDED_FOR]
    return [*headers, (_FORWARDED_FOR, b", ".join([*forwarded, own]))]


def _streamed(upstream: httpx.Response) -> bool:
    """An answer passed on as it arrives (Server-Sent Events), not read whole first."""
    content_type: str = upstream.headers.get("content-type", "")
    return content_type.startswith("text/event-stream")


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        # The function went away mid-stream: end ours too (the client reconnects).
        log.info("event stream from upstream cut: %s", exc)
    finally:
        # Also when the client went away (a cancel): shielded, so the upstream connection
        # is closed rather than left half-read.
        with anyio.CancelScope(shield=True):
            await upstream.aclose()


def create_gateway_app(services: Mapping[str, str | Sequence[str]]) -> Starlette:
    """`services`: each service's URL, or its processes' URLs, taken in turn (round-robin)."""
    # Longer than the longest `Prefer: wait` (and an event stream's keep-alive), so a held
    # answer gets through.
    client = httpx.AsyncClient(timeout=httpx.Timeout(MAX_WAIT_S + 30.0, connect=5.0))
    turns: dict[str, Iterator[str]] = {
        name: itertools.cycle([urls] if isinstance(urls, str) else list(urls))
        for name, urls in services.items()
    }

    async def forward(request: Request) -> Response:
        method = request.method
        path = public_path(request.scope.get("raw_path") or request.scope["path"].encode())
        allowed = allowed_methods(path)
        if allowed is None:
            raise NotFoundError(f"no route for {method} {path}")
        service = route_for(method, path)
        if service is None:
            raise method_not_allowed(method, path, allowed)
        request = checked_request(request)
        query = request.scope["query_string"]
        try:
            url = httpx.URL(next(turns[service])).copy_with(
                raw_path=path.encode("ascii") + (b"?" + query if query else b"")
            )
        except httpx.InvalidURL as exc:
            raise InvalidRequestError(f"the query string is not valid: {exc}") from exc
        outgoing = client.build_request(
            method, url, headers=_forwarded_headers(request), content=await request.body()
        )
        try:
            upstream = await client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            raise UnavailableError(f"{service} unreachable: {exc}") from exc
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        if _streamed(upstream):
            return StreamingResponse(
                _relay(upstream), status_code=upstream.status_code, headers=out_headers
            )
        try:
            body = await upstream.aread()
        except httpx.HTTPError as exc:
            raise UnavailableError(f"{service} unreachable: {exc}") from exc
        finally:
            await upstream.aclose()
        return Response(body, status_code=upstream.status_code, headers=out_headers)

    async def proxy(request: Request) -> Response:
        try:
            return await forward(request)
        except ClientDisconnect:
            return client_went_away(request)
        except T2VError as error:
            return error_response(error)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    async def unrouted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # a WebSocket: nothing public speaks it
            await WebSocketClose()(scope, receive, send)
            return
        response = await proxy(Request(scope, receive))
        await response(scope, receive, send)

    app = Starlette(routes=[Route("/healthz", healthz)], lifespan=lifespan)
    # Every other path, whatever its bytes, goes to `proxy`, which judges it and answers
    # JSON: a catch-all route's pattern would not match a path with a decoded newline
    # (`%0A`), which Starlette then answered with its own plain-text 404.
    app.router.default = unrouted
    return app
