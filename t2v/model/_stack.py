"""Lazy access to diffusers and transformers, typed as ``Any`` on purpose.

They are imported on first use so that ``t2v`` imports without the model stack installed.
They are ``Any`` because mypy cannot see their real signatures: diffusers wraps constructors in
config decorators and transformers exports its classes through a lazy module.
"""

from __future__ import annotations

import importlib
from typing import Any


def diffusers() -> Any:
    return importlib.import_module("diffusers")


def transformers() -> Any:
    return importlib.import_module("transformers")
