//! Errors of the video module, and their one conversion into the crate's error type: they
//! become Python exceptions only through the crate's one boundary (`crate::errors`). The
//! conversion lives here, beside the type it converts, so that `errors` knows nothing of
//! `video` and the dependency runs one way.

use thiserror::Error;

use crate::errors::{Error as CrateError, MediaCode};

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

impl From<VideoError> for CrateError {
    fn from(error: VideoError) -> Self {
        let message = error.to_string();
        let media = |code| Self::InvalidMedia { code, message };
        match error {
            VideoError::InvalidFrames(_) => media(MediaCode::InvalidFrames),
            VideoError::InvalidSetting(_) => media(MediaCode::InvalidEncoderSetting),
            VideoError::InvalidMp4(_) => media(MediaCode::InvalidMp4),
            VideoError::Encoder(_) => Self::EncoderFailed(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_errors_keep_their_codes() {
        let cases = [
            (
                VideoError::InvalidFrames("f".into()),
                Some("invalid_frames"),
            ),
            (
                VideoError::InvalidSetting("s".into()),
                Some("invalid_encoder_setting"),
            ),
            (VideoError::InvalidMp4("m".into()), Some("invalid_mp4")),
            (VideoError::Encoder("e".into()), None),
        ];
        for (video, media_code) in cases {
            let text = video.to_string();
            match (CrateError::from(video), media_code) {
                (CrateError::InvalidMedia { code, message }, Some(expected)) => {
                    assert_eq!(code.as_str(), expected);
                    assert_eq!(message, text);
                }
                (CrateError::EncoderFailed(message), None) => assert_eq!(message, text),
                (other, _) => panic!("unexpected conversion {other:?}"),
            }
        }
    }
}
