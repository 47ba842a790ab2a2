"""The Redis clients on the request path, in one run:
``python -m bench.redis_client [--commands 8000] [--out r.json]``.

The same command (INCR of one key) from 32 concurrent senders, as concurrent submits send
theirs, against a redis-server this bench starts on 127.0.0.1: through redis-py's asyncio
client one command at a time, and through redis-py pipelines of 32 and of 8 commands (the
best a batching layer over redis-py could do). Reported: the client's own CPU
per command (user + system of this process, which runs only the client) and commands per
second.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from bench.common import emit, machine_basics
from bench.control_plane import servers

CONCURRENCY = 32
KEY = "bench:counter"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _senders(send: Callable[[], Awaitable[object]], total: int) -> None:
    async def sender(count: int) -> None:
        for _ in range(count):
            await send()

    await asyncio.gather(*(sender(total // CONCURRENCY) for _ in range(CONCURRENCY)))


async def _pipelines(client: aioredis.Redis, total: int, size: int) -> None:
    for _ in range(total // size):
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(size):
                pipe.incr(KEY)
            await pipe.execute()


async def _measure(run: Callable[[int], Awaitable[None]], total: int) -> dict[str, Any]:
    await run(max(CONCURRENCY, total // 10))  # connections opened, code warm
    cpu, wall = _cpu_seconds(), time.perf_counter()
    await run(total)
    cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - wall
    return {
        "commands": total,
        "cpu_us_per_command": cpu / total * 1e6,
        "commands_per_s": total / wall,
    }


async def measure_all(url: str, total: int) -> dict[str, dict[str, Any]]:
    client = aioredis.Redis.from_url(url)
    try:
        return {
            "redis-py, one at a time": await _measure(
                lambda n: _senders(lambda: client.incr(KEY), n), total
            ),
            "redis-py, pipelines of 32": await _measure(lambda n: _pipelines(client, n, 32), total),
            "redis-py, pipelines of 8": await _measure(lambda n: _pipelines(client, n, 8), total),
        }
    finally:
        await client.aclose()


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    lines = [
        f"## Redis clients on {info['cpu']} x{info['cpu_count']}, {info['date']}",
        f"{report['commands']} INCRs from {CONCURRENCY} concurrent senders",
        "",
        "| client | CPU us/command | commands/s |",
        "| --- | --- | --- |",
    ]
    for name, row in report["clients"].items():
        lines.append(f"| {name} | {row['cpu_us_per_command']:.1f} | {row['commands_per_s']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=8000)
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    total = max(CONCURRENCY, args.commands // CONCURRENCY * CONCURRENCY)
    with (
        tempfile.TemporaryDirectory(prefix="t2v-bench-redis-") as scratch,
        servers.redis_server(pathlib.Path(scratch)) as url,
    ):
        clients = asyncio.run(measure_all(f"{url}/0", total))
    report = {
        "benchmark": "redis_client",
        "machine": machine_basics(),
        "commands": total,
        "clients": clients,
    }
    emit(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
