"""HTTP plumbing shared by the functions and the local gateway: a small router, the one place
where exceptions become HTTP responses, and the limits every request is held to.

Every request body is at most `MAX_BODY_BYTES` (a job, a CloudEvent and a dead letter are a
few KiB; the prompts' 2,000 characters each stay well inside it). A larger `Content-Length` is
answered 413 `payload_too_large` before any of the body is read, and a body without one
(chunked) is cut off with the same answer as soon as it passes the limit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive

from t2v.errors import (
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    T2VError,
    UnauthorizedError,
)
from t2v.metrics import ROUTE_SCOPE_KEY, metrics_response

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Response]]
MAX_BODY_BYTES = 64 * 1024


def error_response(error: T2VError) -> JSONResponse:
    return JSONResponse(error.to_body(), status_code=error.http_status, headers=error.headers)


def _too_large() -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the request body is larger than {MAX_BODY_BYTES} bytes")


def checked_request(request: Request) -> Request:
    """The request, held to the limits every request shares: one `Authorization` header at
    most (a second one is refused rather than silently preferred), and a body of at most
    `MAX_BODY_BYTES`: a larger `Content-Length` is refused before the body is read, and a
    body that runs past the limit is refused as soon as it does."""
    headers = request.scope["headers"]
    if sum(1 for name, _ in headers if name == b"authorization") > 1:
        raise UnauthorizedError("send one Authorization header, not several")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    receive, received = request.receive, 0

    async def capped_receive() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > MAX_BODY_BYTES:
            raise _too_large()
        return message

    capped: Receive = capped_receive
    return Request(request.scope, capped)


def client_went_away(request: Request) -> Response:
    """What a request whose client left mid-body gets (no one reads it): one log line, not a
    traceback per dropped connection."""
    log.info("%s %s: the client disconnected mid-request", request.method, request.url.path)
    return error_response(
        InvalidRequestError("the client disconnected", code="client_disconnected")
    )


def path_pattern(template: str) -> re.Pattern[str]:
    """The regex of a route template: `{name}` captures one path segment."""
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


def method_not_allowed(method: str, path: str, allowed: Iterable[str]) -> MethodNotAllowedError:
    """405 `method_not_allowed` with the `Allow` header RFC 9110 requires (HEAD with GET)."""
    methods = set(allowed)
    if "GET" in methods:
        methods.add("HEAD")
    error = MethodNotAllowedError(f"{method} is not allowed on {path}")
    error.headers["Allow"] = ", ".join(sorted(methods))
    return error


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler


class Router:
    """Routes by method and path pattern (`{name}` captures one path segment)."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self.templates: tuple[str, ...] = ()

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._routes.append(_Route(method, path, path_pattern(path), handler))
        # Read on every request (metric labels): kept, not rebuilt per request.
        self.templates = tuple(dict.fromkeys(route.template for route in self._routes))

    def methods_by_template(self) -> dict[str, tuple[str, ...]]:
        """Each route template and the methods it serves (what a gateway routes)."""
        table: dict[str, tuple[str, ...]] = {}
        for route in self._routes:
            table[route.template] = (*table.get(route.template, ()), route.method)
        return table

    async def dispatch(self, request: Request) -> Response:
        try:
            return await self._dispatch(checked_request(request))
        except ClientDisconnect:
            return client_went_away(request)
        except T2VError as error:
            if error.http_status >= 500:
                log.warning("%s %s failed: %s", request.method, request.url.path, error.message)
            return error_response(error)

    async def _dispatch(self, request: Request) -> Response:
        # The raw scope, not request.url: building a URL object costs more than routing.
        path = request.scope["path"].rstrip("/") or "/"
        method = request.scope["method"]
        allowed: list[str] = []
        for route in self._routes:
            match = route.pattern.match(path)
            if match is None:
                continue
            if route.method != method and not (route.method == "GET" and method == "HEAD"):
                allowed.append(route.method)
                continue
            request.scope[ROUTE_SCOPE_KEY] = route.template
            return await route.handler(request, **match.groupdict())
        if allowed:
            raise method_not_allowed(method, path, allowed)
        raise NotFoundError(f"no route for {method} {path}")


async def health(request: Request) -> Response:
    """Liveness: the process answers (readiness, where it differs, is its own route)."""
    return JSONResponse({"status": "ok"})


async def metrics_endpoint(request: Request) -> Response:
    return metrics_response(request.headers.get("accept"))


def base_url(request: Request, public_url: str | None) -> str:
    """The URL clients reach the API at: the configured public URL, else the address this
    server listens on. Never the request's Host or X-Forwarded-* headers: any client can
    set those, and links built from them would point wherever the client said."""
    if public_url:
        return public_url
    host, port = request.scope.get("server") or ("127.0.0.1", 80)
    return f"{request.scope.get('scheme', 'http')}://{host}:{port}"
