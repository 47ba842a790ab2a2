"""The event sink's HTTP client against aiohttp's, in one run:
``python -m bench.event_client [--events 6000] [--out r.json]``.

Both post the same binary-mode CloudEvent to the control-plane bench's 202 sink (another
process on 127.0.0.1), 32 at a time over kept-alive connections, as submit does under load.
Reported: the client's own CPU per event (user + system of this process, which runs only the
client) and events per second. aiohttp is what `HttpEventSink` used before `t2v.keepalive`;
it is no longer a dependency, so without it installed its row says so. The relay row is
`HttpEventSink.post_soon`'s path: 32 senders each queue an event and yield, as concurrent
submits do, and the relay batches and pipelines them (`t2v.relay`); its clock stops when
`drain` says every event got its 202. ``encoders`` times building the event itself:
`make_event` + `binary_http` (what submit did) against `binary_event`.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import emit, machine_basics
from bench.control_plane import servers
from t2v import events
from t2v.keepalive import KeepAliveClient
from t2v.relay import EventRelay

CONCURRENCY = 32
Post = Callable[[dict[str, str], bytes], Awaitable[int]]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(post: Post, headers: dict[str, str], body: bytes, total: int) -> dict[str, Any]:
    async def sender(count: int) -> None:
        for _ in range(count):
            status = await post(headers, body)
            if status != 202:
                raise RuntimeError(f"sink answered {status}")

    await asyncio.gather(*(sender(max(1, total // 10 // CONCURRENCY)) for _ in range(CONCURRENCY)))
    per_sender = max(1, total // CONCURRENCY)
    cpu, wall = _cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(sender(per_sender) for _ in range(CONCURRENCY)))
    cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - wall
    sent = per_sender * CONCURRENCY
    return {"events": sent, "cpu_us_per_event": cpu / sent * 1e6, "events_per_s": sent / wall}


async def _keepalive(url: str, headers: dict[str, str], body: bytes, total: int) -> dict[str, Any]:
    client = KeepAliveClient(url)

    async def post(head: dict[str, str], data: bytes) -> int:
        return (await client.post(head, data)).status

    try:
        return await _measure(post, headers, body, total)
    finally:
        await client.close()


async def _aiohttp(url: str, headers: dict[str, str], body: bytes, total: int) -> dict[str, Any]:
    try:
        import aiohttp
    except ImportError:
        return {"skipped": "aiohttp is not installed"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0)) as session:

        async def post(head: dict[str, str], data: bytes) -> int:
            async with session.post(url, headers=head, data=data) as response:
                await response.read()
                return response.status

        return await _measure(post, headers, body, total)


async def _relay(url: str, headers: dict[str, str], body: bytes, total: int) -> dict[str, Any]:
    # The senders only yield between events, faster than one sink process answers: room for
    # all of them, so that none is dropped and every one is timed to its 202.
    relay = EventRelay(KeepAliveClient(url), max_queued=max(10_000, total * 2))

    async def sender(count: int) -> None:
        for _ in range(count):
            relay.post_soon(headers, body, description="bench event")
            await asyncio.sleep(0)  # the rest of a submit request runs here

    async def burst(count: int) -> None:
        await asyncio.gather(*(sender(count) for _ in range(CONCURRENCY)))
        await relay.drain(30.0)

    try:
        await burst(max(1, total // 10 // CONCURRENCY))
        warm_delivered, warm_batches = relay.delivered, relay.batches
        per_sender = max(1, total // CONCURRENCY)
        cpu, wall = _cpu_seconds(), time.perf_counter()
        await burst(per_sender)
        cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - wall
    finally:
        await relay.close()
    sent = per_sender * CONCURRENCY
    if relay.delivered - warm_delivered != sent or relay.failed or relay.dropped:
        raise RuntimeError(
            f"relay delivered {relay.delivered - warm_delivered} of {sent} "
            f"({relay.failed} failed, {relay.dropped} dropped)"
        )
    batches = relay.batches - warm_batches
    return {
        "events": sent,
        "cpu_us_per_event": cpu / sent * 1e6,
        "events_per_s": sent / wall,
        "events_per_batch": sent / batches,
    }


def _encoders(count: int = 20_000) -> dict[str, float]:
    """CPU microseconds to build one job.requested (headers and body), each way."""
    data = {"job_id": "job_bench", "tenant": "local", "params": {"prompt": "a red fox" * 8}}

    def through_cloudevent() -> object:
        event = events.make_event(
            events.JOB_REQUESTED, source="/t2v/submit", subject="j", data=data
        )
        return events.binary_http(event)

    def direct() -> object:
        return events.binary_event(
            events.JOB_REQUESTED, source="/t2v/submit", subject="j", data=data
        )

    timings = {}
    ways = {"make_event+binary_http": through_cloudevent, "binary_event": direct}
    for name, build in ways.items():
        build()
        start = time.process_time()
        for _ in range(count):
            build()
        timings[name] = (time.process_time() - start) / count * 1e6
    return timings


def run(total: int, log_dir: Path) -> dict[str, Any]:
    event = events.make_event(
        events.JOB_REQUESTED,
        source="/t2v/submit",
        subject="job_bench",
        data={"job_id": "job_bench", "tenant": "local", "params": {"prompt": "a red fox" * 8}},
    )
    headers, body = events.binary_http(event)
    with servers.event_sink(log_dir) as sink:
        clients = {
            "t2v.keepalive": asyncio.run(_keepalive(sink.url, headers, body, total)),
            "aiohttp": asyncio.run(_aiohttp(sink.url, headers, body, total)),
            "t2v.relay": asyncio.run(_relay(sink.url, headers, body, total)),
        }
    return {
        "benchmark": "event_client",
        "machine": machine_basics(),
        "clients": clients,
        "encoders_us_per_event": _encoders(),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"## Event client, {report['machine']['cpu']} x{report['machine']['cpu_count']}, "
        f"{report['machine']['date']}",
        "",
        "| client | events | client CPU us/event | events/s |",
        "| --- | --- | --- | --- |",
    ]
    for name, result in report["clients"].items():
        if "skipped" in result:
            lines.append(f"| {name} | skipped: {result['skipped']} | - | - |")
            continue
        batched = (
            f" ({result['events_per_batch']:.0f} a batch)" if "events_per_batch" in result else ""
        )
        lines.append(
            f"| {name}{batched} | {result['events']} | {result['cpu_us_per_event']:.0f} "
            f"| {result['events_per_s']:.0f} |"
        )
    lines += ["", "| building the event | CPU us/event |", "| --- | --- |"]
    for name, micros in report["encoders_us_per_event"].items():
        lines.append(f"| {name} | {micros:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=6000, help="events per client")
    parser.add_argument("--log-dir", type=Path, default=Path(".t2v/bench-logs"))
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    report = run(args.events, args.log_dir)
    emit(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
