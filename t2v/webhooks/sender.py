"""One webhook attempt over HTTP: to an address the guard checked, no redirects followed."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx

from t2v.webhooks.guard import RefusedTargetError, Resolver, WebhookPolicy, resolve_target
from t2v.webhooks.guard import system_resolver as default_resolver

TIMEOUT_S = 10.0
USER_AGENT = "t2v-webhooks/1"


async def attempt(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    policy: WebhookPolicy,
    resolver: Resolver = default_resolver,
    replay: bool = False,
) -> dict[str, Any]:
    """Send once; the attempt as recorded: when, the HTTP status or the error, the latency."""
    started = time.monotonic()
    record: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(),
        "status_code": None,
        "error": None,
        "replay": replay,
    }
    try:
        target = await resolve_target(url, policy, resolver)
        request_url = httpx.URL(url)
        extensions: dict[str, Any] = {}
        send_headers = {
            **headers,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        if target.addresses:
            # Connect to the address just checked: resolving again could give another one.
            request_url = request_url.copy_with(host=target.addresses[0].split("%")[0])
            send_headers["host"] = target.url.netloc.rsplit("@", 1)[-1]
            extensions["sni_hostname"] = target.host
        response = await client.post(
            request_url, content=body, headers=send_headers, extensions=extensions
        )
        record["status_code"] = response.status_code
        if not response.is_success:
            record["error"] = f"HTTP {response.status_code}"
    except RefusedTargetError as exc:
        record["error"] = f"refused: {exc.message}"
    except httpx.HTTPError as exc:
        record["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    record["latency_ms"] = round((time.monotonic() - started) * 1000.0, 1)
    return record


def new_client() -> httpx.AsyncClient:
    # Redirects are not followed: a 3xx is an answer like any other, and never a way to
    # reach an address the guard did not check.
    return httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False)
