"""Run a playwright-core script (Node) that drives Debian's Chromium against a page."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("T2V_CHROMIUM", "/usr/bin/chromium"))


def run_page_script(
    script: Path, url: str, home: Path, *, timeout_s: float = 240
) -> subprocess.CompletedProcess[str]:
    """`node script url` with Chromium's path in T2V_CHROMIUM. A missing tool fails the
    test: a browser test that silently skips checks nothing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: apt-get install nodejs npm")
    if not (REPO_ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.fail("node_modules is missing: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci")
    env = {**os.environ, "T2V_CHROMIUM": str(CHROMIUM), "HOME": str(home)}
    return subprocess.run(
        [node, str(script), url],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
