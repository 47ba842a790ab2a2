"""status's ASGI app in process: reading jobs and videos (each tenant sees only its own),
and applying lifecycle events and dead letters to the store."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from t2v import events
from t2v.jobs import COMMITTED_PHASE, JobStatus, JobUpdate, Progress
from t2v.store import Lease
from tests.contracts.backends import create_bucket
from tests.inprocess.conftest import Functions, api_keys, post_event
from tests.services import S3Server

ACME, ACME_LABS, ADMIN = "key-acme", "key-acme-labs", "key-admin"
# Two tenants whose names share a prefix: "acme" must not see "acme-labs"' jobs.
KEYS = api_keys((ACME, "acme", "user"), (ACME_LABS, "acme-labs", "user"), (ADMIN, "ops", "admin"))
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def hold_lease(functions: Functions, job_id: str, worker: str = "w") -> Lease:
    """Claim the job's lease as infer does: status takes lifecycle events only from its holder."""
    rt = await functions.runtime("status")
    lease = await rt.store.lease_of(job_id) or await rt.store.claim(
        job_id, worker, ttl_s=60, now=time.time()
    )
    assert lease is not None
    return lease


async def succeed(functions: Functions, job_id: str, data: bytes = VIDEO_BYTES) -> dict[str, Any]:
    """Commit, store a video for the job and report it as infer does."""
    rt = await functions.runtime("status")
    lease = await hold_lease(functions, job_id)
    key = f"videos/{job_id}.mp4"
    committed = JobUpdate(
        job_id,
        JobStatus.RUNNING,
        phase=COMMITTED_PHASE,
        progress=Progress(lease.attempt, 2, 2),
        artifact_key=key,
    )
    assert (await rt.store.apply(committed)).applied
    stored = await rt.artifacts.put(key, data, content_type="video/mp4")
    video = {
        "key": key,
        "sha256": stored.sha256,
        "bytes": stored.bytes,
        "width": 64,
        "height": 48,
        "num_frames": 7,
        "fps": 30.0,
        "duration_s": 7 / 30,
    }
    data_ = {
        "job_id": job_id,
        "attempt": lease.attempt,
        "worker": lease.worker_id,
        "video": video,
        "cached": False,
    }
    response = await post_event(functions.status, events.JOB_SUCCEEDED, data_, subject=job_id)
    assert response.status_code == 200, response.text
    assert response.json() == {"applied": True, "status": "succeeded"}
    return video


async def test_get_shows_a_job_and_its_queue_position(functions: Functions) -> None:
    first = await functions.create()
    second = await functions.create()
    response = await functions.status.get(f"/v1/jobs/{second['id']}")
    assert response.status_code == 200
    assert response.json()["id"] == second["id"] and response.json()["queue_position"] == 2
    assert (await functions.status.get(f"/v1/jobs/{first['id']}")).json()["queue_position"] == 1


async def test_list_pages_newest_first_and_filters_by_status(functions: Functions) -> None:
    ids = [(await functions.create())["id"] for _ in range(3)]
    await functions.submit.post(f"/v1/jobs/{ids[0]}/cancel")
    page = (await functions.status.get("/v1/jobs?limit=2")).json()
    assert [job["id"] for job in page["data"]] == ids[:0:-1]
    rest = (await functions.status.get(f"/v1/jobs?limit=2&cursor={page['next_cursor']}")).json()
    assert [job["id"] for job in rest["data"]] == [ids[0]] and rest["next_cursor"] is None
    canceled = (await functions.status.get("/v1/jobs?status=canceled")).json()
    assert [job["id"] for job in canceled["data"]] == [ids[0]]


@pytest.mark.parametrize(
    ("query", "code"),
    [("status=done", "invalid_value"), ("limit=0", "out_of_range"), ("limit=x", "out_of_range")],
)
async def test_list_refuses_bad_queries(functions: Functions, query: str, code: str) -> None:
    response = await functions.status.get(f"/v1/jobs?{query}")
    assert response.status_code == 400 and response.json()["error"]["code"] == code


