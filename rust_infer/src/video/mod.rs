//! MP4 artifacts: RGB frames to a browser-playable, faststart H.264 MP4, a structural
//! probe of MP4 files, and SHA-256 of the bytes. See docs/video.md for the choices.

mod annexb;
mod boxes;
mod encode;
mod error;
mod mux;
mod probe;
mod py;
mod yuv;

#[cfg(test)]
mod tests;

use pyo3::prelude::*;

use encode::{FrameShape, RateControl};
use error::VideoResult;
pub use py::hex_digest;

/// Encodes packed RGB24 frames (T x H x W x 3, row-major) and muxes them into an MP4 whose
/// `moov` precedes `mdat` and whose duration is exactly `T / fps` seconds.
pub fn encode_mp4_bytes(
    rgb: &[u8],
    shape: FrameShape,
    fps: u32,
    rate_control: RateControl,
) -> VideoResult<Vec<u8>> {
    let video = encode::encode_rgb_frames(rgb, shape, fps, rate_control)?;
    mux::mux_faststart(&video, fps)
}

/// Adds `encode_mp4`, `probe_mp4` and `sha256_hex` to the Python module.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    py::register(module)
}
