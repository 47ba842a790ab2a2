"""A function's process freezes its start-up objects out of the cyclic GC once."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

PROGRAM = """
import asyncio, gc, json
from t2v.runtime import lazy_runtime

async def main():
    before = gc.get_freeze_count()
    await lazy_runtime("/t2v/test").get()
    first = gc.get_freeze_count()
    alive = [[] for _ in range(1000)]  # would show in the count if frozen again
    await lazy_runtime("/t2v/test-again").get()
    print(json.dumps({"before": before, "first": first, "again": gc.get_freeze_count()}))
    del alive

asyncio.run(main())
"""


def _run(program: str, data_dir: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", program],
        cwd=REPO_ROOT,
        env={"T2V_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


def test_the_first_runtime_freezes_what_is_alive_and_later_ones_freeze_nothing(
    tmp_path: pathlib.Path,
) -> None:
    completed = _run(PROGRAM, tmp_path)
    counts = json.loads(completed.stdout.strip().splitlines()[-1])
    assert counts["before"] == 0
    assert counts["first"] > 10_000  # modules, schemas, metrics: the bulk of the process
    # Nothing new was frozen (frozen objects freed by reference counting leave the count).
    assert counts["again"] <= counts["first"]


def test_frozen_objects_are_finalised_at_exit_so_extensions_report_no_leaks(
    tmp_path: pathlib.Path,
) -> None:
    """infer's process holds torch and triton; triton's nanobind types list every instance
    still alive at exit as a leak, which frozen objects would be."""
    program = (
        "import asyncio, torch, triton._C.libtriton\n"
        "from t2v.runtime import lazy_runtime\n"
        "asyncio.run(lazy_runtime('/t2v/test').get())\n"
    )
    completed = _run(program, tmp_path)
    assert "leaked" not in completed.stderr, completed.stderr[-2000:]