async def test_lifecycle_events_move_a_job_and_redelivery_changes_nothing(
    functions: Functions,
) -> None:
    job = await functions.create()
    await hold_lease(functions, job["id"])
    started = {"job_id": job["id"], "attempt": 1, "worker": "w", "total_steps": 2}
    answers = [
        (await post_event(functions.status, events.JOB_STARTED, started)).json() for _ in range(2)
    ]
    assert answers == [
        {"applied": True, "status": "running"},
        {"applied": False, "status": "running"},
    ]
    video = await succeed(functions, job["id"])
    late = {
        "job_id": job["id"],
        "attempt": 1,
        "worker": "w",
        "phase": "denoising",
        "step": 1,
        "total": 2,
    }
    assert (await post_event(functions.status, events.JOB_PROGRESS, late)).json() == {
        "applied": False,
        "status": "succeeded",
    }
    shown = (await functions.status.get(f"/v1/jobs/{job['id']}")).json()
    assert shown["status"] == "succeeded" and shown["video"]["bytes"] == video["bytes"]


async def test_an_event_for_an_unknown_job_is_acknowledged(functions: Functions) -> None:
    started = {"job_id": "job_nope", "attempt": 1, "worker": "w", "total_steps": 2}
    response = await post_event(functions.status, events.JOB_STARTED, started)
    assert response.status_code == 200
    assert response.json() == {"applied": False, "reason": "unknown job"}


async def test_a_malformed_event_is_400(functions: Functions) -> None:
    response = await post_event(functions.status, events.JOB_STARTED, {"job_id": "job_1"})
    assert response.status_code == 400
    not_an_event = await functions.status.post("/events", content=b"{}")
    assert not_an_event.status_code == 400


async def test_the_video_is_served_with_ranges_and_its_hash_as_etag(functions: Functions) -> None:
    job = await functions.create()
    video = await succeed(functions, job["id"])
    whole = await functions.status.get(f"/v1/jobs/{job['id']}/video")
    assert whole.status_code == 200 and whole.content == VIDEO_BYTES
    assert whole.headers["etag"] == f'"{video["sha256"]}"'
    part = await functions.status.get(
        f"/v1/jobs/{job['id']}/video", headers={"Range": "bytes=4-11"}
    )
    assert part.status_code == 206 and part.content == VIDEO_BYTES[4:12]


async def test_a_video_before_it_exists_is_409(functions: Functions) -> None:
    job = await functions.create()
    response = await functions.status.get(f"/v1/jobs/{job['id']}/video")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "video_not_ready"


async def test_a_dead_letter_fails_a_queued_job_once(functions: Functions) -> None:
    job = await functions.create()
    attributes = {"knativeerrorcode": "503", "knativeerrordest": "http://infer/events"}
    requested = {"job_id": job["id"], "tenant": "local"}

    async def dead_letter() -> httpx.Response:
        return await post_event(
            functions.status,
            events.JOB_REQUESTED,
            requested,
            path="/dead-letter",
            subject=job["id"],
            extensions=attributes,
        )

    first, again = await dead_letter(), await dead_letter()
    assert first.json() == {"applied": True, "status": "failed"}
    assert again.json() == {"applied": False, "status": "failed"}
    error = (await functions.status.get(f"/v1/jobs/{job['id']}")).json()["error"]
    assert error["code"] == "delivery_failed" and error["details"]["knativeerrorcode"] == "503"


