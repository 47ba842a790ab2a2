"""The whole platform on one machine: four function processes, the broker, the gateway.

Configuration (environment, read once; `t2v local --help` names the flags that set them):
    T2V_LOCAL_PORT            gateway port (default 8080; 0 picks a free one)
    T2V_LOCAL_BROKER_PORT     broker ingress port (default 0: a free one)
    T2V_LOCAL_PING_INTERVAL_S how often the sweep PingSource fires (default 10 s)
    T2V_LOCAL_DELIVERY        JSON {trigger name or "*": {retry, backoff_delay_s, timeout_s,
                              parallelism}}: local replacements for Trigger delivery settings
    T2V_EVENTING_DIR          the Knative YAML to route by (default ./eventing)
    T2V_LOCAL_SERVICE_URLS    JSON {service name: URL}: route a Service elsewhere (fault tests)
    T2V_STATUS_PROCESSES      how many status processes serve the API behind the gateway, in
                              turn (default 1), as status scales out on a cluster
    T2V_INFER_WORKERS         infer worker processes, one job at a time each (default 1)
plus every T2V_* setting of the functions, which the processes inherit; the data directory,
the model and its profile are passed to them resolved (absolute), so the folder `t2v local`
was started from does not matter.

Stopping (`stop`, on SIGTERM or Ctrl-C) is bounded: each function's process group gets
SIGTERM, then SIGKILL after `STOP_GRACE_S`; the gateway and broker close within
`SERVER_SHUTDOWN_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from t2v.auth import KeyRegistry
from t2v.broker.config import load_config
from t2v.broker.delivery import DeliveryOverride
from t2v.broker.identity import LocalCredentials
from t2v.broker.server import create_broker_app
from t2v.local.gateway import create_gateway_app
from t2v.local.processes import FunctionProcess
from t2v.settings import Settings, looks_like_hub_id, tiny_model_dir

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("submit", "status", "infer", "notify")
# One generation at a time per infer worker (T2V_INFER_WORKERS, default one): infer runs
# that many gunicorn workers, each with its own model, and the broker delivers to it that
# many jobs at once.
LOCAL_INFER_PARALLELISM = 1
# Together well under the 10 s a supervisor (systemd, Docker, a terminal) waits before it
# kills: function groups get SIGKILL after STOP_GRACE_S, servers stop taking requests at once.
STOP_GRACE_S = 5.0
SERVER_SHUTDOWN_S = 2
# A function that dies this many times while the platform starts will not come up.
START_RESTART_LIMIT = 3


class PlatformStartError(Exception):
    """The platform cannot start as configured; the message says why and what to do."""


def check_model(settings: Settings) -> None:
    """Fail before starting anything when the model directory is missing."""
    model = settings.model
    if looks_like_hub_id(model) or (Path(model) / "model_index.json").is_file():
        return
    if Path(model) == tiny_model_dir(settings.data_dir):
        how = f"build it with `t2v build-tiny-model --data-dir {settings.data_dir}` (or run "
        how += "`t2v demo`, which builds it and makes one video)"
    else:
        how = "build the tiny model there with `t2v build-tiny-model --out DIR`, or point "
        how += "--model (T2V_MODEL) at a saved pipeline or a Hugging Face id"
    raise PlatformStartError(f"no model at {model}: {how}")


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to `t2v local`: uvicorn's own handlers would
    replace the command's and stop only that one server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = int(env.get(name, str(default)))
    return value or free_port()


@dataclass(frozen=True)
class LocalOptions:
    gateway_port: int
    broker_port: int
    ping_interval_s: float
    delivery: Mapping[str, DeliveryOverride]
    eventing_dir: Path
    service_urls: Mapping[str, str]
    status_processes: int = 1
    infer_workers: int = LOCAL_INFER_PARALLELISM

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalOptions:
        env = os.environ if env is None else env
        workers = max(1, int(env.get("T2V_INFER_WORKERS") or LOCAL_INFER_PARALLELISM))
        overrides = {"t2v-infer-job": DeliveryOverride(parallelism=workers)}
        for name, fields in json.loads(env.get("T2V_LOCAL_DELIVERY") or "{}").items():
            # Layered on the local default, field by field (parallelism 1 unless named).
            overrides[name] = dataclasses.replace(overrides.get(name, DeliveryOverride()), **fields)
        return cls(
            gateway_port=_port(env, "T2V_LOCAL_PORT", 8080),
            broker_port=_port(env, "T2V_LOCAL_BROKER_PORT", 0),
            ping_interval_s=float(env.get("T2V_LOCAL_PING_INTERVAL_S", "10")),
            delivery=overrides,
            eventing_dir=Path(env.get("T2V_EVENTING_DIR") or REPO_ROOT / "eventing"),
            service_urls=json.loads(env.get("T2V_LOCAL_SERVICE_URLS") or "{}"),
            status_processes=max(1, int(env.get("T2V_STATUS_PROCESSES", "1"))),
            infer_workers=workers,
        )


def _process_names(function: str, options: LocalOptions) -> list[str]:
    count = options.status_processes if function == "status" else 1
    return [function] + [f"{function}-{n}" for n in range(2, count + 1)]


class LocalPlatform:
    def __init__(self, settings: Settings, options: LocalOptions) -> None:
        self.settings = settings
        self.options = options
        broker_url = f"http://127.0.0.1:{options.broker_port}/"
        self.gateway_url = f"http://127.0.0.1:{options.gateway_port}"
        env = {
            "K_SINK": broker_url,
            # Links in job resources point where clients came in: the gateway, never a Host
            # header a client sent.
            "T2V_PUBLIC_URL": settings.public_url or self.gateway_url,
            "T2V_DATA_DIR": str(settings.data_dir),
            "T2V_MODEL": settings.model,
            "T2V_MODEL_PROFILE": settings.model_profile,
            # The gateway appends each client's address to X-Forwarded-For (t2v.keyguard).
            "T2V_TRUSTED_PROXY_HOPS": "1",
        }
        # Each sender's credential for the broker, and the key it signs deliveries with.
        self.credentials = LocalCredentials.generate(open_mode=KeyRegistry.from_env().open_mode)
        # The first process of each function is named for it; more status processes (the
        # gateway takes them in turn) are status-2, status-3, ...
        self.functions = {
            process: FunctionProcess(
                name=process,
                target=name,
                source=REPO_ROOT / "functions" / name / "main.py",
                port=free_port(),
                env={**env, "K_SERVICE": f"t2v-{name}", **self.credentials.function_env(name)},
                log_path=settings.data_dir / "logs" / f"{process}.log",
                workers=options.infer_workers if name == "infer" else 1,
            )
            for name in FUNCTIONS
            for process in _process_names(name, options)
        }
        self.broker_url = broker_url
        self._servers: list[uvicorn.Server] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def state_path(self) -> Path:
        return self.settings.data_dir / "local.json"

    def _services(self) -> dict[str, str]:
        """Where the broker delivers: each function's first process."""
        services = {f"t2v-{name}": self.functions[name].url for name in FUNCTIONS}
        return {**services, **self.options.service_urls}

    def _gateway_services(self) -> dict[str, list[str]]:
        return {
            name: [self.functions[process].url for process in _process_names(name, self.options)]
            for name in FUNCTIONS
        }

    async def start(self) -> None:
        check_model(self.settings)
        # The data directory holds prompts (jobs.db, events.jsonl, the logs): every file this
        # process and the functions it starts create there is the user's alone (0600).
        os.umask(0o077)
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.credentials.write(self.settings.data_dir)
        for proc in self.functions.values():
            await proc.start()
        broker_app = create_broker_app(
            load_config(self.options.eventing_dir),
            self._services(),
            event_log=self.settings.data_dir / "events.jsonl",
            delivery_overrides=self.options.delivery,
            ping_interval_override_s=self.options.ping_interval_s,
            senders=self.credentials.registry(),
            signing_key=self.credentials.signing_key.encode(),
        )
        gateway_app = create_gateway_app(self._gateway_services())
        for app, port in (
            (broker_app, self.options.broker_port),
            (gateway_app, self.options.gateway_port),
        ):
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                timeout_graceful_shutdown=SERVER_SHUTDOWN_S,
                # The socket's peer is the client: uvicorn would otherwise take a local
                # client's own X-Forwarded-For as its address (it trusts 127.0.0.1), and the
                # gateway would pass that on as the address it vouches for (t2v.keyguard).
                proxy_headers=False,
            )
            server = EmbeddedServer(config)
            self._servers.append(server)
            self._tasks.append(asyncio.create_task(server.serve()))
        await self._wait_until_ready()
        self._write_state()
        for proc in self.functions.values():
            # A restarted function has a new pid: keep the state file true.
            proc.on_start = self._write_state

    async def _wait_until_ready(self, timeout_s: float = 300.0) -> None:
        checks = [f"{proc.url}/healthz" for proc in self.functions.values()]
        checks += [f"{self.functions['infer'].url}/readyz", f"{self.gateway_url}/healthz"]
        checks.append(f"{self.broker_url}healthz")
        async with httpx.AsyncClient(timeout=5.0) as client:
            deadline = asyncio.get_running_loop().time() + timeout_s
            for url in checks:
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        response = await client.get(url)
                        if response.status_code == 200:
                            break
                        if url.endswith("/readyz") and response.status_code == 500:
                            # The model failed to load: waiting longer cannot help.
                            raise PlatformStartError(
                                f"infer could not load the model {self.settings.model}: "
                                f"{response.json().get('error')}; see {self._log_of('infer')}"
                            )
                    self._check_not_crashing()
                    if asyncio.get_running_loop().time() > deadline:
                        raise TimeoutError(f"{url} not ready after {timeout_s} s")
                    await asyncio.sleep(0.2)

    def _log_of(self, name: str) -> Path:
        return self.functions[name].log_path

    def _check_not_crashing(self) -> None:
        for name, proc in self.functions.items():
            if proc.restarts >= START_RESTART_LIMIT:
                raise PlatformStartError(
                    f"{name} exited {proc.restarts} times while starting; see {self._log_of(name)}"
                )

    def _write_state(self) -> None:
        state = {
            "gateway": self.gateway_url,
            "broker": self.broker_url,
            "pid": os.getpid(),
            "functions": {
                name: {"url": proc.url, "pid": proc.pid} for name, proc in self.functions.items()
            },
        }
        # Written beside and renamed into place: readers (the CLI, tests) poll this file while
        # a restarted function rewrites it, and must never see it half-written.
        scratch = self.state_path.with_name(f".{self.state_path.name}.{os.getpid()}")
        scratch.write_text(json.dumps(state, indent=2))
        os.replace(scratch, self.state_path)

    async def stop(self) -> None:
        """Stop everything this platform started, at once and in parallel (bounded)."""
        for server in self._servers:
            server.should_exit = True
        await asyncio.gather(
            self._stop_servers(),
            *(proc.stop(grace_s=STOP_GRACE_S) for proc in self.functions.values()),
        )
        self.state_path.unlink(missing_ok=True)

    async def _stop_servers(self) -> None:
        if not self._tasks:
            return
        # uvicorn bounds its own shutdown; this bounds a lifespan that hangs on top of it.
        _, pending = await asyncio.wait(self._tasks, timeout=SERVER_SHUTDOWN_S + 1.0)
        for task in pending:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@contextlib.asynccontextmanager
async def running_platform(
    settings: Settings, options: LocalOptions
) -> AsyncIterator[LocalPlatform]:
    platform = LocalPlatform(settings, options)
    try:
        await platform.start()
        yield platform
    finally:
        await platform.stop()
