"""infer's JobRunner in this process, on the tiny model, with the embedded stores. Its events
are applied to the store as status would apply them, and kept for the test to read."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from t2v.artifacts import ArtifactStore, open_artifact_store
from t2v.auth import KeyRegistry
from t2v.contract import normalize
from t2v.events import event_data
from t2v.jobs import Job, JobStatus, new_job_id
from t2v.lifecycle import apply_lifecycle_event
from t2v.runtime import Runtime
from t2v.settings import Settings
from t2v.store import JobStore, open_job_store
from t2v.worker.models import ModelHolder
from t2v.worker.runner import JobRunner

SMALL = {"width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 3}


@dataclass
class ApplyingSink:
    """Applies lifecycle events to the store at once, as status does after the broker."""

    store: JobStore
    artifacts: ArtifactStore
    sent: list[CloudEvent] = field(default_factory=list)
    # Set by a test in which a worker is expected to outlive its lease: what status refused.
    refusals_expected: bool = False
    refused: list[CloudEvent] = field(default_factory=list)

    async def send(self, event: CloudEvent) -> bool:
        self.sent.append(event)
        result = await apply_lifecycle_event(self.store, self.artifacts, event, now=time.time())
        if result.refused is not None:
            assert self.refusals_expected, f"status refused infer's own {event['type']}"
            self.refused.append(event)
        return True

    async def close(self) -> None:
        pass

    def types(self, job_id: str) -> list[str]:
        return [e["type"].removeprefix("dev.t2v.") for e in self.sent if e["subject"] == job_id]

    def data(self, job_id: str, event_type: str) -> list[dict[str, Any]]:
        return [
            event_data(e)
            for e in self.sent
            if e["subject"] == job_id and e["type"] == f"dev.t2v.{event_type}"
        ]


@dataclass
class Worker:
    rt: Runtime
    runner: JobRunner
    sink: ApplyingSink
    # The runner's model, in this process's thread: tests patch its pipeline in place.
    models: ModelHolder

    async def submit(self, **fields: Any) -> Job:
        body = json.dumps({"prompt": "a fox in the snow", **SMALL, **fields}).encode()
        job = Job(
            id=new_job_id(),
            tenant="local",
            status=JobStatus.QUEUED,
            params=normalize(body, profile="tiny"),
            created_at=time.time(),
            estimated_s=1.0,
        )
        return (await self.rt.store.create(job)).job

    async def job(self, job_id: str) -> Job:
        job = await self.rt.store.get(job_id)
        assert job is not None
        return job


@pytest.fixture
def worker_env() -> dict[str, str]:
    """Settings a test module overrides (leases, heartbeats)."""
    return {}


@pytest.fixture
async def worker(
    tmp_path: Path, tiny_model_dir: Path, worker_env: dict[str, str]
) -> AsyncIterator[Worker]:
    settings = Settings.from_env(
        {
            "T2V_DATA_DIR": str(tmp_path),
            "T2V_MODEL": str(tiny_model_dir),
            "T2V_DEVICE": "cpu",
            "T2V_WARMUP": "0",
            "T2V_PROGRESS_INTERVAL_S": "0",
            **worker_env,
        }
    )
    store = open_job_store(settings.store_url)
    artifacts = open_artifact_store(settings.artifacts_url)
    sink = ApplyingSink(store, artifacts)
    rt = Runtime(
        settings=settings,
        store=store,
        artifacts=artifacts,
        sink=sink,
        keys=KeyRegistry({}),
        source="/t2v/infer",
    )
    models = ModelHolder(settings)
    runner = JobRunner(rt, models)
    await models.get()
    try:
        yield Worker(rt, runner, sink, models)
    finally:
        await store.close()
