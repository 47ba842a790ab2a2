//! Structural probe of an MP4 file: the one video track's codec, size, frame count and
//! timing, whether `moov` precedes `mdat`, and that every sample lies inside the file.

use super::boxes::{child_boxes, fourcc_text, optional_child, single_child, Mp4Box, Reader};
use super::error::{invalid_mp4, VideoResult};

#[derive(Clone, Debug, PartialEq)]
pub struct ProbeReport {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub num_frames: u64,
    pub fps: f64,
    pub duration_s: f64,
    pub faststart: bool,
    pub bytes: u64,
}

pub fn probe_mp4(data: &[u8]) -> VideoResult<ProbeReport> {
    let top = child_boxes(data)?;
    if top.first().map(|b| &b.fourcc) != Some(b"ftyp") {
        return Err(invalid_mp4("file does not start with an ftyp box"));
    }
    let mut moovs = top.iter().filter(|b| &b.fourcc == b"moov");
    let moov = moovs.next().ok_or_else(|| invalid_mp4("no moov box"))?;
    if moovs.next().is_some() {
        return Err(invalid_mp4("more than one moov box"));
    }
    let mdat = top
        .iter()
        .find(|b| &b.fourcc == b"mdat")
        .ok_or_else(|| invalid_mp4("no mdat box"))?;

    let mut video_tracks = Vec::new();
    for trak in child_boxes(moov.payload)?
        .into_iter()
        .filter(|b| &b.fourcc == b"trak")
    {
        let mdia = single_child(&trak, b"mdia")?;
        if handler_type(&single_child(&mdia, b"hdlr")?)? == *b"vide" {
            video_tracks.push(mdia);
        }
    }
    let [mdia] = video_tracks.as_slice() else {
        return Err(invalid_mp4(format!(
            "expected one video track, found {}",
            video_tracks.len()
        )));
    };
    let track = read_video_track(mdia, data.len() as u64)?;
    Ok(ProbeReport {
        codec: track.codec,
        width: track.width,
        height: track.height,
        num_frames: track.num_frames,
        fps: track.fps,
        duration_s: track.duration_s,
        faststart: moov.offset < mdat.offset,
        bytes: data.len() as u64,
    })
}

struct VideoTrack {
    codec: String,
    width: u32,
    height: u32,
    num_frames: u64,
    fps: f64,
    duration_s: f64,
}

fn handler_type(hdlr: &Mp4Box<'_>) -> VideoResult<[u8; 4]> {
    let mut reader = Reader::new(hdlr.payload);
    reader.version()?;
    reader.skip(4)?; // pre_defined
    reader.fourcc()
}

fn read_video_track(mdia: &Mp4Box<'_>, file_len: u64) -> VideoResult<VideoTrack> {
    let (timescale, media_duration) = read_mdhd(&single_child(mdia, b"mdhd")?)?;
    let stbl = single_child(&single_child(mdia, b"minf")?, b"stbl")?;
    let (codec, width, height) = read_stsd(&single_child(&stbl, b"stsd")?)?;
    let timing = read_stts(&single_child(&stbl, b"stts")?)?;
    let sizes = read_stsz(&single_child(&stbl, b"stsz")?)?;
    if sizes.count == 0 {
        return Err(invalid_mp4("video track has no samples"));
    }
    if u64::from(sizes.count) != timing.sample_count {
        return Err(invalid_mp4(format!(
            "stts covers {} samples but stsz has {}",
            timing.sample_count, sizes.count
        )));
    }
    let chunks = read_chunk_offsets(&stbl)?;
    let stsc = read_stsc(&single_child(&stbl, b"stsc")?)?;
    check_samples_inside_file(&chunks, &stsc, &sizes, file_len)?;

    // mdhd's duration is what players show; an unset one (0) falls back to the sample times.
    let ticks = if media_duration == 0 {
        timing.total_ticks
    } else {
        media_duration
    };
    if ticks == 0 {
        return Err(invalid_mp4("video track has zero duration"));
    }
    let duration_s = ticks as f64 / f64::from(timescale);
    let num_frames = u64::from(sizes.count);
    let fps = match timing.constant_delta {
        Some(delta) => f64::from(timescale) / f64::from(delta),
        None => num_frames as f64 / (timing.total_ticks as f64 / f64::from(timescale)),
    };
    Ok(VideoTrack {
        codec,
        width,
        height,
        num_frames,
        fps,
        duration_s,
    })
}

