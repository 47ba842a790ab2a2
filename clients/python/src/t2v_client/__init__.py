"""Python SDK for the t2v text-to-video API: `Client` (sync) and `AsyncClient`.

from t2v_client import Client
result = Client("http://127.0.0.1:8080").generate("a cat surfing", out="cat.mp4")
print(result.path, result.sha256)
"""

from t2v_client._core import RetryPolicy
from t2v_client._version import __version__
from t2v_client.async_client import AsyncClient
from t2v_client.client import Client
from t2v_client.errors import (
    APIConnectionError,
    APIError,
    IntegrityError,
    JobFailedError,
    T2VError,
    WebhookVerificationError,
)
from t2v_client.models import GenerateResult, Job, JobFailure, JobStatus, Progress, Video
from t2v_client.webhooks import verify_webhook

__all__ = [
    "APIConnectionError",
    "APIError",
    "AsyncClient",
    "Client",
    "GenerateResult",
    "IntegrityError",
    "Job",
    "JobFailedError",
    "JobFailure",
    "JobStatus",
    "Progress",
    "RetryPolicy",
    "T2VError",
    "Video",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]
