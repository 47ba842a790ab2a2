"""Decoding and encoding report their own progress, and the ETA counts them; each generated
job moves the learned figures (t2v.eta) that later ETAs start from."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import rust_infer
from t2v import eta
from tests.worker.conftest import Worker

PHASE_S = 1.0


def slowed(call: Callable[..., Any]) -> Callable[..., Any]:
    """``call``, taking at least PHASE_S: long enough for several timed reports."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        result = call(*args, **kwargs)
        time.sleep(max(0.0, PHASE_S - (time.monotonic() - started)))
        return result

    return wrapped


async def test_decoding_and_encoding_report_their_own_progress(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    vae = (await worker.models.get()).pipe.vae
    monkeypatch.setattr(vae, "decode", slowed(vae.decode))
    monkeypatch.setattr(rust_infer, "encode_mp4", slowed(rust_infer.encode_mp4))
    job = await worker.submit()
    assert (await worker.runner.handle(job.id)).result == "succeeded"
    reports = worker.sink.data(job.id, "job.progress")
    for phase in ("decoding", "encoding"):
        own = [report for report in reports if report["phase"] == phase]
        assert len(own) >= 3, phase
        shares = [report["phase_done"] for report in own]
        assert shares == sorted(shares) and shares[-1] > shares[0], phase
    # Every report before the video is stored has time left and is short of the whole job.
    before_upload = [report for report in reports if report["phase"] != "uploading"]
    assert all(report["eta_s"] > 0 and report["done"] < 1 for report in before_upload)
    seqs = [report["seq"] for report in reports]
    assert seqs == sorted(set(seqs))
    stored = await worker.job(job.id)
    assert stored.progress is not None and stored.progress.seq >= seqs[-1]


async def test_generated_jobs_teach_the_figures(worker: Worker) -> None:
    settings = worker.rt.settings
    name = eta.record_name(settings.model_profile, settings.gpu)
    assert await worker.rt.store.read_record(name) is None
    first, second = await worker.submit(), await worker.submit()
    assert (await worker.runner.handle(first.id)).result == "succeeded"
    figures = eta.Figures(await worker.rt.store.read_record(name))
    size = eta.size_class(first.params)
    for phase in eta.RUN_PHASES:
        assert figures.raw[size][phase][1] == 1, phase  # one run seen
        assert figures.raw[eta.MODEL_CLASS][phase][1] == 1, phase
    # Nothing ran before the first job: there was no handoff to measure.
    assert "handoff" not in figures.raw[size]
    # The second waited for the first: the gap between them is the queue's handoff.
    assert (await worker.runner.handle(second.id)).result == "succeeded"
    figures = eta.Figures(await worker.rt.store.read_record(name))
    assert figures.raw[size]["step"][1] == 2
    assert figures.raw[size]["handoff"][1] == 1 and figures.raw[size]["handoff"][0] >= 0
