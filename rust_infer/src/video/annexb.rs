//! Annex-B access units to MP4 samples.
//!
//! OpenH264 emits Annex-B NAL units (start-code prefixed). MP4 (`avc1`) wants the SPS and PPS
//! in the sample description and each sample as 4-byte-length-prefixed NAL units, so the
//! parameter sets are taken out of the stream here and the rest is re-framed.

use super::error::{VideoError, VideoResult};

const NAL_TYPE_IDR: u8 = 5;
const NAL_TYPE_SPS: u8 = 7;
const NAL_TYPE_PPS: u8 = 8;

/// Collects access units as MP4 samples and keeps the (single) SPS and PPS aside.
#[derive(Default)]
pub struct StreamSplitter {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    pub sample_data: Vec<u8>,
    pub sample_sizes: Vec<u32>,
    pub sample_is_sync: Vec<bool>,
}

impl StreamSplitter {
    pub fn push_access_unit(&mut self, annex_b: &[u8], frame_index: usize) -> VideoResult<()> {
        let start = self.sample_data.len();
        let mut is_sync = false;
        for nal in split_annex_b(annex_b) {
            let Some(&header) = nal.first() else { continue };
            match header & 0x1f {
                NAL_TYPE_SPS => remember_parameter_set(&mut self.sps, nal, "SPS")?,
                NAL_TYPE_PPS => remember_parameter_set(&mut self.pps, nal, "PPS")?,
                nal_type => {
                    is_sync |= nal_type == NAL_TYPE_IDR;
                    let len =
                        u32::try_from(nal.len()).map_err(|e| VideoError::Encoder(e.to_string()))?;
                    self.sample_data.extend_from_slice(&len.to_be_bytes());
                    self.sample_data.extend_from_slice(nal);
                }
            }
        }
        let size = self.sample_data.len() - start;
        if size == 0 {
            return Err(VideoError::Encoder(format!(
                "frame {frame_index} produced no picture"
            )));
        }
        self.sample_sizes
            .push(u32::try_from(size).map_err(|e| VideoError::Encoder(e.to_string()))?);
        self.sample_is_sync.push(is_sync);
        Ok(())
    }

    pub fn parameter_sets(&self) -> VideoResult<(Vec<u8>, Vec<u8>)> {
        match (&self.sps, &self.pps) {
            (Some(sps), Some(pps)) if sps.len() >= 4 => Ok((sps.clone(), pps.clone())),
            _ => Err(VideoError::Encoder("stream has no SPS/PPS".into())),
        }
    }
}

/// `avc1` requires one set of parameter sets for the whole track; OpenH264 repeats the same
/// ones before every IDR with the constant-id strategy, so a different one is a bug.
fn remember_parameter_set(slot: &mut Option<Vec<u8>>, nal: &[u8], name: &str) -> VideoResult<()> {
    match slot {
        Some(existing) if existing.as_slice() != nal => {
            Err(VideoError::Encoder(format!("{name} changed mid-stream")))
        }
        Some(_) => Ok(()),
        None => {
            *slot = Some(nal.to_vec());
            Ok(())
        }
    }
}

/// Splits an Annex-B byte stream on 3- and 4-byte start codes; returns NAL payloads.
fn split_annex_b(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (n, &start) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(stream.len(), |next| next - 3);
        // A NAL never ends in a zero byte (its RBSP stop bit), so trailing zeros are the
        // leading zero of a 4-byte start code or trailing_zero_8bits padding.
        while end > start && stream[end - 1] == 0 {
            end -= 1;
        }
        nals.push(&stream[start..end]);
    }
    nals
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 0,
        ];
        let nals = split_annex_b(&stream);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4][..]]
        );
    }

    #[test]
    fn samples_are_length_prefixed_without_parameter_sets() -> TestResult {
        let mut splitter = StreamSplitter::default();
        let idr = [
            0, 0, 0, 1, 0x67, 9, 9, 9, 0, 0, 0, 1, 0x68, 8, 0, 0, 1, 0x65, 1, 2, 3,
        ];
        splitter.push_access_unit(&idr, 0)?;
        splitter.push_access_unit(&[0, 0, 0, 1, 0x41, 7], 1)?;
        assert_eq!(
            splitter.sample_data,
            [0, 0, 0, 4, 0x65, 1, 2, 3, 0, 0, 0, 2, 0x41, 7]
        );
        assert_eq!(splitter.sample_sizes, [8, 6]);
        assert_eq!(splitter.sample_is_sync, [true, false]);
        assert_eq!(
            splitter.parameter_sets()?,
            (vec![0x67, 9, 9, 9], vec![0x68, 8])
        );
        Ok(())
    }

    #[test]
    fn changed_parameter_sets_and_empty_frames_are_errors() -> TestResult {
        let mut splitter = StreamSplitter::default();
        splitter.push_access_unit(&[0, 0, 1, 0x67, 1, 2, 3, 0, 0, 1, 0x65, 1], 0)?;
        let changed = splitter.push_access_unit(&[0, 0, 1, 0x67, 1, 2, 4, 0, 0, 1, 0x65, 1], 1);
        assert!(matches!(changed, Err(VideoError::Encoder(_))));
        let empty = splitter.push_access_unit(&[0, 0, 1, 0x68, 5], 2);
        assert!(matches!(empty, Err(VideoError::Encoder(_))));
        Ok(())
    }
}
