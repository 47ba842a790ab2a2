"""t2v.metrics: values change with observations, in one process and across workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response

from t2v import metrics as m


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _request(method: str, path: str) -> Request:
    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    return Request(scope)


def test_build_metrics_registers_every_name_in_its_registry() -> None:
    registry = CollectorRegistry()
    built = m.build_metrics(registry)
    built.jobs_finished.labels("succeeded").inc()
    built.phases["decode"].observe(2.0)
    assert registry.get_sample_value("t2v_jobs_finished_total", {"status": "succeeded"}) == 1.0
    assert registry.get_sample_value("t2v_decode_seconds_count") == 1.0
    assert registry.get_sample_value("t2v_decode_seconds_sum") == 2.0


def test_observe_request_counts_and_times_by_route_and_code() -> None:
    labels = {"function": "status", "route": "/v1/jobs/{job_id}", "method": "GET", "code": "200"}
    before = _value("t2v_http_requests_total", **labels)
    count_before = _value(
        "t2v_http_request_duration_seconds_count", function="status", route="/v1/jobs/{job_id}"
    )
    m.observe_request("status", "/v1/jobs/{job_id}", "GET", 200, 0.02)
    assert _value("t2v_http_requests_total", **labels) == before + 1
    assert (
        _value(
            "t2v_http_request_duration_seconds_count", function="status", route="/v1/jobs/{job_id}"
        )
        == count_before + 1
    )


@pytest.mark.parametrize(
    ("route", "code", "retried"),
    [
        ("/events", 503, True),
        ("/events", 429, True),
        ("/events", 400, False),
        ("/events", 200, False),
        ("/v1/jobs", 503, False),
    ],
)
def test_delivery_retries_count_only_redelivered_event_answers(
    route: str, code: int, retried: bool
) -> None:
    before = _value("t2v_delivery_retries_total", function="infer")
    m.observe_request("infer", route, "POST", code, 0.1)
    assert _value("t2v_delivery_retries_total", function="infer") == before + int(retried)


def test_route_template_maps_paths_to_bounded_labels() -> None:
    templates = ["/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/video", "/healthz"]
    assert m.route_template("/v1/jobs/", templates) == "/v1/jobs"
    assert m.route_template("/v1/jobs/abc", templates) == "/v1/jobs/{job_id}"
    assert m.route_template("/v1/jobs/abc/video", templates) == "/v1/jobs/{job_id}/video"
    assert m.route_template("/v1/jobs/abc/other", templates) == m.UNMATCHED_ROUTE
    assert m.route_template("/wp-admin.php", templates) == m.UNMATCHED_ROUTE


async def test_instrumented_observes_answers_and_failures() -> None:
    templates = ["/v1/jobs/{job_id}"]
    ok = {"function": "status", "route": "/v1/jobs/{job_id}", "method": "GET", "code": "404"}
    failed = {**ok, "code": "500"}
    ok_before, failed_before = (
        _value("t2v_http_requests_total", **ok),
        _value("t2v_http_requests_total", **failed),
    )

    async def not_found(request: Request) -> Response:
        return Response(status_code=404)

    async def broken(request: Request) -> Response:
        raise RuntimeError("handler bug")

    handler: Callable[[Request], Awaitable[Response]] = not_found
    response = await m.instrumented("status", templates, _request("GET", "/v1/jobs/x"), handler)
    assert response.status_code == 404
    with pytest.raises(RuntimeError):
        await m.instrumented("status", templates, _request("GET", "/v1/jobs/x"), broken)
    assert _value("t2v_http_requests_total", **ok) == ok_before + 1
    assert _value("t2v_http_requests_total", **failed) == failed_before + 1


def test_phases_and_step_timer_observe_durations() -> None:
    steps_before = _value("t2v_denoise_step_seconds_count")
    encode_before = _value("t2v_encode_seconds_count")
    timer = m.StepTimer()
    timer.tick()
    timer.tick()
    with pytest.raises(ValueError), m.time_phase("encode"):
        raise ValueError("encoding failed")
    assert _value("t2v_denoise_step_seconds_count") == steps_before + 2
    assert _value("t2v_encode_seconds_count") == encode_before + 1


def test_metrics_response_lists_every_metric_in_the_asked_format() -> None:
    response = m.metrics_response()
    body = bytes(response.body).decode()
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    for name in ("t2v_queue_depth", "t2v_model_load_seconds", "t2v_generations_total"):
        assert name in body
    openmetrics = m.metrics_response("application/openmetrics-text; version=1.0.0")
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert bytes(openmetrics.body).decode().endswith("# EOF\n")


def test_record_gpu_usage_needs_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert m.record_gpu_usage() is False
    no_cuda = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: False))
    monkeypatch.setitem(sys.modules, "torch", no_cuda)
    assert m.record_gpu_usage() is False


def test_record_gpu_usage_sets_memory_and_utilisation(monkeypatch: pytest.MonkeyPatch) -> None:
    def utilization(index: int) -> int:
        if index == 1:
            raise ModuleNotFoundError("pynvml")
        return 85

    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 2,
        memory_reserved=lambda index: 1000 * (index + 1),
        utilization=utilization,
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert m.record_gpu_usage() is True
    assert _value("t2v_gpu_memory_bytes", device="cuda:0") == 1000
    assert _value("t2v_gpu_memory_bytes", device="cuda:1") == 2000
    assert _value("t2v_gpu_utilization_ratio", device="cuda:0") == pytest.approx(0.85)


_WORKER = textwrap.dedent(
    """
    from t2v import metrics as m
    m.observe_request("submit", "/v1/jobs", "POST", 202, 0.05)
    m.metrics().jobs_finished.labels("succeeded").inc()
    m.metrics().queue_depth.set(float(__import__("os").getpid() % 7 + 3))
    """
)
_SCRAPE = (
    "import sys; from t2v import metrics as m; sys.stdout.write(m.metrics_response().body.decode())"
)


def test_multiprocess_mode_adds_up_every_worker(tmp_path: Path) -> None:
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _WORKER], env=env, check=True, timeout=60)
    scraped = subprocess.run(
        [sys.executable, "-c", _SCRAPE],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    lines = scraped.splitlines()
    assert (
        't2v_http_requests_total{code="202",function="submit",method="POST",route="/v1/jobs"} 2.0'
        in lines
    )
    assert 't2v_jobs_finished_total{status="succeeded"} 2.0' in lines
    assert (
        't2v_http_request_duration_seconds_count{function="submit",route="/v1/jobs"} 2.0' in lines
    )
    # A gauge in "mostrecent" mode is one series, not one per worker.
    assert len([line for line in lines if line.startswith("t2v_queue_depth ")]) == 1
