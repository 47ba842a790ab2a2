"""Run a benchmark's command line in its short CPU mode and read its JSON report."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_bench(args: list[str], out: pathlib.Path, timeout_s: float = 240) -> dict[str, Any]:
    """``python <args> --out <out>`` from the repository root; its stdout must carry the
    markdown, its file the JSON report."""
    completed = subprocess.run(
        [sys.executable, *args, "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "| ---" in completed.stdout, completed.stdout
    return dict(json.loads(out.read_text()))
