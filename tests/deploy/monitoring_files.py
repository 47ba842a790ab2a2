"""monitoring/prometheusrule.yaml is generated from monitoring/rules.yaml (one source).

`python -m tests.deploy.monitoring_files --write` regenerates it; the tests check the two
agree.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
RULES = MONITORING / "rules.yaml"
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
_HEADER = (
    "# Generated from monitoring/rules.yaml by `python -m tests.deploy.monitoring_files --write`;\n"
    "# edit rules.yaml, then regenerate. For the Prometheus Operator.\n"
)


def prometheus_rule(rule_file: dict[str, Any]) -> dict[str, Any]:
    """The PrometheusRule object holding ``rule_file``'s groups."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "t2v-slo", "labels": {"app.kubernetes.io/part-of": "t2v"}},
        "spec": {"groups": rule_file["groups"]},
    }


class _BlockStringDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL) as literal blocks, as rules.yaml has them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStringDumper.add_representer(str, _represent_str)


def render() -> str:
    rule_file = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    body = yaml.dump(
        prometheus_rule(rule_file), Dumper=_BlockStringDumper, sort_keys=False, width=100
    )
    return _HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite prometheusrule.yaml")
    args = parser.parse_args(argv)
    if args.write:
        PROMETHEUS_RULE.write_text(render(), encoding="utf-8")
    else:
        print(render(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
