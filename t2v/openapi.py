"""The API's OpenAPI 3.1 description, served by status at `/openapi.json` (and rendered at
`/docs`).

Built from the code: the request body's schema and limits are rust_infer's contract
(`request_schema`), the headers and limits come from the modules that set them, and
`tests/api/test_openapi.py` proves that the documented operations are exactly the public
routes that submit and status serve and that the documented limits are the ones
`rust_infer.normalize_request` enforces.
"""

from __future__ import annotations

import json
from typing import Any

import rust_infer
from t2v import __version__
from t2v.contract import MAX_IDEMPOTENCY_KEY
from t2v.jobs import PHASES, JobStatus
from t2v.prefer import MAX_WAIT_S

MAX_PAGE = 100
Schema = dict[str, Any]

# The codes of rust_infer's contract (src/errors/codes.rs), all answered 400.
CONTRACT_CODES = (
    "invalid_json",
    "missing_field",
    "invalid_type",
    "empty",
    "too_long",
    "control_character",
    "invalid_value",
    "out_of_range",
    "unknown_field",
    "conflicting_fields",
)


def request_schema(profile: str) -> Schema:
    """The request body's JSON Schema under `profile`'s defaults, from rust_infer."""
    generated = getattr(rust_infer, "request_schema", None)
    if generated is not None:
        schema: Schema = json.loads(generated(profile))
        schema.pop("$schema", None)  # the document's dialect already is 2020-12
        return schema
    return _request_schema_from_defaults(profile)


def _request_schema_from_defaults(profile: str) -> Schema:
    """For a rust_infer without `request_schema`: the contract's limits (each checked against
    `normalize_request` by tests/api/test_openapi.py) and the profile's defaults."""
    defaults = rust_infer.profile_defaults(profile)
    nullable_int = ["integer", "null"]
    nullable_number = ["number", "null"]

    def side(name: str) -> Schema:
        return {
            "type": nullable_int,
            "minimum": 16,
            "maximum": 1360,
            "multipleOf": 16,
            "default": defaults[name],
        }

    return {
        "type": "object",
        "required": ["prompt"],
        "additionalProperties": False,
        "properties": {
            "prompt": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2000,
                "description": "not blank; no control characters but newline and tab",
            },
            "negative_prompt": {
                "type": ["string", "null"],
                "maxLength": 2000,
                "default": defaults["negative_prompt"],
            },
            "width": side("width"),
            "height": side("height"),
            "fps": {"type": nullable_int, "minimum": 1, "maximum": 60, "default": defaults["fps"]},
            "num_frames": {
                "type": nullable_int,
                "minimum": 1,
                "maximum": 595,
                "default": defaults["num_frames"],
                "description": "6k+1 frames, at most 10 s at the request's fps",
            },
            "duration_s": {
                "type": nullable_number,
                "exclusiveMinimum": 0,
                "maximum": 10,
                "description": "seconds; becomes the nearest 6k+1 frame count",
            },
            "num_inference_steps": {
                "type": nullable_int,
                "minimum": 2,
                "maximum": 200,
                "default": defaults["num_inference_steps"],
            },
            "guidance_scale": {
                "type": nullable_number,
                "minimum": 0,
                "maximum": 20,
                "default": defaults["guidance_scale"],
            },
            "seed": {
                "type": nullable_int,
                "minimum": 0,
                "maximum": 2**32 - 1,
                "description": "a fresh random seed when absent",
            },
        },
        "description": "the shorter side is at most 768 (768p); num_frames or duration_s, "
        "not both; at most 10 s of video",
    }


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _header(name: str) -> Schema:
    return {"$ref": f"#/components/headers/{name}"}


