"""The key registry's smaller promises: defaults, errors that say where the problem is, the
key format and the CLI's help, checked in this process (test_auth.py has the main paths)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from t2v.auth import KeyRegistry, Principal, hash_key, main, new_key
from t2v.contract import admit, normalize, request_hash
from t2v.errors import InvalidRequestError, MalformedEventError, UnauthorizedError

KEY = "t2v_test-key"


def registry_json(**entry: str) -> str:
    return json.dumps({hash_key(KEY): {"tenant": "acme", **entry}})


def test_an_entry_without_a_role_is_a_user() -> None:
    registry = KeyRegistry.from_env({"T2V_API_KEYS": registry_json()})
    assert registry.authenticate(f"Bearer {KEY}") == Principal("acme", admin=False)


def test_the_environment_is_read_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T2V_API_KEYS", registry_json(role="admin"))
    monkeypatch.delenv("T2V_API_KEYS_FILE", raising=False)
    assert KeyRegistry.from_env().authenticate(f"Bearer {KEY}").admin


@pytest.mark.parametrize("variable", ["T2V_API_KEYS", "T2V_API_KEYS_FILE"])
def test_a_configuration_error_names_its_variable(tmp_path: Path, variable: str) -> None:
    bad = registry_json(role="root")
    if variable == "T2V_API_KEYS_FILE":
        path = tmp_path / "keys.json"
        path.write_text(bad)
        bad = str(path)
    with pytest.raises(ValueError) as raised:
        KeyRegistry.from_env({variable: bad})
    assert str(raised.value) == f"{variable}: role must be one of user, admin"


def test_both_variables_set_is_an_error_naming_both() -> None:
    with pytest.raises(ValueError, match="set T2V_API_KEYS or T2V_API_KEYS_FILE, not both"):
        KeyRegistry.from_env({"T2V_API_KEYS": registry_json(), "T2V_API_KEYS_FILE": "/x"})


def test_unauthorized_errors_say_what_to_send() -> None:
    registry = KeyRegistry.from_env({"T2V_API_KEYS": registry_json()})
    with pytest.raises(UnauthorizedError) as missing:
        registry.authenticate(None)
    assert missing.value.message == ("missing API key: send the header Authorization: Bearer <key>")
    with pytest.raises(UnauthorizedError) as wrong:
        registry.authenticate("Bearer nope")
    assert wrong.value.message == "the API key is not valid"


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("no spaces", "t2vtenant must match"),
        (None, "the event has no t2vtenant attribute naming its tenant"),
        ("lab", "the event names tenant 'lab', which has no API key"),
    ],
)
def test_event_tenant_errors_say_what_is_wrong(attribute: str | None, message: str) -> None:
    registry = KeyRegistry.from_env({"T2V_API_KEYS": registry_json()})
    with pytest.raises(MalformedEventError) as raised:
        registry.event_principal(attribute)
    assert raised.value.message.startswith(message)


def test_a_new_key_is_prefixed_and_carries_256_random_bits() -> None:
    key = new_key()
    assert re.fullmatch(r"t2v_[A-Za-z0-9_-]{43}", key)
    assert key != new_key()


def test_the_cli_explains_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["new-key", "--help"])
    usage = capsys.readouterr().out
    assert "--tenant" in usage and "the key sees every tenant's jobs" in usage
    with pytest.raises(SystemExit) as bad:
        main(["new-key", "--tenant", "no spaces"])
    assert bad.value.code == 2
    assert "--tenant must match" in capsys.readouterr().err
    main(["new-key", "--tenant", "acme"])
    out = capsys.readouterr().out
    assert out.startswith("API key (give it to the client; it is not stored anywhere): t2v_")
    assert "Add this entry to T2V_API_KEYS or the T2V_API_KEYS_FILE JSON object:" in out
    assert '"role": "user"' in out


def test_a_contract_error_keeps_the_field_it_is_about() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        normalize(b'{"prompt": "x", "width": 3}', profile="tiny")
    assert raised.value.field == "width"


def test_a_request_that_cannot_fit_the_gpu_is_refused_with_the_sizes() -> None:
    body = b'{"prompt": "x", "width": 848, "height": 480, "num_frames": 163}'
    with pytest.raises(InvalidRequestError) as raised:
        admit(normalize(body, profile="tiny"), profile="tiny", gpu="cpu-tiny")
    assert raised.value.code == "exceeds_gpu_memory"
    assert raised.value.message == (
        "this request needs about 32 GiB of GPU memory and the cpu-tiny has 24 GiB: "
        "lower the resolution or the number of frames"
    )
    small = normalize(
        b'{"prompt": "x", "width": 64, "height": 48, "num_frames": 7}', profile="tiny"
    )
    assert admit(small, profile="tiny", gpu="cpu-tiny") > 0
    # The same request on an H100 fits: the GPU named is the one checked.
    assert admit(normalize(body, profile="mochi-1"), profile="mochi-1", gpu="h100") > 0


def test_a_body_that_is_not_utf8_still_hashes() -> None:
    # Such a body is refused by the contract anyway; hashing it must not raise first.
    assert len(request_hash(b"\xff\xfe")) == 64


def test_job_ids_start_with_the_time_in_milliseconds() -> None:
    from t2v.jobs import new_job_id

    before = time.time_ns() // 1_000_000
    stamp = int(new_job_id()[4:16], 16)
    assert before <= stamp <= time.time_ns() // 1_000_000
