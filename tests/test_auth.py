"""API keys: hashed registry from the environment or a file, Bearer parsing, open mode,
tenant visibility, CloudEvent tenants and the key-making CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from t2v.auth import KeyRegistry, Principal, hash_key, main
from t2v.errors import MalformedEventError, UnauthorizedError

ACME_KEY = "t2v_acme-secret"
ADMIN_KEY = "t2v_admin-secret"
REGISTRY_JSON = json.dumps(
    {
        hash_key(ACME_KEY): {"tenant": "acme", "role": "user"},
        hash_key(ADMIN_KEY): {"tenant": "ops", "role": "admin"},
    }
)


@pytest.fixture
def registry() -> KeyRegistry:
    return KeyRegistry.from_env({"T2V_API_KEYS": REGISTRY_JSON})


def test_a_known_key_authenticates_as_its_tenant(registry: KeyRegistry) -> None:
    assert not registry.open_mode
    assert registry.authenticate(f"Bearer {ACME_KEY}") == Principal("acme", admin=False)
    assert registry.authenticate(f"bearer  {ADMIN_KEY} ") == Principal("ops", admin=True)


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", f"Basic {ACME_KEY}", ACME_KEY, "Bearer t2v_wrong",
     f"Bearer {hash_key(ACME_KEY)}"],
)  # fmt: skip
def test_a_missing_or_wrong_key_is_unauthorized(registry: KeyRegistry, header: str | None) -> None:
    with pytest.raises(UnauthorizedError) as raised:
        registry.authenticate(header)
    assert raised.value.code == "unauthorized" and raised.value.http_status == 401
    assert ACME_KEY not in str(raised.value)


def test_keys_load_from_a_mounted_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(REGISTRY_JSON)
    registry = KeyRegistry.from_env({"T2V_API_KEYS_FILE": str(path)})
    assert registry.authenticate(f"Bearer {ACME_KEY}").tenant == "acme"


def test_no_keys_means_open_mode_as_an_admin_of_tenant_local() -> None:
    registry = KeyRegistry.from_env({})
    assert registry.open_mode
    assert registry.authenticate(None) == Principal("local", admin=True)
    assert registry.authenticate("Bearer anything") == Principal("local", admin=True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"T2V_API_KEYS": "{not json"}, "not valid JSON"),
        ({"T2V_API_KEYS": "[]"}, "JSON object"),
        ({"T2V_API_KEYS": json.dumps({"ABC": {"tenant": "a"}})}, "sha256"),
        ({"T2V_API_KEYS": json.dumps({hash_key("k"): {"tenant": "a b"}})}, "tenant"),
        ({"T2V_API_KEYS": json.dumps({hash_key("k"): {"tenant": "a", "role": "root"}})}, "role"),
        ({"T2V_API_KEYS": REGISTRY_JSON, "T2V_API_KEYS_FILE": "/x"}, "not both"),
        ({"T2V_API_KEYS_FILE": "/nonexistent/keys.json"}, "cannot be read"),
    ],
)
def test_bad_configuration_fails_at_start_up(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KeyRegistry.from_env(env)


def test_a_tenant_sees_only_its_own_jobs_and_an_admin_sees_all(registry: KeyRegistry) -> None:
    acme = registry.authenticate(f"Bearer {ACME_KEY}")
    admin = registry.authenticate(f"Bearer {ADMIN_KEY}")
    assert registry.can_see(acme, "acme")
    assert not registry.can_see(acme, "globex")
    assert KeyRegistry.can_see(admin, "globex") and KeyRegistry.can_see(admin, "acme")


def test_a_submit_event_belongs_to_the_tenant_it_names(registry: KeyRegistry) -> None:
    assert registry.event_principal("acme") == Principal("acme", admin=False)
    assert registry.event_principal("ops") == Principal("ops", admin=False)
    for attribute, code in [(None, "missing_tenant"), ("globex", "unknown_tenant"),
                            ("bad tenant", "invalid_tenant")]:  # fmt: skip
        with pytest.raises(MalformedEventError) as raised:
            registry.event_principal(attribute)
        assert raised.value.code == code and raised.value.field == "t2vtenant"
    open_registry = KeyRegistry.from_env({})
    assert open_registry.event_principal(None) == Principal("local", admin=False)
    assert open_registry.event_principal("lab") == Principal("lab", admin=False)


def test_new_key_prints_a_key_whose_entry_authenticates(capsys: pytest.CaptureFixture[str]) -> None:
    main(["new-key", "--tenant", "acme", "--admin"])
    out = capsys.readouterr().out
    key = out.splitlines()[0].rsplit(" ", 1)[1]
    entry = json.loads(out[out.index("{") :])
    assert entry == {hash_key(key): {"tenant": "acme", "role": "admin"}}
    registry = KeyRegistry.from_env({"T2V_API_KEYS": json.dumps(entry)})
    assert registry.authenticate(f"Bearer {key}") == Principal("acme", admin=True)
    main(["new-key", "--tenant", "acme"])
    assert capsys.readouterr().out.splitlines()[0] != out.splitlines()[0]


def test_the_cli_runs_as_a_module_and_rejects_a_bad_tenant() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "t2v.auth", "new-key", "--tenant", "acme"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ok.returncode == 0 and '"role": "user"' in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "t2v.auth", "new-key", "--tenant", "no spaces"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "--tenant" in bad.stderr
