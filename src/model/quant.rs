//! GGML tensor encodings and their dequantisation to f32: F32, F16, BF16 and the block
//! formats Q4_0, Q5_0, Q8_0 (32 values per block) and Q4_K, Q5_K, Q6_K (256 values per
//! super-block), as GGUF files store them. Written from the format's description; checked
//! against the reference dequantiser of the `gguf` Python package (tests/fixtures/gguf/).

/// A tensor's encoding (the GGML type number in a GGUF file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    F32,
    F16,
    BF16,
    Q4_0,
    Q5_0,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl Encoding {
    /// The encoding of GGML type `id`, or `None` for types synthpipe cannot read.
    pub fn from_ggml(id: u32) -> Option<Encoding> {
        Some(match id {
            0 => Encoding::F32,
            1 => Encoding::F16,
            2 => Encoding::Q4_0,
            6 => Encoding::Q5_0,
            8 => Encoding::Q8_0,
            12 => Encoding::Q4K,
            13 => Encoding::Q5K,
            14 => Encoding::Q6K,
            30 => Encoding::BF16,
            _ => return None,
        })
    }

    /// GGML's name of a type number, for messages (also for types that cannot be read).
    pub fn ggml_name(id: u32) -> String {
        let known = [
            "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
            "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
            "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
            "BF16",
        ];
        known
            .get(id as usize)
            .map_or_else(|| format!("type {id}"), |s| s.to_string())
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::F32 => "F32",
            Encoding::F16 => "F16",
            Encoding::BF16 => "BF16",
            Encoding::Q4_0 => "Q4_0",
            Encoding::Q5_0 => "Q5_0",
            Encoding::Q8_0 => "Q8_0",
            Encoding::Q4K => "Q4_K",
            Encoding::Q5K => "Q5_K",
            Encoding::Q6K => "Q6_K",
        }
    }

    /// Values per block and bytes per block.
    pub fn block(self) -> (usize, usize) {
        match self {
            Encoding::F32 => (1, 4),
            Encoding::F16 | Encoding::BF16 => (1, 2),
            Encoding::Q4_0 => (32, 18),
            Encoding::Q5_0 => (32, 22),
            Encoding::Q8_0 => (32, 34),
            Encoding::Q4K => (256, 144),
            Encoding::Q5K => (256, 176),
            Encoding::Q6K => (256, 210),
        }
    }

    /// Bytes that `n` values take, or `None` if `n` is not a whole number of blocks.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let (per, bytes) = self.block();
        n.is_multiple_of(per as u64)
            .then(|| n / per as u64 * bytes as u64)
    }
}

/// IEEE half precision to f32 (exact: every f16 is an f32).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: renormalise the fraction.
            let shift = f.leading_zeros() - 21;
            let f = (f << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (f << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

fn half(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Dequantises `bytes` (whole blocks of `enc`) into `out`, one value per slot; `out.len()`
/// must be the number of values the bytes hold.
pub fn dequantize(enc: Encoding, bytes: &[u8], out: &mut [f32]) {
    let (per, size) = enc.block();
    debug_assert_eq!(bytes.len() / size * per, out.len());
    for (block, y) in bytes.chunks_exact(size).zip(out.chunks_exact_mut(per)) {
        match enc {
            Encoding::F32 => y[0] = f32::from_le_bytes([block[0], block[1], block[2], block[3]]),
            Encoding::F16 => y[0] = half(block, 0),
            Encoding::BF16 => y[0] = bf16_to_f32(u16::from_le_bytes([block[0], block[1]])),
            Encoding::Q4_0 => q4_0(block, y),
            Encoding::Q5_0 => q5_0(block, y),
            Encoding::Q8_0 => q8_0(block, y),
            Encoding::Q4K => q4_k(block, y),
            Encoding::Q5K => q5_k(block, y),
            Encoding::Q6K => q6_k(block, y),
        }
    }
}

/// 32 values: a scale, then 16 bytes of 4-bit values offset by 8 (low nibbles are the first
/// half of the block, high nibbles the second).
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = half(b, 0);
    for (j, &q) in b[2..18].iter().enumerate() {
        y[j] = (f32::from(q & 0x0f) - 8.0) * d;
        y[j + 16] = (f32::from(q >> 4) - 8.0) * d;
    }
}

/// As Q4_0 with a fifth bit per value in a 32-bit mask, offset by 16.
fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = half(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for (j, &q) in b[6..22].iter().enumerate() {
        let hi0 = ((qh >> j) & 1) << 4;
        let hi1 = ((qh >> (j + 16)) & 1) << 4;
        y[j] = ((u32::from(q & 0x0f) | hi0) as f32 - 16.0) * d;
        y[j + 16] = ((u32::from(q >> 4) | hi1) as f32 - 16.0) * d;
    }
}

/// A scale and 32 signed bytes.
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = half(b, 0);
    for (j, &q) in b[2..34].iter().enumerate() {
        y[j] = f32::from(q as i8) * d;
    }
}

/// The 6-bit scale and minimum of sub-block `j` (0..8) packed into 12 bytes.
pub(crate) fn scale_min(j: usize, s: &[u8]) -> (f32, f32) {
    let (sc, m) = if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    };
    (f32::from(sc), f32::from(m))
}

