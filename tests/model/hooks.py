"""Step-hook pieces shared by the model tests."""

from __future__ import annotations


class Canceled(BaseException):
    """Like the worker's cancellation: a BaseException, so `except Exception` cannot eat it."""
