"""The cluster manifests carry the sender identities of issue 18, item 4: the OIDC feature
flag, a ServiceAccount per function, and EventPolicies that validate against Knative's CRD
and admit exactly the senders each receiver needs (and the checks catch broken copies)."""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.deploy import event_policies, schemas, semantics
from tests.deploy.conftest import OVERLAYS, REPO
from tests.deploy.kustomize import Manifest

EVENTING_FEATURES = REPO / "knative" / "eventing-config" / "config-features.yaml"
KNATIVE_FEATURES = "knative-eventing-config-features.configmap.yaml"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlays_carry_identities_and_event_policies(
    overlay: str, built_overlays: dict[str, list[Manifest]]
) -> None:
    objects = built_overlays[overlay]
    policies = semantics.of_kind(objects, "eventing.knative.dev", "EventPolicy")
    assert {p["metadata"]["name"] for p in policies} == {
        "t2v-broker-senders",
        "t2v-submit-senders",
        "t2v-infer-senders",
        "t2v-status-senders",
        "t2v-notify-senders",
    }
    for obj in policies + semantics.of_kind(objects, "", "ServiceAccount"):
        schemas.validate(obj)
    assert event_policies.identity_problems(objects) == []
    assert event_policies.policy_problems(objects) == []
    assert event_policies.event_auth_setting_problems(objects) == []


def test_the_event_policy_schema_refuses_unknown_fields(
    built_overlays: dict[str, list[Manifest]],
) -> None:
    policy = copy.deepcopy(
        semantics.of_kind(built_overlays["prod"], "eventing.knative.dev", "EventPolicy")[0]
    )
    policy["spec"]["form"] = policy["spec"].pop("from")
    with pytest.raises(schemas.SchemaError, match="form"):
        schemas.validate(policy)


def test_the_checks_catch_a_missing_sender_an_extra_one_and_a_shared_identity(
    built_overlays: dict[str, list[Manifest]],
) -> None:
    objects = copy.deepcopy(built_overlays["prod"])
    broker_policy = next(
        p
        for p in semantics.of_kind(objects, "eventing.knative.dev", "EventPolicy")
        if p["metadata"]["name"] == "t2v-broker-senders"
    )
    senders = broker_policy["spec"]["from"]
    senders[:] = [s for s in senders if (s.get("ref") or {}).get("kind") != "PingSource"]
    senders.append(
        {
            "ref": {
                "apiVersion": "sources.knative.dev/v1",
                "kind": "SinkBinding",
                "name": "t2v-status-sink",
            }
        }
    )
    problems = event_policies.policy_problems(objects)
    assert any("Broker t2v admits" in problem for problem in problems)
    services = semantics.knative_services(objects)
    services["t2v-status"]["spec"]["template"]["spec"]["serviceAccountName"] = "t2v-infer"
    assert any("shares ServiceAccount" in p for p in event_policies.identity_problems(objects))
    status_policy = event_policies.policies_to(objects, "Service", "t2v-status")[0]
    status_policy["spec"]["from"].pop()
    assert any("t2v-status admits" in p for p in event_policies.policy_problems(objects))


def test_the_eventing_feature_patch_turns_on_sender_identity() -> None:
    (patch,) = [doc for doc in yaml.safe_load_all(EVENTING_FEATURES.read_text()) if doc]
    schemas.validate(patch)
    knative = yaml.safe_load((schemas.SCHEMAS / KNATIVE_FEATURES).read_text(encoding="utf-8"))
    assert (patch["metadata"]["name"], patch["metadata"]["namespace"]) == (
        knative["metadata"]["name"],
        knative["metadata"]["namespace"],
    )
    assert set(patch["data"]) <= set(knative["data"])
    assert patch["data"]["authentication-oidc"] == "enabled"
