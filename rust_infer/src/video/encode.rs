//! RGB frames to H.264 with OpenH264: input checks, encoder settings and the re-encode after a
//! bitstream buffer overflow. `annexb.rs` turns the encoder's output into MP4 samples.

use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, QpRange, RateControlMode,
    UsageType, VuiConfig,
};
use openh264::formats::YUVSlices;
use openh264::{OpenH264API, Timestamp};

use super::annexb::StreamSplitter;
use super::error::{VideoError, VideoResult};
use super::yuv::I420Frame;

/// Constant QP used when the caller gives neither `crf` nor a bitrate. Measured: smooth
/// 848x480 content 40 dB RGB PSNR at about 1.2 Mbit/s; grey noise 40 dB (docs/video.md).
pub const DEFAULT_QP: u8 = 20;
pub const MAX_FPS: u32 = 240;
/// OpenH264 raises any lower QP to 12, so 12 is the finest setting it really has.
pub const MIN_QP: u8 = 12;
pub const MAX_QP: u8 = 51;
/// How much coarser each re-encode after a bitstream buffer overflow is.
const QP_FLOOR_STEP: u8 = 4;
/// OpenH264's `cmMallocMemeError`, which `EncodeFrame` returns when a frame overflows.
const NATIVE_BUFFER_OVERFLOW: i64 = 3;
/// OpenH264 supports up to level 5.2: 3840x2160 landscape or 2160x3840 portrait.
const MAX_LONG_SIDE: usize = 3840;
const MAX_SHORT_SIDE: usize = 2160;
const MIN_SIDE: usize = 16;
/// A keyframe every two seconds keeps seeking in a browser cheap.
const KEYFRAME_INTERVAL_SECONDS: u32 = 2;

/// How the encoder spends bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateControl {
    /// Every macroblock at this QP (12..=51); the closest OpenH264 has to x264's CRF.
    ConstantQp(u8),
    /// Average bitrate target in kbit/s.
    Bitrate(u32),
}

impl RateControl {
    /// Picks the mode from the Python keyword arguments; both at once is ambiguous.
    pub fn from_options(crf: Option<u32>, bitrate_kbps: Option<u32>) -> VideoResult<Self> {
        match (crf, bitrate_kbps) {
            (Some(_), Some(_)) => Err(VideoError::InvalidSetting(
                "give crf or bitrate_kbps, not both".into(),
            )),
            (Some(crf), None) => match u8::try_from(crf) {
                Ok(qp) if (MIN_QP..=MAX_QP).contains(&qp) => Ok(Self::ConstantQp(qp)),
                _ => Err(VideoError::InvalidSetting(format!(
                    "crf (the H.264 QP) must be {MIN_QP}..={MAX_QP}, got {crf}"
                ))),
            },
            (None, Some(kbps)) if (1..=1_000_000).contains(&kbps) => Ok(Self::Bitrate(kbps)),
            (None, Some(kbps)) => Err(VideoError::InvalidSetting(format!(
                "bitrate_kbps must be 1..=1000000, got {kbps}"
            ))),
            (None, None) => Ok(Self::ConstantQp(DEFAULT_QP)),
        }
    }
}

/// Shape of the RGB input: `frames` pictures of `height` x `width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameShape {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

impl FrameShape {
    pub fn validate(&self) -> VideoResult<()> {
        let Self {
            frames,
            height,
            width,
        } = *self;
        if frames == 0 {
            return Err(VideoError::InvalidFrames(
                "at least one frame is required".into(),
            ));
        }
        if width % 2 != 0 || height % 2 != 0 {
            return Err(VideoError::InvalidFrames(format!(
                "height and width must be even for YUV 4:2:0, got {height}x{width}"
            )));
        }
        let (long, short) = (width.max(height), width.min(height));
        if short < MIN_SIDE || long > MAX_LONG_SIDE || short > MAX_SHORT_SIDE {
            return Err(VideoError::InvalidFrames(format!(
                "frame size {height}x{width} is outside {MIN_SIDE}..={MAX_SHORT_SIDE} by \
                 {MIN_SIDE}..={MAX_LONG_SIDE}"
            )));
        }
        Ok(())
    }

    fn frame_len(&self) -> usize {
        self.height * self.width * 3
    }
}

/// The encoded stream, ready to mux: one sample per input frame.
#[derive(Debug)]
pub struct EncodedVideo {
    pub width: u16,
    pub height: u16,
    pub sps: Vec<u8>,
    pub pps: Vec<u8>,
    /// All samples back to back, each a run of 4-byte-length-prefixed NAL units.
    pub sample_data: Vec<u8>,
    pub sample_sizes: Vec<u32>,
    pub sample_is_sync: Vec<bool>,
}

