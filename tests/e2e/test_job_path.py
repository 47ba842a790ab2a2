"""The whole job path on the embedded default, over real HTTP between real processes."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from cloudevents.http import CloudEvent

from tests.e2e.harness import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SMALL = {"width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Platform]:
    running = Platform(tmp_path_factory.mktemp("platform"), tiny_model_dir, {}).start()
    try:
        yield running
    finally:
        running.stop()


def decode(data: bytes) -> tuple[int, int, int]:
    with av.open(io.BytesIO(data), mode="r") as container:
        frames = list(container.decode(video=0))
    return len(frames), frames[0].width, frames[0].height


def ingress_types(platform: Platform, job_id: str) -> list[str]:
    return [
        e["type"] for e in platform.events() if e["kind"] == "ingress" and e["subject"] == job_id
    ]


def test_prompt_to_mp4(platform: Platform) -> None:
    response = platform.submit({"prompt": "a lighthouse in a storm", "seed": 3, **SMALL})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued"
    assert job["estimated_seconds"] > 0
    assert response.headers["location"].endswith(f"/v1/jobs/{job['id']}")
    seen = {platform.wait_for(job["id"], lambda j: j["status"] != "queued")["status"]}
    done = platform.wait_terminal(job["id"])
    seen.add(done["status"])
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["step"] == done["progress"]["total"] == 2
    assert seen <= {"running", "succeeded"}
    video = platform.client.get(done["links"]["video"])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert decode(video.content) == (7, 64, 48)
    assert done["video"]["bytes"] == len(video.content)
    # The lifecycle went through the broker in order of the contract.
    types = ingress_types(platform, job["id"])
    assert types[0] == "dev.t2v.job.requested"
    assert "dev.t2v.job.started" in types and "dev.t2v.job.progress" in types
    assert types.count("dev.t2v.job.succeeded") == 1


def test_video_supports_ranges(platform: Platform) -> None:
    job = platform.submit({"prompt": "ranges", "seed": 4, **SMALL}).json()
    done = platform.wait_terminal(job["id"])
    url = done["links"]["video"]
    whole_response = platform.client.get(url)
    assert whole_response.status_code == 200
    assert whole_response.headers["accept-ranges"] == "bytes"
    etag = whole_response.headers["etag"]
    assert etag == f'"{done["video"]["sha256"]}"'
    whole = whole_response.content
    size = len(whole)
    assert size == done["video"]["bytes"]
    part = platform.client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == whole[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    # Open-ended, suffix, and an end past the video (clipped to it).
    for header, start in [("bytes=10-", 10), ("bytes=-10", size - 10), ("bytes=90-99999", 90)]:
        ranged = platform.client.get(url, headers={"Range": header})
        assert ranged.status_code == 206, header
        assert ranged.content == whole[start:]
        assert ranged.headers["content-range"] == f"bytes {start}-{size - 1}/{size}"
    several = platform.client.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 206
    assert several.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert f"bytes 0-1/{size}".encode() in several.content
    assert f"bytes 5-6/{size}".encode() in several.content
    for beyond_header in [f"bytes={size + 5}-", f"bytes={size}-", "bytes=-0"]:
        beyond = platform.client.get(url, headers={"Range": beyond_header})
        assert beyond.status_code == 416, beyond_header
        assert beyond.headers["content-range"] == f"bytes */{size}"
    # If-Range: the range while the video is the one the client has, else the whole video.
    same = platform.client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert same.status_code == 206 and same.content == whole[:10]
    changed = platform.client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert changed.status_code == 200 and changed.content == whole
    head = platform.client.head(url, headers={"Range": "bytes=10-19"})
    assert head.status_code == 206 and head.content == b""
    assert head.headers["content-range"] == f"bytes 10-19/{size}"


def test_idempotency_key(platform: Platform) -> None:
    key = uuid.uuid4().hex
    body = {"prompt": "same key", **SMALL}
    first = platform.submit(body, headers={"Idempotency-Key": key})
    again = platform.submit(body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = platform.submit({**body, "prompt": "another body"}, headers={"Idempotency-Key": key})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    platform.wait_terminal(first.json()["id"])


@pytest.mark.parametrize("structured", [False, True], ids=["binary", "structured"])
def test_job_submit_cloudevent(platform: Platform, structured: bool) -> None:
    prompt = f"from another system {uuid.uuid4().hex}"
    event = CloudEvent(
        {"type": "dev.t2v.job.submit", "source": "/tests/partner", "id": uuid.uuid4().hex},
        {"prompt": prompt, **SMALL},
    )
    assert platform.publish(event, structured=structured).status_code == 202
    job = _find_job(platform, prompt)
    assert platform.wait_terminal(job["id"])["status"] == "succeeded"


def _find_job(platform: Platform, prompt: str, timeout_polls: int = 400) -> dict[str, Any]:
    import time

    for _ in range(timeout_polls):
        for job in platform.client.get(f"{platform.url}/v1/jobs?limit=100").json()["data"]:
            if job["params"]["prompt"] == prompt:
                return dict(job)
        time.sleep(0.05)
    raise AssertionError(f"no job for {prompt!r}")


INVALID = [
    ({}, "missing_field", "prompt"),
    ({"prompt": "x" * 10_000}, "too_long", "prompt"),
    ({"prompt": "nul\x00here"}, "control_character", "prompt"),
    ({"prompt": "p", "width": 100}, "invalid_value", "width"),
    ({"prompt": "p", "num_frames": 0}, "out_of_range", "num_frames"),
    ({"prompt": "p", "duration_s": 11}, "out_of_range", "duration_s"),
    ({"prompt": "p", "num_inference_steps": 1}, "out_of_range", "num_inference_steps"),
    # Valid, but the estimator says it cannot fit this (CPU) machine's memory.
    ({"prompt": "p", "width": 1360, "height": 768, "num_frames": 295}, "exceeds_gpu_memory", None),
]


@pytest.mark.parametrize(("body", "code", "field"), INVALID)
def test_invalid_requests_store_nothing(
    platform: Platform, body: dict[str, Any], code: str, field: str | None
) -> None:
    before = _job_count(platform)
    response = platform.submit(body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error.get("field")) == (code, field)
    assert error["message"]
    assert _job_count(platform) == before


def test_body_that_is_not_json(platform: Platform) -> None:
    before = _job_count(platform)
    response = platform.client.post(
        f"{platform.url}/v1/jobs",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert _job_count(platform) == before


def test_malformed_cloudevents(platform: Platform) -> None:
    before = _job_count(platform)
    submit = platform.function_url("submit")
    no_type = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "/x",
        "content-type": "application/json",
    }
    response = platform.client.post(f"{submit}/events", headers=no_type, content=b"{}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_event"
    broken = platform.client.post(
        platform.broker,
        headers={"content-type": "application/cloudevents+json"},
        content=json.dumps({"specversion": "1.0", "id": "1"}).encode(),
    )
    assert broken.status_code == 400
    assert _job_count(platform) == before


def _job_count(platform: Platform) -> int:
    total, cursor = 0, None
    while True:
        query = "?limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = platform.client.get(f"{platform.url}/v1/jobs{query}").json()
        total += len(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return total


def test_unknown_job_is_404(platform: Platform) -> None:
    for path in ("/v1/jobs/job_nope", "/v1/jobs/job_nope/video"):
        response = platform.client.get(platform.url + path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert platform.client.post(f"{platform.url}/v1/jobs/job_nope/cancel").status_code == 404


def test_cancel_queued_job_never_runs(platform: Platform) -> None:
    # A slow job holds the one local worker, so the next one waits in the queue.
    blocker = platform.submit({"prompt": "blocker", "num_inference_steps": 12}).json()
    platform.wait_for(blocker["id"], lambda j: j["status"] == "running")
    waiting = platform.submit({"prompt": "never runs", **SMALL}).json()
    canceled = platform.client.post(f"{platform.url}/v1/jobs/{waiting['id']}/cancel")
    assert canceled.status_code == 202
    assert canceled.json()["status"] == "canceled"
    platform.wait_terminal(blocker["id"])
    # The worker reached the canceled job's request and did nothing with it.
    platform.wait_for(waiting["id"], lambda j: j["status"] == "canceled")
    assert "dev.t2v.job.started" not in ingress_types(platform, waiting["id"])
    assert platform.job(waiting["id"])["video"] is None


def test_cancel_running_job_within_one_step(platform: Platform) -> None:
    job = platform.submit(
        {"prompt": "long", "width": 432, "height": 240, "num_frames": 31, "num_inference_steps": 40}
    ).json()
    running = platform.wait_for(
        job["id"], lambda j: j["status"] == "running" and (j["progress"] or {}).get("step", 0) >= 2
    )
    response = platform.client.post(f"{platform.url}/v1/jobs/{job['id']}/cancel")
    step_at_cancel = response.json()["progress"]["step"]
    assert step_at_cancel >= running["progress"]["step"]
    done = platform.wait_terminal(job["id"])
    assert done["status"] == "canceled"
    # One step may be in flight when the flag is set; the hook stops at the end of it.
    assert done["progress"]["step"] <= step_at_cancel + 1
    assert done["progress"]["step"] < 40


def test_identical_seeded_request_is_answered_from_the_artifact(platform: Platform) -> None:
    body = {"prompt": "the same video twice", "seed": 1234, **SMALL}
    first = platform.wait_terminal(platform.submit(body).json()["id"])
    before = platform.infer_stats()
    second = platform.wait_terminal(platform.submit(body).json()["id"])
    after = platform.infer_stats()
    assert first["status"] == second["status"] == "succeeded"
    assert first["id"] != second["id"]
    assert second["video"]["sha256"] == first["video"]["sha256"]
    assert after["generations"] == before["generations"]
    assert after["cache_hits"] == before["cache_hits"] + 1
    # Without a seed, each request gets a fresh one: no cache hit.
    unseeded = {"prompt": "the same video twice", **SMALL}
    third = platform.wait_terminal(platform.submit(unseeded).json()["id"])
    assert third["params"]["seed"] != 1234
    assert platform.infer_stats()["generations"] == after["generations"] + 1


def _samples(text: str, name: str) -> dict[str, float]:
    """Sample values of one metric family from a Prometheus text exposition."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def test_metrics_show_the_phases_of_a_job(platform: Platform) -> None:
    job = platform.submit({"prompt": "measured", "seed": 77, **SMALL}).json()
    assert platform.wait_terminal(job["id"])["status"] == "succeeded"
    infer = platform.client.get(f"{platform.function_url('infer')}/metrics").text
    for phase in ("model_load", "denoise_step", "decode", "encode", "upload"):
        counts = _samples(infer, f"t2v_{phase}_seconds_count")
        assert counts and max(counts.values()) > 0, phase
    assert max(_samples(infer, "t2v_generations_total").values()) >= 1
    status = platform.client.get(f"{platform.function_url('status')}/metrics").text
    finished = _samples(status, "t2v_jobs_finished_total")
    assert any('status="succeeded"' in key and value >= 1 for key, value in finished.items())
    assert _samples(status, "t2v_queue_depth")
    requests = _samples(status, "t2v_http_requests_total")
    assert any('route="/v1/jobs/{job_id}"' in key for key in requests)
