"""`t2v` command line: run the platform locally, run a demo job, build the tiny model."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from t2v.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t2v", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("local", help="run the whole platform on this machine until stopped")
    demo = commands.add_parser("demo", help="start locally, make one video, print where it is")
    demo.add_argument("--prompt", default="a red fox running through fresh snow, golden hour")
    demo.add_argument("--seed", type=int, default=None)
    demo.add_argument("--out", default=None, help="where to save the MP4 (default: data dir)")
    tiny = commands.add_parser("build-tiny-model", help="build the tiny random Mochi")
    tiny.add_argument("args", nargs=argparse.REMAINDER)
    return parser


async def _run_local() -> int:
    from t2v.local.platform import LocalOptions, running_platform

    settings = Settings.from_env()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_platform(settings, LocalOptions.from_env()) as platform:
        print(f"t2v is up: API {platform.gateway_url}/v1/jobs  broker {platform.broker_url}")
        print("local mode runs open: no API keys are checked", flush=True)
        await stop.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # One line per HTTP call would drown what the platform itself says.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = _parser().parse_args(argv)
    if args.command == "local":
        return asyncio.run(_run_local())
    if args.command == "demo":
        from t2v.local.demo import run_demo

        return asyncio.run(run_demo(args.prompt, seed=args.seed, out=args.out))
    from t2v.model.tiny import main as build_tiny

    return build_tiny(args.args)


if __name__ == "__main__":
    sys.exit(main())
