"""Who sent an event, and which events each sender may send.

On the cluster Knative Eventing authenticates senders (OIDC tokens of their ServiceAccounts,
`authentication-oidc`) and its EventPolicies say who may send what (`knative/base/
event-policies.yaml`). Locally the broker plays that part (`t2v.broker.identity`): every
sender presents a token at the ingress, the broker refuses an unknown sender (401) and an
event type the sender may not send (403), stamps the sender's name on the event
(`t2vsender`) and signs each delivery with an HMAC shared with the functions, which check it
here before they act on an event.

A function learns which of the two it runs under from its environment: the signing key
(`T2V_EVENT_SIGNING_KEY`, given by `t2v local`) or `T2V_EVENT_AUTH=knative-oidc` (the
cluster's manifests). With neither, every event is refused: nothing runs unauthenticated by
omission.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cloudevents.http import CloudEvent

from t2v import events
from t2v.errors import T2VError, UnauthorizedError

SENDER_ATTRIBUTE = "t2vsender"
SIGNATURE_HEADER = "t2v-signature"
SIGNING_KEY_ENV = "T2V_EVENT_SIGNING_KEY"
SENDER_TOKEN_ENV = events.SENDER_TOKEN_ENV
EVENT_AUTH_ENV = "T2V_EVENT_AUTH"
KNATIVE_OIDC = "knative-oidc"

SUBMIT = "submit"
INFER = "infer"
PING_SOURCE = "pingsource"
TENANT_PREFIX = "tenant:"

# What each of the platform's own senders may send (the EventPolicies say the same). submit
# sends job.canceled and job.failed for changes it wrote to the store itself (a queued job
# canceled, the sweep's worker_lost); another system, as a tenant, sends only job.submit.
MAY_SEND: Mapping[str, frozenset[str]] = {
    SUBMIT: frozenset({events.JOB_REQUESTED, events.JOB_CANCELED, events.JOB_FAILED}),
    INFER: frozenset(events.LIFECYCLE_TYPES),
    PING_SOURCE: frozenset({events.PING}),
}
TENANT_MAY_SEND = frozenset({events.JOB_SUBMIT})


class ForbiddenEventError(T2VError):
    http_status = 403
    code = "event_type_not_allowed"


@dataclass(frozen=True)
class Sender:
    name: str

    @classmethod
    def of_tenant(cls, tenant: str) -> Sender:
        return cls(TENANT_PREFIX + tenant)

    @property
    def tenant(self) -> str | None:
        """The tenant another system sends as (its credential maps to it), else None."""
        tenant = self.name.removeprefix(TENANT_PREFIX)
        return tenant if tenant and tenant != self.name else None

    def may_send(self, event_type: str) -> bool:
        if self.tenant is not None:
            return event_type in TENANT_MAY_SEND
        return event_type in MAY_SEND.get(self.name, frozenset())


def check_may_send(sender: Sender, event_type: str) -> None:
    if not sender.may_send(event_type):
        raise ForbiddenEventError(f"sender {sender.name!r} may not send {event_type} events")


def signature(key: bytes, headers: Mapping[str, str], body: bytes) -> str:
    """HMAC-SHA256 over a binary-mode event: its `ce-*` headers and content type, and body."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    signed = sorted(
        (name.lower(), value)
        for name, value in headers.items()
        if name.lower().startswith("ce-") or name.lower() == "content-type"
    )
    for name, value in signed:
        mac.update(f"{name}:{value}\n".encode())
    mac.update(b"\n")
    mac.update(body)
    return mac.hexdigest()


@dataclass(frozen=True)
class DeliveryCheck:
    """A function's check of who sent a delivery (see the module docstring)."""

    signing_key: bytes | None
    trust_transport: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeliveryCheck:
        env = os.environ if env is None else env
        key = env.get(SIGNING_KEY_ENV, "")
        return cls(key.encode() if key else None, env.get(EVENT_AUTH_ENV) == KNATIVE_OIDC)

    def sender(self, headers: Mapping[str, str], body: bytes, event: CloudEvent) -> Sender:
        """The delivery's sender, when it may send this event; 401 or 403 otherwise."""
        if self.signing_key is not None:
            given = headers.get(SIGNATURE_HEADER, "")
            if not given or not hmac.compare_digest(
                given, signature(self.signing_key, headers, body)
            ):
                raise UnauthorizedError(
                    "the event does not carry the broker's signature", code="unsigned_event"
                )
            sender = Sender(str(event.get(SENDER_ATTRIBUTE) or ""))
            check_may_send(sender, str(event["type"]))
            return sender
        if self.trust_transport:
            # The Broker's EventPolicies admitted the sender for this type; a job.submit's
            # policy also pinned its t2vtenant to the sender's tenant.
            tenant = event.get(events.TENANT_EXTENSION)
            if event["type"] == events.JOB_SUBMIT and tenant:
                return Sender.of_tenant(str(tenant))
            return Sender(KNATIVE_OIDC)
        raise UnauthorizedError(
            f"events cannot be authenticated: set {SIGNING_KEY_ENV} (local broker) or "
            f"{EVENT_AUTH_ENV}={KNATIVE_OIDC} (Knative Eventing)",
            code="event_auth_not_configured",
        )


@functools.cache
def delivery_check() -> DeliveryCheck:
    return DeliveryCheck.from_env()


def event_sender(headers: Mapping[str, str], body: bytes, event: CloudEvent) -> Sender:
    """Who sent this delivery to a function (its event endpoints call this first)."""
    return delivery_check().sender(headers, body, event)
