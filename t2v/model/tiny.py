"""Build the tiny random Mochi: the real pipeline classes at toy sizes, saved to a directory.

The result loads with ``MochiPipeline.from_pretrained`` exactly like ``genmo/mochi-1-preview``
and keeps the real model's geometry (6x temporal and 8x spatial VAE compression, 12 latent
channels, patch size 2), so every code path around it is the production one. It makes noise,
quickly, on a CPU. The same seed always gives the same weights and the same revision.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile
from typing import Any

from t2v.model import _stack
from t2v.model.manifest import (
    PROFILE_TINY,
    ModelManifest,
    config_digest,
    read_manifest,
    write_manifest,
)
from t2v.model.vocab import build_tokenizer

TINY_MODEL_NAME = "tiny-mochi"
DEFAULT_OUT_DIR = pathlib.Path(".t2v/models/tiny-mochi")

TEXT_EMBED_DIM = 32
TEXT_SEQUENCE_LENGTH = 256  # the pipeline's default max_sequence_length

# GroupNorm in the Mochi VAE uses 32 groups, so 32 channels is the smallest width it accepts.
VAE_CHANNELS = (32, 32, 32, 32)
VAE_LAYERS_PER_BLOCK = (1, 1, 1, 1, 1)


def _build_text_encoder(vocab_size: int) -> Any:
    transformers = _stack.transformers()
    config = transformers.T5Config(
        vocab_size=vocab_size,
        d_model=TEXT_EMBED_DIM,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
    )
    return transformers.T5EncoderModel(config).eval()


def _build_transformer() -> Any:
    import torch

    transformer = _stack.diffusers().MochiTransformer3DModel(
        patch_size=2,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=2,
        pooled_projection_dim=16,
        in_channels=12,
        qk_norm="rms_norm",
        text_embed_dim=TEXT_EMBED_DIM,
        time_embed_dim=16,
        activation_fn="swiglu",
        max_sequence_length=TEXT_SEQUENCE_LENGTH,
    )
    # The RoPE frequencies start at zero (no positional signal); give them random values
    # like every other weight so frames and positions actually differ.
    with torch.no_grad():
        transformer.pos_frequencies.normal_(0.0, 1.0)
    return transformer.eval()


def _build_vae() -> Any:
    vae = _stack.diffusers().AutoencoderKLMochi(
        in_channels=15,
        out_channels=3,
        encoder_block_out_channels=VAE_CHANNELS,
        decoder_block_out_channels=VAE_CHANNELS,
        latent_channels=12,
        layers_per_block=VAE_LAYERS_PER_BLOCK,
        temporal_expansions=(1, 2, 3),
        spatial_expansions=(2, 2, 2),
        add_attention_block=(False, False, False, False, False),
    )
    return vae.eval()


def _build_pipeline(seed: int) -> Any:
    import torch

    diffusers = _stack.diffusers()
    # Seed a private RNG stream so building never disturbs the caller's global RNG state.
    tokenizer = build_tokenizer(TEXT_SEQUENCE_LENGTH)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = _build_text_encoder(len(tokenizer))
        transformer = _build_transformer()
        vae = _build_vae()
    # Mochi runs its flow-matching sigmas from noise to data in reverse order.
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(invert_sigmas=True)
    return diffusers.MochiPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )


def build_tiny_mochi(out_dir: pathlib.Path, *, seed: int = 0) -> pathlib.Path:
    """Build the tiny model for ``seed`` into ``out_dir`` (replacing it) and return ``out_dir``.

    The pipeline is saved to a scratch directory beside ``out_dir`` and renamed into place, so
    a crash never leaves a half-written model behind that looks complete.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    scratch.chmod(0o755)  # mkdtemp makes it private; the model dir is shared like any other
    try:
        _build_pipeline(seed).save_pretrained(scratch, safe_serialization=True)
        revision = config_digest(scratch, salt=f"seed={seed}")
        manifest = ModelManifest(
            name=TINY_MODEL_NAME, revision=revision, profile=PROFILE_TINY, seed=seed
        )
        write_manifest(scratch, manifest)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        scratch.rename(out_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out_dir


def is_built(out_dir: pathlib.Path, *, seed: int) -> bool:
    """Whether ``out_dir`` already holds the tiny model built with ``seed``."""
    manifest = read_manifest(pathlib.Path(out_dir))
    return (
        manifest is not None
        and manifest.name == TINY_MODEL_NAME
        and manifest.seed == seed
        and (pathlib.Path(out_dir) / "model_index.json").is_file()
    )


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="t2v-build-tiny-model",
        description="Build the tiny random Mochi pipeline used for local runs and tests.",
    )
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT_DIR, help="target dir")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even if already built")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    out_dir: pathlib.Path = args.out
    if not args.force and is_built(out_dir, seed=args.seed):
        print(f"tiny model already built in {out_dir} (seed {args.seed})")
        return 0
    build_tiny_mochi(out_dir, seed=args.seed)
    manifest = read_manifest(out_dir)
    revision = manifest.revision if manifest is not None else "?"
    print(f"built tiny model in {out_dir} (seed {args.seed}, revision {revision})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
