"""Checks of the cluster's sender identities (issue 18, item 4, high): each function runs as
its own ServiceAccount, and EventPolicies admit exactly the senders each receiver needs.

Like `semantics`, each check returns its problems as sentences (empty: fine).
"""

from __future__ import annotations

from typing import Any

from tests.deploy.semantics import Manifest, knative_services, of_kind

EVENTING = "eventing.knative.dev"
# The functions that send events through their SinkBinding (status sends none).
SENDING_FUNCTIONS = frozenset({"t2v-submit", "t2v-infer"})


def _name(obj: Manifest) -> str:
    return str(obj["metadata"]["name"])


def _refs(entries: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(e["ref"]["kind"], e["ref"]["name"]) for e in entries if "ref" in e}


def policies_to(objects: list[Manifest], kind: str, name: str) -> list[Manifest]:
    return [
        policy
        for policy in of_kind(objects, EVENTING, "EventPolicy")
        if (kind, name) in _refs(policy["spec"].get("to") or [])
    ]


def admitted(objects: list[Manifest], kind: str, name: str) -> set[tuple[str, str]]:
    """The `from` refs of every EventPolicy that applies to ``kind``/``name``."""
    found: set[tuple[str, str]] = set()
    for policy in policies_to(objects, kind, name):
        found |= _refs(policy["spec"].get("from") or [])
    return found


def senders_of(objects: list[Manifest], service: str) -> set[tuple[str, str]]:
    """The Triggers that deliver to ``service``: as subscriber, or as dead-letter sink (a
    Trigger's own, else the Broker's)."""
    (broker,) = of_kind(objects, EVENTING, "Broker")
    broker_sink = ((broker.get("spec") or {}).get("delivery") or {}).get("deadLetterSink") or {}
    found = set()
    for trigger in of_kind(objects, EVENTING, "Trigger"):
        spec = trigger["spec"]
        sink = (spec.get("delivery") or {}).get("deadLetterSink") or broker_sink
        targets = {
            (spec["subscriber"].get("ref") or {}).get("name"),
            (sink.get("ref") or {}).get("name"),
        }
        if service in targets:
            found.add(("Trigger", _name(trigger)))
    return found


def identity_problems(objects: list[Manifest]) -> list[str]:
    """Every Knative Service runs as a ServiceAccount of its own that the build contains."""
    accounts = {_name(sa) for sa in of_kind(objects, "", "ServiceAccount")}
    problems = []
    used: dict[str, str] = {}
    for name, service in sorted(knative_services(objects).items()):
        account = service["spec"]["template"]["spec"].get("serviceAccountName")
        if account is None:
            problems.append(f"{name} has no serviceAccountName")
        elif account not in accounts:
            problems.append(f"{name} runs as ServiceAccount {account}, which is not in the build")
        elif account in used:
            problems.append(f"{name} shares ServiceAccount {account} with {used[account]}")
        else:
            used[account] = name
    return problems


def policy_problems(objects: list[Manifest]) -> list[str]:
    """The Broker admits the sending functions' SinkBindings and the PingSources, and no
    other in-namespace object; each function admits exactly the Triggers delivering to it."""
    (broker,) = of_kind(objects, EVENTING, "Broker")
    problems = []
    expected = {
        ("SinkBinding", _name(binding))
        for binding in of_kind(objects, "sources.knative.dev", "SinkBinding")
        if binding["spec"]["subject"].get("name") in SENDING_FUNCTIONS
    }
    expected |= {
        ("PingSource", _name(p)) for p in of_kind(objects, "sources.knative.dev", "PingSource")
    }
    found = admitted(objects, "Broker", _name(broker))
    if found != expected:
        problems.append(
            f"Broker {_name(broker)} admits {sorted(found)}, expected {sorted(expected)}"
        )
    for service in sorted(knative_services(objects)):
        want = senders_of(objects, service)
        have = admitted(objects, "Service", service)
        if want and have != want:
            problems.append(f"{service} admits {sorted(have)}, its Triggers are {sorted(want)}")
    return problems


def event_auth_setting_problems(objects: list[Manifest]) -> list[str]:
    """The functions are told that Knative authenticates their events."""
    configs = [c for c in of_kind(objects, "", "ConfigMap") if _name(c) == "t2v-config"]
    data = configs[0].get("data", {}) if configs else {}
    if data.get("T2V_EVENT_AUTH") != "knative-oidc":
        return ["t2v-config does not set T2V_EVENT_AUTH=knative-oidc: every event is refused"]
    return []
