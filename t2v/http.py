"""HTTP plumbing shared by the functions: a small router and the one place where
exceptions become HTTP responses."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from t2v.errors import (
    MethodNotAllowedError,
    NotFoundError,
    T2VError,
)
from t2v.metrics import ROUTE_SCOPE_KEY, metrics_response

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Response]]


def error_response(error: T2VError) -> JSONResponse:
    return JSONResponse(error.to_body(), status_code=error.http_status, headers=error.headers)


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
            return await self._dispatch(request)
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
    """The URL clients reach the API at: configured, else the Host the request came to
    (as a proxy forwarded it, if one did)."""
    if public_url:
        return public_url
    # One pass over the raw ASGI headers (lower-case names): each Headers lookup would scan
    # and decode them all again, and this runs on every status read.
    found: dict[bytes, bytes] = {}
    for name, value in request.scope["headers"]:
        if name in _BASE_URL_HEADERS and name not in found:
            found[name] = value
    scheme = found.get(b"x-forwarded-proto", b"").decode("latin-1") or request.scope.get(
        "scheme", "http"
    )
    host = (found.get(b"x-forwarded-host") or found.get(b"host") or b"").decode("latin-1")
    return f"{scheme}://{host or request.url.netloc}"


_BASE_URL_HEADERS = frozenset({b"x-forwarded-proto", b"x-forwarded-host", b"host"})
