from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.kustomize import Manifest, build

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod")


@pytest.fixture(scope="session")
def built_overlays() -> dict[str, list[Manifest]]:
    """Each overlay, built once per session (tests deep-copy before changing anything)."""
    return {name: build(REPO / "knative" / "overlays" / name) for name in OVERLAYS}