/// Encodes `rgb` (packed T x H x W x 3, row-major) at `fps` frames per second.
pub fn encode_rgb_frames(
    rgb: &[u8],
    shape: FrameShape,
    fps: u32,
    rate_control: RateControl,
) -> VideoResult<EncodedVideo> {
    shape.validate()?;
    if !(1..=MAX_FPS).contains(&fps) {
        return Err(VideoError::InvalidSetting(format!(
            "fps must be 1..={MAX_FPS}, got {fps}"
        )));
    }
    if Some(rgb.len()) != shape.frames.checked_mul(shape.frame_len()) {
        return Err(VideoError::InvalidFrames(format!(
            "expected {} bytes for {shape:?}, got {}",
            shape.frames.saturating_mul(shape.frame_len()),
            rgb.len()
        )));
    }
    let mut qp_floor = MIN_QP;
    loop {
        match encode_once(rgb, shape, fps, rate_control, qp_floor) {
            Err(Attempt::BufferOverflow) if qp_floor < MAX_QP => {
                qp_floor = qp_floor.saturating_add(QP_FLOOR_STEP).min(MAX_QP);
            }
            Err(Attempt::BufferOverflow) => {
                return Err(VideoError::Encoder(
                    "frames do not fit OpenH264's bitstream buffer even at QP 51".into(),
                ))
            }
            Err(Attempt::Failed(error)) => return Err(error),
            Ok(video) => return Ok(video),
        }
    }
}

/// Why one encoding pass stopped.
enum Attempt {
    /// OpenH264's per-frame output buffer holds one raw frame; noise-like content at a low QP
    /// can need more. The encoder is then unusable, so the whole video is encoded again.
    BufferOverflow,
    Failed(VideoError),
}

impl From<VideoError> for Attempt {
    fn from(error: VideoError) -> Self {
        Self::Failed(error)
    }
}

fn encoder_error(error: &openh264::Error) -> Attempt {
    if error.native_code() == NATIVE_BUFFER_OVERFLOW {
        Attempt::BufferOverflow
    } else {
        Attempt::Failed(VideoError::Encoder(error.to_string()))
    }
}

fn encode_once(
    rgb: &[u8],
    shape: FrameShape,
    fps: u32,
    rate_control: RateControl,
    qp_floor: u8,
) -> Result<EncodedVideo, Attempt> {
    let to_u16 =
        |side: usize| u16::try_from(side).map_err(|e| VideoError::InvalidFrames(e.to_string()));
    let config = encoder_config(fps, rate_control, qp_floor);
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| encoder_error(&e))?;
    let mut picture = I420Frame::new(shape.width, shape.height);
    let mut stream = StreamSplitter::default();
    for (index, frame_rgb) in rgb.chunks_exact(shape.frame_len()).enumerate() {
        picture.fill_from_rgb(frame_rgb);
        let source = YUVSlices::new(
            (&picture.y, &picture.u, &picture.v),
            (shape.width, shape.height),
            (shape.width, shape.width / 2, shape.width / 2),
        );
        let millis = u64::try_from(index)
            .unwrap_or(u64::MAX)
            .saturating_mul(1000)
            / u64::from(fps);
        let bitstream = encoder
            .encode_at(&source, Timestamp::from_millis(millis))
            .map_err(|e| encoder_error(&e))?;
        stream.push_access_unit(&bitstream.to_vec(), index)?;
    }
    let (sps, pps) = stream.parameter_sets()?;
    Ok(EncodedVideo {
        width: to_u16(shape.width)?,
        height: to_u16(shape.height)?,
        sps,
        pps,
        sample_data: stream.sample_data,
        sample_sizes: stream.sample_sizes,
        sample_is_sync: stream.sample_is_sync,
    })
}

