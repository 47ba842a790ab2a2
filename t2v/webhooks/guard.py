"""Where a webhook may be delivered: the SSRF guard.

A target is refused when it is not https (http only with `T2V_WEBHOOK_ALLOW_HTTP`), or when
its host is, or resolves to, an address that is not a public unicast one: loopback, private,
link-local (with the cloud metadata address 169.254.169.254), multicast, unspecified,
reserved, shared (100.64.0.0/10) or a ULA such as fd00:ec2::254. Hosts listed in
`T2V_WEBHOOK_ALLOWED_HOSTS` (tests, local use) are delivered to anyway.

The check runs twice: at submit on what the URL itself says (a literal address, `localhost`),
so a refused target is a 400 before anything is stored; and at each delivery on the
addresses the host resolves to then, and the delivery connects to one of those checked
addresses (never resolving again), so a name that rebinds to a private address after submit
is still refused. Redirects are never followed (`t2v.webhooks.sender`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from t2v.errors import InvalidRequestError

ALLOW_HTTP_ENV = "T2V_WEBHOOK_ALLOW_HTTP"
ALLOWED_HOSTS_ENV = "T2V_WEBHOOK_ALLOWED_HOSTS"
REFUSED_CODE = "webhook_refused"
# Addresses the cloud providers answer metadata on (most are link-local or ULA already).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses it resolves to (a stub in tests).
Resolver = Callable[[str, int], Awaitable[list[str]]]


class RefusedTargetError(InvalidRequestError):
    """The webhook may not be delivered there; the message says why."""

    code = REFUSED_CODE

    def __init__(self, message: str) -> None:
        super().__init__(message, code=REFUSED_CODE, field="webhook")


@dataclass(frozen=True)
class WebhookPolicy:
    allow_http: bool = False
    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookPolicy:
        env = os.environ if env is None else env
        hosts = env.get(ALLOWED_HOSTS_ENV, "")
        return cls(
            allow_http=env.get(ALLOW_HTTP_ENV, "").strip().lower() in {"1", "true", "yes"},
            allowed_hosts=frozenset(h.strip().lower() for h in hosts.split(",") if h.strip()),
        )


@functools.cache
def configured_policy() -> WebhookPolicy:
    """This process's policy, read once from its environment."""
    return WebhookPolicy.from_env()


@dataclass(frozen=True)
class Target:
    """A checked target: the URL's parts, and the addresses a delivery may connect to
    (empty for an allowed host, which is reached by its name)."""

    url: SplitResult
    host: str
    port: int
    addresses: tuple[str, ...]


def refusal_of(address: IPAddress) -> str | None:
    """Why a delivery may not go to `address`, or None when it is a public unicast one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refusal_of(address.ipv4_mapped)
    checks = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "not a public address"),
    )
    return next((why for refused, why in checks if refused), None)


def _parts(url: str, policy: WebhookPolicy) -> tuple[SplitResult, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedTargetError(f"the webhook URL cannot be read: {exc}") from exc
    schemes = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme.lower() not in schemes:
        raise RefusedTargetError(
            "webhooks are delivered over https only"
            + ("" if policy.allow_http else f" (http needs {ALLOW_HTTP_ENV} on the server)")
        )
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise RefusedTargetError("the webhook URL has no host")
    if parts.username is not None or parts.password is not None:
        raise RefusedTargetError("the webhook URL must not carry credentials")
    default_port = 443 if parts.scheme.lower() == "https" else 80
    return parts, host, port or default_port


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_submitted(url: str, policy: WebhookPolicy) -> None:
    """The check at submit, on the URL alone: 400 `webhook_refused` when it is refused."""
    _, host, _ = _parts(url, policy)
    if host in policy.allowed_hosts:
        return
    if host == "localhost" or host.endswith(".localhost"):
        raise RefusedTargetError(f"webhook host {host} is loopback")
    literal = _literal(host)
    why = refusal_of(literal) if literal is not None else None
    if why is not None:
        raise RefusedTargetError(f"webhook address {host} is {why}")


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_target(
    url: str, policy: WebhookPolicy, resolver: Resolver = system_resolver
) -> Target:
    """The check at delivery: every address the host resolves to must be allowed (the
    connection may go to any of them). `RefusedTargetError` otherwise, or when it does not
    resolve."""
    parts, host, port = _parts(url, policy)
    if host in policy.allowed_hosts:
        return Target(parts, host, port, ())
    literal = _literal(host)
    try:
        found = [host] if literal is not None else await resolver(host, port)
    except OSError as exc:
        raise RefusedTargetError(f"webhook host {host} does not resolve: {exc}") from exc
    if not found:
        raise RefusedTargetError(f"webhook host {host} does not resolve")
    for address in found:
        why = refusal_of(ipaddress.ip_address(address.split("%")[0]))
        if why is not None:
            raise RefusedTargetError(f"webhook host {host} resolves to {address}, {why}")
    return Target(parts, host, port, tuple(found))
