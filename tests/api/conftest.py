"""One local platform for the API tests of this package (starting one takes a while)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Platform


def running_platform(
    factory: pytest.TempPathFactory, model: Path, env: dict[str, str]
) -> Iterator[Platform]:
    running = Platform(factory.mktemp("api-platform"), model, env).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Platform]:
    yield from running_platform(tmp_path_factory, tiny_model_dir, {})