/// 256 values in 8 sub-blocks of 32, each with a 6-bit scale and minimum relative to the
/// super-block's `d` and `dmin`; 4-bit values, two sub-blocks per 32 bytes.
fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (half(b, 0), half(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for pair in 0..4 {
        let (s1, m1) = scale_min(2 * pair, scales);
        let (s2, m2) = scale_min(2 * pair + 1, scales);
        let q = &qs[32 * pair..32 * pair + 32];
        let out = &mut y[64 * pair..64 * pair + 64];
        for l in 0..32 {
            out[l] = d * s1 * f32::from(q[l] & 0x0f) - dmin * m1;
            out[l + 32] = d * s2 * f32::from(q[l] >> 4) - dmin * m2;
        }
    }
}

/// As Q4_K with a fifth bit per value (32 bytes of high bits, two bits per sub-block pair).
fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (half(b, 0), half(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for pair in 0..4 {
        let (s1, m1) = scale_min(2 * pair, scales);
        let (s2, m2) = scale_min(2 * pair + 1, scales);
        let q = &qs[32 * pair..32 * pair + 32];
        let (u1, u2) = (1u8 << (2 * pair), 2u8 << (2 * pair));
        let out = &mut y[64 * pair..64 * pair + 64];
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16.0 } else { 0.0 };
            let h2 = if qh[l] & u2 != 0 { 16.0 } else { 0.0 };
            out[l] = d * s1 * (f32::from(q[l] & 0x0f) + h1) - dmin * m1;
            out[l + 32] = d * s2 * (f32::from(q[l] >> 4) + h2) - dmin * m2;
        }
    }
}

/// 256 values of 6 bits (4 low bits in `ql`, 2 high bits in `qh`) offset by 32, with a signed
/// 8-bit scale per 16 values and one f16 `d`.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let ql = &b[0..128];
    let qh = &b[128..192];
    let sc = &b[192..208];
    let d = half(b, 208);
    for half_block in 0..2 {
        let ql = &ql[64 * half_block..];
        let qh = &qh[32 * half_block..];
        let sc = &sc[8 * half_block..];
        let out = &mut y[128 * half_block..128 * half_block + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = i32::from((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
            let q2 = i32::from((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            let s = |k: usize| f32::from(sc[is + k] as i8);
            out[l] = d * s(0) * q1 as f32;
            out[l + 32] = d * s(2) * q2 as f32;
            out[l + 64] = d * s(4) * q3 as f32;
            out[l + 96] = d * s(6) * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
    }

    #[test]
    fn q8_0_is_scale_times_byte() {
        let mut b = vec![0u8; 34];
        b[0..2].copy_from_slice(&0x3800u16.to_le_bytes()); // 0.5
        for j in 0..32 {
            b[2 + j] = (j as i8 - 16) as u8;
        }
        let mut y = vec![0.0; 32];
        dequantize(Encoding::Q8_0, &b, &mut y);
        assert_eq!(y[0], -8.0);
        assert_eq!(y[31], 7.5);
    }
}
