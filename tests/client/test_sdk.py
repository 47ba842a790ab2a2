"""The SDK's retry, error, idempotency and download paths, on httpx's mock transport: the
faults (a dropped connection, a cut body, a 429) are injected here, the rest is real."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from t2v_client import (
    APIConnectionError,
    APIError,
    AsyncClient,
    Client,
    IntegrityError,
    JobStatus,
    RetryPolicy,
)

URL = "http://t2v.test"
VIDEO = bytes(range(256)) * 40
SHA = hashlib.sha256(VIDEO).hexdigest()
Handler = Callable[[httpx.Request], httpx.Response]


def job(status: str = "queued", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "job_1",
        "object": "job",
        "status": status,
        "phase": None,
        "progress": None,
        "queue_position": 0 if status == "queued" else None,
        "eta_seconds": None,
        "params": {"prompt": "a cat"},
        "error": None,
        "video": None,
    }
    if status == "succeeded":
        data["video"] = {
            "url": f"{URL}/v1/jobs/job_1/video",
            "sha256": SHA,
            "bytes": len(VIDEO),
            "width": 64,
            "height": 48,
            "num_frames": 7,
            "fps": 8,
            "duration_s": 0.875,
        }
    return {**data, **extra}


def error(status: int, code: str, field: str | None = None, **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened", "field": field}}
    return httpx.Response(status, json=body, headers=headers)


class Recorder:
    """A mock API: answers each request with the next of `answers` (a response, an
    exception to raise, or a function of the request), and keeps every request."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the client asked for, without waiting."""
    delays: list[float] = []
    monkeypatch.setattr("t2v_client.client.time.sleep", delays.append)
    return delays


def client(recorder: Recorder, **options: Any) -> Client:
    return Client(URL, "key-1", transport=httpx.MockTransport(recorder), **options)


def test_submit_retries_a_dropped_connection_and_a_503_with_one_idempotency_key(
    slept: list[float],
) -> None:
    api = Recorder(
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        error(503, "unavailable", **{"Retry-After": "3"}),
        httpx.Response(202, json=job()),
    )
    # An option left unset (None, as the CLI passes it) is not sent: the server's default.
    fields: dict[str, Any] = {"seed": 3, "width": None}
    submitted = client(api).submit("a cat", **fields)
    assert submitted.status == JobStatus.QUEUED
    keys = {request.headers["idempotency-key"] for request in api.requests}
    assert len(api.requests) == 3 and len(keys) == 1
    assert slept[1] == 3.0
    assert json.loads(api.requests[0].content) == {"prompt": "a cat", "seed": 3}
    assert api.requests[0].headers["authorization"] == "Bearer key-1"
    # A new logical submit gets a new key.
    again = Recorder(httpx.Response(202, json=job()))
    client(again).submit("a cat")
    assert again.requests[0].headers["idempotency-key"] not in keys


def test_429_honours_retry_after_and_gives_up_past_the_limit(slept: list[float]) -> None:
    api = Recorder(
        error(429, "rate_limited", **{"Retry-After": "7"}), httpx.Response(200, json=job())
    )
    assert client(api).get("job_1").id == "job_1"
    assert slept == [7.0]
    # A Retry-After longer than the policy waits out is raised at once, with its value.
    api = Recorder(error(429, "rate_limited", **{"Retry-After": "3600"}))
    with pytest.raises(APIError) as caught:
        client(api).get("job_1")
    assert (caught.value.code, caught.value.retry_after_s) == ("rate_limited", 3600.0)


def test_retries_are_bounded(slept: list[float]) -> None:
    api = Recorder(*[error(503, "unavailable") for _ in range(4)])
    with pytest.raises(APIError) as caught:
        client(api, retry=RetryPolicy(max_retries=3)).get("job_1")
    assert caught.value.status_code == 503
    assert len(api.requests) == 4
    assert slept == [0.5, 1.0, 2.0]


def test_an_api_refusal_is_one_error_type_and_is_not_retried(slept: list[float]) -> None:
    api = Recorder(error(400, "out_of_range", field="width"))
    with pytest.raises(APIError) as caught:
        client(api).submit("a cat", width=17)
    assert (caught.value.status_code, caught.value.code, caught.value.field) == (
        400,
        "out_of_range",
        "width",
    )
    assert caught.value.message == "out_of_range happened"
    assert len(api.requests) == 1 and slept == []
    # Not the API's JSON (a proxy's page): still an APIError, its code from the status.
    api = Recorder(httpx.Response(404, text="<h1>no</h1>"))
    with pytest.raises(APIError) as caught:
        client(api).get("job_1")
    assert caught.value.code == "http_404"


def test_an_unreachable_api_is_a_connection_error() -> None:
    api = Recorder(httpx.ConnectError("connection refused"))
    with pytest.raises(APIConnectionError):
        client(api).get("job_1")


def test_list_follows_the_cursors() -> None:
    pages = {
        None: {"data": [job(id="job_3"), job(id="job_2")], "next_cursor": "c1"},
        "c1": {"data": [job(id="job_1")], "next_cursor": None},
    }
    api = Recorder(*[lambda r: httpx.Response(200, json=pages[r.url.params.get("cursor")])] * 2)
    jobs = list(client(api).list(status="queued", page_size=2))
    assert [j.id for j in jobs] == ["job_3", "job_2", "job_1"]
    assert api.requests[0].url.params["status"] == "queued"
    assert api.requests[1].url.params["limit"] == "2"


class CutStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that stops after `length` bytes with a dropped connection."""

    def __init__(self, data: bytes, length: int) -> None:
        self.data, self.length = data, length

    def __iter__(self) -> Iterator[bytes]:
        yield self.data[: self.length]
        raise httpx.ReadError("connection reset by peer")

    async def __aiter__(self) -> Any:
        yield self.data[: self.length]
        raise httpx.ReadError("connection reset by peer")


def video_server(cut_at: int | None, data: bytes = VIDEO) -> Handler:
    """The video endpoint as status serves it (Range, If-Range), cut once at `cut_at`."""
    cuts = [cut_at] if cut_at is not None else []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v1/jobs/job_1"):
            return httpx.Response(200, json=job("succeeded"))
        start = 0
        if "range" in request.headers and request.headers.get("if-range") == f'"{SHA}"':
            start = int(request.headers["range"].removeprefix("bytes=").rstrip("-"))
        body = data[start:]
        headers = {"content-length": str(len(body))}
        if start:
            headers["content-range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        status = 206 if start else 200
        if cuts:
            return httpx.Response(status, headers=headers, stream=CutStream(body, cuts.pop()))
        return httpx.Response(status, headers=headers, content=body)

    return answer


def test_download_resumes_a_cut_with_range_and_checks_the_sha256(
    tmp_path: Path, slept: list[float]
) -> None:
    api = Recorder(*[video_server(cut_at=3000)] * 3)
    path, digest = client(api).download("job_1", tmp_path / "v.mp4")
    assert path.read_bytes() == VIDEO and digest == SHA
    assert not (tmp_path / "v.mp4.part").exists()
    video_requests = api.requests[1:]
    assert "range" not in video_requests[0].headers
    assert video_requests[1].headers["range"] == "bytes=3000-"


def test_download_continues_a_part_left_by_an_earlier_call(tmp_path: Path) -> None:
    (tmp_path / "v.mp4.part").write_bytes(VIDEO[:5000])
    api = Recorder(*[video_server(cut_at=None)] * 2)
    path, _ = client(api).download("job_1", tmp_path / "v.mp4")
    assert path.read_bytes() == VIDEO
    assert api.requests[1].headers["range"] == "bytes=5000-"


def test_a_sha256_mismatch_raises_and_leaves_no_file(tmp_path: Path) -> None:
    tampered = bytes(reversed(VIDEO))
    api = Recorder(*[video_server(cut_at=None, data=tampered)] * 2)
    with pytest.raises(IntegrityError) as caught:
        client(api).download("job_1", tmp_path / "v.mp4")
    assert caught.value.expected == SHA
    assert caught.value.got == hashlib.sha256(tampered).hexdigest()
    assert list(tmp_path.iterdir()) == []


def sse(*events: tuple[str, dict[str, Any]]) -> httpx.Response:
    text = "".join(f"id: {i}\nevent: job\ndata: {json.dumps(d)}\n\n" for i, d in events)
    return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


def test_wait_follows_the_event_stream_and_resumes_it_with_last_event_id(
    slept: list[float],
) -> None:
    running = job("running", phase="denoising", progress={"step": 1, "total": 2, "percent": 50})
    api = Recorder(
        httpx.Response(200, json=job()),
        sse(("1", running)),
        httpx.Response(200, json=running),  # the stream ended early: where is the job now?
        sse(("2", job("succeeded"))),
    )
    seen: list[str] = []
    done = client(api).wait("job_1", on_progress=lambda j: seen.append(f"{j.status} {j.phase}"))
    assert done.status == JobStatus.SUCCEEDED
    assert seen == ["queued None", "running denoising", "succeeded None"]
    assert api.requests[1].headers["accept"] == "text/event-stream"
    assert api.requests[3].headers["last-event-id"] == "1"


def test_wait_polls_when_the_server_has_no_event_stream(slept: list[float]) -> None:
    api = Recorder(
        httpx.Response(200, json=job()),
        error(404, "not_found"),
        httpx.Response(200, json=job("running")),
        httpx.Response(200, json=job("failed", error={"code": "oom", "message": "no memory"})),
    )
    done = client(api).wait("job_1")
    assert done.status == JobStatus.FAILED and done.error is not None
    assert done.error.code == "oom"
    # Nobody to show progress to: the poll asks the server to hold it (Prefer: wait).
    assert api.requests[2].headers["prefer"] == "wait=60"


async def test_async_client_retries_and_resumes_a_cut_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_wait(delay: float) -> None:
        return None

    monkeypatch.setattr("t2v_client.async_client.asyncio.sleep", no_wait)
    api = Recorder(
        httpx.RemoteProtocolError("dropped"),
        httpx.Response(202, json=job()),
        *[video_server(cut_at=1000)] * 3,
    )
    async with AsyncClient(URL, transport=httpx.MockTransport(api)) as sdk:
        created = await sdk.submit("a cat")
        path, digest = await sdk.download(created.id, tmp_path / "v.mp4")
    assert api.requests[0].headers["idempotency-key"] == api.requests[1].headers["idempotency-key"]
    assert path.read_bytes() == VIDEO and digest == SHA
    assert api.requests[-1].headers["range"] == "bytes=1000-"


def test_settings_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T2V_URL", "http://127.0.0.1:9999/")
    monkeypatch.setenv("T2V_API_KEY", "from-env")
    sdk = Client()
    assert (sdk.settings.url, sdk.settings.api_key) == ("http://127.0.0.1:9999", "from-env")
    assert Client("http://other", "given").settings.api_key == "given"
