"""Schemathesis against the real local platform's `/openapi.json`, with an API key: no 5xx,
every answer conforms to the document (status code, content type, body schema).

`T2V_FUZZ_EXAMPLES` sets the examples per operation and phase (the recorded big run:
RELIABILITY.md, "Fuzzing"). infer is routed to a closed port: jobs stay queued, which keeps
the fuzzer from running hundreds of generations on the CPU; cancel and delete still act.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from t2v.auth import hash_key
from tests.e2e.harness import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]
KEY = "key-fuzz-1"
EXAMPLES = int(os.environ.get("T2V_FUZZ_EXAMPLES", "120"))
MIN_CASES = int(os.environ.get("T2V_FUZZ_MIN_CASES", "1000"))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
    )
)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Platform]:
    env = {
        "T2V_API_KEYS": json.dumps({hash_key(KEY): {"tenant": "fuzz", "role": "user"}}),
        "T2V_SUBMIT_RATE": "1000000/minute",
        "T2V_MAX_ACTIVE_JOBS": "1000000",
        "T2V_LOCAL_SERVICE_URLS": json.dumps({"infer": "http://127.0.0.1:9"}),
    }
    running = Platform(tmp_path_factory.mktemp("fuzz"), tiny_model_dir, env).start()
    try:
        yield running
    finally:
        running.stop()


def generation_document(document: dict[str, Any]) -> dict[str, Any]:
    """The document to generate from: the served one, less what the fuzzer cannot use.

    The job request's cross-field rules (`allOf` of `not` and `if`/`then`) are beyond
    Schemathesis' generator ("Schema Error"); without them it generates requests the
    platform refuses 400, which the document lists. Operations that answer
    text/event-stream are left out: a stream does not end on its own.
    """
    request = document["components"]["schemas"]["JobRequest"]
    request.pop("allOf", None)
    for path, item in list(document["paths"].items()):
        for method, operation in list(item.items()):
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            types = {
                media
                for answer in operation["responses"].values()
                for media in answer.get("content", {})
            }
            if "text/event-stream" in types:
                del item[method]
        if not any(isinstance(o, dict) and "responses" in o for o in item.values()):
            del document["paths"][path]
    return document


def test_the_api_conforms_to_its_document(platform: Platform, tmp_path: Path) -> None:
    served = httpx.get(f"{platform.url}/openapi.json", timeout=30).json()
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(generation_document(served)))
    report = tmp_path / "report"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        str(schema),
        "--url",
        platform.url,
        "--header",
        f"Authorization: Bearer {KEY}",
        # A queued job never finishes here: a generated `Prefer: wait=N` would hold each
        # answer N seconds. wait=0 is still a Prefer the API parses.
        "--header",
        "Prefer: wait=0",
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES),
        # One worker: hypothesis' lambda descriptions (ast.parse) are not thread-safe on
        # CPython 3.11, which showed as a Runtime Error with two.
        "--workers",
        "1",
        "--seed",
        os.environ.get("T2V_FUZZ_SEED", "1"),
        "--report",
        "json",
        "--report-json-path",
        str(report / "run.json"),
        "--output-truncate",
        "true",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=840, check=False)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    summary = json.loads((report / "run.json").read_text())
    # A test case is one request, or a stateful scenario of several.
    generated = int(summary["test_cases"]["generated"])
    print(f"schemathesis: {generated} test cases\n{run.stdout[-3000:]}")
    assert summary["failures"] == [] and summary["errors"] == []
    assert generated >= MIN_CASES, run.stdout[-3000:]
