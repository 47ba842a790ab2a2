"""The rust_infer exception hierarchy.

Written in Python, not Rust: under the abi3 (Python 3.11) stable ABI a ``#[pyclass]`` cannot
subclass an exception, and ``InvalidRequest`` needs two bases. The Rust core raises these
classes from its one error boundary (``src/errors.rs``), which matches them by module and name.
"""

from __future__ import annotations

from typing import Any


def _restore(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Unpickles an error without calling ``__init__``, whose signature varies by class."""
    error = cls.__new__(cls, *args)
    error.__dict__.update(state)
    return error


class RustInferError(Exception):
    """An error with a stable ``code``, a human ``message`` and whether a retry may help."""

    code: str
    message: str
    retryable: bool
    field: str | None

    def __init__(
        self, code: str, message: str, *, retryable: bool = False, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, dict(self.__dict__)))

    def __repr__(self) -> str:
        field = f", field={self.field!r}" if self.field is not None else ""
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"retryable={self.retryable!r}{field})"
        )


class InvalidRequest(RustInferError, ValueError):
    """A request that breaks the job contract; ``field`` names the offending field."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(code, message, retryable=False, field=field)


class RunFailed(RustInferError):
    """A supervised run failed; ``code`` is one of ``FAILURE_CODES``."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(code, message, retryable=retryable)


class TransientError(RustInferError):
    """Raise from pipeline code for a failure that may pass on a retry (a flaky store)."""

    def __init__(self, message: str) -> None:
        super().__init__("transient", message, retryable=True)


class InvalidMedia(RustInferError, ValueError):
    """Frames, an encoder setting or MP4 bytes that cannot be used.

    ``code`` is ``invalid_frames``, ``invalid_encoder_setting`` or ``invalid_mp4``; never
    retryable (the same input fails the same way).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, retryable=False)


class ConfigurationError(RustInferError, ValueError):
    """A deployment setting rust_infer does not know: ``unknown_gpu`` or ``unknown_model``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, retryable=False)


class JobCanceled(BaseException):
    """Raised by the step hook when the job was canceled.

    A ``BaseException`` so that ``except Exception`` in a pipeline cannot swallow it.
    """


class DeadlineExceeded(BaseException):
    """Raised by the step hook when the run's deadline has passed (a ``BaseException``)."""
