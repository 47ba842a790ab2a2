"""The server's `t2v` commands: run the platform locally, run a demo job, build the tiny model.

They plug into the client's `t2v` command (t2v_client.cli) through the `t2v.commands`
entry-point group (pyproject.toml), so one `t2v` both runs the platform and talks to it.
Every option has an environment variable as its fallback; the options win. Paths are made
absolute when the command starts, so it works the same from any folder.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from t2v.auth import KeyRegistry
from t2v.settings import Settings, tiny_model_dir, user_data_dir

if TYPE_CHECKING:
    from t2v.local.platform import LocalPlatform

# option dest -> the environment variable it stands for
_ENV_OF = {"port": "T2V_LOCAL_PORT", "data_dir": "T2V_DATA_DIR", "model": "T2V_MODEL"}


def _path_options(parser: argparse.ArgumentParser) -> None:
    default_data = user_data_dir(os.environ)
    parser.add_argument(
        "--data-dir",
        help=f"jobs, videos, logs and the tiny model (env T2V_DATA_DIR; default {default_data})",
    )
    parser.add_argument(
        "--model",
        help="a saved pipeline directory or a Hugging Face id (env T2V_MODEL; default the "
        f"tiny model in DATA_DIR/{tiny_model_dir(default_data).relative_to(default_data)})",
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `local`, `demo` and `build-tiny-model` to the `t2v` command's subparsers."""
    local = commands.add_parser(
        "local",
        help="run the whole platform on this machine until stopped",
        description="Run the gateway (API and web page), the broker and the three functions "
        "on 127.0.0.1 until SIGTERM or Ctrl-C.",
    )
    local.add_argument(
        "--port", type=int, help="gateway port (env T2V_LOCAL_PORT; default 8080; 0: a free one)"
    )
    _path_options(local)
    local.set_defaults(run=_run)
    demo = commands.add_parser("demo", help="start locally, make one video, print where it is")
    demo.add_argument("--prompt", default="a red fox running through fresh snow, golden hour")
    demo.add_argument("--seed", type=int, default=None)
    demo.add_argument("--out", default=None, help="where to save the MP4 (default: data dir)")
    _path_options(demo)
    demo.set_defaults(run=_run)
    tiny = commands.add_parser(
        "build-tiny-model",
        help="build the tiny random Mochi (default --out: DATA_DIR/models/tiny-mochi)",
    )
    tiny.add_argument("--data-dir", help="env T2V_DATA_DIR; the model goes to its models/")
    tiny.add_argument("args", nargs=argparse.REMAINDER, help="--out DIR, --seed N, --force")
    tiny.set_defaults(run=_run)


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """The environment with the command's options laid over it (os.environ is not touched)."""
    env = dict(os.environ)
    for dest, name in _ENV_OF.items():
        value = getattr(args, dest, None)
        if value is not None:
            env[name] = str(value)
    return env


async def _run_local(env: Mapping[str, str]) -> int:
    from t2v.local.platform import LocalOptions, LocalPlatform, PlatformStartError

    settings = Settings.from_env(env)
    platform = LocalPlatform(settings, LocalOptions.from_env(env))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # A signal while starting (the model may take minutes to load) stops the start too.
    starting = asyncio.create_task(platform.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()
            _say_up(platform, env)
            await stopping
        return 0
    except PlatformStartError as exc:
        print(f"t2v local: {exc}", file=sys.stderr)
        return 2
    finally:
        starting.cancel()
        stopping.cancel()
        await asyncio.gather(starting, stopping, return_exceptions=True)
        print("t2v local: stopping", file=sys.stderr, flush=True)
        await platform.stop()


def _say_up(platform: LocalPlatform, env: Mapping[str, str]) -> None:
    functions = platform.functions
    print(f"t2v is up: API {platform.gateway_url}/v1/jobs  web page {platform.gateway_url}/")
    print(f"  CloudEvents (job.submit) to the broker: {platform.broker_url}")
    metrics = "  ".join(f"{name} {proc.url}/metrics" for name, proc in functions.items())
    print(f"  metrics: {metrics}")
    print(f"  data: {platform.settings.data_dir}  model: {platform.settings.model}")
    print(f"  these addresses are also in {platform.state_path}")
    if KeyRegistry.from_env(env).open_mode:
        print("local mode runs open: no API keys are checked", flush=True)
    else:
        print("API keys are checked: send Authorization: Bearer <key>", flush=True)


def _build_tiny(args: argparse.Namespace) -> int:
    from t2v.model.tiny import main as build_tiny

    extra: list[str] = list(args.args)
    if "--out" not in extra and not any(arg.startswith("--out=") for arg in extra):
        model_dir = tiny_model_dir(Settings.from_env(_environment(args)).data_dir)
        extra = ["--out", str(model_dir), *extra]
    return build_tiny(extra)


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # One line per HTTP call would drown what the platform itself says.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command == "local":
        return asyncio.run(_run_local(_environment(args)))
    if args.command == "demo":
        from t2v.local.demo import run_demo

        env = _environment(args)
        return asyncio.run(run_demo(args.prompt, seed=args.seed, out=args.out, env=env))
    return _build_tiny(args)


def main(argv: list[str] | None = None) -> int:
    """The whole `t2v` command, with this package's commands registered even where its
    entry points are not installed (`python -m t2v` from a checkout)."""
    from t2v_client.cli import main as client_main

    return client_main(argv, extra=[register])


if __name__ == "__main__":
    sys.exit(main())
