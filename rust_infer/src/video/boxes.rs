//! Bounds-checked reading of untrusted ISO-BMFF (MP4) boxes. Every read returns an error
//! instead of panicking, whatever the input.

use super::error::{invalid_mp4, VideoResult};

/// A cursor over a byte slice.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn take(&mut self, count: usize) -> VideoResult<&'a [u8]> {
        if count > self.remaining() {
            return Err(invalid_mp4("box ends early"));
        }
        let slice = &self.data[self.pos..self.pos + count];
        self.pos += count;
        Ok(slice)
    }

    pub fn skip(&mut self, count: usize) -> VideoResult<()> {
        self.take(count).map(|_| ())
    }

    pub fn u8(&mut self) -> VideoResult<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> VideoResult<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> VideoResult<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> VideoResult<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn fourcc(&mut self) -> VideoResult<[u8; 4]> {
        self.array()
    }

    fn array<const N: usize>(&mut self) -> VideoResult<[u8; N]> {
        let mut out = [0_u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads a full box's version byte and skips its 24-bit flags.
    pub fn version(&mut self) -> VideoResult<u8> {
        let version = self.u8()?;
        self.skip(3)?;
        Ok(version)
    }

    /// Fails unless `count` table entries of `entry_len` bytes fit in what is left, so a
    /// forged entry count cannot make a loop run long.
    pub fn expect_entries(&mut self, count: u32, entry_len: usize) -> VideoResult<()> {
        let needed = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .saturating_mul(entry_len);
        if needed > self.remaining() {
            return Err(invalid_mp4(format!(
                "table of {count} entries does not fit in its box"
            )));
        }
        Ok(())
    }
}

/// One box: its type, where it starts within its container (for top-level boxes: in the
/// file) and its payload (after the header).
#[derive(Clone, Copy, Debug)]
pub struct Mp4Box<'a> {
    pub fourcc: [u8; 4],
    pub offset: usize,
    pub payload: &'a [u8],
}

/// The boxes directly inside `data`.
pub fn child_boxes(data: &[u8]) -> VideoResult<Vec<Mp4Box<'_>>> {
    let mut reader = Reader::new(data);
    let mut boxes = Vec::new();
    while reader.remaining() > 0 {
        let start = reader.pos;
        let size32 = reader.u32()?;
        let fourcc = reader.fourcc()?;
        let size = match size32 {
            0 => (data.len() - start) as u64, // extends to the end of its container
            1 => reader.u64()?,
            other => u64::from(other),
        };
        let header_len = (reader.pos - start) as u64;
        if size < header_len {
            return Err(invalid_mp4(format!(
                "box {} has size {size}",
                fourcc_text(fourcc)
            )));
        }
        let payload_len = usize::try_from(size - header_len).unwrap_or(usize::MAX);
        let payload = reader
            .take(payload_len)
            .map_err(|_| invalid_mp4(format!("box {} is truncated", fourcc_text(fourcc))))?;
        boxes.push(Mp4Box {
            fourcc,
            offset: start,
            payload,
        });
    }
    Ok(boxes)
}

/// The only child of type `fourcc`; missing or repeated is an error.
pub fn single_child<'a>(parent: &Mp4Box<'a>, fourcc: &[u8; 4]) -> VideoResult<Mp4Box<'a>> {
    let mut matches = child_boxes(parent.payload)?
        .into_iter()
        .filter(|child| &child.fourcc == fourcc);
    let found = matches.next().ok_or_else(|| {
        invalid_mp4(format!(
            "{} has no {}",
            fourcc_text(parent.fourcc),
            fourcc_text(*fourcc)
        ))
    })?;
    if matches.next().is_some() {
        return Err(invalid_mp4(format!(
            "{} has more than one {}",
            fourcc_text(parent.fourcc),
            fourcc_text(*fourcc)
        )));
    }
    Ok(found)
}

/// Optional child: `None` when absent.
pub fn optional_child<'a>(
    parent: &Mp4Box<'a>,
    fourcc: &[u8; 4],
) -> VideoResult<Option<Mp4Box<'a>>> {
    Ok(child_boxes(parent.payload)?
        .into_iter()
        .find(|child| &child.fourcc == fourcc))
}

/// Printable form of a box type, for messages and the probe's `codec`.
pub fn fourcc_text(fourcc: [u8; 4]) -> String {
    fourcc
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}
