"""The asynchronous client: the same calls as `Client`, awaited."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
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


class AsyncClient:
    """`AsyncClient(url, api_key)`: see `Client`; every method is a coroutine (`list` an
    async iterator)."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        poll_interval_s: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = Settings.resolve(url, api_key)
        self.retry = retry or RetryPolicy()
        self.poll_interval_s = poll_interval_s
        self._streams = True
        self._http = httpx.AsyncClient(
            base_url=self.settings.url,
            headers=self.settings.headers(),
            timeout=timeout_s,
            transport=transport or httpx.AsyncHTTPTransport(retries=self.retry.connect_retries),
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
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
            await asyncio.sleep(delay)

    async def submit(
        self, prompt: str, *, idempotency_key: str | None = None, **fields: Unpack[JobFields]
    ) -> Job:
        key = idempotency_key or str(uuid.uuid4())
        response = await self._request(
            "POST", "/v1/jobs", json=job_body(prompt, fields), headers={"Idempotency-Key": key}
        )
        return Job.from_api(response.json())

    async def get(self, job: Job | str, *, headers: dict[str, str] | None = None) -> Job:
        response = await self._request("GET", f"/v1/jobs/{job_id_of(job)}", headers=headers)
        return Job.from_api(response.json())

    async def list(
        self,
        *,
        status: JobStatus | str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Job]:
        cursor: str | None = None
        seen = 0
        while True:
            size = page_size if limit is None else min(page_size, limit - seen)
            if size <= 0:
                return
            params = page_params(status and str(status), size, cursor)
            page = (await self._request("GET", "/v1/jobs", params=params)).json()
            for data in page["data"]:
                seen += 1
                yield Job.from_api(data)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def cancel(self, job: Job | str) -> Job:
        response = await self._request("POST", f"/v1/jobs/{job_id_of(job)}/cancel")
        return Job.from_api(response.json())

    async def delete(self, job: Job | str) -> None:
        await self._request("DELETE", f"/v1/jobs/{job_id_of(job)}")

    async def wait(
        self,
        job: Job | str,
        *,
        timeout_s: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        watch = Watch(job_id_of(job), on_progress, timeout_s)
        current = await self.get(watch.job_id)
        if watch.see(current):
            return current
        while self._streams:
            done = await self._follow_stream(watch)
            if done is not None:
                return done
            watch.remaining_s()
            await asyncio.sleep(watch.retry_s)
        while True:
            current = await self.get(watch.job_id, headers=watch.poll_headers())
            if watch.see(current):
                return current
            watch.remaining_s()
            await asyncio.sleep(self.poll_interval_s)

    async def _follow_stream(self, watch: Watch) -> Job | None:
        url = f"/v1/jobs/{watch.job_id}/events"
        read_s = min(watch.remaining_s() or STREAM_READ_TIMEOUT_S, STREAM_READ_TIMEOUT_S)
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_s)
        with contextlib.suppress(httpx.TransportError):
            async with self._http.stream(
                "GET", url, headers=watch.stream_headers(), timeout=timeout
            ) as response:
                if not is_event_stream(response):
                    self._streams = False
                    return None
                async for event in EventSource(response).aiter_sse():
                    job = watch.event_job(event) or await self.get(watch.job_id)
                    if watch.see(job):
                        return job
        job = await self.get(watch.job_id)
        return job if watch.see(job) else None

    async def download(
        self,
        job: Job | str,
        dest: str | Path | None = None,
        *,
        on_bytes: BytesCallback | None = None,
    ) -> tuple[Path, str]:
        if not isinstance(job, Job) or job.video is None:
            job = await self.get(job)
        if job.video is None:
            raise no_video(job)
        path = Path(dest) if dest is not None else Path(f"{job.id}.mp4")
        attempt = 0
        # The file work (opening, hashing what a .part holds, writing) runs off the loop.
        download = await asyncio.to_thread(Download(path, job.video, on_bytes).__enter__)
        try:
            while not download.complete:
                before = download.offset
                delay: float | None = None
                try:
                    async with self._http.stream(
                        "GET", video_path(job), headers=download.headers(), follow_redirects=True
                    ) as response:
                        if download.begin(response):
                            async for chunk in response.aiter_bytes():
                                await asyncio.to_thread(download.write, chunk)
                        elif response.status_code != 206:
                            delay = self.retry.delay(attempt, response=response)
                            if delay is None:
                                await response.aread()
                                raise api_error(response)
                except httpx.TransportError as exc:
                    if not isinstance(exc, RETRY_ERRORS):
                        raise APIConnectionError(f"download of {job.id}: {exc!r}") from exc
                attempt = download.next_attempt(attempt, before)
                if not download.complete:
                    await asyncio.sleep(download.delay(self.retry, attempt, delay))
            return path, await asyncio.to_thread(download.finish)
        finally:
            download.__exit__(None, None, None)

    async def generate(
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
        job = await self.submit(prompt, idempotency_key=idempotency_key, **fields)
        done = await self.wait(job, timeout_s=timeout_s, on_progress=on_progress)
        if done.status != JobStatus.SUCCEEDED:
            raise JobFailedError(done)
        path, digest = await self.download(done, out, on_bytes=on_bytes)
        return GenerateResult(done, path, digest)
