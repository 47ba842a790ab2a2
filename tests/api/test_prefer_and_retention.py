"""`Prefer: wait`, DELETE and video expiry on the real local platform, over the gateway."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import running_platform
from tests.e2e.harness import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SMALL = {"width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def short_retention(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[Platform]:
    # The local PingSource runs the sweep every second (FAST_ENV).
    yield from running_platform(tmp_path_factory, tiny_model_dir, {"T2V_VIDEO_RETENTION_S": "2"})


def _video_file(platform: Platform, job: dict[str, Any]) -> Path:
    """The artifact store's file of the job's video, found by its content hash."""
    for path in (platform.data_dir / "artifacts").rglob("*.mp4"):
        if hashlib.sha256(path.read_bytes()).hexdigest() == job["video"]["sha256"]:
            return path
    raise AssertionError(f"no file holds the video of {job['id']}")


def _finished(platform: Platform, body: dict[str, Any]) -> dict[str, Any]:
    response = platform.submit(body, headers={"Prefer": "wait=60"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "succeeded", job
    return dict(job)


def test_prefer_wait_answers_the_finished_job_in_one_request(platform: Platform) -> None:
    started = time.monotonic()
    response = platform.submit(
        {"prompt": "a short wait", "seed": 11, **SMALL}, headers={"Prefer": "wait=30"}
    )
    assert response.status_code == 202, response.text
    assert response.headers["preference-applied"] == "wait=30"
    job = response.json()
    assert job["status"] == "succeeded", job
    assert job["video"]["url"].endswith(f"/v1/jobs/{job['id']}/video")
    assert job["links"]["video"] == job["video"]["url"]
    assert time.monotonic() - started < 30
    # A finished job is answered at once; a wait over 60 s is taken as 60, and said so.
    again = platform.client.get(
        f"{platform.url}/v1/jobs/{job['id']}", headers={"Prefer": "wait=600"}
    )
    assert again.headers["preference-applied"] == "wait=60"
    assert again.json()["status"] == "succeeded"


def test_prefer_wait_holds_a_read_for_at_most_n_seconds(platform: Platform) -> None:
    # Many steps at 16x16: the job outlasts a one-second wait.
    body = {"prompt": "a longer job", "seed": 12, **SMALL, "num_inference_steps": 200}
    job = platform.submit(body).json()
    started = time.monotonic()
    response = platform.client.get(
        f"{platform.url}/v1/jobs/{job['id']}", headers={"Prefer": "respond-async, wait=1"}
    )
    held = time.monotonic() - started
    assert response.headers["preference-applied"] == "wait=1"
    assert response.json()["status"] in ("queued", "running")
    assert 1.0 <= held < 5.0
    platform.client.post(f"{platform.url}/v1/jobs/{job['id']}/cancel")
    # Without the preference nothing waits and nothing is said.
    plain = platform.client.get(f"{platform.url}/v1/jobs/{job['id']}")
    assert "preference-applied" not in plain.headers


def test_delete_removes_the_job_and_its_video(platform: Platform) -> None:
    job = _finished(platform, {"prompt": "deleted at once", "seed": 21, **SMALL})
    video = _video_file(platform, job)
    assert job["expires_at"] is not None
    response = platform.client.delete(f"{platform.url}/v1/jobs/{job['id']}")
    assert response.status_code == 204, response.text
    assert not video.exists()
    assert platform.client.get(f"{platform.url}/v1/jobs/{job['id']}").status_code == 404
    again = platform.client.delete(f"{platform.url}/v1/jobs/{job['id']}")
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_found"


def test_a_running_job_is_not_deleted(platform: Platform) -> None:
    body = {"prompt": "still running", "seed": 22, **SMALL, "num_inference_steps": 200}
    job = platform.submit(body).json()
    response = platform.client.delete(f"{platform.url}/v1/jobs/{job['id']}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_not_finished"
    assert platform.client.get(f"{platform.url}/v1/jobs/{job['id']}").status_code == 200
    platform.client.post(f"{platform.url}/v1/jobs/{job['id']}/cancel")


def test_a_shared_video_stays_until_its_last_job_is_deleted(platform: Platform) -> None:
    body = {"prompt": "one video, two jobs", "seed": 23, **SMALL}
    first = _finished(platform, body)
    second = _finished(platform, body)  # answered from the stored video: the same file
    assert first["id"] != second["id"]
    video = _video_file(platform, first)
    assert _video_file(platform, second) == video
    assert platform.client.delete(f"{platform.url}/v1/jobs/{first['id']}").status_code == 204
    assert video.exists()
    kept = platform.client.get(f"{platform.url}/v1/jobs/{second['id']}/video")
    assert kept.status_code == 200
    assert hashlib.sha256(kept.content).hexdigest() == second["video"]["sha256"]
    assert platform.client.delete(f"{platform.url}/v1/jobs/{second['id']}").status_code == 204
    assert not video.exists()


def test_an_expired_video_answers_410(short_retention: Platform) -> None:
    platform = short_retention
    job = _finished(platform, {"prompt": "kept two seconds", "seed": 31, **SMALL})
    video = _video_file(platform, job)
    url = f"{platform.url}/v1/jobs/{job['id']}/video"
    expired = platform.wait_for(job["id"], lambda j: j["video"] is None, timeout_s=30)
    assert expired["status"] == "succeeded"
    assert "video" not in expired["links"]
    assert expired["expires_at"] == job["expires_at"]
    response = platform.client.get(url)
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "video_expired"
    assert not video.exists()
