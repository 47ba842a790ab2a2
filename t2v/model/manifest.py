"""The ``t2v_model.json`` manifest beside a saved pipeline, and config digests.

The manifest names the model, pins its revision (part of the content-addressed artifact key,
so the same request on the same revision yields the same video) and says which request
profile fits it: ``tiny`` (the random CPU model) or ``mochi-1`` (the real weights).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from dataclasses import asdict, dataclass

MANIFEST_FILE = "t2v_model.json"
PROFILE_TINY = "tiny"
PROFILE_MOCHI = "mochi-1"


@dataclass(frozen=True)
class ModelManifest:
    name: str
    revision: str
    profile: str
    seed: int | None = None


def read_manifest(model_dir: pathlib.Path) -> ModelManifest | None:
    """The manifest in ``model_dir``, or None when there is none or it is unreadable."""
    try:
        raw = json.loads((model_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    name, revision, profile = raw.get("name"), raw.get("revision"), raw.get("profile")
    if not (isinstance(name, str) and isinstance(revision, str) and isinstance(profile, str)):
        return None
    seed = raw.get("seed")
    return ModelManifest(
        name=name,
        revision=revision,
        profile=profile,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
    )


def write_manifest(model_dir: pathlib.Path, manifest: ModelManifest) -> None:
    text = json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n"
    (model_dir / MANIFEST_FILE).write_text(text, encoding="utf-8")


def config_digest(model_dir: pathlib.Path, salt: str = "") -> str:
    """sha256 over every JSON config in a saved pipeline (names and bytes), plus ``salt``.

    Weights are left out on purpose: hashing gigabytes at every start-up is too slow, and for
    the tiny model the weights follow from the configs and the seed, which goes in ``salt``.
    """
    digest = hashlib.sha256()
    for path in sorted(model_dir.rglob("*.json")):
        if path.name == MANIFEST_FILE or not path.is_file():
            continue
        digest.update(path.relative_to(model_dir).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(salt.encode("utf-8"))
    return digest.hexdigest()
