"""Fixtures: the session's tiny model (tests/conftest.py), loaded once for these tests."""

from __future__ import annotations

import pathlib

import pytest

from t2v.model.pipeline import LoadedModel, load_model


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: pathlib.Path) -> LoadedModel:
    return load_model(str(tiny_model_dir), device="cpu")
