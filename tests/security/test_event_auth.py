"""Forged events against the real local platform, with API keys on and two tenants
(issue 18, item 4, high: "nothing authenticates lifecycle events").

Each test reproduces one finding of the probe: before the fix the broker took any event
from anyone and status applied it. The events are written out by hand, as an attacker
would, and posted over real HTTP.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from t2v.auth import hash_key
from tests.e2e.harness import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KEY_A, KEY_B, KEY_ADMIN = "t2v_key_of_tenant_a", "t2v_key_of_tenant_b", "t2v_key_of_ops_admin"
API_KEYS = {
    hash_key(KEY_A): {"tenant": "tenantA", "role": "user"},
    hash_key(KEY_B): {"tenant": "tenantB", "role": "user"},
    hash_key(KEY_ADMIN): {"tenant": "ops", "role": "admin"},
}
STEPS = 8
SLOW = {"width": 432, "height": 240, "num_frames": 31, "num_inference_steps": STEPS}
FAKE_VIDEO = {
    "key": "videos/fake.mp4",
    "sha256": "f" * 64,
    "bytes": 1234,
    "width": 432,
    "height": 240,
    "num_frames": 31,
    "fps": 24.0,
    "duration_s": 1.3,
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Platform]:
    env = {"T2V_API_KEYS": json.dumps(API_KEYS)}
    running = Platform(tmp_path_factory.mktemp("platform"), tiny_model_dir, env).start()
    try:
        yield running
    finally:
        running.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def binary_event(
    event_type: str, data: dict[str, Any], *, specversion: str = "1.0", **attributes: str
) -> tuple[dict[str, str], bytes]:
    """A binary-mode CloudEvent, as a forger writes it: ``ce-source: /attacker``."""
    headers = {
        "ce-specversion": specversion,
        "ce-type": event_type,
        "ce-source": "/attacker",
        "ce-id": uuid.uuid4().hex,
        "content-type": "application/json",
    }
    headers.update({f"ce-{name}": value for name, value in attributes.items()})
    return headers, json.dumps(data).encode()


def running_job(platform: Platform, key: str = KEY_A) -> dict[str, Any]:
    body = {"prompt": f"a slow job {uuid.uuid4().hex}", "seed": 11, **SLOW}
    response = platform.submit(body, headers=auth(key))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    return platform.wait_for(
        job_id,
        lambda job: (job["progress"] or {}).get("step", 0) >= 1,
        fetch=lambda: job_of(platform, job_id, key),
    )


def job_of(platform: Platform, job_id: str, key: str) -> dict[str, Any]:
    response = platform.client.get(f"{platform.url}/v1/jobs/{job_id}", headers=auth(key))
    response.raise_for_status()
    return dict(response.json())


def finished(platform: Platform, job_id: str, key: str = KEY_A) -> dict[str, Any]:
    return platform.wait_for(
        job_id,
        lambda job: job["status"] in ("succeeded", "failed", "canceled"),
        fetch=lambda: job_of(platform, job_id, key),
    )


def served_sha256(platform: Platform, job_id: str, key: str = KEY_A) -> str:
    video = platform.client.get(f"{platform.url}/v1/jobs/{job_id}/video", headers=auth(key))
    assert video.status_code == 200, video.text
    return hashlib.sha256(video.content).hexdigest()


def assert_finished_with_its_own_video(platform: Platform, job_id: str) -> dict[str, Any]:
    done = finished(platform, job_id)
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["total"] == STEPS
    assert done["video"]["sha256"] != FAKE_VIDEO["sha256"]
    assert served_sha256(platform, job_id) == done["video"]["sha256"]
    return done


def forged_outcome(kind: str, job_id: str) -> tuple[dict[str, str], bytes]:
    if kind == "succeeded":
        data = {"job_id": job_id, "attempt": 1, "video": FAKE_VIDEO, "cached": False}
    elif kind == "failed":
        error = {"code": "internal", "message": "forged", "retryable": False}
        data = {"job_id": job_id, "attempt": 1, "error": error}
    else:
        phase = {"phase": "denoising", "step": 150, "total": 200}
        data = {"job_id": job_id, "attempt": 1, **phase}
    return binary_event(f"dev.t2v.job.{kind}", data, subject=job_id)


@pytest.mark.parametrize("kind", ["succeeded", "failed", "progress"])
def test_a_forged_lifecycle_event_does_not_move_a_running_job(
    platform: Platform, kind: str
) -> None:
    job = running_job(platform)
    headers, body = forged_outcome(kind, job["id"])
    for credential in ({}, auth(KEY_A), auth(KEY_ADMIN)):
        answer = platform.client.post(
            platform.broker, headers={**headers, **credential}, content=body
        )
        # No credential, or a tenant's (even the admin's): not a sender of lifecycle events.
        assert answer.status_code == (403 if credential else 401), answer.text
    assert job_of(platform, job["id"], KEY_A)["progress"]["total"] == STEPS
    assert_finished_with_its_own_video(platform, job["id"])


@pytest.mark.parametrize("specversion", ["1.0", "0.3"])
@pytest.mark.parametrize("tenant", ["tenantA", "ops"])
def test_an_unauthenticated_job_submit_makes_no_job(
    platform: Platform, tenant: str, specversion: str
) -> None:
    prompt = f"unauthenticated {uuid.uuid4().hex}"
    headers, body = binary_event(
        "dev.t2v.job.submit", {"prompt": prompt, **SLOW}, specversion=specversion, t2vtenant=tenant
    )
    answer = platform.client.post(platform.broker, headers=headers, content=body)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "unauthenticated_sender"
    wrong = platform.client.post(
        platform.broker, headers={**headers, **auth("t2v_not_a_key")}, content=body
    )
    assert wrong.status_code == 401
    assert not jobs_with_prompt(platform, prompt)


def test_a_job_submit_lands_in_the_senders_tenant_not_the_one_it_names(
    platform: Platform,
) -> None:
    prompt = f"tenant B names tenant A {uuid.uuid4().hex}"
    data = {"prompt": prompt, "num_inference_steps": 2, "width": 64, "height": 48}
    headers, body = binary_event(
        "dev.t2v.job.submit", {**data, "num_frames": 7}, t2vtenant="tenantA"
    )
    answer = platform.client.post(platform.broker, headers={**headers, **auth(KEY_B)}, content=body)
    assert answer.status_code == 202, answer.text
    job = wait_for_job_with_prompt(platform, prompt)
    seen_by_b = platform.client.get(f"{platform.url}/v1/jobs/{job['id']}", headers=auth(KEY_B))
    assert seen_by_b.status_code == 200
    seen_by_a = platform.client.get(f"{platform.url}/v1/jobs/{job['id']}", headers=auth(KEY_A))
    assert seen_by_a.status_code == 404
    finished(platform, job["id"], KEY_B)


def test_each_sender_may_send_only_its_own_types(platform: Platform) -> None:
    tokens = platform.credentials()["senders"]
    job = {"job_id": "job_x", "attempt": 1, "worker": "w", "total_steps": 2}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        (tokens["infer"], "dev.t2v.job.submit", {"prompt": "p"}),
        (tokens["submit"], "dev.t2v.job.started", job),
        (tokens["infer"], "dev.t2v.job.requested", {"job_id": "job_x", "tenant": "tenantA"}),
        (KEY_A, "dev.knative.sources.ping", {"task": "sweep"}),
    ]
    for token, event_type, data in cases:
        headers, body = binary_event(event_type, data, subject="job_x")
        answer = platform.client.post(
            platform.broker, headers={**headers, **auth(token)}, content=body
        )
        assert answer.status_code == 403, (event_type, answer.text)
        assert answer.json()["error"]["code"] == "event_type_not_allowed"


@pytest.mark.parametrize(
    ("function", "path", "event_type"),
    [
        ("status", "/events", "dev.t2v.job.succeeded"),
        ("status", "/dead-letter", "dev.t2v.job.requested"),
        ("submit", "/events", "dev.t2v.job.submit"),
        ("submit", "/sweep", "dev.knative.sources.ping"),
        ("infer", "/events", "dev.t2v.job.requested"),
        ("notify", "/events", "dev.t2v.job.succeeded"),
    ],
)
def test_a_function_refuses_an_event_the_broker_did_not_sign(
    platform: Platform, function: str, path: str, event_type: str
) -> None:
    job = running_job(platform) if function == "status" else {"id": "job_x"}
    data: dict[str, Any] = {"job_id": job["id"], "attempt": 1, "video": FAKE_VIDEO, "cached": False}
    if event_type != "dev.t2v.job.succeeded":
        data = {"job_id": job["id"], "tenant": "tenantA", "prompt": "p", "task": "sweep"}
    headers, body = binary_event(event_type, data, subject=job["id"], t2vsender="infer")
    url = f"{platform.function_url(function)}{path}"
    for signature in ({}, {"t2v-signature": "0" * 64}):
        answer = platform.client.post(url, headers={**headers, **signature}, content=body)
        assert answer.status_code == 401, answer.text
    if function == "status":
        assert_finished_with_its_own_video(platform, job["id"])


def test_a_succeeded_naming_another_jobs_video_is_ignored(platform: Platform) -> None:
    """Past the transport too: even from infer's own credential, status takes a video only
    from the job's lease holder and only under the key that holder committed to."""
    other = running_job(platform, KEY_B)
    other_video = finished(platform, other["id"], KEY_B)["video"]
    job = running_job(platform)
    worker = platform.infer_stats()["worker"]
    stolen = {**FAKE_VIDEO, **{k: other_video[k] for k in ("sha256", "bytes")}}
    stolen["key"] = stored_key_of(platform, other["id"])
    infer_token = platform.credentials()["senders"]["infer"]
    refused_before = refusals(platform)
    attempt = job["progress"]["attempt"]
    for sender in ("someone-else", worker):
        data = {"job_id": job["id"], "attempt": attempt, "worker": sender, "video": stolen}
        data["cached"] = True
        headers, body = binary_event("dev.t2v.job.succeeded", data, subject=job["id"])
        answer = platform.client.post(
            platform.broker, headers={**headers, **auth(infer_token)}, content=body
        )
        assert answer.status_code == 202
    wait_until(lambda: refusals(platform) >= refused_before + 2)
    done = assert_finished_with_its_own_video(platform, job["id"])
    assert done["video"]["sha256"] != other_video["sha256"]  # other prompt, other video


def stored_key_of(platform: Platform, job_id: str) -> str:
    """The artifact key of a finished job, read from the job store as status sees it."""
    with sqlite3.connect(platform.data_dir / "jobs.db") as db:
        (raw,) = db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return str(json.loads(raw)["video"]["key"])


def refusals(platform: Platform) -> float:
    text = httpx.get(f"{platform.function_url('status')}/metrics").text
    found = re.findall(r"^t2v_lifecycle_events_refused_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    return sum(float(value) for value in found)


def wait_until(condition: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def jobs_with_prompt(platform: Platform, prompt: str) -> list[dict[str, Any]]:
    page = platform.client.get(f"{platform.url}/v1/jobs?limit=100", headers=auth(KEY_ADMIN))
    return [job for job in page.json()["data"] if job["params"]["prompt"] == prompt]


def wait_for_job_with_prompt(platform: Platform, prompt: str) -> dict[str, Any]:
    wait_until(lambda: bool(jobs_with_prompt(platform, prompt)))
    return jobs_with_prompt(platform, prompt)[0]