fn read_mdhd(mdhd: &Mp4Box<'_>) -> VideoResult<(u32, u64)> {
    let mut reader = Reader::new(mdhd.payload);
    let (timescale, duration) = match reader.version()? {
        0 => {
            reader.skip(8)?;
            (reader.u32()?, u64::from(reader.u32()?))
        }
        1 => {
            reader.skip(16)?;
            (reader.u32()?, reader.u64()?)
        }
        other => return Err(invalid_mp4(format!("mdhd version {other}"))),
    };
    if timescale == 0 {
        return Err(invalid_mp4("mdhd timescale is 0"));
    }
    // All ones means "unknown" in ISO-BMFF.
    let known = if duration == u64::from(u32::MAX) || duration == u64::MAX {
        0
    } else {
        duration
    };
    Ok((timescale, known))
}

fn read_stsd(stsd: &Mp4Box<'_>) -> VideoResult<(String, u32, u32)> {
    let mut reader = Reader::new(stsd.payload);
    reader.version()?;
    if reader.u32()? == 0 {
        return Err(invalid_mp4("stsd has no sample entry"));
    }
    let rest = reader.take(reader.remaining())?;
    let entry = child_boxes(rest)?
        .into_iter()
        .next()
        .ok_or_else(|| invalid_mp4("stsd has no sample entry"))?;
    if !entry
        .fourcc
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b' ')
    {
        return Err(invalid_mp4(
            "sample entry type is not a printable four-character code",
        ));
    }
    let mut entry_reader = Reader::new(entry.payload);
    entry_reader.skip(8 + 16)?; // SampleEntry header, VisualSampleEntry reserved fields
    let width = u32::from(entry_reader.u16()?);
    let height = u32::from(entry_reader.u16()?);
    if width == 0 || height == 0 {
        return Err(invalid_mp4(format!("video size {width}x{height}")));
    }
    Ok((fourcc_text(entry.fourcc), width, height))
}

struct SampleTiming {
    sample_count: u64,
    total_ticks: u64,
    constant_delta: Option<u32>,
}

fn read_stts(stts: &Mp4Box<'_>) -> VideoResult<SampleTiming> {
    let mut reader = Reader::new(stts.payload);
    reader.version()?;
    let entries = reader.u32()?;
    reader.expect_entries(entries, 8)?;
    let (mut sample_count, mut total_ticks) = (0_u64, 0_u64);
    let mut deltas = Vec::new();
    for _ in 0..entries {
        let (count, delta) = (reader.u32()?, reader.u32()?);
        if count == 0 {
            continue;
        }
        sample_count += u64::from(count);
        total_ticks = total_ticks.saturating_add(u64::from(count) * u64::from(delta));
        deltas.push(delta);
    }
    let constant_delta = match deltas.split_first() {
        Some((&first, rest)) if first > 0 && rest.iter().all(|&d| d == first) => Some(first),
        _ => None,
    };
    Ok(SampleTiming {
        sample_count,
        total_ticks,
        constant_delta,
    })
}

struct SampleSizes {
    count: u32,
    /// Non-zero when every sample has this size; otherwise `table` holds one per sample.
    uniform: u32,
    table: Vec<u32>,
}