fn encoder_config(fps: u32, rate_control: RateControl, qp_floor: u8) -> EncoderConfig {
    let base = EncoderConfig::new()
        .usage_type(UsageType::CameraVideoRealTime)
        // Every input frame must become a sample, or frame count and duration drift.
        .skip_frames(false)
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        // One thread: OpenH264 only threads across slices, and one slice keeps output
        // byte-for-byte deterministic (same request and seed give the same file).
        .num_threads(1)
        .intra_frame_period(IntraFramePeriod::from_num_frames(
            fps * KEYFRAME_INTERVAL_SECONDS,
        ))
        .vui(VuiConfig::bt601());
    match rate_control {
        // Buffer-based mode with a one-value QP range is constant QP (plus up to 2 on a scene
        // cut); unlike the quality mode it never skips frames and logs no skip warning.
        RateControl::ConstantQp(qp) => {
            let qp = qp.max(qp_floor);
            base.rate_control_mode(RateControlMode::Bufferbased)
                .qp(QpRange::new(qp, qp))
        }
        RateControl::Bitrate(kbps) => base
            .rate_control_mode(RateControlMode::Bitrate)
            .qp(QpRange::new(qp_floor, MAX_QP))
            .bitrate(BitRate::from_bps(kbps.saturating_mul(1000))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn gradient(shape: FrameShape) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(shape.frames * shape.frame_len());
        for t in 0..shape.frames {
            for y in 0..shape.height {
                for x in 0..shape.width {
                    rgb.extend_from_slice(&[(x * 4 + t) as u8, (y * 4) as u8, 128]);
                }
            }
        }
        rgb
    }

    #[test]
    fn one_sample_per_frame_with_keyframes_every_two_seconds() -> TestResult {
        let shape = FrameShape {
            frames: 9,
            height: 32,
            width: 48,
        };
        let video = encode_rgb_frames(&gradient(shape), shape, 4, RateControl::ConstantQp(20))?;
        assert_eq!(video.sample_sizes.len(), 9);
        assert_eq!(
            video.sample_data.len() as u64,
            video
                .sample_sizes
                .iter()
                .map(|&s| u64::from(s))
                .sum::<u64>()
        );
        let sync: Vec<usize> = (0..9).filter(|&i| video.sample_is_sync[i]).collect();
        assert_eq!(sync, vec![0, 8]);
        assert_eq!((video.width, video.height), (48, 32));
        assert_eq!(video.sps[0] & 0x1f, 7, "SPS NAL type");
        assert_eq!(video.pps[0] & 0x1f, 8, "PPS NAL type");
        Ok(())
    }

    #[test]
    fn noise_that_overflows_at_low_qp_is_encoded_again_coarser() -> TestResult {
        // Uniform RGB noise needs more than one raw frame of bits below QP ~19 at this size.
        let shape = FrameShape {
            frames: 2,
            height: 96,
            width: 160,
        };
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..shape.frames * shape.frame_len())
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect();
        let video = encode_rgb_frames(&noise, shape, 30, RateControl::ConstantQp(MIN_QP))?;
        assert_eq!(video.sample_sizes.len(), 2);
        Ok(())
    }

    #[test]
    fn encoding_is_deterministic() -> TestResult {
        let shape = FrameShape {
            frames: 3,
            height: 16,
            width: 16,
        };
        let rgb = gradient(shape);
        let first = encode_rgb_frames(&rgb, shape, 30, RateControl::Bitrate(500))?;
        let second = encode_rgb_frames(&rgb, shape, 30, RateControl::Bitrate(500))?;
        assert_eq!(first.sample_data, second.sample_data);
        Ok(())
    }

    #[test]
    fn rejects_bad_shapes_and_settings() {
        let odd = FrameShape {
            frames: 1,
            height: 16,
            width: 17,
        };
        assert!(matches!(odd.validate(), Err(VideoError::InvalidFrames(_))));
        let tiny = FrameShape {
            frames: 1,
            height: 8,
            width: 16,
        };
        assert!(matches!(tiny.validate(), Err(VideoError::InvalidFrames(_))));
        let empty = FrameShape {
            frames: 0,
            height: 16,
            width: 16,
        };
        assert!(matches!(
            empty.validate(),
            Err(VideoError::InvalidFrames(_))
        ));
        let shape = FrameShape {
            frames: 1,
            height: 16,
            width: 16,
        };
        let rgb = gradient(shape);
        assert!(matches!(
            encode_rgb_frames(&rgb, shape, 0, RateControl::ConstantQp(20)),
            Err(VideoError::InvalidSetting(_))
        ));
        assert!(matches!(
            encode_rgb_frames(&rgb[1..], shape, 30, RateControl::ConstantQp(20)),
            Err(VideoError::InvalidFrames(_))
        ));
        assert!(RateControl::from_options(Some(20), Some(100)).is_err());
        assert!(RateControl::from_options(Some(52), None).is_err());
        assert!(RateControl::from_options(Some(11), None).is_err());
        assert!(RateControl::from_options(None, Some(0)).is_err());
        assert_eq!(
            RateControl::from_options(None, None),
            Ok(RateControl::ConstantQp(DEFAULT_QP))
        );
    }
}
