"""The request's JSON Schema and rust_infer's contract accept and refuse the same requests.

`rust_infer.request_schema()` is generated from the contract (src/contract/schema.rs) and
`t2v/schemas/job.submit.v1.json` is written from it (scripts/write_schemas.py). Generated
requests sit on and around every rule's boundary (steps 1 and 2, 6k+1 frames and their
neighbours, sides off the multiple, the 768p cap, the 10 s limit, long and blank prompts,
wrong types, nulls, unknown fields); a loosened schema is caught.
"""

from __future__ import annotations

import copy
import functools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, find, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import rust_infer

ROOT = Path(__file__).resolve().parents[1]
Schema = dict[str, Any]


@functools.cache
def schema_text(profile: str) -> str:
    return rust_infer.request_schema(profile)


def schema(profile: str) -> Schema:
    loaded: Schema = json.loads(schema_text(profile))
    return loaded


@functools.cache
def validator(profile: str) -> Draft202012Validator:
    return Draft202012Validator(schema(profile))


def contract_accepts(request: object, profile: str) -> bool:
    try:
        rust_infer.normalize_request(json.dumps(request), profile=profile, fresh_seed=7)
    except rust_infer.InvalidRequest:
        return False
    return True


def integers_near(*points: int) -> st.SearchStrategy[int]:
    """The points themselves half of the time, else a neighbour."""
    near = [st.integers(point - 2, point + 2) for point in points]
    return st.one_of(st.sampled_from(points), st.one_of(near))


def integral(values: st.SearchStrategy[int]) -> st.SearchStrategy[int | float]:
    """Integers, sometimes written as floats (64.0 counts as 64), sometimes with a fraction."""
    return st.one_of(values, values, values.map(float), values.map(lambda value: value + 0.5))


def frames(k: int) -> int:
    return 6 * k + 1


# Mostly valid values: a request starts from these ...
LIKELY: dict[str, st.SearchStrategy[Any]] = {
    "prompt": st.one_of(st.just("a red fox in the snow\n\tslowly"), st.text(max_size=12)),
    "negative_prompt": st.sampled_from(["", "blurry", "  "]),
    "width": st.integers(1, 48).map(lambda n: 16 * n),
    "height": st.integers(1, 48).map(lambda n: 16 * n),
    "fps": st.one_of(st.sampled_from([24, 30]), st.integers(1, 60)),
    "num_frames": st.integers(0, 27).map(frames),  # up to 163: 10 s at 17 fps
    "num_inference_steps": st.integers(2, 200),
    "guidance_scale": st.floats(0.0, 20.0),
    "seed": st.integers(0, 2**32 - 1),
}
# ... then a few fields take a value on or near a rule's edge, of a wrong type, null, or
# go missing; unknown fields come in.
characters = st.sampled_from(["a", "é", " ", "\t", "\n", "\r", "\x00", "\x7f", "\x85", "\u3000"])
texts = st.one_of(
    st.text(characters, max_size=8),
    st.integers(1998, 2002).map(lambda n: "x" * n),
    st.integers(1998, 2002).map(lambda n: " " * (n - 1) + "x"),
)
sides = integral(integers_near(0, 16, 752, 768, 784, 848, 1344, 1360, 1376))
numbers = st.one_of(
    st.floats(-1.0, 21.0),
    st.sampled_from([0, -0.0, 10, 10.000001, 20, 20.000001, 1e-9]),
)
EDGES: dict[str, st.SearchStrategy[Any]] = {
    "prompt": texts,
    "negative_prompt": texts,
    "width": sides,
    "height": sides,
    "fps": integral(integers_near(1, 10, 12, 16, 17, 30, 60)),
    "num_frames": integral(
        st.one_of(st.integers(0, 100).map(frames), integers_near(1, 100, 163, 300, 595, 600))
    ),
    "duration_s": st.one_of(numbers, st.floats(0.01, 10.0)),
    "num_inference_steps": integral(integers_near(1, 2, 64, 200)),
    "guidance_scale": numbers,
    "seed": integral(st.sampled_from([-1, 0, 2**32 - 1, 2**32, 2**70])),
    "webhook": st.one_of(
        st.sampled_from(
            [
                *("https://example.com/h", "http://127.0.0.1:9/x?a=1", "HTTPS://a", "ftp://a"),
                *("https://", "https:///x", "https://?q", "https://a b", "https://a\x85", "a"),
            ]
        ),
        st.integers(2046, 2050).map(lambda n: "https://a/" + "x" * (n - 10)),
    ),
    "webhook_events": st.one_of(
        st.lists(st.sampled_from(["start", "progress", "completed", "done"]), max_size=4),
        st.just("start"),
    ),
    "Prompt": st.just("a fox"),
    "extra": st.none(),
}
WRONG_TYPES = st.sampled_from([True, False, "7", [], {}, [64]])
ABSENT = object()


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    optional = {name: values for name, values in LIKELY.items() if name != "prompt"}
    # duration_s comes in only as an edit: beside num_frames it is a conflict.
    request: dict[str, Any] = draw(
        st.fixed_dictionaries({"prompt": LIKELY["prompt"]}, optional=optional)
    )
    for name in draw(st.lists(st.sampled_from(sorted(EDGES)), max_size=3, unique=True)):
        edge = draw(st.one_of(EDGES[name], EDGES[name], st.none(), WRONG_TYPES, st.just(ABSENT)))
        if edge is ABSENT:
            request.pop(name, None)
        else:
            request[name] = edge
    return request


