"""The three functions' ASGI apps in this process, as functions-framework builds them from
`functions/<name>/main.py`, over the embedded SQLite store and artifact folder in a tmp
directory. Events they send are kept for the test to read instead of going to a broker."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import functions_framework.aio
import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from t2v import event_auth, events
from t2v.events import event_data, make_event
from t2v.runtime import Lazy, Runtime
from t2v.settings import Settings
from tests.function_modules import load_function

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("submit", "status", "infer")
SMALL = {"width": 64, "height": 48, "num_frames": 7, "num_inference_steps": 2}
# The functions check the local broker's signature on every delivery; the tests sign as it does.
SIGNING_KEY = "inprocess-signing-key"


def default_sender(event_type: str) -> str:
    """Who may send `event_type` (the broker stamps the sender it authenticated)."""
    if event_type == events.JOB_SUBMIT:
        return event_auth.Sender.of_tenant("local").name
    if event_type == events.PING:
        return event_auth.PING_SOURCE
    return event_auth.SUBMIT if event_type == events.JOB_REQUESTED else event_auth.INFER


def signed(event: CloudEvent, sender: str | None = None) -> tuple[dict[str, str], bytes]:
    """`event` in binary mode as the local broker delivers it: sender stamped, signed."""
    event[event_auth.SENDER_ATTRIBUTE] = sender or default_sender(event["type"])
    raw_headers, body = to_binary(event)
    headers = {name: str(value) for name, value in raw_headers.items()}
    headers[event_auth.SIGNATURE_HEADER] = event_auth.signature(SIGNING_KEY.encode(), headers, body)
    return headers, body


@dataclass
class RecordingSink:
    """Keeps every event a function sends, in order."""

    sent: list[CloudEvent] = field(default_factory=list)

    async def send(self, event: CloudEvent) -> bool:
        self.sent.append(event)
        return True

    async def close(self) -> None:
        pass

    def of_type(self, event_type: str, job_id: str | None = None) -> list[dict[str, Any]]:
        return [
            event_data(event)
            for event in self.sent
            if event["type"] == event_type and job_id in (None, event["subject"])
        ]


@dataclass
class Functions:
    settings: Settings
    sink: RecordingSink
    modules: dict[str, ModuleType]
    clients: dict[str, httpx.AsyncClient]

    @property
    def submit(self) -> httpx.AsyncClient:
        return self.clients["submit"]

    @property
    def status(self) -> httpx.AsyncClient:
        return self.clients["status"]

    @property
    def infer(self) -> httpx.AsyncClient:
        return self.clients["infer"]

    async def runtime(self, name: str) -> Runtime:
        runtime: Runtime = await self.modules[name].runtime.get()
        return runtime

    async def create(self, key: str | None = None, **fields: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body = {"prompt": "a fox in the snow", **SMALL, **fields}
        response = await self.submit.post("/v1/jobs", json=body, headers=headers)
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        return job


def binary_event(
    event_type: str,
    data: Mapping[str, Any],
    *,
    subject: str = "",
    extensions: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], bytes]:
    event = make_event(
        event_type, source="/tests", subject=subject, data=data, extensions=extensions
    )
    return signed(event)


async def post_event(
    client: httpx.AsyncClient,
    event_type: str,
    data: Mapping[str, Any],
    *,
    path: str = "/events",
    subject: str = "",
    extensions: Mapping[str, str] | None = None,
) -> httpx.Response:
    headers, body = binary_event(event_type, data, subject=subject, extensions=extensions)
    return await client.post(path, content=body, headers=headers)


async def sweep(functions: Functions) -> dict[str, int]:
    response = await post_event(functions.submit, events.PING, {}, path="/sweep")
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()
    return counts


@pytest.fixture
def function_env() -> dict[str, str]:
    """Extra environment for the functions (a test overrides it to add keys or an S3 store)."""
    return {}


@pytest.fixture
async def functions(
    tmp_path: Path,
    function_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Functions]:
    env = {
        "T2V_DATA_DIR": str(tmp_path),
        # infer's tests that generate name the tiny model in `function_env`.
        "T2V_MODEL": str(tmp_path / "no-model"),
        "T2V_MODEL_PROFILE": "tiny",
        "T2V_DEVICE": "cpu",
        "T2V_WARMUP": "0",
        "T2V_PROGRESS_INTERVAL_S": "0",
        "T2V_QUEUED_STALE_S": "30",
        "T2V_MAX_ATTEMPTS": "2",
        "T2V_SUBMIT_RATE": "1000/minute",
        "T2V_MAX_ACTIVE_JOBS": "100",
        "T2V_FAILED_KEY_RATE": "1000/minute",
        event_auth.SIGNING_KEY_ENV: SIGNING_KEY,
        **function_env,
    }
    for name in ("K_SINK", "T2V_API_KEYS", "T2V_API_KEYS_FILE", "T2V_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    event_auth.delivery_check.cache_clear()  # it reads the signing key from the environment once
    settings = Settings.from_env()
    sink = RecordingSink()
    modules: dict[str, ModuleType] = {}
    clients: dict[str, httpx.AsyncClient] = {}
    for name in FUNCTIONS:
        module = load_function(name, monkeypatch)
        source = f"/t2v/{name}"

        async def build(source: str = source) -> Runtime:
            built = Runtime.from_settings(Settings.from_env(), source=source)
            return dataclasses.replace(built, sink=sink)

        module.runtime = Lazy(build)  # type: ignore[attr-defined]
        app = functions_framework.aio.create_asgi_app_from_module(  # type: ignore[no-untyped-call]
            name, str(module.__file__), "http", module, None
        )
        modules[name] = module
        clients[name] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"http://{name}.test"
        )
    try:
        yield Functions(settings, sink, modules, clients)
    finally:
        for name, client in clients.items():
            await client.aclose()
            if modules[name].runtime.ready:
                await (await modules[name].runtime.get()).store.close()
        event_auth.delivery_check.cache_clear()


def api_keys(*entries: tuple[str, str, str]) -> str:
    """T2V_API_KEYS for (key, tenant, role) entries."""
    from t2v.auth import hash_key

    return json.dumps({hash_key(key): {"tenant": t, "role": role} for key, t, role in entries})
