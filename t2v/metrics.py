"""Prometheus metrics of the t2v functions and the `/metrics` response.

Metrics are built on first use (`metrics()`), never at import. Under gunicorn with several
workers, set `PROMETHEUS_MULTIPROC_DIR` to an empty directory before the process starts:
prometheus_client then keeps each worker's values in files there and `metrics_response`
adds them up, so a scrape sees the whole pod whichever worker answers it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Literal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

Phase = Literal["model_load", "denoise_step", "decode", "encode", "upload"]

# Knative redelivers an event answered with one of these (or any 5xx).
RETRIED_CODES = frozenset({404, 408, 409, 429})
# Routes that receive events from the broker or the PingSource.
EVENT_ROUTES = frozenset({"/events", "/sweep", "/dead-letter"})
# Label for paths that match no route: raw paths would make unbounded label sets.
UNMATCHED_ROUTE = "other"
# Where `t2v.http.Router` leaves the template of the route it dispatched to.
ROUTE_SCOPE_KEY = "t2v.route"

_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_JOB_BUCKETS = (10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0, 900.0, 1200.0, 1800.0)
_WAIT_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1200.0)
_LOAD_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)
_STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STAGE_BUCKETS = (0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_BYTES_BUCKETS = tuple(float(10**exponent) for exponent in range(3, 11))


@dataclass(frozen=True)
class Metrics:
    http_requests: Counter
    http_request_duration: Histogram
    jobs_finished: Counter
    job_duration: Histogram
    queue_depth: Gauge
    queue_wait: Histogram
    phases: dict[Phase, Histogram]
    gpu_memory: Gauge
    gpu_utilization: Gauge
    artifact_bytes: Histogram
    delivery_retries: Counter
    dead_letters: Counter
    event_send_failures: Counter
    lifecycle_events_refused: Counter
    generations: Counter
    artifact_cache_hits: Counter
    webhook_deliveries: Counter

    def request_series(
        self, function: str, route: str, method: str, code: int
    ) -> tuple[Counter, Histogram]:
        return (
            self.http_requests.labels(function, route, method, str(code)),
            self.http_request_duration.labels(function, route),
        )


def build_metrics(registry: CollectorRegistry) -> Metrics:
    """Every t2v metric, registered in ``registry`` (a fresh one per test)."""

    def histogram(name: str, doc: str, buckets: Sequence[float], *labels: str) -> Histogram:
        return Histogram(name, doc, labels, buckets=buckets, registry=registry)

    phase_docs: dict[Phase, tuple[str, Sequence[float]]] = {
        "model_load": ("Time to load the model (the cold start).", _LOAD_BUCKETS),
        "denoise_step": ("Time of one denoising step.", _STEP_BUCKETS),
        "decode": ("Time to decode latents into frames (VAE).", _STAGE_BUCKETS),
        "encode": ("Time to encode frames into an MP4.", _STAGE_BUCKETS),
        "upload": ("Time to write the MP4 to the artifact store.", _STAGE_BUCKETS),
    }
    return Metrics(
        http_requests=Counter(
            "t2v_http_requests",
            "HTTP requests answered, by function, route, method and status code.",
            ["function", "route", "method", "code"],
            registry=registry,
        ),
        http_request_duration=histogram(
            "t2v_http_request_duration_seconds",
            "Time to answer an HTTP request, by function and route.",
            _HTTP_BUCKETS,
            "function",
            "route",
        ),
        jobs_finished=Counter(
            "t2v_jobs_finished",
            "Jobs that reached a terminal status.",
            ["status"],
            registry=registry,
        ),
        job_duration=histogram(
            "t2v_job_duration_seconds",
            "Time from submission to a terminal status, by that status.",
            _JOB_BUCKETS,
            "status",
        ),
        # Every worker reads the same store, so the most recent reading is the right one.
        queue_depth=Gauge(
            "t2v_queue_depth",
            "Jobs accepted and not yet started.",
            registry=registry,
            multiprocess_mode="mostrecent",
        ),
        queue_wait=histogram(
            "t2v_queue_wait_seconds",
            "Time from submission to a worker starting the job.",
            _WAIT_BUCKETS,
        ),
        phases={
            phase: histogram(f"t2v_{phase}_seconds", doc, buckets)
            for phase, (doc, buckets) in phase_docs.items()
        },
        gpu_memory=Gauge(
            "t2v_gpu_memory_bytes",
            "GPU memory held by this process (CUDA only).",
            ["device"],
            registry=registry,
            multiprocess_mode="mostrecent",
        ),
        gpu_utilization=Gauge(
            "t2v_gpu_utilization_ratio",
            "Share of the last sample period the GPU was busy, 0 to 1 (CUDA only).",
            ["device"],
            registry=registry,
            multiprocess_mode="mostrecent",
        ),
        artifact_bytes=histogram("t2v_artifact_bytes", "Size of each MP4 written.", _BYTES_BUCKETS),
        delivery_retries=Counter(
            "t2v_delivery_retries",
            "Event deliveries answered with a status that makes the broker redeliver.",
            ["function"],
            registry=registry,
        ),
        dead_letters=Counter(
            "t2v_dead_letters",
            "Events the broker gave up on, by event type.",
            ["type"],
            registry=registry,
        ),
        lifecycle_events_refused=Counter(
            "t2v_lifecycle_events_refused",
            "Lifecycle events status acknowledged and ignored, by event type and reason: not "
            "from the job's current lease holder, or naming a video the store does not hold.",
            ["type", "reason"],
            registry=registry,
        ),
        event_send_failures=Counter(
            "t2v_events_send_failures",
            "Events this process could not post to K_SINK (connection error or non-2xx), "
            "by event type. Not retried here: the Broker's redelivery and the sweep are.",
            ["type"],
            registry=registry,
        ),
        generations=Counter("t2v_generations", "Videos generated by the model.", registry=registry),
        artifact_cache_hits=Counter(
            "t2v_artifact_cache_hits",
            "Jobs answered with an existing video (same request, seed and model).",
            registry=registry,
        ),
        webhook_deliveries=Counter(
            "t2v_webhook_deliveries",
            "Webhook attempts by event (start, progress, completed) and outcome: delivered "
            "(2xx), failed (another status or no answer), refused (the SSRF guard).",
            ["event", "outcome"],
            registry=registry,
        ),
    )


@cache
def metrics() -> Metrics:
    """The process's metrics, in prometheus_client's default registry."""
    return build_metrics(REGISTRY)


def metrics_response(
    accept: str | None = None, registry: CollectorRegistry | None = None
) -> Response:
    """The text exposition of ``registry`` (default: this process, or every worker's
    values when ``PROMETHEUS_MULTIPROC_DIR`` is set), in the format ``accept`` asks for."""
    metrics()  # a scrape before any request still lists every metric
    if registry is None:
        multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if multiprocess_dir:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            registry = REGISTRY
    encoder, content_type = choose_encoder(accept or "")
    return Response(encoder(registry), headers={"Content-Type": content_type})


def observe_request(function: str, route: str, method: str, code: int, seconds: float) -> None:
    """Count one answered request; ``route`` is the route template, not the raw path."""
    m = metrics()
    requests, duration = m.request_series(function, route, method, code)
    requests.inc()
    duration.observe(seconds)
    if route in EVENT_ROUTES and (code >= 500 or code in RETRIED_CODES):
        m.delivery_retries.labels(function).inc()


def route_template(path: str, templates: Sequence[str]) -> str:
    """The template in ``templates`` (``/v1/jobs/{job_id}``) that ``path`` matches."""
    segments = path.rstrip("/").split("/")
    for template in templates:
        parts = template.rstrip("/").split("/")
        if len(parts) == len(segments) and all(
            part == segment or (part.startswith("{") and part.endswith("}") and segment)
            for part, segment in zip(parts, segments, strict=True)
        ):
            return template
    return UNMATCHED_ROUTE


async def instrumented(
    function: str,
    templates: Sequence[str],
    request: Request,
    handler: Callable[[Request], Awaitable[Response]],
) -> Response:
    """Answer ``request`` with ``handler`` and observe it (for a function's entry point)."""
    started = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status_code
        return response
    finally:
        scope = request.scope
        # The Router records the template it matched; only unrouted requests are matched here.
        route = scope.get(ROUTE_SCOPE_KEY) or route_template(scope["path"], templates)
        observe_request(function, route, scope["method"], code, time.perf_counter() - started)


def observe_phase(phase: Phase, seconds: float) -> None:
    metrics().phases[phase].observe(seconds)


@contextmanager
def time_phase(phase: Phase) -> Iterator[None]:
    """Observe how long the ``with`` block takes as ``phase`` (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        observe_phase(phase, time.perf_counter() - started)


class StepTimer:
    """Observes each denoising step: call ``tick()`` when a step ends (the progress hook)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def tick(self) -> None:
        now = time.perf_counter()
        observe_phase("denoise_step", now - self._last)
        self._last = now

    def observe_since_last(self, phase: Phase) -> None:
        """Observe the time since the last step as ``phase`` (what ran after the loop)."""
        observe_phase(phase, time.perf_counter() - self._last)


def record_gpu_usage() -> bool:
    """Sample GPU memory and utilisation of every visible CUDA device.

    Only where torch is already imported and CUDA is available: this never imports torch
    (submit and status run without it). Returns whether anything was recorded.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return False
    m = metrics()
    for index in range(torch.cuda.device_count()):
        device = f"cuda:{index}"
        m.gpu_memory.labels(device).set(torch.cuda.memory_reserved(index))
        try:
            # Needs NVML (nvidia-ml-py); without it only memory is reported.
            busy_percent = torch.cuda.utilization(index)
        except (ImportError, RuntimeError):
            continue
        m.gpu_utilization.labels(device).set(busy_percent / 100.0)
    return True