impl SampleSizes {
    fn bytes_of(&self, first: u64, count: u64) -> VideoResult<u64> {
        if self.uniform != 0 {
            return Ok(count * u64::from(self.uniform));
        }
        let start = usize::try_from(first).map_err(|_| invalid_mp4("sample index overflow"))?;
        let end =
            usize::try_from(first + count).map_err(|_| invalid_mp4("sample index overflow"))?;
        let sizes = self
            .table
            .get(start..end)
            .ok_or_else(|| invalid_mp4("stsz is too short"))?;
        Ok(sizes.iter().map(|&s| u64::from(s)).sum())
    }
}

fn read_stsz(stsz: &Mp4Box<'_>) -> VideoResult<SampleSizes> {
    let mut reader = Reader::new(stsz.payload);
    reader.version()?;
    let uniform = reader.u32()?;
    let count = reader.u32()?;
    let mut table = Vec::new();
    if uniform == 0 {
        reader.expect_entries(count, 4)?;
        table = (0..count)
            .map(|_| reader.u32())
            .collect::<VideoResult<_>>()?;
    }
    Ok(SampleSizes {
        count,
        uniform,
        table,
    })
}

/// `(first_chunk, samples_per_chunk)` runs, first chunks strictly increasing from 1.
fn read_stsc(stsc: &Mp4Box<'_>) -> VideoResult<Vec<(u64, u64)>> {
    let mut reader = Reader::new(stsc.payload);
    reader.version()?;
    let entries = reader.u32()?;
    reader.expect_entries(entries, 12)?;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for _ in 0..entries {
        let (first_chunk, per_chunk) = (u64::from(reader.u32()?), u64::from(reader.u32()?));
        reader.skip(4)?; // sample_description_index
        let expected_min = runs.last().map_or(1, |&(previous, _)| previous + 1);
        if first_chunk < expected_min || (runs.is_empty() && first_chunk != 1) {
            return Err(invalid_mp4("stsc runs are out of order"));
        }
        runs.push((first_chunk, per_chunk));
    }
    Ok(runs)
}

fn read_chunk_offsets(stbl: &Mp4Box<'_>) -> VideoResult<Vec<u64>> {
    let (chunk_box, wide) = match (
        optional_child(stbl, b"stco")?,
        optional_child(stbl, b"co64")?,
    ) {
        (Some(stco), None) => (stco, false),
        (None, Some(co64)) => (co64, true),
        _ => return Err(invalid_mp4("stbl needs exactly one of stco and co64")),
    };
    let mut reader = Reader::new(chunk_box.payload);
    reader.version()?;
    let count = reader.u32()?;
    reader.expect_entries(count, if wide { 8 } else { 4 })?;
    (0..count)
        .map(|_| {
            if wide {
                reader.u64()
            } else {
                reader.u32().map(u64::from)
            }
        })
        .collect()
}

/// Walks chunk by chunk so a forged sample count costs no more than the tables it came with.
fn check_samples_inside_file(
    chunks: &[u64],
    stsc: &[(u64, u64)],
    sizes: &SampleSizes,
    file_len: u64,
) -> VideoResult<()> {
    let total = u64::from(sizes.count);
    let mut next_sample = 0_u64;
    let mut run = 0_usize;
    for (index, &offset) in chunks.iter().enumerate() {
        let chunk_number = index as u64 + 1;
        while stsc
            .get(run + 1)
            .is_some_and(|&(first, _)| first <= chunk_number)
        {
            run += 1;
        }
        let per_chunk = stsc.get(run).map_or(0, |&(_, n)| n);
        let in_chunk = per_chunk.min(total - next_sample);
        let end = offset.saturating_add(sizes.bytes_of(next_sample, in_chunk)?);
        if end > file_len {
            return Err(invalid_mp4(format!(
                "chunk {chunk_number} ends past the end of the file"
            )));
        }
        next_sample += in_chunk;
    }
    if next_sample != total {
        return Err(invalid_mp4(format!(
            "chunks hold {next_sample} samples but stsz has {total}"
        )));
    }
    Ok(())
}
