"""The ETA estimator (t2v.eta): learned figures, the run clock, the queue."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import rust_infer
from rust_infer import NormalizedParams
from t2v.eta import (
    LATE_SHARE,
    MODEL_CLASS,
    Figures,
    Plan,
    RunClock,
    Seed,
    job_eta,
    queued_eta,
    size_class,
)
from t2v.jobs import Job, JobStatus, JobUpdate, Progress, new_job_id
from t2v.settings import Settings
from t2v.store import open_job_store

DEMO = rust_infer.normalize_request(json.dumps({"prompt": "a fox"}), profile="tiny", fresh_seed=1)
LARGE: NormalizedParams = {**DEMO, "num_frames": 61, "height": 256, "width": 448}


def seed(params: NormalizedParams) -> Seed:
    return Seed.of(params, profile="tiny", gpu="cpu-tiny")


def measured_at(params: NormalizedParams, slower: float) -> dict[str, float]:
    """A run `slower` times the estimate in every phase, with 2 s of set-up and finish."""
    units = seed(params).units
    phases = {phase: slower * units[phase] for phase in ("step", "decode", "encode")}
    return phases | {"handoff": 0.5, "setup": 2.0, "finish": 2.0}


def test_before_any_run_the_plan_is_rust_infers_estimate() -> None:
    cost = rust_infer.estimate(DEMO, model="tiny", gpu="cpu-tiny")
    plan = Figures().plan(DEMO, seed(DEMO))
    assert plan.total == plan.queued_total == pytest.approx(cost["seconds"])


def test_the_first_run_replaces_the_seed() -> None:
    raw = Figures().learned(DEMO, seed(DEMO), measured_at(DEMO, 7.0))
    plan = Figures(raw).plan(DEMO, seed(DEMO))
    cost = rust_infer.estimate(DEMO, model="tiny", gpu="cpu-tiny")
    assert plan.step == pytest.approx(7.0 * cost["seconds_per_step"])
    assert plan.decode == pytest.approx(7.0 * cost["decode_seconds"])
    assert (plan.handoff, plan.setup, plan.finish) == (0.5, 2.0, 2.0)


def test_the_figures_converge_on_the_machine_as_it_changes() -> None:
    figures = Figures()
    for _ in range(3):
        figures = Figures(figures.learned(DEMO, seed(DEMO), measured_at(DEMO, 3.0)))
    for _ in range(12):  # the machine became busier
        figures = Figures(figures.learned(DEMO, seed(DEMO), measured_at(DEMO, 6.0)))
    expected = Figures(Figures().learned(DEMO, seed(DEMO), measured_at(DEMO, 6.0)))
    total = expected.plan(DEMO, seed(DEMO)).total
    assert figures.plan(DEMO, seed(DEMO)).total == pytest.approx(total, rel=0.01)


def test_figures_are_per_size_class_and_a_new_size_uses_the_models() -> None:
    assert size_class(DEMO) != size_class(LARGE)
    raw = Figures().learned(DEMO, seed(DEMO), measured_at(DEMO, 4.0))
    assert set(raw) == {size_class(DEMO), MODEL_CLASS}
    # A size never run follows the model's figures, not the bare estimate.
    unseen = Figures(raw).plan(LARGE, seed(LARGE))
    assert unseen.step == pytest.approx(4.0 * seed(LARGE).units["step"])
    # Once it has run, its own figures count, and the demo size keeps its own.
    raw = Figures(raw).learned(LARGE, seed(LARGE), measured_at(LARGE, 2.0))
    assert Figures(raw).plan(LARGE, seed(LARGE)).step == pytest.approx(
        2.0 * seed(LARGE).units["step"]
    )
    assert Figures(raw).plan(DEMO, seed(DEMO)).step == pytest.approx(4.0 * seed(DEMO).units["step"])


def test_a_nonsense_measurement_is_ignored() -> None:
    raw = Figures().learned(DEMO, seed(DEMO), {"decode": float("nan"), "encode": -1.0})
    assert Figures(raw).plan(DEMO, seed(DEMO)) == Figures().plan(DEMO, seed(DEMO))


PLAN = Plan(handoff=0.5, setup=1.0, step=1.0, steps=4, decode=4.0, encode=2.0, finish=1.0)


def test_the_clock_counts_every_phase_and_never_says_done_with_work_left() -> None:
    clock = RunClock(PLAN, now=0.0)
    assert clock.snapshot(now=0.0).eta_s == pytest.approx(PLAN.total)
    for step in range(1, 5):
        clock.stepped(now=1.0 + step)  # set-up 1 s, then 1 s a step
    assert clock.phase == "decode"
    snapshots = [clock.snapshot(now=5.0 + t) for t in (0.0, 1.0, 3.0, 3.9, 10.0)]
    # Decoding: its own progress moves; the ETA counts what is left of it and what follows.
    assert snapshots[0].eta_s == pytest.approx(4.0 + 2.0 + 1.0)
    assert snapshots[1].eta_s == pytest.approx(3.0 + 2.0 + 1.0)
    assert [s.phase_done for s in snapshots] == sorted(s.phase_done for s in snapshots)
    assert all(0 < s.done < 1 and s.eta_s > 3.0 for s in snapshots)
    # Past its estimate, a phase still has a little left.
    assert snapshots[-1].eta_s == pytest.approx(LATE_SHARE * 10.0 + 3.0)
    clock.enter("encode", now=16.0)
    clock.enter("finish", now=17.0)
    measured = clock.measured(now=17.5)
    assert measured == pytest.approx(
        {"setup": 1.0, "step": 1.0, "decode": 11.0, "encode": 1.0, "finish": 0.5}
    )


def test_a_slow_run_moves_the_step_pace() -> None:
    clock = RunClock(PLAN, now=0.0)
    for step in range(1, 4):
        clock.stepped(now=1.0 + 2.0 * step)  # 2 s a step, not 1
    snapshot = clock.snapshot(now=7.0)
    pace = (2 * 2.0 + 1.0) / 3  # two observed steps and the plan's
    assert snapshot.eta_s == pytest.approx(pace + 4.0 + 2.0 + 1.0, abs=0.01)


def test_a_queued_job_waits_for_the_jobs_ahead_of_it() -> None:
    # One worker: the running job's 5 s, two queued jobs of 10 s, then its own 10 s.
    assert queued_eta(10.0, [10.0, 10.0], [5.0], workers=1) == 35.0
    # Two workers, one free now and one after 5 s: the jobs ahead end at 10 s and 15 s.
    assert queued_eta(10.0, [10.0, 10.0], [5.0], workers=2) == 20.0
    # Nothing ahead and a free worker: only its own time.
    assert queued_eta(10.0, [], [], workers=1) == 10.0
    # Further back than was read: the unseen jobs cost the mean of the known ones.
    assert queued_eta(10.0, [10.0], [], workers=1, unseen_ahead=2) == 40.0


async def test_a_queued_jobs_api_eta_includes_the_jobs_ahead(tmp_path: Path) -> None:
    """Through a real store: one job running with 5 s left, two queued ahead."""
    settings = Settings.from_env({"T2V_DATA_DIR": str(tmp_path), "T2V_MODEL_PROFILE": "tiny"})
    store = open_job_store(settings.store_url)
    now = time.time()
    jobs = [
        Job(new_job_id(), "t", JobStatus.QUEUED, DEMO, created_at=now - 10 + i) for i in range(4)
    ]
    try:
        for job in jobs:
            await store.create(job)
        progress = Progress(1, 2, 8, seq=3, eta_s=5.0, at=time.time())
        running = JobUpdate(jobs[0].id, JobStatus.RUNNING, phase="denoising", progress=progress)
        await store.apply(running)
        own, last_position = jobs[3], 3
        expected = Figures().plan(DEMO, seed(DEMO)).queued_total
        alone = await job_eta(store, settings, jobs[1], 1)
        assert alone == pytest.approx(5.0 + expected, abs=0.5)
        behind = await job_eta(store, settings, own, last_position)
        assert behind == pytest.approx(5.0 + 3 * expected, abs=0.5)
        # The queue moves: the running job is done, the next one starts.
        await store.apply(JobUpdate(jobs[0].id, JobStatus.SUCCEEDED, at=time.time()))
        await store.apply(JobUpdate(jobs[1].id, JobStatus.RUNNING, phase="starting"))
        moved = await job_eta(store, settings, own, last_position - 1)
        assert moved == pytest.approx(3 * expected, abs=0.5)
    finally:
        await store.close()
