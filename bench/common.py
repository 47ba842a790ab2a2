"""What every benchmark report shares: the machine it ran on, and writing it out."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
from collections.abc import Mapping
from typing import Any


def cpu_model() -> str:
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_basics() -> dict[str, object]:
    """When and on what: the date, the CPU, how many cores, and the load when it started."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "python": platform.python_version(),
    }


def epoch(iso: str) -> float:
    """Seconds since the epoch of an ISO 8601 time as the API writes it (`...Z`)."""
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank value at ``fraction`` (0.5: the median) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def tiny_model(directory: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """The tiny random Mochi in ``directory``, built there unless it already is."""
    from t2v.model.tiny import build_tiny_mochi, is_built

    if not is_built(directory, seed=seed):
        build_tiny_mochi(directory, seed=seed)
    return directory


def write_json(report: Mapping[str, Any], out: pathlib.Path | None) -> None:
    """Write the JSON report where `--out` says (whole: a reader never sees half a file)."""
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    partial.replace(out)


def emit(report: Mapping[str, Any], text: str, out: pathlib.Path | None) -> None:
    """Print the markdown and write the JSON report where `--out` says."""
    print(text)
    if out is not None:
        write_json(report, out)
        print(f"\nJSON report: {out}")
