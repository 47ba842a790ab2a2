//! A faststart MP4 writer for one H.264 video track: `ftyp`, `moov`, then `mdat`.
//!
//! With `moov` first a browser can start playing while the rest still downloads. The chunk
//! offsets in `moov` point into `mdat`, which comes after `moov`, so the size of `moov` is
//! found first (it does not depend on the offset values, only on 32- vs 64-bit offsets) and
//! the box is then written once with the real offsets.

use super::encode::EncodedVideo;
use super::error::{VideoError, VideoResult};

/// Big-endian box writer; `open` reserves the size field and `close` fills it in.
#[derive(Default)]
pub struct BoxWriter {
    pub bytes: Vec<u8>,
}

impl BoxWriter {
    pub fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }
    pub fn u16(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }
    pub fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }
    pub fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }
    pub fn raw(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }
    pub fn zeros(&mut self, count: usize) {
        self.bytes.resize(self.bytes.len() + count, 0);
    }

    /// Starts a box; returns where it begins, for `close`.
    pub fn open(&mut self, fourcc: &[u8; 4]) -> usize {
        let start = self.bytes.len();
        self.u32(0);
        self.raw(fourcc);
        start
    }

    /// Starts a full box (version and 24-bit flags follow the type).
    pub fn open_full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) -> usize {
        let start = self.open(fourcc);
        self.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        start
    }

    /// Ends the box begun at `start` by writing its size; boxes here are far below 4 GiB.
    pub fn close(&mut self, start: usize) -> VideoResult<()> {
        let size = u32::try_from(self.bytes.len() - start)
            .map_err(|_| VideoError::Encoder("MP4 metadata box over 4 GiB".into()))?;
        self.bytes[start..start + 4].copy_from_slice(&size.to_be_bytes());
        Ok(())
    }
}

/// Track timing: each sample lasts `sample_delta` ticks of `timescale`.
/// With `timescale = fps * 1000` and `sample_delta = 1000`, duration is exactly T / fps.
#[derive(Clone, Copy, Debug)]
struct Timing {
    timescale: u32,
    sample_delta: u32,
    duration: u64,
}

/// Muxes the encoded stream into a complete faststart MP4 file.
pub fn mux_faststart(video: &EncodedVideo, fps: u32) -> VideoResult<Vec<u8>> {
    mux_with_offsets(video, fps, false)
}

/// `force_co64` writes 64-bit chunk offsets even for a small file (so tests can cover them).
pub(super) fn mux_with_offsets(
    video: &EncodedVideo,
    fps: u32,
    force_co64: bool,
) -> VideoResult<Vec<u8>> {
    let sample_count = u32::try_from(video.sample_sizes.len())
        .map_err(|_| VideoError::InvalidFrames("too many frames".into()))?;
    let timing = Timing {
        timescale: fps
            .checked_mul(1000)
            .ok_or_else(|| VideoError::InvalidSetting("fps too large".into()))?,
        sample_delta: 1000,
        duration: u64::from(sample_count) * 1000,
    };
    let ftyp = ftyp_box()?;
    let mdat_payload = video.sample_data.len() as u64;
    let use_large_mdat = mdat_payload + 8 > u64::from(u32::MAX);
    let mdat_header_len: u64 = if use_large_mdat { 16 } else { 8 };

    // First pass with placeholder offsets to learn the size of `moov`; 64-bit offsets only
    // when the last sample would end beyond 4 GiB.
    let placeholder = vec![0_u64; video.sample_sizes.len()];
    let data_start_with = |use_co64: bool| -> VideoResult<u64> {
        let moov_len = moov_box(video, timing, &placeholder, use_co64)?.len() as u64;
        Ok(ftyp.len() as u64 + moov_len + mdat_header_len)
    };
    let mut use_co64 = force_co64;
    let mut data_start = data_start_with(use_co64)?;
    if !use_co64 && data_start + mdat_payload > u64::from(u32::MAX) {
        use_co64 = true;
        data_start = data_start_with(true)?;
    }
    let offsets = chunk_offsets(data_start, &video.sample_sizes);
    let moov = moov_box(video, timing, &offsets, use_co64)?;

    let total = ftyp.len() + moov.len() + mdat_header_len as usize + video.sample_data.len();
    let mut file = Vec::with_capacity(total);
    file.extend_from_slice(&ftyp);
    file.extend_from_slice(&moov);
    if use_large_mdat {
        file.extend_from_slice(&1_u32.to_be_bytes());
        file.extend_from_slice(b"mdat");
        file.extend_from_slice(&(mdat_payload + 16).to_be_bytes());
    } else {
        let size =
            u32::try_from(mdat_payload + 8).map_err(|e| VideoError::Encoder(e.to_string()))?;
        file.extend_from_slice(&size.to_be_bytes());
        file.extend_from_slice(b"mdat");
    }
    file.extend_from_slice(&video.sample_data);
    Ok(file)
}

