"""bench/event_client in its short mode: every client delivers every event to a real sink."""

from __future__ import annotations

import pathlib

from tests.bench.runner import run_bench


def test_short_run_times_every_client(tmp_path: pathlib.Path) -> None:
    report = run_bench(
        ["-m", "bench.event_client", "--events", "200", "--log-dir", str(tmp_path / "logs")],
        tmp_path / "report.json",
    )
    clients = report["clients"]
    assert set(clients) == {"t2v.keepalive", "aiohttp", "t2v.relay"}
    keepalive = clients["t2v.keepalive"]
    assert keepalive["events"] == 192  # 200 split evenly over 32 senders
    assert keepalive["cpu_us_per_event"] > 0 and keepalive["events_per_s"] > 0
    other = clients["aiohttp"]
    assert other.get("skipped") == "aiohttp is not installed" or other["events"] == 192
    relay = clients["t2v.relay"]
    assert relay["events"] == 192
    assert relay["cpu_us_per_event"] > 0 and relay["events_per_s"] > 0
    assert 1 <= relay["events_per_batch"] <= 64
    encoders = report["encoders_us_per_event"]
    assert set(encoders) == {"make_event+binary_http", "binary_event"}
    assert all(micros > 0 for micros in encoders.values())
