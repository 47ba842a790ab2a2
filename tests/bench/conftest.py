"""Fixtures for the benchmark tests."""

from __future__ import annotations

import pathlib

import pytest


@pytest.fixture
def report_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "report.json"
