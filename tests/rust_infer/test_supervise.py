"""The supervised run, driven by fake pipelines that call the step hook like diffusers does."""

from __future__ import annotations

import contextlib
import math
import pickle
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rust_infer import (
    FAILURE_CODES,
    DeadlineExceeded,
    InvalidRequest,
    JobCanceled,
    RunFailed,
    RustInferError,
    StepHook,
    TransientError,
    supervise,
)


class OutOfMemoryError(RuntimeError):
    """Stands in for torch.OutOfMemoryError, matched by class name."""


class Recorder:
    """Progress calls, and a cancel flag that turns on after a given number of checks."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.progress: list[tuple[int, int]] = []
        self.checks = 0
        self.cancel_after = cancel_after

    def on_progress(self, done: int, total: int) -> None:
        self.progress.append((done, total))

    def is_canceled(self) -> bool:
        self.checks += 1
        return self.cancel_after is not None and self.checks > self.cancel_after


def pipeline(steps: int, result: str = "video") -> Callable[[StepHook], str]:
    """A fake diffusers pipeline: calls the hook after each step, as callback_on_step_end."""

    def run(hook: StepHook) -> str:
        kwargs: dict[str, object] = {"latents": object()}
        for index in range(steps):
            returned = hook(object(), index, 1000 - index, kwargs)
            assert returned is kwargs
        return result

    return run


def failing(error: BaseException) -> Callable[[StepHook], str]:
    def run(hook: StepHook) -> str:
        hook(None, 0, 0, {})
        raise error

    return run


def run_failure(run: Callable[[StepHook], str], recorder: Recorder | None = None) -> RunFailed:
    recorder = recorder or Recorder()
    with pytest.raises(RunFailed) as caught:
        supervise(
            run, total_steps=4, on_progress=recorder.on_progress, is_canceled=recorder.is_canceled
        )
    return caught.value


def test_failure_codes() -> None:
    assert FAILURE_CODES == (
        "invalid_input",
        "out_of_memory",
        "transient",
        "canceled",
        "deadline_exceeded",
        "internal",
    )


def test_a_run_returns_its_result_and_reports_each_step() -> None:
    recorder = Recorder()
    hooks: list[StepHook] = []

    def run(hook: StepHook) -> str:
        hooks.append(hook)
        assert hook.steps_done == 0
        return pipeline(5)(hook)

    result = supervise(
        run, total_steps=5, on_progress=recorder.on_progress, is_canceled=recorder.is_canceled
    )
    assert result == "video"
    assert recorder.progress == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    assert recorder.checks == 6  # once before the run, then once per step
    assert hooks[0].steps_done == 5
    assert "5 of 5" in repr(hooks[0])


def test_cancel_stops_the_run_after_the_current_step() -> None:
    recorder = Recorder(cancel_after=3)  # passes the pre-run check and the checks of steps 1, 2
    error = run_failure(pipeline(10), recorder)
    assert (error.code, error.retryable) == ("canceled", False)
    assert isinstance(error.__cause__, JobCanceled)
    assert "after step 3 of 4" in error.message
    assert recorder.progress == [(1, 4), (2, 4), (3, 4)]


def test_a_job_canceled_before_the_start_never_runs() -> None:
    calls: list[StepHook] = []
    error = run_failure(calls.append, Recorder(cancel_after=0))  # type: ignore[arg-type]
    assert (error.code, error.__cause__, calls) == ("canceled", None, [])


def test_except_exception_in_the_pipeline_cannot_swallow_a_cancel() -> None:
    def stubborn(hook: StepHook) -> str:
        for index in range(10):
            with contextlib.suppress(Exception):  # a sloppy pipeline
                hook(None, index, 0, {})
        return "finished anyway"

    assert run_failure(stubborn, Recorder(cancel_after=1)).code == "canceled"


def test_a_passed_deadline_stops_the_run() -> None:
    recorder = Recorder()
    with pytest.raises(RunFailed) as caught:
        supervise(
            pipeline(3),
            total_steps=3,
            on_progress=recorder.on_progress,
            is_canceled=recorder.is_canceled,
            deadline_s=0.0,
        )
    assert (caught.value.code, caught.value.retryable) == ("deadline_exceeded", False)
    assert isinstance(caught.value.__cause__, DeadlineExceeded)
    assert recorder.progress == [(1, 3)]


def test_a_distant_deadline_lets_the_run_finish() -> None:
    recorder = Recorder()
    result = supervise(
        pipeline(3),
        total_steps=3,
        on_progress=recorder.on_progress,
        is_canceled=recorder.is_canceled,
        deadline_s=3600.0,
    )
    assert result == "video"


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        (OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB"), "out_of_memory", False),
        (RuntimeError("CUDA error: out of memory"), "out_of_memory", False),
        (MemoryError(), "out_of_memory", False),
        (ValueError("height must be divisible by 16"), "invalid_input", False),
        (TypeError("bad argument"), "invalid_input", False),
        (InvalidRequest("invalid_value", "bad width", field="width"), "invalid_input", False),
        (ConnectionResetError("peer reset"), "transient", True),
        (TimeoutError("store timed out"), "transient", True),
        (TransientError("redis unavailable"), "transient", True),
        (RuntimeError("shape mismatch"), "internal", False),
        (KeyError("latents"), "internal", False),
        (RustInferError("internal", "a caught panic"), "internal", False),
    ],
)
def test_failures_are_classified(error: Exception, code: str, retryable: bool) -> None:
    failure = run_failure(failing(error))
    assert (failure.code, failure.retryable) == (code, retryable)
    assert failure.__cause__ is error
    assert failure.message.startswith(type(error).__name__)
    assert failure.code in FAILURE_CODES


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3), GeneratorExit()])
def test_interpreter_signals_propagate_unchanged(error: BaseException) -> None:
    recorder = Recorder()
    with pytest.raises(type(error)) as caught:
        supervise(
            failing(error),
            total_steps=1,
            on_progress=recorder.on_progress,
            is_canceled=recorder.is_canceled,
        )
    assert caught.value is error


def test_an_already_classified_failure_propagates_unchanged() -> None:
    inner = RunFailed("out_of_memory", "nested run ran out of memory")
    assert run_failure(failing(inner)) is inner


def test_callback_errors_are_classified_like_pipeline_errors() -> None:
    def flaky_progress(done: int, total: int) -> None:
        raise ConnectionError("event sink unreachable")

    with pytest.raises(RunFailed) as caught:
        supervise(pipeline(3), total_steps=3, on_progress=flaky_progress, is_canceled=lambda: False)
    assert (caught.value.code, type(caught.value.__cause__)) == ("transient", ConnectionError)

    checks = iter([False, False])  # the pre-run check, step 1; step 2 raises StopIteration
    with pytest.raises(RunFailed) as caught:
        supervise(
            pipeline(3), total_steps=3, on_progress=lambda d, t: None, is_canceled=checks.__next__
        )
    assert (caught.value.code, type(caught.value.__cause__)) == ("internal", StopIteration)


def test_a_failing_pre_run_cancel_check_is_classified() -> None:
    def broken() -> bool:
        raise TimeoutError("store timed out")

    with pytest.raises(RunFailed) as caught:
        supervise(pipeline(1), total_steps=1, on_progress=lambda d, t: None, is_canceled=broken)
    assert caught.value.code == "transient"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"total_steps": 0}, ValueError),
        ({"total_steps": -3}, ValueError),
        ({"deadline_s": -1.0}, ValueError),
        ({"deadline_s": math.nan}, ValueError),
        ({"deadline_s": math.inf}, ValueError),
        ({"on_progress": 5}, TypeError),
        ({"is_canceled": None}, TypeError),
    ],
)
def test_bad_arguments_are_plain_errors(kwargs: dict[str, object], error: type[Exception]) -> None:
    arguments: dict[str, object] = {
        "total_steps": 2,
        "on_progress": lambda d, t: None,
        "is_canceled": lambda: False,
    }
    arguments.update(kwargs)
    with pytest.raises(error) as caught:
        supervise(pipeline(2), **arguments)  # type: ignore[arg-type]
    assert not isinstance(caught.value, RustInferError)


def test_a_non_callable_run_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="run must be callable"):
        supervise(
            "pipeline",  # type: ignore[arg-type]
            total_steps=1,
            on_progress=lambda d, t: None,
            is_canceled=lambda: False,
        )


def test_the_hook_rejects_a_negative_step_index() -> None:
    def run(hook: StepHook) -> None:
        hook(None, -1, 0, {})

    with pytest.raises(RunFailed) as caught:
        supervise(run, total_steps=1, on_progress=lambda d, t: None, is_canceled=lambda: False)
    assert caught.value.code == "invalid_input"
    assert "step_index" in caught.value.message


def test_step_hooks_are_made_only_by_supervise() -> None:
    with pytest.raises(TypeError):
        StepHook()


def test_run_failures_pickle_with_their_attributes() -> None:
    failure = run_failure(failing(TransientError("redis unavailable")))
    copy = pickle.loads(pickle.dumps(failure))
    assert type(copy) is RunFailed
    assert (copy.code, copy.message, copy.retryable) == (
        failure.code,
        failure.message,
        failure.retryable,
    )


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 50), st.integers(1, 60) | st.none())
def test_a_cancel_stops_within_one_step(steps: int, cancel_after: int | None) -> None:
    recorder = Recorder(cancel_after=cancel_after)
    try:
        result = supervise(
            pipeline(steps),
            total_steps=steps,
            on_progress=recorder.on_progress,
            is_canceled=recorder.is_canceled,
        )
    except RunFailed as failure:
        assert cancel_after is not None and cancel_after <= steps
        assert failure.code == "canceled"
        # The flag turned on at check cancel_after + 1, which follows step cancel_after.
        assert len(recorder.progress) == cancel_after
    else:
        assert result == "video"
        assert cancel_after is None or cancel_after > steps
        assert len(recorder.progress) == steps
    assert recorder.progress == [(done, steps) for done in range(1, len(recorder.progress) + 1)]
