//! Muxer and probe tests: generated files probe back exactly, offsets point at the samples,
//! and damaged or arbitrary bytes give errors, never panics.

use super::boxes::child_boxes;
use super::encode::EncodedVideo;
use super::encode::{FrameShape, RateControl, DEFAULT_QP};
use super::encode_mp4_bytes;
use super::error::VideoError;
use super::mux::{mux_faststart, mux_with_offsets};
use super::probe::{probe_mp4, ProbeReport};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A stream with fake NAL payloads: the muxer does not look inside samples.
fn synthetic_video(sizes: &[u32]) -> EncodedVideo {
    let mut sample_data = Vec::new();
    for (index, &size) in sizes.iter().enumerate() {
        sample_data.extend((0..size).map(|i| (index as u32 * 31 + i) as u8));
    }
    EncodedVideo {
        width: 64,
        height: 48,
        sps: vec![0x67, 66, 0xc0, 30, 1, 2],
        pps: vec![0x68, 0xce, 0x3c, 0x80],
        sample_data,
        sample_sizes: sizes.to_vec(),
        sample_is_sync: sizes.iter().enumerate().map(|(i, _)| i % 3 == 0).collect(),
    }
}

fn top_level_types(file: &[u8]) -> Result<Vec<[u8; 4]>, VideoError> {
    Ok(child_boxes(file)?.iter().map(|b| b.fourcc).collect())
}

/// Reads the offsets table back to check each offset points at its own sample's bytes.
fn assert_offsets_point_at_samples(file: &[u8], video: &EncodedVideo) -> TestResult {
    let mut expected_start = 0_usize;
    let first_sample = &video.sample_data[..video.sample_sizes[0] as usize];
    let at = file
        .windows(first_sample.len())
        .position(|w| w == first_sample)
        .ok_or("first sample not in file")?;
    for &size in &video.sample_sizes {
        let size = size as usize;
        assert_eq!(
            &file[at + expected_start..at + expected_start + size],
            &video.sample_data[expected_start..expected_start + size]
        );
        expected_start += size;
    }
    assert_eq!(
        at + expected_start,
        file.len(),
        "mdat payload must end the file"
    );
    Ok(())
}

#[test]
fn muxed_file_is_faststart_and_probes_back() -> TestResult {
    let video = synthetic_video(&[100, 7, 2000, 1, 50]);
    let file = mux_faststart(&video, 24)?;
    assert_eq!(top_level_types(&file)?, vec![*b"ftyp", *b"moov", *b"mdat"]);
    assert_offsets_point_at_samples(&file, &video)?;
    let report = probe_mp4(&file)?;
    assert_eq!(
        report,
        ProbeReport {
            codec: "avc1".into(),
            width: 64,
            height: 48,
            num_frames: 5,
            fps: 24.0,
            duration_s: 5.0 / 24.0,
            faststart: true,
            bytes: file.len() as u64,
        }
    );
    Ok(())
}

#[test]
fn sixty_four_bit_offsets_probe_the_same() -> TestResult {
    let video = synthetic_video(&[10, 20, 30]);
    let narrow = mux_faststart(&video, 30)?;
    let wide = mux_with_offsets(&video, 30, true)?;
    assert_eq!(
        wide.len(),
        narrow.len() + 3 * 4,
        "co64 entries are 4 bytes wider"
    );
    assert!(wide.windows(4).any(|w| w == b"co64"));
    assert_eq!(probe_mp4(&wide)?.num_frames, 3);
    assert_eq!(probe_mp4(&wide)?.bytes, wide.len() as u64);
    Ok(())
}

#[test]
fn duration_is_exact_for_awkward_frame_rates() -> TestResult {
    for (frames, fps) in [(163_usize, 30_u32), (7, 7), (1, 1), (31, 24), (100, 240)] {
        let video = synthetic_video(&vec![3; frames]);
        let report = probe_mp4(&mux_faststart(&video, fps)?)?;
        assert_eq!(report.num_frames, frames as u64);
        assert_eq!(report.fps, f64::from(fps));
        assert_eq!(report.duration_s, frames as f64 / f64::from(fps));
    }
    Ok(())
}

