"""Honest ETAs: each phase's pace, learned on this machine and model, seeded by rust_infer.

A job goes through five timed phases: `setup` (from the worker taking it to the end of the
first step, less that step: model hand-over, text encoding), `step` (each denoising step),
`decode` (the VAE), `encode` (the MP4) and `finish` (commit, upload, the outcome event).
Each has a figure in seconds per unit of work: per job for `setup` and `finish`, and per
second of rust_infer's own estimate for the other three (so the figure is how much slower or
faster this machine is than the estimator's constants). The figures start at rust_infer's
estimate and move, after every generated job, towards what was measured: a mean of every run
until `MIN_WEIGHT` is reached, then an exponentially weighted one, so the first job replaces
the seed and later ones follow the machine as it changes.

Figures are kept per model and GPU kind, per size class (frames x height x width, to a power
of two: the pace per estimated second drifts with the size) and for the model as a whole,
which a size never run before falls back on. They are one record in the job store, which all
three functions share: infer updates it, submit and status read it.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import rust_infer
from t2v.jobs import Job, JobStatus

if TYPE_CHECKING:
    from t2v.settings import Settings
    from t2v.store import JobStore

# `handoff` is the gap between one queued job's end and the next one's start on a worker.
TIMED_PHASES = ("handoff", "setup", "step", "decode", "encode", "finish")
RUN_PHASES = TIMED_PHASES[1:]
# The weight of the newest run once this many have been seen (before: 1 / runs).
MIN_WEIGHT = 0.5
# A phase that has run past its estimate is guessed to need this share of its time again:
# never "0 s left" while work is left.
LATE_SHARE = 0.2
# The estimate's step pace counts as this many observed steps when blended with the run's.
PRIOR_STEPS = 1.0
MODEL_CLASS = "model"
# Jobs ahead read for a queued job's ETA; any further ahead cost the mean of those read.
AHEAD_CAP = 100


def record_name(profile: str, gpu: str) -> str:
    return f"eta-figures/{profile}/{gpu}"


def size_class(params: Mapping[str, Any]) -> str:
    pixels = int(params["num_frames"]) * int(params["height"]) * int(params["width"])
    return str(round(math.log2(max(pixels, 1))))


@dataclass(frozen=True)
class Seed:
    """rust_infer's estimate of one request, as units of work per phase and seed figures."""

    units: dict[str, float]
    figures: dict[str, float]
    steps: int

    @classmethod
    def of(cls, params: Mapping[str, Any], *, profile: str, gpu: str) -> Seed:
        cost = rust_infer.estimate(params, model=profile, gpu=gpu)
        steps = int(params["num_inference_steps"])
        units = {
            "handoff": 1.0,
            "setup": 1.0,
            "step": float(cost["seconds_per_step"]),
            "decode": float(cost["decode_seconds"]),
            "encode": float(cost["encode_seconds"]),
            "finish": 1.0,
        }
        figures = {"handoff": 0.0, "setup": float(cost["fixed_seconds"]), "finish": 0.0}
        figures |= {phase: 1.0 for phase in ("step", "decode", "encode")}
        return cls(units, figures, steps)


@dataclass(frozen=True)
class Plan:
    """A job's expected seconds: `step` is one step's, the rest a whole phase's."""

    handoff: float
    setup: float
    step: float
    steps: int
    decode: float
    encode: float
    finish: float

    @property
    def total(self) -> float:
        """From the worker taking the job to its end."""
        return self.setup + self.steps * self.step + self.decode + self.encode + self.finish

    @property
    def queued_total(self) -> float:
        """From the end of the job before it on a busy worker to its end."""
        return self.handoff + self.total


