"""The local broker as an ASGI app: Knative broker ingress plus the PingSources."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from cloudevents.http import CloudEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from t2v.broker.codec import read_event
from t2v.broker.config import BrokerConfig
from t2v.broker.delivery import DeliveryOverride
from t2v.broker.event_log import EventLog
from t2v.broker.identity import SenderRegistry
from t2v.broker.ping import DEFAULT_NAMESPACE, run_ping_sources, validate_ping_sources
from t2v.broker.routing import LocalBroker, resolve_routes
from t2v.errors import T2VError, UnavailableError
from t2v.event_auth import PING_SOURCE, Sender, check_may_send
from t2v.events import JOB_SUBMIT, TENANT_EXTENSION


def create_broker(
    config: BrokerConfig,
    services: Mapping[str, str],
    *,
    event_log: Path | None = None,
    delivery_overrides: Mapping[str, DeliveryOverride] | None = None,
    signing_key: bytes | None = None,
) -> LocalBroker:
    """A broker for ``config`` with Services resolved through ``services`` (name -> base URL).

    Raises ``BrokerConfigError`` when a subscriber or dead-letter sink has no URL.
    ``delivery_overrides`` maps a Trigger name (or ``"*"`` for all) to local replacements.
    """
    routes = resolve_routes(config, services, delivery_overrides)
    return LocalBroker(routes, EventLog(event_log), signing_key=signing_key)


def create_broker_app(
    config: BrokerConfig,
    services: Mapping[str, str],
    *,
    event_log: Path | None = None,
    delivery_overrides: Mapping[str, DeliveryOverride] | None = None,
    ping_interval_override_s: float | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    senders: SenderRegistry | None = None,
    signing_key: bytes | None = None,
) -> Starlette:
    """The broker's ingress (``POST /`` and ``POST /<namespace>/<broker>``) and ``GET /healthz``.

    Its lifespan starts the delivery workers and the PingSources and stops them on
    shutdown. The ``LocalBroker`` is available as ``app.state.broker``.

    With ``senders`` the ingress plays Knative's OIDC and EventPolicy part
    (`t2v.event_auth`): an unknown sender is refused (401), an event type it may not send
    too (403), a `job.submit` is stamped with its sender's tenant, and every event with its
    sender; with ``signing_key`` each delivery is signed. `t2v local` sets both; without
    them (the broker's own tests) the ingress takes any event.
    """
    validate_ping_sources(config)
    broker = create_broker(
        config,
        services,
        event_log=event_log,
        delivery_overrides=delivery_overrides,
        signing_key=signing_key,
    )

    def authorize(request: Request, event: CloudEvent) -> Sender | None:
        if senders is None:
            return None
        sender = senders.identify(request.headers.get("authorization"))
        check_may_send(sender, str(event["type"]))
        if sender.tenant is not None and event["type"] == JOB_SUBMIT:
            # The tenant is the credential's, never the one the event names.
            event[TENANT_EXTENSION] = sender.tenant
        return sender

    async def ingress(request: Request) -> Response:
        if not broker.accepting:
            error = UnavailableError("the broker is shutting down")
            return JSONResponse(error.to_body(), status_code=error.http_status)
        body = await request.body()
        try:
            event = read_event(request.headers, body)
            sender = authorize(request, event)
        except T2VError as error:
            return JSONResponse(
                error.to_body(), status_code=error.http_status, headers=error.headers
            )
        await broker.publish(event, sender)
        return Response(status_code=202)

    async def publish_ping(event: CloudEvent) -> None:
        await broker.publish(event, Sender(PING_SOURCE))

    async def healthz(_: Request) -> Response:
        if broker.accepting:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await broker.start()
        pings = asyncio.create_task(
            run_ping_sources(config, publish_ping, ping_interval_override_s, namespace=namespace)
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
