"""Typed views of the API's resources. Each keeps the JSON it came from in `raw`, so a field
the server adds later is never lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar

_T = TypeVar("_T")


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    percent: float
    attempt: int = 1


@dataclass(frozen=True)
class Video:
    url: str
    sha256: str
    bytes: int
    width: int
    height: int
    num_frames: int
    fps: int
    duration_s: float


@dataclass(frozen=True)
class JobFailure:
    code: str
    message: str
    retryable: bool = False


@dataclass(frozen=True)
class Job:
    id: str
    status: JobStatus
    phase: str | None
    progress: Progress | None
    queue_position: int | None
    eta_seconds: float | None
    params: dict[str, Any]
    error: JobFailure | None
    video: Video | None
    created_at: str | None = None
    finished_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Job:
        progress = data.get("progress")
        video = data.get("video")
        error = data.get("error")
        return cls(
            id=data["id"],
            status=JobStatus(data["status"]),
            phase=data.get("phase"),
            progress=_known(Progress, progress) if progress else None,
            queue_position=data.get("queue_position"),
            eta_seconds=data.get("eta_seconds"),
            params=dict(data.get("params") or {}),
            error=_known(JobFailure, error) if error else None,
            video=_known(Video, video) if video else None,
            created_at=data.get("created_at"),
            finished_at=data.get("finished_at"),
            raw=data,
        )


def _known(kind: type[_T], data: dict[str, Any]) -> _T:
    """`kind` built from the keys it declares; others (added by a newer server) are skipped."""
    names = kind.__dataclass_fields__  # type: ignore[attr-defined]
    return kind(**{key: value for key, value in data.items() if key in names})


class JobFields(TypedDict, total=False):
    """The request's fields beside the prompt, each optional (limits: t2v_client.limits).
    `webhook` and `webhook_events` go only to servers that take them."""

    negative_prompt: str
    num_frames: int
    duration_s: float
    width: int
    height: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    seed: int
    webhook: str
    webhook_events: list[Literal["start", "progress", "completed"]]


@dataclass(frozen=True)
class GenerateResult:
    """What `generate` made: the finished job, where its video was written, and the video's
    sha256 as computed from the bytes written (equal to `job.video.sha256`: it is checked)."""

    job: Job
    path: Path
    sha256: str