class Figures:
    """The learned figures as stored: `{class: {phase: [seconds per unit, runs]}}`."""

    def __init__(self, raw: Mapping[str, Any] | None = None) -> None:
        self.raw: dict[str, dict[str, list[float]]] = {
            name: {phase: list(value) for phase, value in entry.items()}
            for name, entry in (raw or {}).items()
        }

    def figure(self, size: str, phase: str, seed: float) -> float:
        for name in (size, MODEL_CLASS):
            entry = self.raw.get(name, {}).get(phase)
            if entry is not None and entry[1] >= 1:
                return float(entry[0])
        return seed

    def plan(self, params: Mapping[str, Any], seed: Seed) -> Plan:
        size = size_class(params)
        seconds = {
            phase: seed.units[phase] * self.figure(size, phase, seed.figures[phase])
            for phase in TIMED_PHASES
        }
        return Plan(steps=seed.steps, **seconds)

    def learned(
        self, params: Mapping[str, Any], seed: Seed, measured: Mapping[str, float]
    ) -> dict[str, dict[str, list[float]]]:
        """The record after one run whose phases took `measured` seconds (`step`: one)."""
        raw = Figures(self.raw).raw
        for name in (size_class(params), MODEL_CLASS):
            entry = raw.setdefault(name, {})
            for phase, seconds in measured.items():
                units = seed.units[phase]
                if units <= 0 or not math.isfinite(seconds) or seconds < 0:
                    continue
                figure, runs = entry.get(phase, [seed.figures[phase], 0.0])
                weight = max(1.0 / (runs + 1), MIN_WEIGHT)
                entry[phase] = [figure + weight * (seconds / units - figure), runs + 1]
        return raw


def _phase_left(expected: float, elapsed: float) -> float:
    return max(expected - elapsed, LATE_SHARE * max(expected, elapsed))


@dataclass(frozen=True)
class Snapshot:
    """What the worker tells about a running job at `at`."""

    eta_s: float
    done: float  # share of the whole job's time behind it, below 1 while work is left
    phase_done: float  # share of the current phase's time behind it
    at: float


class RunClock:
    """Times one run's phases on the worker and says, at any moment, how much is left."""

    def __init__(self, plan: Plan, *, now: float | None = None) -> None:
        self.plan = plan
        self.started = time.time() if now is None else now
        self.phase = "setup"
        self.phase_started = self.started
        self.step_times: list[float] = []
        self.seconds: dict[str, float] = {}

    def enter(self, phase: str, *, now: float | None = None) -> None:
        """Start a timed phase (the steps are timed by `stepped`)."""
        now = time.time() if now is None else now
        if phase == self.phase:
            return
        if self.phase in ("decode", "encode"):
            self.seconds[self.phase] = now - self.phase_started
        self.phase, self.phase_started = phase, now

    def stepped(self, *, now: float | None = None) -> None:
        """A denoising step ended; after the last one the pipeline decodes."""
        now = time.time() if now is None else now
        self.step_times.append(now)
        self.enter("decode" if len(self.step_times) >= self.plan.steps else "step", now=now)

    def step_pace(self) -> float:
        """Seconds a step: the plan's, moved towards this run's steps after the first."""
        times = self.step_times
        observed = len(times) - 1
        if observed < 1:
            return self.plan.step
        run_pace = (times[-1] - times[0]) / observed
        return (observed * run_pace + PRIOR_STEPS * self.plan.step) / (observed + PRIOR_STEPS)

    def measured(self, *, now: float | None = None) -> dict[str, float]:
        """The run's phases for `Figures.learned` (call once the job has finished)."""
        now = time.time() if now is None else now
        out = dict(self.seconds)
        out["finish"] = now - self.phase_started
        times = self.step_times
        if len(times) >= 2:
            out["step"] = (times[-1] - times[0]) / (len(times) - 1)
        if times:
            out["setup"] = max(0.0, times[0] - self.started - out.get("step", self.plan.step))
        return out

    def snapshot(self, *, now: float | None = None) -> Snapshot:
        now = time.time() if now is None else now
        plan, pace = self.plan, self.step_pace()
        expected = {
            "setup": plan.setup + pace,  # the set-up ends with the first step
            "step": max(0, plan.steps - len(self.step_times)) * pace,
            "decode": plan.decode,
            "encode": plan.encode,
            "finish": plan.finish,
        }
        if self.phase == "setup":
            expected["step"] = max(0, plan.steps - 1) * pace
        # Within the steps, the time since the last one counts against the steps left.
        since = self.step_times[-1] if self.phase == "step" else self.phase_started
        in_phase = now - since
        left = _phase_left(expected[self.phase], in_phase)
        later = list(RUN_PHASES[RUN_PHASES.index(self.phase) + 1 :])
        eta = left + sum(expected[phase] for phase in later)
        if self.phase == "step":
            phase_done = len(self.step_times) / plan.steps
        else:
            phase_done = in_phase / (in_phase + left) if in_phase + left > 0 else 0.0
        elapsed = now - self.started
        done = elapsed / (elapsed + eta) if elapsed + eta > 0 else 0.0
        # Rounded for the wire, but never to "0 s left" while the run is going.
        return Snapshot(max(round(eta, 3), 0.001), round(done, 4), round(phase_done, 4), now)


