"""bench/redis_client in its short mode: every client runs every command on a real server."""

from __future__ import annotations

import pathlib

from tests.bench.runner import run_bench


def test_short_run_times_every_client(tmp_path: pathlib.Path) -> None:
    report = run_bench(["-m", "bench.redis_client", "--commands", "320"], tmp_path / "r.json")
    clients = report["clients"]
    assert set(clients) == {
        "redis-py, one at a time", "redis-py, pipelines of 32", "redis-py, pipelines of 8",
    }  # fmt: skip
    for row in clients.values():
        assert row["commands"] == 320
        assert row["cpu_us_per_command"] > 0 and row["commands_per_s"] > 0
