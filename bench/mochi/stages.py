"""The stages of one Mochi generation, each callable on its own so it can be timed.

They do what ``MochiPipeline.__call__`` does for each stage (same tensor shapes, same CFG
batching, the same ``cache_context`` around the transformer call), minus the tokenizer, which
cannot be built without a download: random token ids stand in for the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from bench.mochi.models import MochiModels, latent_shape
from t2v.model.pipeline import frames_to_uint8

MAX_TEXT_TOKENS = 256  # MochiPipeline's max_sequence_length
GUIDANCE_SCALE = 4.5
LATENT_CHANNELS = 12
# The 64-step schedule the FBC run walks a stretch of (sigmas from noise to data).
SCHEDULE_STEPS = 64


@dataclass
class StepInputs:
    latents: torch.Tensor  # (1, 12, latent frames, latent height, latent width)
    prompt_embeds: torch.Tensor  # (2, 256, text width): negative and positive prompt
    attention_mask: torch.Tensor  # (2, 256): the first ``text_tokens`` are real tokens


def token_batch(models: MochiModels, text_tokens: int, device: str) -> dict[str, torch.Tensor]:
    """Negative and positive prompt as the pipeline feeds T5: padded to 256 with a mask."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, models.vocab_size, (2, MAX_TEXT_TOKENS), generator=generator)
    mask = torch.zeros(2, MAX_TEXT_TOKENS, dtype=torch.long)
    mask[:, :text_tokens] = 1
    return {"input_ids": (ids * mask).to(device), "attention_mask": mask.to(device)}


def encode_text(models: MochiModels, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        embeddings: torch.Tensor = models.text_encoder(**batch)[0]
    return embeddings


def step_inputs(
    models: MochiModels,
    *,
    frames: int,
    height: int,
    width: int,
    prompt_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    device: str,
    dtype: torch.dtype,
) -> StepInputs:
    latent_frames, latent_height, latent_width = latent_shape(frames, height, width)
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(
        (1, LATENT_CHANNELS, latent_frames, latent_height, latent_width), generator=generator
    )
    return StepInputs(
        latents=latents.to(device=device, dtype=dtype),
        prompt_embeds=prompt_embeds.to(dtype),
        attention_mask=attention_mask,
    )


def guided_velocity(transformer: Any, inputs: StepInputs, timestep: float) -> torch.Tensor:
    """One transformer call on the CFG batch (negative, positive) and the guidance mix, in
    float32 like the pipeline."""
    batch = torch.cat([inputs.latents, inputs.latents])
    timesteps = torch.full((2,), timestep, device=batch.device, dtype=batch.dtype)
    with torch.inference_mode(), transformer.cache_context("cond_uncond"):
        prediction = transformer(
            hidden_states=batch,
            encoder_hidden_states=inputs.prompt_embeds,
            timestep=timesteps,
            encoder_attention_mask=inputs.attention_mask,
            return_dict=False,
        )[0].float()
    uncond, cond = prediction.chunk(2)
    guided: torch.Tensor = uncond + GUIDANCE_SCALE * (cond - uncond)
    return guided


def denoise(transformer: Any, inputs: StepInputs, *, start: int, steps: int) -> torch.Tensor:
    """``steps`` Euler steps from step ``start`` of a 64-step schedule; returns the latents.
    Step caches (FBC) only pay off across consecutive steps, so they are timed this way."""
    sigmas = torch.linspace(1.0, 0.0, SCHEDULE_STEPS + 1).tolist()
    latents = inputs.latents
    for index in range(start, start + steps):
        # Mochi's transformer takes the reversed timestep (1000 at data, 0 at noise).
        timestep = 1000.0 * (1.0 - sigmas[index])
        current = StepInputs(latents, inputs.prompt_embeds, inputs.attention_mask)
        velocity = guided_velocity(transformer, current, timestep)
        step = (sigmas[index + 1] - sigmas[index]) * velocity
        latents = (latents.float() + step).to(latents.dtype)
    return latents


def decode_latents(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        decoded: torch.Tensor = vae.decode(latents.to(vae.dtype), return_dict=False)[0]
    return decoded


def video_frames(decoded: torch.Tensor) -> npt.NDArray[np.uint8]:
    """VAE output (1, 3, frames, h, w) in [-1, 1] to uint8 (frames, h, w, 3), as the
    pipeline's video processor does."""
    video = (decoded[0].float().clamp(-1.0, 1.0) / 2.0 + 0.5).permute(1, 2, 3, 0)
    return frames_to_uint8(video.cpu().numpy())
