"""One exception hierarchy for the platform; `t2v.http` maps it to HTTP responses in one place."""

from __future__ import annotations


class T2VError(Exception):
    """Base of every error the API reports. `code` is stable; `message` is for people."""

    http_status = 500
    code = "internal"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        # HTTP headers the answer must carry (Retry-After, WWW-Authenticate, Content-Range).
        self.headers: dict[str, str] = {}
        if code is not None:
            self.code = code

    def to_body(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


class InvalidRequestError(T2VError):
    http_status = 400
    code = "invalid_request"


class MalformedEventError(T2VError):
    http_status = 400
    code = "malformed_event"


class PayloadTooLargeError(T2VError):
    http_status = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(T2VError):
    http_status = 415
    code = "unsupported_media_type"


class NotFoundError(T2VError):
    http_status = 404
    code = "not_found"


class MethodNotAllowedError(T2VError):
    http_status = 405
    code = "method_not_allowed"


class ConflictError(T2VError):
    http_status = 409
    code = "conflict"


class IdempotencyConflictError(ConflictError):
    code = "idempotency_key_reused"


class GoneError(T2VError):
    """The resource existed and was removed on purpose (an expired video)."""

    http_status = 410
    code = "gone"


class UnauthorizedError(T2VError):
    http_status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code, field=field)
        self.headers["WWW-Authenticate"] = 'Bearer realm="t2v"'


class RateLimitedError(T2VError):
    http_status = 429
    code = "rate_limited"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: int,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ):
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s
        self.headers.update(headers or {})
        self.headers["Retry-After"] = str(retry_after_s)


class UnavailableError(T2VError):
    """A backend (store, artifact store, broker) cannot be reached: retry later."""

    http_status = 503
    code = "unavailable"
    retryable = True