def running_eta(job: Job, *, now: float | None = None) -> float | None:
    """Seconds left of a running job: the worker's last word, less the time since."""
    progress = job.progress
    now = time.time() if now is None else now
    if progress is not None and progress.eta_s is not None and progress.at is not None:
        left = progress.eta_s - max(0.0, now - progress.at)
        return max(left, LATE_SHARE * progress.eta_s)
    if job.estimated_s is None:
        return None
    elapsed = now - (job.started_at or now)
    return _phase_left(job.estimated_s, elapsed)


def queued_eta(
    expected_s: float,
    ahead: Sequence[float],
    running_left: Sequence[float],
    *,
    workers: int,
    unseen_ahead: int = 0,
) -> float:
    """Seconds until a queued job finishes: its own time after the jobs ahead of it.

    `running_left` are the running jobs' remaining seconds and `ahead` the queued jobs'
    expected seconds, oldest first; `workers` generations run at once, each taking the next
    job when it is free. `unseen_ahead` jobs further ahead than were read are each taken to
    cost the mean of those that were.
    """
    workers = max(1, workers)
    free = sorted(running_left)[:workers]
    free += [0.0] * (workers - len(free))
    heapq.heapify(free)
    for seconds in [*sorted(running_left)[workers:], *ahead]:
        heapq.heappush(free, heapq.heappop(free) + seconds)
    known = [*ahead, expected_s]
    unseen = unseen_ahead * sum(known) / len(known) / workers
    return heapq.heappop(free) + unseen + expected_s


async def read_figures(store: JobStore, profile: str, gpu: str) -> Figures:
    return Figures(await store.read_record(record_name(profile, gpu)))


def expected_seconds(params: Mapping[str, Any], figures: Figures, settings: Settings) -> float:
    """A queued job's time on a worker, as the figures say now."""
    seed = Seed.of(params, profile=settings.model_profile, gpu=settings.gpu)
    return figures.plan(params, seed).queued_total


def _left(job: Job, figures: Figures, settings: Settings) -> float:
    left = running_eta(job)
    return expected_seconds(job.params, figures, settings) if left is None else left


async def job_eta(
    store: JobStore, settings: Settings, job: Job, position: int | None
) -> float | None:
    """The ETA the API shows for `job` (`position`: its place in the queue)."""
    if job.status.terminal:
        return None
    if job.status == JobStatus.RUNNING:
        return running_eta(job)
    if position is None:
        return None
    figures = await read_figures(store, settings.model_profile, settings.gpu)
    workers = settings.infer_workers
    running, queued = await store.jobs_ahead(job, limit=min(max(position - 1, workers), AHEAD_CAP))
    return queued_eta(
        expected_seconds(job.params, figures, settings),
        [expected_seconds(other.params, figures, settings) for other in queued],
        [_left(other, figures, settings) for other in running],
        workers=workers,
        unseen_ahead=max(0, position - 1 - len(queued)),
    )
