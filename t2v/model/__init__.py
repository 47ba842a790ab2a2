"""The text-to-video model: loading a Mochi pipeline, running it, building the tiny one.

Importing this package does not import torch or diffusers; they load on first use.
"""

from t2v.model.manifest import PROFILE_MOCHI, PROFILE_TINY, ModelManifest, read_manifest
from t2v.model.pipeline import LoadedModel, generate, load_model
from t2v.model.tiny import build_tiny_mochi

__all__ = [
    "PROFILE_MOCHI",
    "PROFILE_TINY",
    "LoadedModel",
    "ModelManifest",
    "build_tiny_mochi",
    "generate",
    "load_model",
    "read_manifest",
]