def _error(description: str, *codes: str, headers: tuple[str, ...] = ()) -> Schema:
    """An error answer: its stable codes are listed and enumerated."""
    listed = ", ".join(f"`{code}`" for code in codes)
    schema = {
        "allOf": [_ref("Error")],
        "properties": {"error": {"properties": {"code": {"enum": list(codes)}}}},
    }
    answer: Schema = {
        "description": f"{description} ({listed})",
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        answer["headers"] = {name: _header(name) for name in headers}
    return answer


def _job_answer(description: str, *headers: str) -> Schema:
    answer: Schema = {
        "description": description,
        "content": {"application/json": {"schema": _ref("Job")}},
    }
    if headers:
        answer["headers"] = {name: _header(name) for name in headers}
    return answer


# Answers every operation may give.
_COMMON = {
    "401": _error("no API key, or not a valid one", "unauthorized", headers=("WWW-Authenticate",)),
    "503": _error("the job store or another backend is unreachable: retry", "unavailable"),
}
_NOT_FOUND = _error("no such job, or another tenant's", "not_found")
_RATE = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")
_JOB_ID = {"$ref": "#/components/parameters/JobId"}
_PREFER = {"$ref": "#/components/parameters/PreferWait"}


def _operation(operation_id: str, summary: str, responses: Schema, **more: Any) -> Schema:
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["jobs"],
        **more,
        "responses": {**responses, **_COMMON},
    }


PATHS: Schema = {
    "/v1/jobs": {
        "post": _operation(
            "createJob",
            "Submit a job",
            {
                "202": _job_answer(
                    "the job, queued (or, with `Prefer: wait`, as it is when the wait ended); "
                    "`Idempotent-Replayed: true` when an earlier request with the same "
                    "`Idempotency-Key` made it",
                    "Location",
                    "Idempotent-Replayed",
                    "Preference-Applied",
                    *_RATE,
                ),
                "400": _error(
                    "the request breaks the contract, or needs more GPU memory than there is; "
                    "nothing is stored",
                    *CONTRACT_CODES,
                    "exceeds_gpu_memory",
                    "invalid_idempotency_key",
                ),
                "409": _error(
                    "the Idempotency-Key was used with another request", "idempotency_key_reused"
                ),
                "415": _error("the body is not JSON", "unsupported_media_type"),
                "429": _error(
                    "over the tenant's submission rate, or its cap on unfinished jobs",
                    "rate_limited",
                    "too_many_active_jobs",
                    headers=("Retry-After", *_RATE),
                ),
            },
            parameters=[{"$ref": "#/components/parameters/IdempotencyKey"}, _PREFER],
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": _ref("JobRequest")}},
            },
        ),
        "get": _operation(
            "listJobs",
            "List the caller's jobs, newest first",
            {
                "200": {
                    "description": "one page; `next_cursor` fetches the next",
                    "content": {"application/json": {"schema": _ref("JobList")}},
                },
                "400": _error(
                    "a bad query parameter", "invalid_value", "out_of_range", "invalid_cursor"
                ),
            },
            parameters=[
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": [s.value for s in JobStatus]},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 20},
                },
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ],
        ),
    },
    "/v1/jobs/{job_id}": {
        "parameters": [_JOB_ID],
        "get": _operation(
            "getJob",
            "Read a job",
            {"200": _job_answer("the job", "Preference-Applied"), "404": _NOT_FOUND},
            parameters=[_PREFER],
        ),
        "delete": _operation(
            "deleteJob",
            "Delete a finished job and its video",
            {
                "204": {
                    "description": "deleted; its video too, unless another job holds the same "
                    "(content-addressed) video"
                },
                "404": _NOT_FOUND,
                "409": _error("the job is queued or running: cancel it first", "job_not_finished"),
            },
        ),
    },
    "/v1/jobs/{job_id}/cancel": {
        "parameters": [_JOB_ID],
        "post": _operation(
            "cancelJob",
            "Cancel a job",
            {
                "202": _job_answer(
                    "a queued job never runs; a running one stops within one denoising step, "
                    "or when decoding or encoding ends, and publishes no video"
                ),
                "404": _NOT_FOUND,
                "409": _error("its video is being stored or is stored", "too_late"),
            },
        ),
    },
    "/v1/jobs/{job_id}/video": {
        "parameters": [_JOB_ID],
        "get": _operation(
            "getVideo",
            "Download the job's MP4",
            {
                "200": {
                    "description": "the MP4 (Range requests answer 206)",
                    "headers": {"ETag": _header("ETag")},
                    "content": {
                        "video/mp4": {"schema": {"type": "string", "contentMediaType": "video/mp4"}}
                    },
                },
                "302": {"description": "a presigned URL on the artifact store (S3)"},
                "404": _NOT_FOUND,
                "409": _error("the job has no video (yet)", "video_not_ready"),
                "410": _error("the video expired (retention)", "video_expired"),
            },
        ),
    },
}


