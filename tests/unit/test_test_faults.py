"""T2V_TEST_FAULTS: what a fault list means, and that it is off unless enabled."""

from __future__ import annotations

import pytest

from t2v.settings import Settings
from t2v.worker.faults import EVERY_RUN, Fault, FaultPlan, parse_faults


def test_faults_parse_with_their_run_counts() -> None:
    assert parse_faults("segfault@step2, exit@step1x2,oom@step3x*") == [
        (Fault("segfault", 2), 1),
        (Fault("exit", 1), 2),
        (Fault("oom", 3), EVERY_RUN),
    ]
    assert parse_faults("") == []


@pytest.mark.parametrize("raw", ["segfault", "boom@step1", "exit@2", "oom@step1x", "exit@stepx"])
def test_a_malformed_fault_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="T2V_TEST_FAULTS"):
        parse_faults(raw)


def test_each_run_takes_the_first_fault_with_runs_left() -> None:
    plan = FaultPlan("segfault@step2,exit@step1x2,oom@step1x*")
    runs = [plan.next_run() for _ in range(5)]
    assert runs == [
        Fault("segfault", 2),
        Fault("exit", 1),
        Fault("exit", 1),
        Fault("oom", 1),
        Fault("oom", 1),
    ]
    assert FaultPlan("exit@step1").next_run() == Fault("exit", 1)
    once = FaultPlan("exit@step1")
    once.next_run()
    assert once.next_run() is None


def test_faults_are_ignored_unless_enabled() -> None:
    faults = {"T2V_TEST_FAULTS": "segfault@step1"}
    assert Settings.from_env(faults).test_faults == ""
    assert Settings.from_env({**faults, "T2V_ENABLE_TEST_FAULTS": "0"}).test_faults == ""
    enabled = Settings.from_env({**faults, "T2V_ENABLE_TEST_FAULTS": "1"})
    assert enabled.test_faults == "segfault@step1"


def test_an_enabled_typo_fails_at_start_up() -> None:
    with pytest.raises(ValueError, match="T2V_TEST_FAULTS"):
        Settings.from_env({"T2V_ENABLE_TEST_FAULTS": "1", "T2V_TEST_FAULTS": "segfualt@step1"})