#[test]
fn moov_after_mdat_is_reported_as_not_faststart() -> TestResult {
    let video = synthetic_video(&[10, 20]);
    let file = mux_faststart(&video, 30)?;
    let boxes = child_boxes(&file)?;
    let (ftyp, moov, mdat) = (boxes[0], boxes[1], boxes[2]);
    // Reorder to ftyp, mdat, moov. The offsets are left as they were: the file length is the
    // same, so every sample still lies inside the file and the probe accepts it.
    let mut reordered = file[..moov.offset].to_vec();
    reordered.extend_from_slice(&file[mdat.offset..]);
    reordered.extend_from_slice(&file[moov.offset..mdat.offset]);
    assert_eq!(ftyp.offset, 0);
    let report = probe_mp4(&reordered)?;
    assert!(!report.faststart);
    Ok(())
}

#[test]
fn every_truncation_is_an_error() -> TestResult {
    let file = mux_faststart(&synthetic_video(&[40, 5, 9]), 30)?;
    for len in 0..file.len() {
        assert!(
            probe_mp4(&file[..len]).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
    Ok(())
}

#[test]
fn corrupted_bytes_never_panic() -> TestResult {
    let file = mux_faststart(&synthetic_video(&[40, 5, 9, 12]), 30)?;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        // xorshift64: reproducible pseudo-random positions and values without a dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5000 {
        let mut damaged = file.clone();
        for _ in 0..(next() % 4 + 1) {
            let position = (next() % damaged.len() as u64) as usize;
            damaged[position] = next() as u8;
        }
        let _ = probe_mp4(&damaged);
    }
    for len in [0_usize, 1, 7, 8, 64, 4096] {
        let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        assert!(probe_mp4(&garbage).is_err());
    }
    Ok(())
}

#[test]
fn rejects_files_without_exactly_one_video_track() -> TestResult {
    let file = mux_faststart(&synthetic_video(&[10]), 30)?;
    let moov = child_boxes(&file)?[1];
    let moov_children = child_boxes(moov.payload)?;
    let trak = moov_children
        .iter()
        .find(|b| &b.fourcc == b"trak")
        .ok_or("no trak")?;
    let trak_bytes = &moov.payload[trak.offset..trak.offset + trak.payload.len() + 8];

    // A second copy of the track inside moov.
    let mut doubled_moov = moov.payload.to_vec();
    doubled_moov.extend_from_slice(trak_bytes);
    let mut doubled = file[..moov.offset].to_vec();
    doubled.extend_from_slice(&(doubled_moov.len() as u32 + 8).to_be_bytes());
    doubled.extend_from_slice(b"moov");
    doubled.extend_from_slice(&doubled_moov);
    doubled.extend_from_slice(&file[moov.offset + moov.payload.len() + 8..]);
    let err = probe_mp4(&doubled).err().ok_or("two tracks accepted")?;
    assert!(err.to_string().contains("found 2"), "{err}");

    // The handler changed from video to sound.
    let position = file
        .windows(4)
        .position(|w| w == b"vide")
        .ok_or("no vide")?;
    let mut sound = file.clone();
    sound[position..position + 4].copy_from_slice(b"soun");
    let err = probe_mp4(&sound).err().ok_or("sound-only accepted")?;
    assert!(err.to_string().contains("found 0"), "{err}");
    Ok(())
}

#[test]
fn encoded_video_round_trips_through_the_probe() -> TestResult {
    let shape = FrameShape {
        frames: 5,
        height: 48,
        width: 80,
    };
    let rgb: Vec<u8> = (0..shape.frames * shape.height * shape.width * 3)
        .map(|i| (i % 251) as u8)
        .collect();
    let file = encode_mp4_bytes(&rgb, shape, 30, RateControl::ConstantQp(DEFAULT_QP))?;
    let report = probe_mp4(&file)?;
    assert_eq!(
        (report.codec.as_str(), report.width, report.height),
        ("avc1", 80, 48)
    );
    assert_eq!(
        (report.num_frames, report.fps, report.faststart),
        (5, 30.0, true)
    );
    Ok(())
}
