"""The local broker as an ASGI app: Knative broker ingress plus the PingSources."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from t2v.broker.codec import read_event
from t2v.broker.config import BrokerConfig
from t2v.broker.delivery import DeliveryOverride
from t2v.broker.event_log import EventLog
from t2v.broker.ping import DEFAULT_NAMESPACE, run_ping_sources, validate_ping_sources
from t2v.broker.routing import LocalBroker, resolve_routes
from t2v.errors import MalformedEventError, UnavailableError


def create_broker(
    config: BrokerConfig,
    services: Mapping[str, str],
    *,
    event_log: Path | None = None,
    delivery_overrides: Mapping[str, DeliveryOverride] | None = None,
) -> LocalBroker:
    """A broker for ``config`` with Services resolved through ``services`` (name -> base URL).

    Raises ``BrokerConfigError`` when a subscriber or dead-letter sink has no URL.
    ``delivery_overrides`` maps a Trigger name (or ``"*"`` for all) to local replacements.
    """
    routes = resolve_routes(config, services, delivery_overrides)
    return LocalBroker(routes, EventLog(event_log))


def create_broker_app(
    config: BrokerConfig,
    services: Mapping[str, str],
    *,
    event_log: Path | None = None,
    delivery_overrides: Mapping[str, DeliveryOverride] | None = None,
    ping_interval_override_s: float | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> Starlette:
    """The broker's ingress (``POST /`` and ``POST /<namespace>/<broker>``) and ``GET /healthz``.

    Its lifespan starts the delivery workers and the PingSources and stops them on
    shutdown. The ``LocalBroker`` is available as ``app.state.broker``.
    """
    validate_ping_sources(config)
    broker = create_broker(
        config, services, event_log=event_log, delivery_overrides=delivery_overrides
    )

    async def ingress(request: Request) -> Response:
        if not broker.accepting:
            error = UnavailableError("the broker is shutting down")
            return JSONResponse(error.to_body(), status_code=error.http_status)
        body = await request.body()
        try:
            event = read_event(request.headers, body)
        except MalformedEventError as error:
            return JSONResponse(error.to_body(), status_code=error.http_status)
        await broker.publish(event)
        return Response(status_code=202)

    async def healthz(_: Request) -> Response:
        if broker.accepting:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await broker.start()
        pings = asyncio.create_task(
            run_ping_sources(config, broker.publish, ping_interval_override_s, namespace=namespace)
        )
        try:
            yield
        finally:
            pings.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pings
            await broker.stop()

    app = Starlette(
        routes=[
            Route("/", ingress, methods=["POST"]),
            Route(f"/{namespace}/{config.broker.name}", ingress, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.broker = broker
    return app
