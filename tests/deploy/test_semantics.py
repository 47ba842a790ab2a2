"""The semantic checks pass on the real overlays and catch deliberately broken copies."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from t2v import events
from tests.deploy import semantics
from tests.deploy.conftest import OVERLAYS, REPO
from tests.deploy.kustomize import Manifest

EVENTING = REPO / "eventing"
CONFIG_DEFAULTS = REPO / "knative" / "serving-config" / "config-defaults.yaml"


def _max_revision_timeout_s() -> float:
    return semantics.max_revision_timeout_s(yaml.safe_load(CONFIG_DEFAULTS.read_text()))


def _broken(objects: list[Manifest]) -> list[Manifest]:
    return copy.deepcopy(objects)


def _named(objects: list[Manifest], kind: str, name: str) -> Manifest:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _infer_spec(objects: list[Manifest]) -> Manifest:
    infer = semantics.knative_services(objects)["t2v-infer"]
    spec: Manifest = infer["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_check_passes_on_the_real_overlay(
    overlay: str, built_overlays: dict[str, list[Manifest]]
) -> None:
    assert every_problem(built_overlays[overlay], overlay) == []


def every_problem(objects: list[Manifest], overlay: str) -> list[str]:
    """Every check, with the settings of ``overlay`` (prod runs infer on GPUs)."""
    return semantics.every_problem(
        objects,
        gpu_expected=overlay == "prod",
        max_revision_timeout_s=_max_revision_timeout_s(),
        eventing_dir=EVENTING,
    )


def test_infer_timeout_needs_the_raised_max_revision_timeout(
    built_overlays: dict[str, list[Manifest]],
) -> None:
    problems = semantics.timeout_problems(
        built_overlays["prod"], semantics.DEFAULT_MAX_REVISION_TIMEOUT_S
    )
    assert any("t2v-infer timeoutSeconds" in problem for problem in problems)


def _raise_infer_trigger_timeout(objects: list[Manifest]) -> None:
    _named(objects, "Trigger", "t2v-infer-job")["spec"]["delivery"]["timeout"] = "PT1500S"


def _shorten_infer_response_start(objects: list[Manifest]) -> None:
    _infer_spec(objects)["responseStartTimeoutSeconds"] = 300


def _raise_broker_timeout(objects: list[Manifest]) -> None:
    # Triggers without their own delivery (those to status) inherit the Broker's.
    _named(objects, "Broker", "t2v")["spec"]["delivery"]["timeout"] = "PT2000S"


def _drop_progress_triggers(objects: list[Manifest]) -> None:
    """job.progress goes to status and to notify: neither Trigger left."""
    for name in ("t2v-status-progress", "t2v-notify-progress"):
        objects.remove(_named(objects, "Trigger", name))


BREAKAGES: dict[
    str, tuple[Callable[[list[Manifest]], None], Callable[[list[Manifest]], list[str]]]
] = {
    "trigger timeout above infer's": (
        _raise_infer_trigger_timeout,
        lambda objects: semantics.timeout_problems(objects, _max_revision_timeout_s()),
    ),
    "infer response-start timeout below the trigger's": (
        _shorten_infer_response_start,
        lambda objects: semantics.timeout_problems(objects, _max_revision_timeout_s()),
    ),
    "broker default timeout above status's": (
        _raise_broker_timeout,
        lambda objects: semantics.timeout_problems(objects, _max_revision_timeout_s()),
    ),
    "job deadline not below the trigger timeout": (
        lambda objects: _named(objects, "ConfigMap", "t2v-config")["data"].update(
            T2V_JOB_DEADLINE_S="1140"
        ),
        semantics.job_deadline_problems,
    ),
    "a produced event type without trigger": (
        _drop_progress_triggers,
        semantics.untriggered_event_types,
    ),
    "a trigger to a missing service": (
        lambda objects: objects.remove(_named(objects, "Service", "t2v-status")),
        semantics.missing_destinations,
    ),
    "a misspelt subscriber": (
        lambda objects: _named(objects, "Trigger", "t2v-sweep")["spec"]["subscriber"]["ref"].update(
            name="t2v-sumbit"
        ),
        semantics.missing_destinations,
    ),
    "a GPU on submit": (
        lambda objects: (
            semantics.knative_services(objects)["t2v-submit"]["spec"]["template"]["spec"][
                "containers"
            ][0]["resources"]
            .setdefault("limits", {})
            .update({"nvidia.com/gpu": 1})
        ),
        lambda objects: semantics.gpu_problems(objects, gpu_expected=True),
    ),
    "no GPU on prod infer": (
        lambda objects: _infer_spec(objects)["containers"][0]["resources"]["limits"].pop(
            "nvidia.com/gpu"
        ),
        lambda objects: semantics.gpu_problems(objects, gpu_expected=True),
    ),
    "ping source to another sink": (
        lambda objects: _named(objects, "PingSource", "t2v-sweep")["spec"]["sink"]["ref"].update(
            name="other"
        ),
        semantics.ping_source_problems,
    ),
    "parallelism above infer's max-scale": (
        lambda objects: _named(objects, "Trigger", "t2v-infer-job")["metadata"][
            "annotations"
        ].update({"rabbitmq.eventing.knative.dev/parallelism": "16"}),
        semantics.parallelism_problems,
    ),
    "a trigger only the cluster has": (
        lambda objects: objects.append(
            {
                **copy.deepcopy(_named(objects, "Trigger", "t2v-sweep")),
                "metadata": {"name": "t2v-extra"},
            }
        ),
        lambda objects: semantics.local_broker_problems(objects, EVENTING),
    ),
    "a trigger filter changed by an overlay": (
        lambda objects: _named(objects, "Trigger", "t2v-submit-job")["spec"]["filter"][
            "attributes"
        ].update(type=events.JOB_REQUESTED),
        lambda objects: semantics.local_broker_problems(objects, EVENTING),
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_check_catches_a_broken_copy(
    breakage: str, built_overlays: dict[str, list[Manifest]]
) -> None:
    objects = _broken(built_overlays["prod"])
    breaking, check = BREAKAGES[breakage]
    assert check(objects) == [], "the check must pass before the change"
    breaking(objects)
    assert check(objects) != []


def test_local_broker_reads_the_same_triggers_as_the_eventing_yaml(tmp_path: Path) -> None:
    # The check itself on the eventing files alone: identical, then one Trigger removed.
    documents = [
        doc
        for path in sorted(EVENTING.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    assert semantics.local_broker_problems(documents, EVENTING) == []
    without_one = [doc for doc in documents if doc["metadata"]["name"] != "t2v-status-failed"]
    assert semantics.local_broker_problems(without_one, EVENTING) == [
        "Trigger t2v-status-failed is only local"
    ]
