"""The functions' entry points, loaded by path as their containers load them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_function(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """functions/<name>/main.py loaded by path, as its container loads it."""
    module_name = f"function_under_test_{name}"
    spec = importlib.util.spec_from_file_location(
        module_name, REPO_ROOT / "functions" / name / "main.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, module_name, module)  # dataclasses look it up there
    spec.loader.exec_module(module)
    return module
