"""The OpenAPI document: valid OpenAPI 3.1, exactly the public routes submit and status
serve, and the limits rust_infer's contract enforces."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

import rust_infer
from t2v import errors
from t2v.jobs import Job, JobStatus, Progress, VideoInfo
from t2v.local.gateway import PUBLIC_ROUTES
from t2v.openapi import document
from t2v.resources import MAX_PAGE, job_resource
from t2v.settings import Settings
from t2v.webhooks.guard import RefusedTargetError

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("tiny", "mochi-1")
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _function(name: str) -> Any:
    """functions/<name>/main.py loaded by path, as its container loads it."""
    module_name = f"openapi_check_{name}"
    spec = importlib.util.spec_from_file_location(
        module_name, REPO_ROOT / "functions" / name / "main.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def served_api_routes() -> set[tuple[str, str]]:
    """(method, template) of every /v1/ route submit, status and notify serve."""
    served = set()
    for name in ("submit", "status", "notify"):
        for template, methods in _function(name).router.methods_by_template().items():
            if template.startswith("/v1/"):
                served |= {(method, template) for method in methods}
    return served


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def route_disagreements(doc: dict[str, Any]) -> list[str]:
    served = served_api_routes()
    public = {
        (method, template)
        for template, methods in PUBLIC_ROUTES.items()
        if template.startswith("/v1/")
        for method in methods
    }
    documented = documented_routes(doc)
    return [
        *(f"served, not documented: {route}" for route in sorted(served - documented)),
        *(f"documented, not served: {route}" for route in sorted(documented - served)),
        *(f"served, not routed by the gateway: {route}" for route in sorted(served - public)),
        *(f"routed by the gateway, not served: {route}" for route in sorted(public - served)),
    ]


# Other fields a probe of one field's limit sends, so that no other rule decides it (the
# 768p rule, the 10 s limit), and the step from a limit to the nearest value past it.
COMPANIONS: dict[str, dict[str, Any]] = {
    "height": {"width": 256},
    "fps": {"num_frames": 7},
    "num_frames": {"fps": 60},
}
STEPS = {"num_frames": 6}
# A string probe's form where the field takes more than any characters.
TEXT_PREFIX = {"webhook": "https://example.com/"}


def _accepted(field: str, value: Any) -> str | None:
    """None when the contract accepts `value` for `field`, else why not."""
    body = {"prompt": "a probe", **COMPANIONS.get(field, {}), field: value}
    if field == "webhook_events":
        body["webhook"] = "https://example.com/"
    try:
        rust_infer.normalize_request(json.dumps(body), profile="mochi-1", fresh_seed=1)
    except rust_infer.InvalidRequest as error:
        return f"{error.code} on {error.field}"
    return None


def _bounds(schema: dict[str, Any]) -> dict[str, Any]:
    bounds: dict[str, Any] = {key: schema[key] for key in ("minimum", "maximum", "exclusiveMinimum",
                                            "maxLength", "minLength", "multipleOf")
              if key in schema}  # fmt: skip
    numbers = [value for value in schema.get("enum", ()) if isinstance(value, int)]
    if numbers:  # a closed set of counts (rust_infer's num_frames)
        bounds.update(minimum=min(numbers), maximum=max(numbers))
    return bounds


def limit_disagreements(doc: dict[str, Any]) -> list[str]:
    """Each documented limit of the request, probed on both sides against the contract."""
    wrong = []
    properties = doc["components"]["schemas"]["JobRequest"]["properties"]
    for field, schema in properties.items():
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        bounds = _bounds(schema)
        if "string" in types:
            probes = []
            prefix = TEXT_PREFIX.get(field, "")
            if "maxLength" in bounds:
                probes += [
                    (prefix + "a" * (bounds["maxLength"] - len(prefix)), True),
                    (prefix + "a" * (bounds["maxLength"] - len(prefix) + 1), False),
                ]
            if bounds.get("minLength") == 1:
                probes.append(("", False))
        elif "array" in types:
            listed = schema["items"]["enum"]
            probes = [(listed, True), ([], schema.get("minItems", 0) == 0)]
            if schema.get("uniqueItems"):
                probes.append((listed[:1] * 2, False))
        else:
            step = STEPS.get(field, bounds.get("multipleOf", 1 if "integer" in types else 0.5))
            probes = []
            if "maximum" in bounds:
                probes += [(bounds["maximum"], True), (bounds["maximum"] + step, False)]
            if "minimum" in bounds:
                probes += [(bounds["minimum"], True), (bounds["minimum"] - step, False)]
            if "exclusiveMinimum" in bounds:
                probes += [(bounds["exclusiveMinimum"], False),
                           (bounds["exclusiveMinimum"] + step, True)]  # fmt: skip
            if "multipleOf" in bounds:
                probes.append((bounds["minimum"] + bounds["multipleOf"] // 2, False))
        if not probes:
            wrong.append(f"{field}: no limit documented")
        for value, valid in probes:
            refused = _accepted(field, value)
            if valid and refused:
                wrong.append(f"{field}={value!r} is documented valid, the contract says {refused}")
            if not valid and refused is None:
                wrong.append(f"{field}={value!r} is documented invalid, the contract takes it")
    return wrong


@pytest.mark.parametrize("profile", PROFILES)
def test_the_document_is_valid_openapi_3_1(profile: str) -> None:
    doc = document(profile)
    assert doc["openapi"].startswith("3.1.")
    validate(doc)


def test_the_documented_routes_are_the_served_public_routes() -> None:
    assert route_disagreements(document("tiny")) == []


def test_a_removed_route_is_caught() -> None:
    doc = copy.deepcopy(document("tiny"))
    del doc["paths"]["/v1/jobs/{job_id}"]["delete"]
    assert route_disagreements(doc) == ["served, not documented: ('DELETE', '/v1/jobs/{job_id}')"]


@pytest.mark.parametrize("profile", PROFILES)
def test_the_documented_limits_are_the_contract(profile: str) -> None:
    doc = document(profile)
    assert limit_disagreements(doc) == []
    # The fields: what a normalised request has, and duration_s, which becomes num_frames.
    normalised = rust_infer.normalize_request('{"prompt": "a"}', profile=profile, fresh_seed=1)
    # And the webhook's, which a normalised request has only when it names a webhook.
    webhook = {"webhook", "webhook_events"}
    properties = doc["components"]["schemas"]["JobRequest"]["properties"]
    assert set(properties) == set(normalised) | {"duration_s"} | webhook
    assert set(doc["components"]["schemas"]["JobRequest"]["required"]) == {"prompt"}


def test_a_changed_limit_is_caught() -> None:
    doc = copy.deepcopy(document("tiny"))
    steps = doc["components"]["schemas"]["JobRequest"]["properties"]["num_inference_steps"]
    steps["maximum"] = 199
    assert limit_disagreements(doc) == [
        "num_inference_steps=200 is documented invalid, the contract takes it"
    ]


def test_the_documented_list_limit_is_the_one_status_enforces() -> None:
    params = document("tiny")["paths"]["/v1/jobs"]["get"]["parameters"]
    (limit,) = [p for p in params if p["name"] == "limit"]
    assert limit["schema"]["maximum"] == MAX_PAGE == _function("status").MAX_PAGE


def _validator(doc: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("profile", PROFILES)
def test_job_resources_match_the_job_schema(profile: str) -> None:
    params = rust_infer.normalize_request('{"prompt": "a fox"}', profile=profile, fresh_seed=5)
    video = VideoInfo("videos/a.mp4", "ab" * 32, 1234, 64, 48, 7, 30.0, 0.23)
    queued = Job("job_1", "acme", JobStatus.QUEUED, params, 1.7e9, estimated_s=3.0)
    running = Job("job_2", "acme", JobStatus.RUNNING, params, 1.7e9, phase="denoising",
                  progress=Progress(1, 1, 2), started_at=1.7e9 + 1, estimated_s=3.0)  # fmt: skip
    done = Job("job_3", "acme", JobStatus.SUCCEEDED, params, 1.7e9,
               started_at=1.7e9 + 1, finished_at=1.7e9 + 4, video=video)  # fmt: skip
    expired = Job(**{**done.to_dict(), "video": video, "video_expired": True})
    body = '{"prompt": "a fox", "webhook": "https://example.com/h", "webhook_events": ["start"]}'
    hooked = rust_infer.normalize_request(body, profile=profile, fresh_seed=5)
    queued = Job(**{**queued.to_dict(), "params": hooked})
    validator = _validator(document(profile), "Job")
    retention_s = Settings.from_env({}).video_retention_s
    for job, position in ((queued, 1), (running, None), (done, None), (expired, None)):
        resource = job_resource(job, "http://api", queue_position=position, retention_s=retention_s)
        validator.validate(resource)
    assert job_resource(expired, "http://api")["video"] is None


# Where the API's requests raise errors with a code of their own; `job_exists` is a new id
# that collides, which the store retries and no client sees.
API_SOURCES = ("functions/submit/main.py", "functions/status/main.py", "t2v/contract.py",
               "t2v/ratelimit.py", "t2v/store/cursor.py", "t2v/store/core.py",
               "functions/notify/main.py", "t2v/webhooks/api.py", "t2v/keyguard.py",
               "t2v/stream.py")  # fmt: skip
# Raised on the web page's routes, which are not part of the API.
PAGE_CODES = {"web_ui_not_built"}
API_ERRORS = (errors.RateLimitedError, errors.UnauthorizedError, errors.UnavailableError,
              errors.NotFoundError, errors.UnsupportedMediaTypeError,
              errors.IdempotencyConflictError, RefusedTargetError)  # fmt: skip


def test_every_error_code_the_api_raises_is_documented() -> None:
    doc = document("tiny")
    documented = set()
    for item in doc["paths"].values():
        for operation in item.values():
            for answer in operation["responses"].values() if isinstance(operation, dict) else ():
                schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
                error = schema.get("properties", {}).get("error", {})
                documented |= set(error.get("properties", {}).get("code", {}).get("enum", []))
    raised = {error.code for error in API_ERRORS}
    for source in API_SOURCES:
        raised |= set(re.findall(r'code="(\w+)"', (REPO_ROOT / source).read_text()))
    assert raised - {"job_exists"} - PAGE_CODES <= documented, raised - documented