/// One sample per chunk: offsets are the running sum of sample sizes after `data_start`.
fn chunk_offsets(data_start: u64, sizes: &[u32]) -> Vec<u64> {
    let mut next = data_start;
    sizes
        .iter()
        .map(|&size| {
            let offset = next;
            next += u64::from(size);
            offset
        })
        .collect()
}

fn ftyp_box() -> VideoResult<Vec<u8>> {
    let mut w = BoxWriter::default();
    let ftyp = w.open(b"ftyp");
    w.raw(b"isom");
    w.u32(0x200);
    for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
        w.raw(brand);
    }
    w.close(ftyp)?;
    Ok(w.bytes)
}

const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn write_matrix(w: &mut BoxWriter) {
    for value in UNITY_MATRIX {
        w.u32(value);
    }
}

fn moov_box(
    video: &EncodedVideo,
    timing: Timing,
    offsets: &[u64],
    use_co64: bool,
) -> VideoResult<Vec<u8>> {
    let duration = u32::try_from(timing.duration)
        .map_err(|_| VideoError::InvalidFrames("video too long for a 32-bit duration".into()))?;
    let mut w = BoxWriter::default();
    let moov = w.open(b"moov");

    // Creation and modification times stay 0 so the same input gives the same bytes.
    let mvhd = w.open_full(b"mvhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(timing.timescale);
    w.u32(duration);
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(10);
    write_matrix(&mut w);
    w.zeros(24); // pre_defined
    w.u32(2); // next_track_ID
    w.close(mvhd)?;

    let trak = w.open(b"trak");
    let tkhd = w.open_full(b"tkhd", 0, 0x3); // enabled | in movie
    w.u32(0);
    w.u32(0);
    w.u32(1); // track_ID
    w.u32(0);
    w.u32(duration); // in the movie timescale, which equals the media timescale here
    w.zeros(8);
    w.u16(0); // layer
    w.u16(0); // alternate_group
    w.u16(0); // volume: 0 for video
    w.u16(0);
    write_matrix(&mut w);
    w.u32(u32::from(video.width) << 16);
    w.u32(u32::from(video.height) << 16);
    w.close(tkhd)?;

    let mdia = w.open(b"mdia");
    let mdhd = w.open_full(b"mdhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(timing.timescale);
    w.u32(duration);
    w.u16(0x55c4); // language "und"
    w.u16(0);
    w.close(mdhd)?;
    let hdlr = w.open_full(b"hdlr", 0, 0);
    w.u32(0);
    w.raw(b"vide");
    w.zeros(12);
    w.raw(b"VideoHandler\0");
    w.close(hdlr)?;

    let minf = w.open(b"minf");
    let vmhd = w.open_full(b"vmhd", 0, 1);
    w.zeros(8); // graphicsmode, opcolor
    w.close(vmhd)?;
    let dinf = w.open(b"dinf");
    let dref = w.open_full(b"dref", 0, 0);
    w.u32(1);
    let url = w.open_full(b"url ", 0, 1); // flag 1: media is in this file
    w.close(url)?;
    w.close(dref)?;
    w.close(dinf)?;
    write_stbl(&mut w, video, timing, offsets, use_co64)?;
    w.close(minf)?;
    w.close(mdia)?;
    w.close(trak)?;
    w.close(moov)?;
    Ok(w.bytes)
}

fn write_stbl(
    w: &mut BoxWriter,
    video: &EncodedVideo,
    timing: Timing,
    offsets: &[u64],
    use_co64: bool,
) -> VideoResult<()> {
    let count =
        u32::try_from(video.sample_sizes.len()).map_err(|e| VideoError::Encoder(e.to_string()))?;
    let stbl = w.open(b"stbl");
    write_stsd(w, video)?;

    let stts = w.open_full(b"stts", 0, 0);
    w.u32(1);
    w.u32(count);
    w.u32(timing.sample_delta);
    w.close(stts)?;

    let sync: Vec<u32> = (1..=count)
        .zip(&video.sample_is_sync)
        .filter(|(_, &s)| s)
        .map(|(n, _)| n)
        .collect();
    let stss = w.open_full(b"stss", 0, 0);
    w.u32(u32::try_from(sync.len()).map_err(|e| VideoError::Encoder(e.to_string()))?);
    sync.iter().for_each(|&n| w.u32(n));
    w.close(stss)?;

    let stsc = w.open_full(b"stsc", 0, 0);
    w.u32(1);
    w.u32(1); // first_chunk
    w.u32(1); // samples_per_chunk
    w.u32(1); // sample_description_index
    w.close(stsc)?;

    let stsz = w.open_full(b"stsz", 0, 0);
    w.u32(0); // sizes differ: one entry each
    w.u32(count);
    video.sample_sizes.iter().for_each(|&size| w.u32(size));
    w.close(stsz)?;

    if use_co64 {
        let co64 = w.open_full(b"co64", 0, 0);
        w.u32(count);
        offsets.iter().for_each(|&offset| w.u64(offset));
        w.close(co64)?;
    } else {
        let stco = w.open_full(b"stco", 0, 0);
        w.u32(count);
        for &offset in offsets {
            w.u32(u32::try_from(offset).map_err(|e| VideoError::Encoder(e.to_string()))?);
        }
        w.close(stco)?;
    }
    w.close(stbl)
}

fn write_stsd(w: &mut BoxWriter, video: &EncodedVideo) -> VideoResult<()> {
    let stsd = w.open_full(b"stsd", 0, 0);
    w.u32(1);
    let avc1 = w.open(b"avc1");
    w.zeros(6);
    w.u16(1); // data_reference_index
    w.zeros(16); // pre_defined and reserved
    w.u16(video.width);
    w.u16(video.height);
    w.u32(0x0048_0000); // 72 dpi
    w.u32(0x0048_0000);
    w.u32(0);
    w.u16(1); // frame_count
    let mut compressor = [0_u8; 32];
    let name = b"OpenH264";
    compressor[0] = name.len() as u8;
    compressor[1..=name.len()].copy_from_slice(name);
    w.raw(&compressor);
    w.u16(0x0018); // depth: colour, no alpha
    w.u16(0xffff); // pre_defined = -1

    let avcc = w.open(b"avcC");
    w.u8(1); // configurationVersion
    w.raw(&video.sps[1..4]); // profile, compatibility, level straight from the SPS
    w.u8(0xff); // 4-byte NAL lengths
    w.u8(0xe1); // one SPS
    write_parameter_set(w, &video.sps)?;
    w.u8(1); // one PPS
    write_parameter_set(w, &video.pps)?;
    if HIGH_PROFILES.contains(&video.sps[1]) {
        // 4:2:0 and 8-bit luma/chroma, no SPS extensions (ISO/IEC 14496-15 5.3.3.1.2).
        w.raw(&[0xfc | 1, 0xf8, 0xf8, 0]);
    }
    w.close(avcc)?;

    // Same colour description as the SPS VUI: BT.601 (SMPTE 170M), limited range.
    let colr = w.open(b"colr");
    w.raw(b"nclx");
    w.u16(6);
    w.u16(6);
    w.u16(6);
    w.u8(0);
    w.close(colr)?;

    w.close(avc1)?;
    w.close(stsd)
}

/// Profiles whose `avcC` carries the chroma format and bit depth fields.
const HIGH_PROFILES: [u8; 4] = [100, 110, 122, 144];

fn write_parameter_set(w: &mut BoxWriter, nal: &[u8]) -> VideoResult<()> {
    w.u16(u16::try_from(nal.len()).map_err(|e| VideoError::Encoder(e.to_string()))?);
    w.raw(nal);
    Ok(())
}