def _job_schema() -> Schema:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    video = {
        "type": ["object", "null"],
        "properties": {
            "url": {"type": "string", "format": "uri"},
            "sha256": {"type": "string"},
            "bytes": {"type": "integer"},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "num_frames": {"type": "integer"},
            "fps": {"type": "number"},
            "duration_s": {"type": "number"},
        },
    }
    nullable_number = {"type": ["number", "null"]}
    properties: Schema = {
        "id": {"type": "string"},
        "object": {"const": "job"},
        "status": {"enum": [s.value for s in JobStatus]},
        "phase": {"enum": [*PHASES, None]},
        "progress": {
            "type": ["object", "null"],
            "properties": {
                "step": {"type": "integer"},
                "total": {"type": "integer"},
                "percent": {"type": "number"},
                "attempt": {"type": "integer"},
            },
        },
        "queue_position": {"type": ["integer", "null"], "minimum": 1},
        "estimated_seconds": nullable_number,
        "eta_seconds": nullable_number,
        "params": {**_ref("JobRequest"), "description": "the request, normalised"},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": nullable_time,
        "finished_at": nullable_time,
        "cancel_requested": {"type": "boolean"},
        "error": {
            "type": ["object", "null"],
            "properties": {
                "code": {"type": "string", "examples": list(rust_infer.FAILURE_CODES)},
                "message": {"type": "string"},
                "retryable": {"type": "boolean"},
                "details": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "video": video,
        "expires_at": {
            **nullable_time,
            "description": "when the video is (or was) removed; `video` is null after it",
        },
        "links": {"type": "object", "additionalProperties": {"type": "string", "format": "uri"}},
    }
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }


def _components(profile: str) -> Schema:
    integer_header = {"schema": {"type": "integer"}}
    return {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "an API key (`T2V_API_KEYS`); with none configured the API "
                "runs open",
            }
        },
        "parameters": {
            "JobId": {
                "name": "job_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
            },
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "description": "the same key with the same body answers the same job "
                "(24 h); with another body, 409",
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
            },
            "PreferWait": {
                "name": "Prefer",
                "in": "header",
                "description": f"`wait=N`: hold the answer until the job is finished or N "
                f"seconds pass. N above {MAX_WAIT_S} is taken as {MAX_WAIT_S}; "
                "`Preference-Applied` says which wait was applied",
                "schema": {"type": "string", "pattern": r"wait=\d+", "examples": ["wait=30"]},
            },
        },
        "headers": {
            "Location": {"schema": {"type": "string", "format": "uri"}},
            "Idempotent-Replayed": {"schema": {"const": "true"}},
            "Preference-Applied": {"schema": {"type": "string", "examples": ["wait=30"]}},
            "RateLimit-Limit": integer_header,
            "RateLimit-Remaining": integer_header,
            "RateLimit-Reset": {**integer_header, "description": "seconds"},
            "RateLimit-Policy": {"schema": {"type": "string", "examples": ["30;w=60"]}},
            "Retry-After": {**integer_header, "description": "seconds"},
            "WWW-Authenticate": {"schema": {"type": "string"}},
            "ETag": {"schema": {"type": "string"}, "description": "the video's sha256"},
        },
        "schemas": {
            "JobRequest": request_schema(profile),
            "Job": _job_schema(),
            "JobList": {
                "type": "object",
                "required": ["object", "data", "next_cursor"],
                "properties": {
                    "object": {"const": "list"},
                    "data": {"type": "array", "items": _ref("Job")},
                    "next_cursor": {"type": ["string", "null"]},
                },
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "description": "stable"},
                            "message": {"type": "string", "description": "for people"},
                            "field": {"type": "string", "description": "the field at fault"},
                        },
                    }
                },
            },
        },
    }


def document(profile: str) -> Schema:
    """The OpenAPI document, with `profile`'s defaults in the request schema."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "t2v",
            "version": __version__,
            "description": "Text to video: submit a prompt, follow the job, download the MP4. "
            'Errors answer `{"error": {"code", "message", "field"}}` with a stable '
            "`code`. Videos are kept `T2V_VIDEO_RETENTION_S` (7 days by default) after their "
            "job finished (`expires_at`).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": "jobs"}],
        "paths": PATHS,
        "components": _components(profile),
    }
