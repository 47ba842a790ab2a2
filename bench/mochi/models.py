"""Mochi-1 built from its configs with random weights: full size, or tiny for CPU runs.

Nothing is downloaded: the transformer and the VAE are diffusers' defaults (which are
Mochi-1's published configs) and the text encoder is T5 v1.1 XXL's encoder config written
out here. Weights are whatever the constructors initialise; the timings do not depend on them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from t2v.model import _stack

# google/t5-v1_1-xxl, encoder half (what Mochi-1 conditions on).
T5_XXL = {
    "vocab_size": 32128,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "layer_norm_epsilon": 1e-6,
}
T5_TINY = {
    "vocab_size": 512,
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 64,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 32,
    "feed_forward_proj": "gated-gelu",
}
TRANSFORMER_TINY = {
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "num_layers": 3,
    "pooled_projection_dim": 16,
    "text_embed_dim": 32,
    "time_embed_dim": 16,
}
# GroupNorm in the Mochi VAE needs at least 32 channels.
VAE_TINY = {
    "encoder_block_out_channels": (32, 32, 32, 32),
    "decoder_block_out_channels": (32, 32, 32, 32),
    "layers_per_block": (1, 1, 1, 1, 1),
    "add_attention_block": (False, False, True, False, False),
}
# Mochi's VAE: 8x spatial and 6x temporal compression; the transformer patches 2x2.
SPATIAL_COMPRESSION = 8
TEMPORAL_COMPRESSION = 6


@dataclass
class MochiModels:
    text_encoder: Any
    transformer: Any
    vae: Any

    @property
    def text_embed_dim(self) -> int:
        return int(self.text_encoder.config.d_model)

    @property
    def vocab_size(self) -> int:
        return int(self.text_encoder.config.vocab_size)


@contextlib.contextmanager
def _default_placement(device: str, dtype: torch.dtype) -> Iterator[None]:
    """Create parameters directly on ``device`` in ``dtype``: building 15 billion float32
    parameters on the host first would take minutes and 60 GB of RAM."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def build_models(*, tiny: bool, device: str, dtype: torch.dtype, seed: int = 0) -> MochiModels:
    diffusers = _stack.diffusers()
    transformers = _stack.transformers()
    torch.manual_seed(seed)
    with _default_placement(device, dtype):
        t5_config = transformers.T5Config(
            **(T5_TINY if tiny else T5_XXL), is_encoder_decoder=False, use_cache=False
        )
        text_encoder = transformers.T5EncoderModel(t5_config)
        transformer = diffusers.MochiTransformer3DModel(**(TRANSFORMER_TINY if tiny else {}))
        vae = diffusers.AutoencoderKLMochi(**(VAE_TINY if tiny else {}))
        # RoPE frequencies start at zero; random ones make positions differ like trained ones.
        with torch.no_grad():
            transformer.pos_frequencies.normal_(0.0, 1.0)
    for module in (text_encoder, transformer, vae):
        module.eval().requires_grad_(False)
    return MochiModels(text_encoder=text_encoder, transformer=transformer, vae=vae)


def latent_shape(frames: int, height: int, width: int) -> tuple[int, int, int]:
    """(latent frames, latent height, latent width) for a video of this size."""
    if (frames - 1) % TEMPORAL_COMPRESSION or height % 16 or width % 16:
        raise ValueError(f"need 6k+1 frames and multiples of 16: {frames} {height}x{width}")
    return (
        (frames - 1) // TEMPORAL_COMPRESSION + 1,
        height // SPATIAL_COMPRESSION,
        width // SPATIAL_COMPRESSION,
    )


def visual_tokens(transformer_config: Any, frames: int, height: int, width: int) -> int:
    latent_frames, latent_height, latent_width = latent_shape(frames, height, width)
    patch = int(transformer_config.patch_size)
    return latent_frames * (latent_height // patch) * (latent_width // patch)


def step_flops(
    transformer_config: Any, *, visual: int, text: int, text_embed_dim: int, cfg: bool = True
) -> float:
    """Analytic FLOPs of one denoising step (see the formula in bench/gpu_mochi.py)."""
    cfg_batch = 2 if cfg else 1
    width = int(transformer_config.num_attention_heads) * int(transformer_config.attention_head_dim)
    text_width = int(transformer_config.pooled_projection_dim)
    layers = int(transformer_config.num_layers)
    patch_values = int(transformer_config.patch_size) ** 2 * int(transformer_config.in_channels)
    ff_inner = (4 * width * 2) // 3
    text_ff_inner = (4 * text_width * 2) // 3
    sequence = visual + text

    visual_linear = 2 * visual * (4 * width * width + 3 * width * ff_inner)
    text_qkv = 2 * text * 3 * text_width * width
    # The last block is context_pre_only: no text output projection and no text MLP.
    text_out_and_mlp = 2 * text * (width * text_width + 3 * text_width * text_ff_inner)
    attention = 4 * sequence * sequence * width
    per_layer = visual_linear + text_qkv + attention
    blocks = layers * per_layer + (layers - 1) * text_out_and_mlp
    embeddings = 2 * visual * patch_values * width * 2 + 2 * text * text_embed_dim * text_width
    return float(cfg_batch * (blocks + embeddings))
