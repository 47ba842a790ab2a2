"""The SSRF guard's decisions, on literal URLs and on what a stub resolver answers: nothing
here resolves a real name or connects anywhere."""

from __future__ import annotations

import pytest

from t2v.webhooks.guard import (
    REFUSED_CODE,
    RefusedTargetError,
    WebhookPolicy,
    check_submitted,
    resolve_target,
)

STRICT = WebhookPolicy()
REFUSED_ADDRESSES = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.1.1",
    "fe80::1",
    "fd00:ec2::254",
    "fc00::1",
    "224.0.0.1",
    "ff02::1",
    "0.0.0.0",
    "::",
    "240.0.0.1",
    "100.64.0.1",
    "100.100.100.200",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
]


def stub(*addresses: str):  # type: ignore[no-untyped-def]
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return list(addresses)

    resolver.asked = asked  # type: ignore[attr-defined]
    return resolver


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_literal_private_addresses_are_refused_at_submit(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(RefusedTargetError) as refused:
        check_submitted(f"https://{host}/hook", STRICT)
    assert refused.value.code == REFUSED_CODE
    assert refused.value.field == "webhook"


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
async def test_a_name_resolving_to_a_refused_address_is_refused_at_delivery(
    address: str,
) -> None:
    # Accepted at submit (a name says nothing yet); refused once it resolves (rebinding).
    check_submitted("https://hooks.example.com/x", STRICT)
    with pytest.raises(RefusedTargetError, match=address):
        await resolve_target("https://hooks.example.com/x", STRICT, stub("93.184.215.14", address))


async def test_a_public_address_is_delivered_to_by_that_address() -> None:
    resolver = stub("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    target = await resolve_target("https://hooks.example.com:8443/x", STRICT, resolver)
    assert target.addresses == ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    assert target.host == "hooks.example.com"
    assert resolver.asked == [("hooks.example.com", 8443)]


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "ftp://hooks.example.com/",
        "https://localhost/x",
        "https://a.localhost/x",
        "https://user:pw@hooks.example.com/",
        "https:///x",
    ],
)
def test_other_targets_refused_up_front(url: str) -> None:
    with pytest.raises(RefusedTargetError):
        check_submitted(url, STRICT)


async def test_an_unresolvable_name_is_refused() -> None:
    async def failing(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(RefusedTargetError, match="does not resolve"):
        await resolve_target("https://nowhere.example/", STRICT, failing)


async def test_allowed_hosts_and_http_are_settings() -> None:
    policy = WebhookPolicy.from_env(
        {"T2V_WEBHOOK_ALLOW_HTTP": "true", "T2V_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1, Local.Test"}
    )
    check_submitted("http://127.0.0.1:9000/hook", policy)
    check_submitted("http://local.test/hook", policy)
    resolver = stub("10.0.0.1")
    target = await resolve_target("http://local.test/hook", policy, resolver)
    assert target.addresses == ()  # reached by its name, the resolver never asked
    assert resolver.asked == []
    with pytest.raises(RefusedTargetError):
        check_submitted("http://127.0.0.2/hook", policy)
    assert not WebhookPolicy.from_env({}).allow_http