bodies = st.one_of(requests(), requests(), requests(), st.sampled_from([[], "a fox", 7, None]))
profiles = st.sampled_from(rust_infer.PROFILES)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies, profiles)
@example({"prompt": "a fox", "num_inference_steps": 1}, "mochi-1")
@example({"prompt": "a fox", "num_inference_steps": 2}, "mochi-1")
@example({"prompt": "a fox", "num_frames": 7}, "mochi-1")
@example({"prompt": "a fox", "num_frames": 8}, "mochi-1")
@example({"prompt": "a fox", "height": 784}, "mochi-1")  # 848x784: over 768p
@example({"prompt": "a fox", "height": 784}, "tiny")  # 224x784: fine
@example({"prompt": "a fox", "fps": 16}, "mochi-1")  # 163 default frames over 10 s
@example({"prompt": "a fox", "fps": 17}, "mochi-1")
@example({"prompt": "a fox", "fps": 10, "num_frames": 103}, "mochi-1")
@example({"prompt": "a fox", "num_frames": 7, "duration_s": None}, "mochi-1")
@example({"prompt": " \u3000\n"}, "mochi-1")
@example({"prompt": "a fox", "webhook": "https://a", "webhook_events": ["start"]}, "tiny")
@example({"prompt": "a fox", "webhook_events": ["start"]}, "tiny")
def test_schema_and_contract_agree(body: object, profile: str) -> None:
    accepted = contract_accepts(body, profile)
    problems = [error.message for error in validator(profile).iter_errors(body)]
    assert (not problems) == accepted, (body, profile, problems)


def test_both_outcomes_are_generated() -> None:
    """The agreement above is not vacuous: the generator reaches valid and invalid requests."""
    find(requests(), lambda request: contract_accepts(request, "mochi-1"))
    find(requests(), lambda request: not contract_accepts(request, "mochi-1"))


def loosen(edit: Callable[[Schema], object]) -> Schema:
    loose = copy.deepcopy(schema("mochi-1"))
    edit(loose)
    return loose


MAX_300_FRAMES = {"properties": {"num_frames": {"maximum": 300}}}
LOOSENED = {
    "one step": lambda s: s["properties"]["num_inference_steps"].update(minimum=1),
    "any frame count": lambda s: s["properties"]["num_frames"].pop("enum"),
    "no 768p cap": lambda s: s["allOf"].pop(0),
    "no 10 s limit at 30 fps": lambda s: s["allOf"].remove(
        next(rule for rule in s["allOf"] if rule.get("then") == MAX_300_FRAMES)
    ),
    "blank prompts": lambda s: s["properties"]["prompt"]["allOf"].pop(1),
    "sides off the multiple": lambda s: s["properties"]["width"].pop("multipleOf"),
    "unknown fields": lambda s: s.pop("additionalProperties"),
}


@pytest.mark.parametrize("edit", LOOSENED.values(), ids=LOOSENED.keys())
def test_a_loosened_schema_is_caught(edit: Callable[[Schema], object]) -> None:
    loose = Draft202012Validator(loosen(edit))
    found = find(
        requests(),
        lambda request: loose.is_valid(request) != contract_accepts(request, "mochi-1"),
        # The first disagreement will do: shrinking it would only cost time.
        settings=settings(
            max_examples=10_000, phases=[Phase.generate], database=None, derandomize=True
        ),
    )
    assert loose.is_valid(found)
    assert not contract_accepts(found, "mochi-1")


@pytest.mark.parametrize("profile", rust_infer.PROFILES)
def test_the_schema_is_a_valid_2020_12_schema(profile: str) -> None:
    Draft202012Validator.check_schema(schema(profile))


def test_the_committed_job_submit_schema_is_the_generated_one() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "write_schemas.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    committed = json.loads((ROOT / "t2v" / "schemas" / "job.submit.v1.json").read_text())
    assert {key: committed[key] for key in schema("mochi-1")} == schema("mochi-1")


def test_an_unknown_profile_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        rust_infer.request_schema("mochi")
