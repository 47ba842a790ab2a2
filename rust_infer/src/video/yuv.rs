//! RGB24 to I420 (YUV 4:2:0, 8-bit) with BT.601 limited-range coefficients.
//!
//! BT.601 limited range is what browsers and FFmpeg assume for untagged SD/HD H.264, and the
//! encoder's VUI and the MP4 `colr` box state it explicitly, so every player agrees.
//! Fixed-point with 16 fractional bits; chroma is the rounded mean of each 2x2 block.

/// Y coefficients: 219/255 * (0.299, 0.587, 0.114), scaled by 2^16.
const Y_COEFFS: [i32; 3] = [16_829, 33_039, 6_416];
/// Cb coefficients: 224/255 * (-0.168736, -0.331264, 0.5), scaled by 2^16, summing to 0.
const CB_COEFFS: [i32; 3] = [-9_714, -19_070, 28_784];
/// Cr coefficients: 224/255 * (0.5, -0.418688, -0.081312), scaled by 2^16, summing to 0.
const CR_COEFFS: [i32; 3] = [28_784, -24_103, -4_681];

/// Planes of one I420 picture, reused from frame to frame.
pub struct I420Frame {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl I420Frame {
    /// Planes for an even-sized picture; callers validate the size first.
    pub fn new(width: usize, height: usize) -> Self {
        let chroma_len = (width / 2) * (height / 2);
        Self {
            width,
            height,
            y: vec![0; width * height],
            u: vec![0; chroma_len],
            v: vec![0; chroma_len],
        }
    }

    /// Converts one packed RGB24 picture of this frame's size (row-major, no padding).
    pub fn fill_from_rgb(&mut self, rgb: &[u8]) {
        let width = self.width;
        debug_assert_eq!(rgb.len(), width * self.height * 3);
        for (rgb_row, y_row) in rgb
            .chunks_exact(width * 3)
            .zip(self.y.chunks_exact_mut(width))
        {
            for (pixel, luma) in rgb_row.chunks_exact(3).zip(y_row.iter_mut()) {
                *luma = luma_of(pixel);
            }
        }
        let chroma_width = width / 2;
        for (pair_index, rgb_pair) in rgb.chunks_exact(width * 6).enumerate() {
            let (top, bottom) = rgb_pair.split_at(width * 3);
            let start = pair_index * chroma_width;
            let u_row = &mut self.u[start..start + chroma_width];
            let v_row = &mut self.v[start..start + chroma_width];
            for (column, (u_out, v_out)) in u_row.iter_mut().zip(v_row.iter_mut()).enumerate() {
                let at = column * 6;
                let mut sums = [0_i32; 3];
                for (channel, sum) in sums.iter_mut().enumerate() {
                    *sum = i32::from(top[at + channel])
                        + i32::from(top[at + 3 + channel])
                        + i32::from(bottom[at + channel])
                        + i32::from(bottom[at + 3 + channel]);
                }
                *u_out = chroma_of(sums, CB_COEFFS);
                *v_out = chroma_of(sums, CR_COEFFS);
            }
        }
    }
}

fn luma_of(pixel: &[u8]) -> u8 {
    let weighted = Y_COEFFS[0] * i32::from(pixel[0])
        + Y_COEFFS[1] * i32::from(pixel[1])
        + Y_COEFFS[2] * i32::from(pixel[2]);
    // 16 << 16 is the limited-range offset; + 2^15 rounds to nearest. The result is 16..=235.
    clamp_to_u8((weighted + (16 << 16) + (1 << 15)) >> 16)
}

/// `sums` are the four-pixel sums of R, G, B (so two extra bits of scale).
fn chroma_of(sums: [i32; 3], coeffs: [i32; 3]) -> u8 {
    let weighted = coeffs[0] * sums[0] + coeffs[1] * sums[1] + coeffs[2] * sums[2];
    clamp_to_u8((weighted + (128 << 18) + (1 << 17)) >> 18)
}

fn clamp_to_u8(value: i32) -> u8 {
    u8::try_from(value.clamp(0, 255)).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(width: usize, height: usize, rgb: &[u8]) -> I420Frame {
        let mut frame = I420Frame::new(width, height);
        frame.fill_from_rgb(rgb);
        frame
    }

    #[test]
    fn black_and_white_map_to_limited_range_ends() {
        let black = convert(2, 2, &[0; 12]);
        assert_eq!(
            (black.y, black.u, black.v),
            (vec![16; 4], vec![128], vec![128])
        );
        let white = convert(2, 2, &[255; 12]);
        assert_eq!(
            (white.y, white.u, white.v),
            (vec![235; 4], vec![128], vec![128])
        );
    }

    #[test]
    fn primaries_match_bt601_reference_values() {
        // 16 + 219 * Y and 128 + 224 * C from the BT.601 matrix, rounded to nearest.
        let red = convert(2, 2, &[255, 0, 0].repeat(4));
        assert_eq!((red.y[0], red.u[0], red.v[0]), (81, 90, 240));
        let green = convert(2, 2, &[0, 255, 0].repeat(4));
        assert_eq!((green.y[0], green.u[0], green.v[0]), (145, 54, 34));
        let blue = convert(2, 2, &[0, 0, 255].repeat(4));
        assert_eq!((blue.y[0], blue.u[0], blue.v[0]), (41, 240, 110));
    }

    #[test]
    fn chroma_is_the_mean_of_each_two_by_two_block() {
        // Left block red, right block blue, in a 4x2 picture.
        let mut rgb = Vec::new();
        for _ in 0..2 {
            rgb.extend_from_slice(&[255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255]);
        }
        let frame = convert(4, 2, &rgb);
        assert_eq!(frame.u, vec![90, 240]);
        assert_eq!(frame.v, vec![240, 110]);
        assert_eq!(frame.y, vec![81, 81, 41, 41, 81, 81, 41, 41]);
    }
}
