"""API-key guessing is slowed: failed authentications are limited per client address
(`t2v.keyguard`), through the local gateway, which appends the client's address to
X-Forwarded-For for the functions to believe one hop of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from t2v.auth import KeyRegistry, Principal, hash_key
from t2v.errors import RateLimitedError, UnauthorizedError
from t2v.keyguard import KeyGuard, client_address
from tests.e2e.harness import Platform

KEY = "t2v_guessing-alice-key"
RATE = 3


@pytest.mark.parametrize(
    ("forwarded_for", "hops", "client"),
    [
        ([], 0, "10.0.0.1"),
        (["203.0.113.9"], 0, "10.0.0.1"),  # no trusted proxy: the header is the client's word
        (["203.0.113.9"], 1, "203.0.113.9"),
        (["198.51.100.1, 203.0.113.9"], 1, "203.0.113.9"),  # the client wrote the first
        (["198.51.100.1", "203.0.113.9, 192.0.2.7"], 2, "203.0.113.9"),
        ([], 1, "10.0.0.1"),  # fewer entries than hops: the socket's peer
    ],
)
def test_the_client_is_the_entry_the_outermost_trusted_proxy_appended(
    forwarded_for: list[str], hops: int, client: str
) -> None:
    assert client_address(("10.0.0.1", 5555), forwarded_for, hops) == client


@pytest.mark.parametrize(
    "env", [{"T2V_FAILED_KEY_RATE": "often"}, {"T2V_TRUSTED_PROXY_HOPS": "-1"}]
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(env))):
        KeyGuard.from_env(env)


def _wrong_key_request() -> Request:
    headers = [(b"authorization", b"Bearer t2v_not-a-key")]
    return Request({"type": "http", "headers": headers, "client": ("10.0.0.9", 1)})


@pytest.mark.parametrize(("rate", "refused"), [("2/minute", True), ("off", False)])
async def test_off_counts_nothing(rate: str, refused: bool) -> None:
    # The cluster sets off: there every request's peer is the pod's own queue-proxy.
    keys = KeyRegistry({hash_key(KEY): Principal("alice", admin=False)})
    guard = KeyGuard.from_env({"T2V_FAILED_KEY_RATE": rate})
    answers = []
    for _ in range(5):
        try:
            await guard.authenticate(keys, _wrong_key_request())
        except (RateLimitedError, UnauthorizedError) as error:
            answers.append(type(error))
    assert (RateLimitedError in answers) is refused
    assert answers.count(UnauthorizedError) == (2 if refused else 5)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Platform]:
    env = {
        "T2V_API_KEYS": json.dumps({hash_key(KEY): {"tenant": "alice", "role": "user"}}),
        "T2V_FAILED_KEY_RATE": f"{RATE}/minute",
    }
    running = Platform(tmp_path_factory.mktemp("guessing"), tiny_model_dir, env).start()
    try:
        yield running
    finally:
        running.stop()


def _list(platform: Platform, base: str, key: str | None, **headers: str) -> httpx.Response:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return platform.client.get(f"{base}/v1/jobs", headers=headers)


@pytest.mark.e2e
@pytest.mark.slow
def test_failed_keys_past_the_rate_are_429_for_that_address_only(platform: Platform) -> None:
    gateway, status = platform.url, platform.function_url("status")
    # A client rotating what it writes in X-Forwarded-For is still one address.
    guesses = [
        _list(platform, gateway, f"guess-{n}", **{"X-Forwarded-For": f"198.51.100.{n}"})
        for n in range(RATE)
    ]
    assert [answer.status_code for answer in guesses] == [401] * RATE
    # No key at all is no guess: not counted, still a 401.
    assert _list(platform, gateway, None).status_code == 401
    refused = _list(platform, gateway, "guess-last")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_failed_keys"
    assert int(refused.headers["retry-after"]) >= 1
    # While refused, a right key cannot be told from a wrong one.
    assert _list(platform, gateway, KEY).status_code == 429
    # Another address (as a trusted proxy names it to status) has its own allowance.
    elsewhere = {"X-Forwarded-For": "203.0.113.50"}
    assert _list(platform, status, "guess-other", **elsewhere).status_code == 401
    assert _list(platform, status, KEY, **elsewhere).status_code == 200
    # submit counts on its own, with the same rule.
    submit = platform.client.post(
        f"{gateway}/v1/jobs", json={"prompt": "x"}, headers={"Authorization": "Bearer nope"}
    )
    assert submit.status_code == 401
