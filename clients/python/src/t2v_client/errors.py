"""The exceptions the SDK raises. Every refusal by the API is one type, `APIError`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from t2v_client.models import Job


class T2VError(Exception):
    """Base of every error this package raises."""


class APIError(T2VError):
    """The API answered with an error: `{"error": {"code", "message", "field"}}`.

    `code` is stable (match on it); `message` is for people; `field` names the request field
    at fault, when there is one."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (field {field})" if field else ""))
        self.status_code = status_code
        self.code = code
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s


class APIConnectionError(T2VError):
    """The API could not be reached (refused, reset, timed out), retries included."""


class JobFailedError(T2VError):
    """`generate` followed a job that ended failed or canceled; `job` says why."""

    def __init__(self, job: Job) -> None:
        reason = f": {job.error.code}: {job.error.message}" if job.error else ""
        super().__init__(f"job {job.id} {job.status}{reason}")
        self.job = job


class IntegrityError(T2VError):
    """A downloaded video's sha256 differs from the one its job reports."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"downloaded video has sha256 {got}, the job reports {expected}")
        self.expected = expected
        self.got = got


class WebhookVerificationError(T2VError):
    """A webhook's signature, timestamp or headers do not check out."""
