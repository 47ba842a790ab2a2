"""MP4 artifacts as Python sees them: rust_infer.encode_mp4, probe_mp4 and sha256_hex.

Every produced file is decoded with PyAV (FFmpeg) and compared with the source frames.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import re
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rust_infer import InvalidMedia, RustInferError, encode_mp4, probe_mp4, sha256_hex

Frames = npt.NDArray[np.uint8]
MIN_PSNR_DB = 35.0


def smooth_video(num_frames: int, height: int, width: int) -> Frames:
    """Gradients, travelling waves and a soft moving blob, scaled to the frame size."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / width, y / height
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        phase = t / 30
        cx, cy = 0.2 + 0.6 * ((phase * 0.5) % 1), 0.5 + 0.25 * np.sin(2 * np.pi * phase)
        blob = np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * 0.12**2))
        wave = np.sin(2 * np.pi * (2 * u + phase))
        frames[t, ..., 0] = np.clip(40 + 150 * u + 60 * blob, 0, 255)
        frames[t, ..., 1] = np.clip(60 + 120 * v + 20 * wave, 0, 255)
        frames[t, ..., 2] = np.clip(
            128 + 80 * np.cos(2 * np.pi * (u - v + phase)) - 70 * blob, 0, 255
        )
    return frames


def grey_noise(num_frames: int, height: int, width: int, seed: int = 0) -> Frames:
    """Uniform noise in brightness only: the hardest content 4:2:0 chroma does not destroy."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 256, (num_frames, height, width, 1), dtype=np.uint8)
    return np.repeat(grey, 3, axis=3)


@dataclass(frozen=True)
class Decoded:
    frames: Frames
    luma: Frames
    width: int
    height: int
    fps: Fraction
    duration_s: float
    codec: str


def decode(mp4: bytes) -> Decoded:
    with av.open(io.BytesIO(mp4), mode="r") as container:
        stream = container.streams.video[0]
        pictures = list(container.decode(stream))
        frames = np.stack([p.to_ndarray(format="rgb24") for p in pictures]).astype(np.uint8)
        # A yuv420p ndarray is the Y plane with the U and V planes stacked below it.
        planes = [p.to_ndarray(format="yuv420p")[: p.height] for p in pictures]
        luma = np.stack(planes).astype(np.uint8)
        assert stream.average_rate is not None and stream.duration is not None
        assert stream.time_base is not None
        return Decoded(
            frames=frames,
            luma=luma,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=Fraction(stream.average_rate),
            duration_s=float(stream.duration * stream.time_base),
            codec=stream.codec_context.name,
        )


def mean_psnr(source: npt.NDArray[Any], decoded: npt.NDArray[Any]) -> float:
    diff = source.astype(np.float64) - decoded.astype(np.float64)
    mse = np.maximum(np.mean(diff**2, axis=tuple(range(1, source.ndim))), 1e-10)
    return float(np.mean(10 * np.log10(255.0**2 / mse)))


def bt601_luma(frames: Frames) -> Frames:
    """Limited-range BT.601 Y of RGB frames, the luma the encoder is meant to carry."""
    weights = np.array([0.299, 0.587, 0.114]) * 219 / 255
    return np.rint(16 + frames.astype(np.float64) @ weights).astype(np.uint8)


def top_level_boxes(mp4: bytes) -> Iterator[tuple[bytes, int]]:
    """(type, offset) of each top-level box, read independently of the Rust probe."""
    offset = 0
    while offset + 8 <= len(mp4):
        size, kind = struct.unpack(">I4s", mp4[offset : offset + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", mp4[offset + 8 : offset + 16])
        yield kind, offset
        offset += size if size else len(mp4) - offset


@dataclass(frozen=True)
class Quality:
    rgb_psnr: float
    luma_psnr: float


def check_round_trip(source: Frames, fps: int, mp4: bytes) -> Quality:
    """The file decodes to the source's frame count, size and timing; returns its PSNRs.

    RGB PSNR includes what 4:2:0 chroma subsampling loses, which depends on the content's
    colour detail per pixel (large at 16x16); luma PSNR measures the encoder alone.
    """
    num_frames, height, width, _ = source.shape
    decoded = decode(mp4)
    assert decoded.codec == "h264"
    assert decoded.frames.shape == source.shape
    assert (decoded.width, decoded.height) == (width, height)
    assert decoded.fps == fps
    assert decoded.duration_s == pytest.approx(num_frames / fps, abs=1e-9)
    report = probe_mp4(mp4)
    assert report == {
        "codec": "avc1",
        "width": width,
        "height": height,
        "num_frames": num_frames,
        "fps": float(fps),
        "duration_s": pytest.approx(num_frames / fps, abs=1e-12),
        "faststart": True,
        "bytes": len(mp4),
    }
    return Quality(mean_psnr(source, decoded.frames), mean_psnr(bt601_luma(source), decoded.luma))


def test_smooth_video_round_trips_above_35_db() -> None:
    source = smooth_video(31, 96, 160)
    quality = check_round_trip(source, 30, encode_mp4(source, 30))
    assert quality.rgb_psnr >= MIN_PSNR_DB
    assert quality.luma_psnr >= MIN_PSNR_DB


def test_grey_noise_round_trips_above_35_db() -> None:
    source = grey_noise(9, 64, 96)
    quality = check_round_trip(source, 24, encode_mp4(source, 24))
    assert quality.rgb_psnr >= MIN_PSNR_DB


def test_colour_noise_loses_only_what_chroma_subsampling_loses() -> None:
    # Independent random R, G, B per pixel cannot survive 4:2:0 (about 13 dB even without
    # compression): the encoder must do no worse than FFmpeg's own 4:2:0 round trip.
    source = np.random.default_rng(1).integers(0, 256, (5, 64, 96, 3), dtype=np.uint8)
    quality = check_round_trip(source, 30, encode_mp4(source, 30))
    subsampled = np.stack(
        [
            av.VideoFrame.from_ndarray(frame, format="rgb24")
            .reformat(format="yuv420p")
            .to_ndarray(format="rgb24")
            for frame in source
        ]
    )
    assert quality.rgb_psnr >= mean_psnr(source, subsampled) - 1.0
    assert quality.luma_psnr >= MIN_PSNR_DB


def test_low_qp_noise_is_still_encoded() -> None:
    # At QP 12 noise overflows OpenH264's frame buffer; the encoder retries coarser.
    source = np.random.default_rng(2).integers(0, 256, (3, 96, 160, 3), dtype=np.uint8)
    check_round_trip(source, 30, encode_mp4(source, 30, crf=12))


@pytest.mark.parametrize(
    ("num_frames", "height", "width", "fps"),
    [(1, 16, 16, 30), (3, 16, 16, 1), (5, 48, 80, 24), (163, 32, 48, 30), (7, 80, 48, 7)],
)
def test_sizes_and_frame_counts(num_frames: int, height: int, width: int, fps: int) -> None:
    source = smooth_video(num_frames, height, width)
    quality = check_round_trip(source, fps, encode_mp4(source, fps))
    assert quality.luma_psnr >= MIN_PSNR_DB


def test_moov_comes_before_mdat() -> None:
    mp4 = encode_mp4(smooth_video(4, 32, 32), 30)
    boxes = dict(top_level_boxes(mp4))
    assert list(boxes) == [b"ftyp", b"moov", b"mdat"]
    assert boxes[b"moov"] < boxes[b"mdat"]


@pytest.mark.parametrize("options", [{"crf": 12}, {"crf": 30}, {"crf": 51}, {"bitrate_kbps": 800}])
def test_rate_control_options_produce_valid_files(options: dict[str, int]) -> None:
    source = smooth_video(12, 64, 64)
    quality = check_round_trip(source, 30, encode_mp4(source, 30, **options))
    assert quality.luma_psnr > 25


def test_lower_crf_means_higher_quality_and_more_bytes() -> None:
    source = smooth_video(12, 64, 96)
    fine, coarse = encode_mp4(source, 30, crf=16), encode_mp4(source, 30, crf=36)
    assert len(fine) > len(coarse)
    assert mean_psnr(source, decode(fine).frames) > mean_psnr(source, decode(coarse).frames)


def test_same_frames_give_the_same_bytes() -> None:
    source = smooth_video(6, 48, 64)
    assert encode_mp4(source, 30) == encode_mp4(source.copy(), 30)


def test_sha256_hex_matches_hashlib() -> None:
    mp4 = encode_mp4(smooth_video(2, 16, 16), 30)
    for data in (b"", b"abc", mp4):
        assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_encoding_releases_the_gil() -> None:
    # With a long switch interval the waiting thread can only run while the caller releases
    # the GIL on its own; it records whether that happened inside encode_mp4.
    source = smooth_video(30, 128, 128)
    inside_call = [False]
    seen_inside: list[bool] = []
    gate = threading.Lock()
    gate.acquire()

    def record() -> None:
        with gate:
            seen_inside.append(inside_call[0])

    previous = sys.getswitchinterval()
    sys.setswitchinterval(60.0)
    try:
        worker = threading.Thread(target=record)
        worker.start()
        inside_call[0] = True
        gate.release()
        encode_mp4(source, 30)
        inside_call[0] = False
        worker.join()
    finally:
        sys.setswitchinterval(previous)
    assert seen_inside == [True]


def valid_frames() -> Frames:
    return smooth_video(1, 16, 16)


@pytest.mark.parametrize(
    ("make_frames", "words"),
    [
        (lambda f: f.astype(np.float32), "dtype uint8"),
        (lambda f: f.astype(np.int16), "dtype uint8"),
        (lambda f: f[..., 0], "shape (T, H, W, 3)"),
        (lambda f: np.concatenate([f, f[..., :1]], axis=3), "shape (T, H, W, 3)"),
        (lambda f: np.zeros((1, 16, 17, 3), np.uint8), "even"),
        (lambda f: np.zeros((1, 15, 16, 3), np.uint8), "even"),
        (lambda f: np.zeros((1, 8, 16, 3), np.uint8), "outside 16"),
        (lambda f: np.zeros((0, 16, 16, 3), np.uint8), "at least one frame"),
    ],
)
def test_bad_frames_are_invalid_media(make_frames: Callable[[Frames], object], words: str) -> None:
    bad_frames: Any = make_frames(valid_frames())
    with pytest.raises(InvalidMedia, match=re.escape(words)) as caught:
        encode_mp4(bad_frames, 30)
    assert (caught.value.code, caught.value.retryable) == ("invalid_frames", False)
    assert isinstance(caught.value, ValueError)


def test_frames_that_are_not_an_array_are_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"numpy\.ndarray") as caught:
        encode_mp4(valid_frames().tolist(), 30)
    assert not isinstance(caught.value, RustInferError)


def test_non_contiguous_view_is_rejected_without_copying() -> None:
    wide = smooth_video(2, 16, 32)
    view = wide[:, :, :16]
    assert not view.flags.c_contiguous
    with pytest.raises(InvalidMedia, match="C-contiguous") as caught:
        encode_mp4(view, 30)
    assert caught.value.code == "invalid_frames"


@pytest.mark.parametrize(
    ("fps", "options"),
    [
        (0, {}),
        (-1, {}),
        (241, {}),
        (30, {"crf": 11}),
        (30, {"crf": 52}),
        (30, {"crf": -1}),
        (30, {"bitrate_kbps": 0}),
        (30, {"crf": 20, "bitrate_kbps": 500}),
    ],
)
def test_bad_settings_are_rejected(fps: int, options: dict[str, int]) -> None:
    with pytest.raises(InvalidMedia) as caught:
        encode_mp4(valid_frames(), fps, **options)
    assert caught.value.code == "invalid_encoder_setting"


def test_probe_rejects_non_mp4_data() -> None:
    mp4 = encode_mp4(valid_frames(), 30)
    for data in (b"", b"not an mp4 at all", mp4[: len(mp4) // 2], mp4[8:], b"\x00" * 64):
        with pytest.raises(InvalidMedia) as caught:
            probe_mp4(data)
        assert caught.value.code == "invalid_mp4"
        # infer's publish step catches ValueError from the probe.
        assert isinstance(caught.value, ValueError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_probe_of_arbitrary_bytes_returns_or_raises_invalid_media(data: bytes) -> None:
    try:
        report = probe_mp4(data)
    except InvalidMedia as error:
        assert error.code == "invalid_mp4"
        return
    assert report["bytes"] == len(data)


@functools.cache
def probe_seed() -> bytes:
    return encode_mp4(smooth_video(3, 16, 32), 30)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8))
def test_probe_of_damaged_files_returns_or_raises_invalid_media(
    edits: list[tuple[int, int]],
) -> None:
    damaged = bytearray(probe_seed())
    for position, value in edits:
        damaged[position % len(damaged)] = value
    with contextlib.suppress(InvalidMedia):
        probe_mp4(bytes(damaged))
