"""What the sync and async clients share: settings, the retry rule, error mapping, and the
state of a wait and of a download. No I/O happens here but local file writes."""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
from httpx_sse import ServerSentEvent

from t2v_client._version import __version__
from t2v_client.errors import APIConnectionError, APIError, IntegrityError
from t2v_client.models import Job, Video

DEFAULT_URL = "http://127.0.0.1:8080"
# 429: rate limited; 503: unavailable (both say when to come back); 502 and 504: a gateway
# in front could not reach the function, which is as passing.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# The connection dropped after the request may have been sent: safe to send again, since
# reads are idempotent and a submit carries its Idempotency-Key. Connect errors are retried by
# httpx's transport (`retries=`), before any byte was sent.
RETRY_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ReadTimeout)
# A stream is held open by the server's keep-alive comments; silence this long means it died.
STREAM_READ_TIMEOUT_S = 60.0
PREFER_WAIT_MAX_S = 60

ProgressCallback = Callable[[Job], None]
BytesCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Settings:
    url: str
    api_key: str | None

    @classmethod
    def resolve(cls, url: str | None, api_key: str | None) -> Settings:
        """Arguments win; then T2V_URL and T2V_API_KEY; then the local platform's address."""
        chosen = url or os.environ.get("T2V_URL") or DEFAULT_URL
        return cls(chosen.rstrip("/"), api_key or os.environ.get("T2V_API_KEY") or None)

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"t2v-client/{__version__}", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how long apart, a request is sent again. `connect_retries` goes to
    httpx's transport; the rest covers dropped connections and 429/502/503/504."""

    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    # A Retry-After longer than this is not waited out: the error is raised instead.
    max_retry_after_s: float = 120.0
    connect_retries: int = 2

    def delay(
        self,
        attempt: int,
        *,
        response: httpx.Response | None = None,
        error: Exception | None = None,
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None: do not retry."""
        if attempt >= self.max_retries:
            return None
        if error is not None and not isinstance(error, RETRY_ERRORS):
            return None
        backoff = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        if response is None:
            return backoff
        if response.status_code not in RETRY_STATUSES:
            return None
        after = retry_after_s(response)
        if after is None:
            return backoff
        return after if after <= self.max_retry_after_s else None


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def api_error(response: httpx.Response) -> APIError:
    """The API's error body as an APIError; a body that is not one (a proxy's page) still
    gives a code from the status."""
    try:
        error = response.json()["error"]
        code, message, field = str(error["code"]), str(error["message"]), error.get("field")
    except (ValueError, KeyError, TypeError):
        code = f"http_{response.status_code}"
        message = response.text[:500] or response.reason_phrase
        field = None
    return APIError(
        response.status_code, code, message, field, retry_after_s=retry_after_s(response)
    )


def job_body(prompt: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The request body: the prompt and every field that was given (None: the default)."""
    return {"prompt": prompt, **{k: v for k, v in fields.items() if v is not None}}


def page_params(status: str | None, limit: int, cursor: str | None) -> dict[str, str]:
    params = {"limit": str(limit)}
    if status is not None:
        params["status"] = status
    if cursor is not None:
        params["cursor"] = cursor
    return params


def job_id_of(job: Job | str) -> str:
    return job.id if isinstance(job, Job) else job


def video_path(job: Job) -> str:
    """The video's path on the client's own URL (which the user knows to work) rather than the
    absolute URL the server writes from its public address; a store that signs URLs still
    answers it with a redirect."""
    return f"/v1/jobs/{job.id}/video"


def no_video(job: Job) -> APIError:
    return APIError(
        409, "video_not_ready", f"job {job.id} has no video (status {job.status.value})"
    )


def is_event_stream(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "")
    return response.status_code == 200 and content_type.startswith("text/event-stream")


