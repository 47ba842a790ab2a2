//! Errors of the video module. They become Python exceptions only in `py.rs`.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VideoError {
    /// The frames handed to the encoder are not a usable (T, H, W, 3) uint8 video.
    #[error("invalid frames: {0}")]
    InvalidFrames(String),
    /// The frames are not a uint8 numpy array at all (Python sees a TypeError).
    #[error("invalid frames: {0}")]
    FramesType(String),
    /// An encoder setting (fps, crf, bitrate) is out of range.
    #[error("invalid encoder setting: {0}")]
    InvalidSetting(String),
    /// OpenH264 refused or failed; not caused by the caller's data.
    #[error("H.264 encoder failed: {0}")]
    Encoder(String),
    /// Bytes given to the probe are not an MP4 with exactly one H.264/video track.
    #[error("invalid MP4: {0}")]
    InvalidMp4(String),
    /// A bug on our side (a caught panic); never the caller's fault.
    #[error("internal error in video module: {0}")]
    Internal(String),
}

impl VideoError {
    /// Stable machine-readable code, matching the job contract's error codes.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidFrames(_) | Self::FramesType(_) => "invalid_frames",
            Self::InvalidSetting(_) => "invalid_encoder_setting",
            Self::Encoder(_) => "encoder_failed",
            Self::InvalidMp4(_) => "invalid_mp4",
            Self::Internal(_) => "internal",
        }
    }
}

pub type VideoResult<T> = Result<T, VideoError>;

pub(crate) fn invalid_mp4(message: impl Into<String>) -> VideoError {
    VideoError::InvalidMp4(message.into())
}
