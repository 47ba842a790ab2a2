"""The web UI's component tests (vitest + Testing Library in jsdom, web/src/**/*.test.tsx),
run from pytest so a failing one fails the suite."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.chromium import REPO_ROOT


def test_web_ui_components() -> None:
    npx = shutil.which("npx")
    if npx is None:
        pytest.fail("npx is missing: apt-get install nodejs npm")
    if not (REPO_ROOT / "node_modules" / "vitest").is_dir():
        pytest.fail("node_modules is missing: scripts/build_web.sh (or npm ci)")
    result = subprocess.run(
        [npx, "--no-install", "vitest", "run", "--config", "web/vite.config.ts"],
        cwd=REPO_ROOT,
        env={**os.environ, "CI": "1", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert " passed" in result.stdout