async def test_a_dead_letter_for_a_lost_running_job_is_left_to_the_sweep(
    functions: Functions,
) -> None:
    job = await functions.create()
    store = (await functions.runtime("status")).store
    await store.apply(JobUpdate(job["id"], JobStatus.RUNNING, phase="starting", at=time.time()))
    response = await post_event(
        functions.status,
        events.JOB_REQUESTED,
        {"job_id": job["id"], "tenant": "local"},
        path="/dead-letter",
        subject=job["id"],
    )
    assert response.json() == {"applied": False, "reason": "left to the sweep"}
    assert (await store.get(job["id"])) is not None
    assert (await store.get(job["id"])).status == JobStatus.RUNNING  # type: ignore[union-attr]


async def test_a_dead_lifecycle_event_changes_nothing(functions: Functions) -> None:
    job = await functions.create()
    started = {"job_id": job["id"], "attempt": 1, "worker": "w", "total_steps": 2}
    response = await post_event(
        functions.status, events.JOB_STARTED, started, path="/dead-letter", subject=job["id"]
    )
    assert response.json() == {"applied": False, "reason": "nothing to update"}


class TestTenants:
    @pytest.fixture
    def function_env(self) -> dict[str, str]:
        return {"T2V_API_KEYS": KEYS}

    async def test_a_tenant_sees_only_its_own_jobs_not_a_prefix_sharing_tenants(
        self, functions: Functions
    ) -> None:
        mine = await functions.create(ACME)
        theirs = await functions.create(ACME_LABS)
        await succeed(functions, theirs["id"])
        for path in ("", "/video"):
            hidden = await functions.status.get(
                f"/v1/jobs/{theirs['id']}{path}", headers=bearer(ACME)
            )
            assert hidden.status_code == 404, path
        cancel = await functions.submit.post(
            f"/v1/jobs/{theirs['id']}/cancel", headers=bearer(ACME)
        )
        assert cancel.status_code == 404
        listing = (await functions.status.get("/v1/jobs", headers=bearer(ACME))).json()
        assert [job["id"] for job in listing["data"]] == [mine["id"]]
        mine_to_them = await functions.status.get(
            f"/v1/jobs/{mine['id']}", headers=bearer(ACME_LABS)
        )
        assert mine_to_them.status_code == 404
        seen = await functions.status.get(f"/v1/jobs/{theirs['id']}", headers=bearer(ACME_LABS))
        assert seen.status_code == 200
        everyone = (await functions.status.get("/v1/jobs", headers=bearer(ADMIN))).json()
        assert {job["id"] for job in everyone["data"]} == {mine["id"], theirs["id"]}

    async def test_no_key_or_a_wrong_key_is_401(self, functions: Functions) -> None:
        for headers in ({}, bearer("not-a-key")):
            response = await functions.status.get("/v1/jobs", headers=headers)
            assert response.status_code == 401


class TestPresignedVideos:
    """With an S3 artifact store the video endpoint redirects to a presigned URL: only for
    the job's own tenant, and the URL serves the video."""

    @pytest.fixture
    def function_env(self, s3_service: S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
        for name, value in s3_service.credentials_env().items():
            monkeypatch.setenv(name, value)
        bucket = create_bucket(s3_service)
        return {
            "T2V_API_KEYS": KEYS,
            "T2V_ARTIFACTS_URL": f"s3://{bucket}/videos?endpoint_url={s3_service.endpoint_url}"
            f"&region={s3_service.region}&path_style=1",
        }

    async def test_the_redirect_is_only_for_the_jobs_tenant(self, functions: Functions) -> None:
        job = await functions.create(ACME_LABS)
        await succeed(functions, job["id"])
        for key in (ACME, "not-a-key"):
            refused = await functions.status.get(f"/v1/jobs/{job['id']}/video", headers=bearer(key))
            assert refused.status_code in (401, 404) and "location" not in refused.headers
        redirect = await functions.status.get(
            f"/v1/jobs/{job['id']}/video", headers=bearer(ACME_LABS)
        )
        assert redirect.status_code == 302
        async with httpx.AsyncClient() as client:
            fetched = await client.get(redirect.headers["location"])
        assert fetched.status_code == 200 and fetched.content == VIDEO_BYTES
