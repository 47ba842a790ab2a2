"""The suite's warnings policy (pyproject.toml): what a test server thread raises, or an
unclosed socket, fails the test, instead of passing as a warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBES = """
import socket
import threading


def test_a_server_thread_that_raises() -> None:
    thread = threading.Thread(target=lambda: 1 / 0)
    thread.start()
    thread.join()


def test_an_unclosed_socket() -> None:
    socket.socket()
    import gc

    gc.collect()


def test_a_clean_thread() -> None:
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
"""


def run_probe(tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBES)
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-c", str(REPO_ROOT / "pyproject.toml"), "--rootdir", str(tmp_path)),
            f"{probe}::{name}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("test_a_server_thread_that_raises", "ZeroDivisionError"),
        ("test_an_unclosed_socket", "ResourceWarning"),
    ],
)
def test_a_probe_that_leaks_an_error_fails(tmp_path: Path, name: str, what: str) -> None:
    result = run_probe(tmp_path, name)
    assert result.returncode == 1, result.stdout
    assert what in result.stdout and "1 failed" in result.stdout


def test_a_clean_probe_passes(tmp_path: Path) -> None:
    result = run_probe(tmp_path, "test_a_clean_thread")
    assert result.returncode == 0, result.stdout
