"""Deterministic synthetic video, and PyAV decoding with PSNR against the source.

The content is smooth and keeps moving (a drifting gradient, travelling waves, a bright disc
on a circular path), so every frame differs from the last and neither encoder gets a free
static scene, while the quality stays in the range a diffusion model's output reaches.
"""

from __future__ import annotations

import io
from typing import Any

import av
import numpy as np
import numpy.typing as npt

Frames = npt.NDArray[np.uint8]


def moving_frames(num_frames: int, height: int, width: int) -> Frames:
    """``(num_frames, height, width, 3)`` uint8 RGB, C-contiguous, the same on every call."""
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    cols = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    # One frame at a time keeps the float temporaries small next to the uint8 result.
    for index in range(num_frames):
        t = index / 30.0
        disc_x = 0.5 + 0.3 * np.cos(2 * np.pi * 0.4 * t)
        disc_y = 0.5 + 0.3 * np.sin(2 * np.pi * 0.4 * t)
        disc = np.exp(-((cols - disc_x) ** 2 + (rows - disc_y) ** 2) / 0.02)
        ripple = np.sin(2 * np.pi * (3 * cols + 2 * rows - 0.7 * t))
        drift = (cols + 0.25 * t) % 1.0
        frames[index, :, :, 0] = np.clip(30 + 170 * drift + 50 * disc, 0, 255)
        frames[index, :, :, 1] = np.clip(70 + 110 * rows + 25 * ripple, 0, 255)
        frames[index, :, :, 2] = np.clip(150 - 90 * cols + 30 * ripple + 60 * disc, 0, 255)
    return frames


def decode_rgb(mp4: bytes) -> Frames:
    """Every picture of the first video stream as RGB, decoded by FFmpeg through PyAV."""
    with av.open(io.BytesIO(mp4), mode="r") as container:
        stream = container.streams.video[0]
        pictures = [picture.to_ndarray(format="rgb24") for picture in container.decode(stream)]
    return np.stack(pictures).astype(np.uint8)


def mean_psnr_db(source: npt.NDArray[Any], decoded: npt.NDArray[Any]) -> float:
    """Mean over frames of the per-frame RGB PSNR (identical frames count as 100 dB)."""
    if source.shape != decoded.shape:
        raise ValueError(f"decoded shape {decoded.shape} differs from source {source.shape}")
    diff = source.astype(np.float64) - decoded.astype(np.float64)
    mse = np.mean(diff**2, axis=tuple(range(1, source.ndim)))
    psnr = np.where(mse > 0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)), 100.0)
    return float(np.mean(psnr))
