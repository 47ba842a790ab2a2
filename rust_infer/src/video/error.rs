//! Errors of the video module. They become Python exceptions only through the crate's one
//! boundary (`crate::errors`), by way of `From<VideoError> for Error`.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VideoError {
    /// The frames handed to the encoder are not a usable (T, H, W, 3) uint8 video.
    #[error("invalid frames: {0}")]
    InvalidFrames(String),
    /// An encoder setting (fps, crf, bitrate) is out of range.
    #[error("invalid encoder setting: {0}")]
    InvalidSetting(String),
    /// OpenH264 refused or failed; not caused by the caller's data.
    #[error("H.264 encoder failed: {0}")]
    Encoder(String),
    /// Bytes given to the probe are not an MP4 with exactly one H.264/video track.
    #[error("invalid MP4: {0}")]
    InvalidMp4(String),
}

pub type VideoResult<T> = Result<T, VideoError>;

pub(crate) fn invalid_mp4(message: impl Into<String>) -> VideoError {
    VideoError::InvalidMp4(message.into())
}
