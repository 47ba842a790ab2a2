"""What a probe of the local platform's public port (API keys on, two tenants) found, each
reproduced with raw HTTP: `http.client` sends the path and headers exactly as written, where
httpx would normalise them first (issue 18, item 4)."""

from __future__ import annotations

import http.client
import json
import socket
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from t2v.auth import hash_key
from t2v.http import MAX_BODY_BYTES
from t2v.settings import Settings
from t2v.worker.publish import video_key
from tests.e2e.harness import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KEYS = {"alice": "key-alice-1", "bob": "key-bob-2"}
SMALL = {"width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 2}
SUBMIT_EVENT = {
    "ce-specversion": "1.0",
    "ce-id": "probe-1",
    "ce-source": "/probe",
    "ce-type": "dev.t2v.job.submit",
    "ce-t2vtenant": "alice",
    "content-type": "application/json",
}


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who]}"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Platform]:
    registry = {hash_key(key): {"tenant": who, "role": "user"} for who, key in KEYS.items()}
    env = {"T2V_API_KEYS": json.dumps(registry)}
    running = Platform(tmp_path_factory.mktemp("probe"), tiny_model_dir, env).start()
    try:
        yield running
    finally:
        running.stop()


def address(base: str) -> tuple[str, int]:
    url = urlsplit(base)
    assert url.hostname is not None and url.port is not None, base
    return url.hostname, url.port


