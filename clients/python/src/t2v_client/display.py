"""The live progress bar of `t2v generate` and `t2v wait`: queue position while queued, then
the phase, step n/N and the server's ETA, then the download."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn

from t2v_client.models import Job, JobStatus


def describe(job: Job) -> str:
    if job.status == JobStatus.QUEUED:
        position = job.queue_position
        return "queued" if position is None else f"queued, position {position}"
    if job.status == JobStatus.RUNNING:
        return job.phase or "running"
    return job.status.value


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    return f"ETA {minutes}:{secs:02d}" if minutes else f"ETA {secs}s"


class JobBar:
    """A rich progress bar fed with job snapshots (`show`) and download bytes (`bytes`)."""

    def __init__(self, console: Console, *, enabled: bool, first: str = "submitted") -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description:<22}"),
            BarColumn(),
            TextColumn("{task.fields[steps]:>14}"),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[eta]}"),
            console=console,
            disable=not enabled,
            # Redrawn on every update as well: a short job moves faster than the refresh rate.
            refresh_per_second=8,
        )
        self.task: TaskID = self.progress.add_task(first, total=None, steps="", eta="")

    def __enter__(self) -> JobBar:
        self.progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self.progress.stop()

    def show(self, job: Job) -> None:
        step = job.progress
        done = job.status == JobStatus.SUCCEEDED
        total = step.total if step is not None else (1 if done else None)
        completed = step.step if step is not None else (1 if done else 0)
        steps = f"step {step.step}/{step.total}" if step is not None else ""
        self.progress.update(
            self.task,
            description=describe(job),
            total=total,
            completed=completed,
            steps=steps,
            eta=eta_text(job.eta_seconds),
            refresh=True,
        )

    def bytes(self, done: int, total: int) -> None:
        self.progress.update(
            self.task,
            description="downloading",
            total=total,
            completed=done,
            steps=f"{done / 1e6:.1f}/{total / 1e6:.1f} MB",
            eta="",
            refresh=True,
        )
