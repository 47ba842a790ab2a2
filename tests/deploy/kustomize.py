"""Build a kustomization with the real kustomize: `kubectl kustomize` (kustomize v5 is built
into kubectl), else a standalone `kustomize build`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]


class KustomizeUnavailableError(RuntimeError):
    """Neither kubectl nor kustomize is on PATH."""


def kustomize_command(directory: Path) -> list[str]:
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize", str(directory)]
    kustomize = shutil.which("kustomize")
    if kustomize is not None:
        return [kustomize, "build", str(directory)]
    raise KustomizeUnavailableError(
        "kubectl or kustomize is needed to build the overlays "
        "(go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0)"
    )


def build(directory: Path) -> list[Manifest]:
    """The objects ``directory``'s kustomization renders, in kustomize's order."""
    result = subprocess.run(
        kustomize_command(directory), capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kustomize build {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