def raw(
    base: str,
    method: str,
    path: str,
    headers: Mapping[str, str] | list[tuple[str, str]] = (),  # type: ignore[assignment]
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """One request with the path and header bytes exactly as given."""
    host, port = address(base)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        items = list(headers.items() if isinstance(headers, Mapping) else headers)
        own_host = any(name.lower() == "host" for name, _ in items)
        conn.putrequest(method, path, skip_host=own_host, skip_accept_encoding=True)
        for name, value in items:
            # UTF-8 bytes on the wire, as a client sends a non-ASCII character.
            conn.putheader(name, value.encode("utf-8"))
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def assert_json_error(status: int, headers: dict[str, str], body: bytes, code: str) -> None:
    assert headers["content-type"].startswith("application/json"), (status, body)
    assert json.loads(body)["error"]["code"] == code, (status, body)


def jobs_of(platform: Platform, who: str) -> list[dict[str, Any]]:
    response = platform.client.get(f"{platform.url}/v1/jobs", headers=auth(who))
    response.raise_for_status()
    return list(response.json()["data"])


INTERNAL = ("events", "sweep", "metrics", "dead-letter")
ESCAPES = (
    "/v1/jobs/..%2f..%2f{name}",
    "/v1/jobs/..%2F..%2F{name}",
    "/v1/jobs/%2e%2e/%2e%2e/{name}",
    "/v1/jobs/../../{name}",
    "/v1/jobs/..%5c..%5c{name}",
    "/web/..%2f{name}",
)


@pytest.mark.parametrize("name", INTERNAL)
@pytest.mark.parametrize("escape", ESCAPES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_internal_endpoints_are_not_reachable_through_a_public_path(
    platform: Platform, name: str, escape: str, method: str
) -> None:
    status, headers, body = raw(
        platform.url, method, escape.format(name=name), SUBMIT_EVENT, b'{"prompt": "pwned"}'
    )
    assert_json_error(status, headers, body, "invalid_path")
    assert status == 400


@pytest.mark.parametrize("name", INTERNAL)
def test_internal_endpoints_are_not_public_routes(platform: Platform, name: str) -> None:
    for method in ("GET", "POST"):
        status, headers, body = raw(platform.url, method, f"/{name}", SUBMIT_EVENT, b"{}")
        assert status == 404
        assert_json_error(status, headers, body, "not_found")


def test_the_traversal_made_no_job_and_ran_no_sweep(platform: Platform) -> None:
    raw(platform.url, "POST", "/v1/jobs/..%2f..%2fevents", SUBMIT_EVENT, b'{"prompt": "pwned"}')
    assert all(job["params"]["prompt"] != "pwned" for job in jobs_of(platform, "alice"))
    assert not [e for e in platform.events() if e.get("id") == SUBMIT_EVENT["ce-id"]]


def test_a_nul_in_the_path_is_a_json_404(platform: Platform) -> None:
    status, headers, body = raw(platform.url, "GET", "/v1/jobs/%00", auth("alice"))
    assert status == 404
    assert_json_error(status, headers, body, "not_found")


def test_non_ascii_header_bytes_get_the_functions_answer(platform: Platform) -> None:
    bad_key = {"Authorization": f"Bearer {KEYS['alice']}é"}
    status, headers, body = raw(platform.url, "GET", "/v1/jobs", bad_key)
    assert status == 401
    assert_json_error(status, headers, body, "unauthorized")
    ranged = {**auth("alice"), "Range": "bytes=\u0665-5"}  # an Arabic-Indic five
    status, headers, body = raw(platform.url, "GET", "/v1/jobs/job_nosuchjob", ranged)
    assert status == 404
    assert_json_error(status, headers, body, "not_found")


def test_duplicate_authorization_headers_are_refused(platform: Platform) -> None:
    twice = [
        ("Authorization", f"Bearer {KEYS['bob']}"),
        ("Authorization", f"Bearer {KEYS['alice']}"),
    ]
    for base in (platform.url, platform.function_url("status")):
        status, headers, body = raw(base, "GET", "/v1/jobs", twice)
        assert status == 401
        assert_json_error(status, headers, body, "unauthorized")


def _declared_but_unsent(base: str, path: str, length: int) -> tuple[int, dict[str, Any]]:
    """Headers that promise ``length`` bytes, and none of them: the answer must not wait."""
    host, port = address(base)
    with socket.create_connection((host, port), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {KEYS['alice']}\r\nContent-Length: {length}\r\n\r\n"
        )
        sock.sendall(head.encode())
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


def _chunked(base: str, path: str, total: int) -> tuple[int, dict[str, Any]]:
    host, port = address(base)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    chunk = b"x" * 8192
    try:
        conn.putrequest("POST", path)
        conn.putheader("Authorization", f"Bearer {KEYS['alice']}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        sent = 0
        try:
            while sent < total:
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the end: the answer is already there
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("target", ["gateway", "submit"])
def test_bodies_past_the_limit_are_413_before_they_are_read(
    platform: Platform, target: str
) -> None:
    base = platform.url if target == "gateway" else platform.function_url("submit")
    status, body = _declared_but_unsent(base, "/v1/jobs", 20 * 1024 * 1024)
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    status, body = _chunked(base, "/v1/jobs", 4 * MAX_BODY_BYTES)
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    padded = json.dumps({"prompt": "x", **SMALL, "pad": " " * MAX_BODY_BYTES}).encode()
    status, headers, answer = raw(base, "POST", "/v1/jobs", auth("alice"), padded)
    assert status == 413
    assert_json_error(status, headers, answer, "payload_too_large")


def test_clients_dropping_mid_body_leave_no_tracebacks(platform: Platform) -> None:
    for base in (platform.url, platform.function_url("submit")):
        host, port = address(base)
        for _ in range(50):
            with socket.create_connection((host, port), timeout=10) as sock:
                sock.sendall(
                    b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + f"Authorization: Bearer {KEYS['alice']}\r\n".encode()
                    + b'Content-Length: 1000\r\n\r\n{"prompt": '
                )
    # A request after them on each server: the dropped ones were taken and answered first.
    for base in (platform.url, platform.function_url("submit")):
        assert raw(base, "GET", "/healthz")[0] == 200
    logs = [platform.data_dir / "platform.log", *(platform.data_dir / "logs").glob("*.log")]
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    assert "Traceback" not in text
    assert text.count("ClientDisconnect") == 0


def test_links_come_from_the_public_url_not_the_host_header(platform: Platform) -> None:
    body = json.dumps({"prompt": "links", **SMALL}).encode()
    headers = {
        **auth("bob"),
        "Host": "evil.example",
        "X-Forwarded-Host": "evil.example",
        "Content-Type": "application/json",
    }
    status, answer_headers, answer = raw(platform.url, "POST", "/v1/jobs", headers, body)
    assert status == 202, answer
    assert answer_headers["location"].startswith(platform.url + "/v1/jobs/")
    links = json.loads(answer)["links"]
    assert all(str(link).startswith(platform.url) for link in links.values()), links


def test_files_holding_prompts_are_the_users_alone(platform: Platform) -> None:
    platform.submit({"prompt": "private", **SMALL}, headers=auth("alice")).raise_for_status()
    for name in ("jobs.db", "events.jsonl", "local.json", "logs/submit.log"):
        mode = stat.S_IMODE((platform.data_dir / name).stat().st_mode)
        assert mode & 0o077 == 0, (name, oct(mode))


def test_start_up_line_says_keys_are_checked(platform: Platform) -> None:
    text = (platform.data_dir / "platform.log").read_text()
    assert "no API keys are checked" not in text
    assert "API keys are checked" in text


def _finished(platform: Platform, who: str, body: dict[str, Any]) -> dict[str, Any]:
    created = platform.submit(body, headers=auth(who))
    assert created.status_code == 202, created.text
    url = f"{platform.url}/v1/jobs/{created.json()['id']}"
    return platform.wait_for(
        created.json()["id"],
        lambda job: job["status"] in ("succeeded", "failed", "canceled"),
        fetch=lambda: dict(platform.client.get(url, headers=auth(who)).json()),
    )


def _check_odd_ranges(platform: Platform, path: str) -> None:
    """A Range with a non-ASCII digit gets at the gateway what status gives it, never a 5xx;
    a good one is still a 206, and one past the end a 416."""
    for value, expected in (("bytes=\u0665-5", None), ("bytes=0-9", 206), ("bytes=99999999-", 416)):
        headers = {**auth("alice"), "Range": value}
        direct = raw(platform.function_url("status"), "GET", path, headers)[0]
        through = raw(platform.url, "GET", path, headers)[0]
        assert through == direct < 500, (value, through, direct)
        assert expected is None or through == expected, (value, through)


def test_the_video_cache_is_per_tenant(platform: Platform) -> None:
    body = {"prompt": "the same prompt", "seed": 11, **SMALL}
    done = _finished(platform, "alice", body)
    assert done["status"] == "succeeded"
    _check_odd_ranges(platform, f"/v1/jobs/{done['id']}/video")
    hits = platform.infer_stats()["cache_hits"]
    # Bob asks for the same: a fresh generation, so he learns nothing of Alice's request.
    assert _finished(platform, "bob", body)["status"] == "succeeded"
    assert platform.infer_stats()["cache_hits"] == hits
    # Alice again: her own cache still answers.
    assert _finished(platform, "alice", body)["status"] == "succeeded"
    assert platform.infer_stats()["cache_hits"] == hits + 1


def test_a_shared_cache_is_a_setting() -> None:
    key = "videos/" + "a" * 64 + ".mp4"
    assert video_key(key, "alice", shared=False) == "videos/alice/" + "a" * 64 + ".mp4"
    assert video_key(key, "alice", shared=True) == key
    assert Settings.from_env({}).share_video_cache is False
    assert Settings.from_env({"T2V_SHARE_VIDEO_CACHE": "true"}).share_video_cache is True
