"""The synchronous client."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Unpack

import httpx
from httpx_sse import EventSource

from t2v_client._core import (
    RETRY_ERRORS,
    STREAM_READ_TIMEOUT_S,
    BytesCallback,
    Download,
    ProgressCallback,
    RetryPolicy,
    Settings,
    Watch,
    api_error,
    is_event_stream,
    job_body,
    job_id_of,
    no_video,
    page_params,
    video_path,
)
from t2v_client.errors import APIConnectionError, JobFailedError
from t2v_client.models import GenerateResult, Job, JobFields, JobStatus


class Client:
    """`Client(url, api_key)`; both fall back to T2V_URL and T2V_API_KEY.

    Every call retries dropped connections and 429/502/503/504 answers (honouring
    Retry-After) under `retry`; an API refusal raises `APIError`, an unreachable API
    `APIConnectionError`."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        poll_interval_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = Settings.resolve(url, api_key)
        self.retry = retry or RetryPolicy()
        self.poll_interval_s = poll_interval_s
        self._streams = True
        self._http = httpx.Client(
            base_url=self.settings.url,
            headers=self.settings.headers(),
            timeout=timeout_s,
            transport=transport or httpx.HTTPTransport(retries=self.retry.connect_retries),
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                delay = self.retry.delay(attempt, error=exc)
                if delay is None:
                    raise APIConnectionError(f"{method} {path}: {exc!r}") from exc
            else:
                if response.is_success:
                    return response
                delay = self.retry.delay(attempt, response=response)
                if delay is None:
                    raise api_error(response)
            attempt += 1
            time.sleep(delay)

    def submit(
        self, prompt: str, *, idempotency_key: str | None = None, **fields: Unpack[JobFields]
    ) -> Job:
        """Create a job (fields: `JobFields`; their limits: `t2v_client.limits`). One
        Idempotency-Key, made here unless given, goes with every retry of this call: it
        makes one job at most."""
        key = idempotency_key or str(uuid.uuid4())
        response = self._request(
            "POST", "/v1/jobs", json=job_body(prompt, fields), headers={"Idempotency-Key": key}
        )
        return Job.from_api(response.json())

    def get(self, job: Job | str, *, headers: dict[str, str] | None = None) -> Job:
        response = self._request("GET", f"/v1/jobs/{job_id_of(job)}", headers=headers)
        return Job.from_api(response.json())

    def list(
        self,
        *,
        status: JobStatus | str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[Job]:
        """Jobs, newest first, following the cursors page by page; at most `limit`."""
        cursor: str | None = None
        seen = 0
        while True:
            size = page_size if limit is None else min(page_size, limit - seen)
            if size <= 0:
                return
            page = self._request(
                "GET", "/v1/jobs", params=page_params(status and str(status), size, cursor)
            ).json()
            for data in page["data"]:
                seen += 1
                yield Job.from_api(data)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, job: Job | str) -> Job:
        return Job.from_api(self._request("POST", f"/v1/jobs/{job_id_of(job)}/cancel").json())

    def delete(self, job: Job | str) -> None:
        """Remove a finished job's video (`DELETE /v1/jobs/{id}`, on servers that have it)."""
        self._request("DELETE", f"/v1/jobs/{job_id_of(job)}")

    def wait(
        self,
        job: Job | str,
        *,
        timeout_s: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """The job once terminal (succeeded, failed or canceled: check `status`). Follows the
        job's event stream; without one (an older server), polls."""
        watch = Watch(job_id_of(job), on_progress, timeout_s)
        current = self.get(watch.job_id)
        if watch.see(current):
            return current
        while self._streams:
            done = self._follow_stream(watch)
            if done is not None:
                return done
            watch.remaining_s()
            time.sleep(watch.retry_s)
        while True:
            current = self.get(watch.job_id, headers=watch.poll_headers())
            if watch.see(current):
                return current
            watch.remaining_s()
            time.sleep(self.poll_interval_s)

    def _follow_stream(self, watch: Watch) -> Job | None:
        """Read the stream until the job is terminal (returned) or the stream ends (None:
        reconnect, after reading where the job is now: a server's request timeout ends a
        stream early). A server without the stream turns streaming off for this client."""
        url = f"/v1/jobs/{watch.job_id}/events"
        read_s = min(watch.remaining_s() or STREAM_READ_TIMEOUT_S, STREAM_READ_TIMEOUT_S)
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_s)
        with (
            contextlib.suppress(httpx.TransportError),
            self._http.stream(
                "GET", url, headers=watch.stream_headers(), timeout=timeout
            ) as response,
        ):
            if not is_event_stream(response):
                self._streams = False
                return None
            for event in EventSource(response).iter_sse():
                job = watch.event_job(event) or self.get(watch.job_id)
                if watch.see(job):
                    return job
        job = self.get(watch.job_id)
        return job if watch.see(job) else None

    def download(
        self,
        job: Job | str,
        dest: str | Path | None = None,
        *,
        on_bytes: BytesCallback | None = None,
    ) -> tuple[Path, str]:
        """Write the job's video to `dest` (default `<job id>.mp4`), resuming after a cut;
        returns the path and the sha256, checked against the job's (IntegrityError)."""
        if not isinstance(job, Job) or job.video is None:
            job = self.get(job)
        if job.video is None:
            raise no_video(job)
        path = Path(dest) if dest is not None else Path(f"{job.id}.mp4")
        attempt = 0
        with Download(path, job.video, on_bytes) as download:
            while not download.complete:
                before = download.offset
                delay: float | None = None
                try:
                    with self._http.stream(
                        "GET", video_path(job), headers=download.headers(), follow_redirects=True
                    ) as response:
                        if download.begin(response):
                            for chunk in response.iter_bytes():
                                download.write(chunk)
                        elif response.status_code != 206:
                            delay = self.retry.delay(attempt, response=response)
                            if delay is None:
                                response.read()
                                raise api_error(response)
                except httpx.TransportError as exc:
                    # A cut (RETRY_ERRORS): the next request resumes where the bytes stopped.
                    if not isinstance(exc, RETRY_ERRORS):
                        raise APIConnectionError(f"download of {job.id}: {exc!r}") from exc
                attempt = download.next_attempt(attempt, before)
                if not download.complete:
                    time.sleep(download.delay(self.retry, attempt, delay))
            return path, download.finish()

    def generate(
        self,
        prompt: str,
        *,
        out: str | Path | None = None,
        on_progress: ProgressCallback | None = None,
        on_bytes: BytesCallback | None = None,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
        **fields: Unpack[JobFields],
    ) -> GenerateResult:
        """Submit, wait, download: the finished job, its video's path and checked sha256.
        A job that fails or is canceled raises JobFailedError."""
        job = self.submit(prompt, idempotency_key=idempotency_key, **fields)
        done = self.wait(job, timeout_s=timeout_s, on_progress=on_progress)
        if done.status != JobStatus.SUCCEEDED:
            raise JobFailedError(done)
        path, digest = self.download(done, out, on_bytes=on_bytes)
        return GenerateResult(done, path, digest)
