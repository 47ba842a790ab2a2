"""Rules, alert unit tests and dashboard: promtool passes, each alert is shown firing and
silent, and every metric they use is one t2v.metrics defines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from t2v.metrics import build_metrics
from tests.deploy import monitoring_files
from tests.deploy.conftest import REPO

MONITORING = REPO / "monitoring"
UNIT_TESTS = sorted((MONITORING / "tests").glob("*.yaml"))
_METRIC_NAME = re.compile(r"\bt2v_[a-z0-9_]+")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: apt-get install prometheus")
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False, cwd=MONITORING
    )


def _rules() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load((MONITORING / "rules.yaml").read_text())
    return rules


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def defined_series_names() -> set[str]:
    """Every series name t2v.metrics exposes (counters with _total, histogram parts)."""
    names: set[str] = set()
    registry = CollectorRegistry()
    build_metrics(registry)
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    assert UNIT_TESTS
    result = _promtool("test", "rules", *(str(path) for path in UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_fail_when_a_threshold_changes(tmp_path: Path) -> None:
    rules = (MONITORING / "rules.yaml").read_text()
    assert "t2v:job_success_ratio:ratio_rate1h < 0.95" in rules
    (tmp_path / "rules.yaml").write_text(rules.replace("ratio_rate1h < 0.95", "ratio_rate1h < 0.5"))
    tests_dir = tmp_path / "tests"
    tests_dir.mkdir()
    shutil.copy(MONITORING / "tests" / "job_success.yaml", tests_dir)
    promtool = shutil.which("promtool")
    assert promtool is not None
    result = subprocess.run(
        [promtool, "test", "rules", "tests/job_success.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode != 0


def test_every_alert_is_tested_firing_and_silent() -> None:
    alerts = {
        rule["alert"] for group in _rules()["groups"] for rule in group["rules"] if "alert" in rule
    }
    assert alerts == {
        "T2VJobSuccessRatioLow",
        "T2VJobLatencyP95High",
        "T2VQueueWaitP95High",
        "T2VDeadLettersGrowing",
        "T2VGPUsIdleWhileJobsWait",
    }
    firing: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case["exp_alerts"] else silent).add(case["alertname"])
    assert firing == alerts
    assert silent == alerts


def test_prometheus_rule_embeds_exactly_the_rule_file() -> None:
    embedded = yaml.safe_load(monitoring_files.PROMETHEUS_RULE.read_text())
    assert embedded == monitoring_files.prometheus_rule(_rules()), (
        "regenerate: python -m tests.deploy.monitoring_files --write"
    )
    assert monitoring_files.PROMETHEUS_RULE.read_text() == monitoring_files.render()


def test_every_metric_in_rules_and_dashboard_is_defined() -> None:
    defined = defined_series_names()
    exprs = [rule["expr"] for group in _rules()["groups"] for rule in group["rules"]]
    used = {name for expr in [*exprs, *_dashboard_exprs()] for name in _METRIC_NAME.findall(expr)}
    assert used, "no metric found: the pattern is wrong"
    assert used - defined == set()
    assert "t2v_not_a_metric_total" not in defined


def test_dashboard_covers_the_slos_and_its_queries_parse(tmp_path: Path) -> None:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = " ".join(_dashboard_exprs())
    for needed in (
        "t2v:job_success_ratio",
        "t2v:job_duration_seconds:p95",
        "t2v:queue_wait_seconds:p95",
        "t2v_queue_depth",
        "t2v_model_load_seconds",
        "t2v_denoise_step_seconds",
        "t2v_decode_seconds",
        "t2v_encode_seconds",
        "t2v_upload_seconds",
        "t2v_gpu_memory_bytes",
        "t2v_gpu_utilization_ratio",
        "t2v_dead_letters_total",
        "t2v_http_requests_total",
        "t2v_http_request_duration_seconds_bucket",
    ):
        assert needed in exprs, needed
    # promtool parses PromQL only inside rule files: wrap each query as a recording rule.
    rules = [
        {"record": f"dashboard:query{index}", "expr": expr.replace("$__rate_interval", "5m")}
        for index, expr in enumerate(_dashboard_exprs())
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
