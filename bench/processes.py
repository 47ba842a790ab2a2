"""What the processes of a run hold: resident memory and open descriptors of each, by pid.

Every server a benchmark starts (redis-server, the S3 test server, the platform's whole
process tree) is a descendant of the benchmark's own process, so one walk finds them all.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from typing import Any

import psutil

MIB = 1024 * 1024


def _name(process: psutil.Process, labels: Mapping[int, str]) -> str:
    """A short name: ``labels``' name for the process (or ``<its parent's> worker``; gunicorn
    retitles its processes, and its title overwrites the environment too), else the program
    and its first arguments."""
    if process.pid in labels:
        return labels[process.pid]
    if process.ppid() in labels:
        return f"{labels[process.ppid()]} worker"
    command = process.cmdline()
    words = [pathlib.Path(command[0]).name, *command[1:3]] if command else [process.name()]
    return " ".join(words).strip()


def snapshot(labels: Mapping[int, str] | None = None) -> dict[int, dict[str, Any]]:
    """RSS (MiB) and open descriptors of every live descendant of this process."""
    found: dict[int, dict[str, Any]] = {}
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            with process.oneshot():
                found[process.pid] = {
                    "name": _name(process, labels or {}),
                    "rss_mib": round(process.memory_info().rss / MIB, 1),
                    "fds": process.num_fds(),
                }
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue  # it ended while we looked
    return found


def compare(
    start: dict[int, dict[str, Any]], end: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per process seen at start or end; a process only at one end has None at the
    other (a restarted worker shows as one gone, one new)."""
    rows = []
    for pid in sorted(start.keys() | end.keys()):
        first, last = start.get(pid), end.get(pid)
        rows.append(
            {
                "pid": pid,
                "name": (first or last or {}).get("name"),
                "rss_mib_start": first and first["rss_mib"],
                "rss_mib_end": last and last["rss_mib"],
                "fds_start": first and first["fds"],
                "fds_end": last and last["fds"],
            }
        )
    return rows


def files_under(directory: pathlib.Path) -> list[str]:
    """Every file left under ``directory``, relative to it."""
    return sorted(
        str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()
    )
