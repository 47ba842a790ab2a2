"""Fixtures: one tiny model built and loaded once per test session (it takes a few seconds)."""

from __future__ import annotations

import pathlib

import pytest

from t2v.model.pipeline import LoadedModel, load_model
from t2v.model.tiny import build_tiny_mochi


@pytest.fixture(scope="session")
def tiny_seed() -> int:
    return 7


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_seed: int) -> pathlib.Path:
    return build_tiny_mochi(tmp_path_factory.mktemp("models") / "tiny-mochi", seed=tiny_seed)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: pathlib.Path) -> LoadedModel:
    return load_model(str(tiny_model_dir), device="cpu")