class Watch:
    """Following one job until it is terminal, from SSE events or polls: reports each change
    to `on_progress` once and keeps the stream's position for a reconnect."""

    def __init__(
        self, job_id: str, on_progress: ProgressCallback | None, timeout_s: float | None
    ) -> None:
        self.job_id = job_id
        self.on_progress = on_progress
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.last: Job | None = None
        self.last_event_id: str | None = None
        self.retry_s = 1.0

    def see(self, job: Job) -> bool:
        """Take a snapshot of the job; True when it is terminal."""
        if self.on_progress is not None and (self.last is None or _shown(job) != _shown(self.last)):
            self.on_progress(job)
        self.last = job
        return job.terminal

    def remaining_s(self) -> float | None:
        """Seconds left before the timeout (TimeoutError once past it)."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"job {self.job_id} did not finish in time")
        return left

    def stream_headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def event_job(self, event: ServerSentEvent) -> Job | None:
        """The job an event carries, or None when it carries less than the whole job (the
        caller then reads the job itself)."""
        if event.id:
            self.last_event_id = event.id
        if event.retry is not None:
            self.retry_s = event.retry / 1000
        try:
            data = json.loads(event.data)
        except ValueError:
            return None
        if isinstance(data, dict) and isinstance(data.get("job"), dict):
            data = data["job"]
        whole = isinstance(data, dict) and {"id", "status", "params", "progress"} <= data.keys()
        if whole and data["id"] == self.job_id:
            return Job.from_api(data)
        return None

    def poll_headers(self) -> dict[str, str]:
        """With nobody to show progress to, a poll may be held by the server (`Prefer: wait`)
        until the job ends; a server that does not know the header answers at once."""
        if self.on_progress is not None:
            return {}
        left = self.remaining_s()
        wait = PREFER_WAIT_MAX_S if left is None else max(1, min(PREFER_WAIT_MAX_S, int(left)))
        return {"Prefer": f"wait={wait}"}


def _shown(job: Job) -> tuple[object, ...]:
    return (job.status, job.phase, job.progress, job.queue_position, job.eta_seconds)


class Download:
    """One video download into `<dest>.part`, resumed with Range after a cut (also across
    calls: an existing .part is continued), hashed as it is written, renamed onto `dest` only
    once its sha256 equals the job's."""

    def __init__(self, dest: Path, video: Video, on_bytes: BytesCallback | None) -> None:
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")
        self.video = video
        self.on_bytes = on_bytes
        self.hasher = hashlib.sha256()
        self.offset = 0
        self.file: IO[bytes] | None = None

    def __enter__(self) -> Download:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.part.open("a+b")
        self.file.seek(0)
        while chunk := self.file.read(1 << 20):
            self.hasher.update(chunk)
            self.offset += len(chunk)
        if self.offset > self.video.bytes:
            self.restart()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.file is not None:
            self.file.close()

    @property
    def complete(self) -> bool:
        return self.offset >= self.video.bytes

    def headers(self) -> dict[str, str]:
        if self.offset == 0:
            return {}
        # If-Range: should the video behind the URL differ, the server sends all of it (200).
        return {"Range": f"bytes={self.offset}-", "If-Range": f'"{self.video.sha256}"'}

    def begin(self, response: httpx.Response) -> bool:
        """Whether `response` is the video (or its rest); a full answer starts over."""
        if response.status_code == 206:
            start = response.headers.get("content-range", "").removeprefix("bytes ").split("-")[0]
            if start != str(self.offset):
                self.restart()
                return False
            return True
        if response.status_code == 200:
            self.restart()
            return True
        return False

    def next_attempt(self, attempt: int, before: int) -> int:
        """A cut after new bytes came is not the attempt's fault: counting starts again."""
        return 0 if self.offset > before else attempt + 1

    def delay(self, policy: RetryPolicy, attempt: int, asked: float | None) -> float:
        """The wait before resuming (`asked`: what a 429/503 said), or APIConnectionError
        once the attempts are spent."""
        delay = policy.delay(attempt)
        if delay is None:
            raise APIConnectionError(
                f"download stopped at {self.offset} of {self.video.bytes} bytes"
            )
        return asked if asked is not None else delay

    def restart(self) -> None:
        assert self.file is not None
        self.file.seek(0)
        self.file.truncate()
        self.hasher = hashlib.sha256()
        self.offset = 0

    def write(self, chunk: bytes) -> None:
        assert self.file is not None
        self.file.write(chunk)
        self.hasher.update(chunk)
        self.offset += len(chunk)
        if self.on_bytes is not None:
            self.on_bytes(self.offset, self.video.bytes)

    def finish(self) -> str:
        """The verified sha256; the file is in place. A mismatch removes the partial file."""
        assert self.file is not None
        self.file.close()
        digest = self.hasher.hexdigest()
        if digest != self.video.sha256 or self.offset != self.video.bytes:
            self.part.unlink(missing_ok=True)
            raise IntegrityError(self.video.sha256, digest)
        self.part.replace(self.dest)
        return digest
