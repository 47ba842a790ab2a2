//! Python face of the video module: `encode_mp4`, `probe_mp4`, `sha256_hex`.
//! Inputs are checked and borrowed here, the work runs with the GIL released, and every
//! error (a `VideoError` or a caught panic) becomes a Python exception in `errors::boundary`.

use numpy::{PyArray4, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use sha2::{Digest, Sha256};

use super::encode::{FrameShape, RateControl};
use super::error::{VideoError, VideoResult};
use super::probe::ProbeReport;
use crate::errors::{boundary, Error};

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(encode_mp4, module)?)?;
    module.add_function(wrap_pyfunction!(probe_mp4, module)?)?;
    module.add_function(wrap_pyfunction!(sha256_hex, module)?)?;
    Ok(())
}

/// Encodes uint8 RGB frames of shape (T, H, W, 3) to a faststart H.264 MP4.
#[pyfunction]
#[pyo3(signature = (frames, fps, *, crf = None, bitrate_kbps = None))]
fn encode_mp4<'py>(
    py: Python<'py>,
    frames: &Bound<'py, PyAny>,
    fps: i64,
    crf: Option<i64>,
    bitrate_kbps: Option<i64>,
) -> PyResult<Bound<'py, PyBytes>> {
    boundary(py, || {
        let fps = to_u32("fps", fps)?;
        let crf = crf.map(|value| to_u32("crf", value)).transpose()?;
        let bitrate_kbps = bitrate_kbps
            .map(|value| to_u32("bitrate_kbps", value))
            .transpose()?;
        let rate_control = RateControl::from_options(crf, bitrate_kbps)?;

        let array = checked_frames(py, frames)?;
        let shape = frame_shape(array.shape())?;
        let readonly = array.try_readonly().map_err(|e| {
            VideoError::InvalidFrames(format!("frames are being written elsewhere: {e}"))
        })?;
        // Borrowed straight from numpy's buffer: no copy of the (possibly large) video.
        let rgb = readonly.as_slice().map_err(|_| {
            VideoError::InvalidFrames(
                "frames must be C-contiguous (use numpy.ascontiguousarray)".into(),
            )
        })?;
        let mp4 = py.detach(|| super::encode_mp4_bytes(rgb, shape, fps, rate_control))?;
        Ok(PyBytes::new(py, &mp4))
    })
}

/// Parses an MP4's structure; raises `InvalidMedia` unless it has exactly one video track.
#[pyfunction]
fn probe_mp4<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    boundary(py, || {
        let report = py.detach(|| super::probe::probe_mp4(data))?;
        Ok(report_dict(py, &report)?)
    })
}

/// Lower-case hex SHA-256 of `data`, computed with the GIL released.
#[pyfunction]
fn sha256_hex(py: Python<'_>, data: &[u8]) -> PyResult<String> {
    boundary(py, || Ok(py.detach(|| hex_digest(data))))
}

/// Lower-case hex SHA-256 of `data`.
pub fn hex_digest(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Anything but an ndarray is a wrong argument type (`TypeError`, like every other entry
/// point); an ndarray of the wrong dtype or shape is unusable media (`InvalidMedia`).
fn checked_frames<'a, 'py>(
    py: Python<'py>,
    frames: &'a Bound<'py, PyAny>,
) -> Result<&'a Bound<'py, PyArray4<u8>>, Error> {
    let Ok(untyped) = frames.cast::<PyUntypedArray>() else {
        let type_name = frames.get_type().name()?;
        return Err(Error::WrongArgumentType(format!(
            "frames must be a numpy.ndarray, got {type_name}"
        )));
    };
    let dtype = untyped.dtype();
    if !dtype.is_equiv_to(&numpy::dtype::<u8>(py)) {
        return Err(VideoError::InvalidFrames(format!(
            "frames must have dtype uint8, got {dtype}"
        ))
        .into());
    }
    frame_shape(untyped.shape())?;
    Ok(frames
        .cast::<PyArray4<u8>>()
        .map_err(|e| VideoError::InvalidFrames(e.to_string()))?)
}

fn frame_shape(shape: &[usize]) -> VideoResult<FrameShape> {
    match *shape {
        [frames, height, width, 3] => Ok(FrameShape {
            frames,
            height,
            width,
        }),
        _ => Err(VideoError::InvalidFrames(format!(
            "frames must have shape (T, H, W, 3), got {shape:?}"
        ))),
    }
}

fn to_u32(name: &str, value: i64) -> VideoResult<u32> {
    u32::try_from(value).map_err(|_| {
        VideoError::InvalidSetting(format!(
            "{name} must be a small non-negative integer, got {value}"
        ))
    })
}

fn report_dict<'py>(py: Python<'py>, report: &ProbeReport) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("codec", &report.codec)?;
    dict.set_item("width", report.width)?;
    dict.set_item("height", report.height)?;
    dict.set_item("num_frames", report.num_frames)?;
    dict.set_item("fps", report.fps)?;
    dict.set_item("duration_s", report.duration_s)?;
    dict.set_item("faststart", report.faststart)?;
    dict.set_item("bytes", report.bytes)?;
    Ok(dict)
}
