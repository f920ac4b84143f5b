//! Projections kept in their GGUF blocks for the few-row products of decoding: 8-bit integers
//! with a scale (and minimum) per block, the same values as the f32 weights in a third of
//! the bytes.
//!
//! Decoding one token reads every weight once, so its speed is the memory's: with f32
//! weights 2 GB per token of a 0.5B model. A block-quantised GGUF holds each weight as a small
//! integer `q` with a block scale `s` (and, in the K formats, a minimum `m`), and its f32
//! value is `q·s − m`, computed in f32 exactly as the dequantiser does. Kept as an `i8` per
//! weight and an f32 scale per 16 or 32, a product reads 1.25–1.5 bytes per weight and
//! rebuilds each weight in a register, bit for bit the f32 weight, before it is multiplied:
//! only the order of the sums differs from the f32 product.

use std::collections::HashMap;
use std::sync::Arc;

use burn::module::ParamId;
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::quant::{Encoding, f16_to_f32};
use super::simd::Isa;

/// A weight `[out, in]` (GGUF's row order: one row per output) as block integers.
#[derive(Clone)]
pub struct Packed {
    out: usize,
    inp: usize,
    /// Values per block (16 or 32).
    block: usize,
    /// `[out, in]`.
    q: Vec<i8>,
    /// `[out, in / block]`.
    scale: Vec<f32>,
    /// `[out, in / block]`; empty for formats without a minimum.
    min: Vec<f32>,
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Packed[{}, {}] / {}", self.out, self.inp, self.block)
    }
}

/// The packed weights of a model by the parameter they mirror.
pub type Packs = Arc<HashMap<ParamId, Packed>>;

/// Weights sampled to check that a parameter still holds the values it was packed from (a
/// full fine-tuning step keeps the parameter's id but moves every weight).
const PROBES: usize = 32;

impl Packed {
    /// The blocks of a `[out, in]` tensor stored as `enc`, if that is a block format whose
    /// values are integers times a block scale (minus a block minimum) and every rebuilt
    /// value equals `values` (the dequantiser's output) bit for bit; `None` otherwise.
    pub fn from_blocks(
        enc: Encoding,
        raw: &[u8],
        out: usize,
        inp: usize,
        values: &[f32],
    ) -> Option<Packed> {
        let (per, size) = enc.block();
        let block = match enc {
            Encoding::Q6K => 16,
            Encoding::Q4_0 | Encoding::Q5_0 | Encoding::Q8_0 | Encoding::Q4K | Encoding::Q5K => 32,
            Encoding::F32 | Encoding::F16 | Encoding::BF16 => return None,
        };
        let n = out * inp;
        if !inp.is_multiple_of(per) || raw.len() != n / per * size || values.len() != n {
            return None;
        }
        let with_min = matches!(enc, Encoding::Q4K | Encoding::Q5K);
        let mut p = Packed {
            out,
            inp,
            block,
            q: vec![0; n],
            scale: vec![0.0; n / block],
            min: if with_min {
                vec![0.0; n / block]
            } else {
                Vec::new()
            },
        };
        let blocks = per / block;
        for (i, b) in raw.chunks_exact(size).enumerate() {
            let q = &mut p.q[i * per..(i + 1) * per];
            let s = &mut p.scale[i * blocks..(i + 1) * blocks];
            let m = if with_min {
                &mut p.min[i * blocks..(i + 1) * blocks]
            } else {
                &mut []
            };
            unpack(enc, b, q, s, m);
        }
        let exact = values
            .chunks_exact(block)
            .zip(p.q.chunks_exact(block))
            .enumerate()
            .all(|(b, (v, q))| {
                let (s, m) = (p.scale[b], p.min.get(b).copied());
                v.iter().zip(q).all(|(&v, &q)| {
                    let w = f32::from(q) * s;
                    m.map_or(w, |m| w - m).to_bits() == v.to_bits()
                })
            });
        exact.then_some(p)
    }

    /// The f32 value of weight `i` (row-major `[out, in]`), as the dequantiser computes it.
    fn value(&self, i: usize) -> f32 {
        let b = i / self.block;
        let w = f32::from(self.q[i]) * self.scale[b];
        if self.min.is_empty() {
            w
        } else {
            w - self.min[b]
        }
    }

    pub fn dims(&self) -> [usize; 2] {
        [self.out, self.inp]
    }

    /// The same weight with its rows reordered: row `r` is this one's row `order[r]`.
    pub fn rows_in_order(&self, order: &[usize]) -> Packed {
        let nb = self.inp / self.block;
        let mut p = self.clone();
        for (dst, &src) in order.iter().enumerate() {
            p.q[dst * self.inp..(dst + 1) * self.inp]
                .copy_from_slice(&self.q[src * self.inp..(src + 1) * self.inp]);
            p.scale[dst * nb..(dst + 1) * nb]
                .copy_from_slice(&self.scale[src * nb..(src + 1) * nb]);
            if !self.min.is_empty() {
                p.min[dst * nb..(dst + 1) * nb]
                    .copy_from_slice(&self.min[src * nb..(src + 1) * nb]);
            }
        }
        p
    }

    /// Whether `w` still holds the packed values at [`PROBES`] spread positions. `w` is
    /// `[in, out]` (a projection, `transposed`) or `[out, in]` (the embedding as output head).
    pub fn mirrors(&self, w: &[f32], transposed: bool) -> bool {
        let n = self.out * self.inp;
        if w.len() != n {
            return false;
        }
        (0..PROBES).all(|k| {
            // The first and last weights and a stride that is not a multiple of a row.
            let i = if k + 1 == PROBES {
                n - 1
            } else {
                (k * (n / PROBES + 7)) % n
            };
            let (o, c) = (i / self.inp, i % self.inp);
            let at = if transposed { c * self.out + o } else { i };
            w[at].to_bits() == self.value(i).to_bits()
        })
    }

    /// `x · wᵀ` for `x: [rows, in]` (row-major): `[rows, out]`, or `None` where this CPU has
    /// neither AVX-512 nor AVX2 with FMA. Every output is one row's dot product summed in a
    /// fixed order, so a row's result depends neither on the other rows nor on the threads.
    pub fn matmul(&self, x: &[f32], rows: usize) -> Option<Vec<f32>> {
        self.matmul_on(Isa::detect()?, x, rows)
    }

    fn matmul_on(&self, isa: Isa, x: &[f32], rows: usize) -> Option<Vec<f32>> {
        if x.len() != rows * self.inp {
            return None;
        }
        let parts: Vec<Vec<f32>> = (0..self.out.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let outs = c * CHUNK..((c + 1) * CHUNK).min(self.out);
                let mut y = vec![0.0f32; rows * outs.len()];
                for r0 in (0..rows).step_by(GROUP) {
                    let r1 = (r0 + GROUP).min(rows);
                    let width = outs.len();
                    run(
                        isa,
                        Task {
                            p: self,
                            x: &x[r0 * self.inp..r1 * self.inp],
                            outs: outs.clone(),
                            y: &mut y[r0 * width..r1 * width],
                        },
                    );
                }
                y
            })
            .collect();
        let mut y = vec![0.0f32; rows * self.out];
        for (c, part) in parts.iter().enumerate() {
            let c0 = c * CHUNK;
            let width = part.len() / rows;
            for (r, src) in part.chunks_exact(width).enumerate() {
                y[r * self.out + c0..r * self.out + c0 + width].copy_from_slice(src);
            }
        }
        Some(y)
    }
}

/// One block of `enc` as integers `q`, scales `s` and minimums `m` (one per 16 or 32 values;
/// `m` empty where the format has none), so that value `j` is `q[j]·s[j / block] − m[..]`
/// exactly as [`super::quant::dequantize`] computes it.
fn unpack(enc: Encoding, b: &[u8], q: &mut [i8], s: &mut [f32], m: &mut [f32]) {
    let half = |at: usize| f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]));
    // Every value below fits an i8: at most 6 bits, or a signed byte for Q8_0.
    let small = |v: i32| v as i8;
    match enc {
        Encoding::Q4_0 => {
            s[0] = half(0);
            for (j, &v) in b[2..18].iter().enumerate() {
                q[j] = small(i32::from(v & 0x0f) - 8);
                q[j + 16] = small(i32::from(v >> 4) - 8);
            }
        }
        Encoding::Q5_0 => {
            s[0] = half(0);
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            for (j, &v) in b[6..22].iter().enumerate() {
                let hi0 = (((qh >> j) & 1) << 4) as i32;
                let hi1 = (((qh >> (j + 16)) & 1) << 4) as i32;
                q[j] = small((i32::from(v & 0x0f) | hi0) - 16);
                q[j + 16] = small((i32::from(v >> 4) | hi1) - 16);
            }
        }
        Encoding::Q8_0 => {
            s[0] = half(0);
            for (j, &v) in b[2..34].iter().enumerate() {
                q[j] = v as i8;
            }
        }
        Encoding::Q4K | Encoding::Q5K => {
            let (d, dmin) = (half(0), half(2));
            let scales = &b[4..16];
            let (qh, qs): (&[u8], &[u8]) = if enc == Encoding::Q5K {
                (&b[16..48], &b[48..176])
            } else {
                (&[], &b[16..144])
            };
            for pair in 0..4 {
                for k in 0..2 {
                    let j = 2 * pair + k;
                    let (sc, mn) = super::quant::scale_min(j, scales);
                    s[j] = d * sc;
                    m[j] = dmin * mn;
                }
                let bits = &qs[32 * pair..32 * pair + 32];
                for l in 0..32 {
                    let (mut lo, mut hi) = (i32::from(bits[l] & 0x0f), i32::from(bits[l] >> 4));
                    if !qh.is_empty() {
                        lo |= i32::from((qh[l] >> (2 * pair)) & 1) << 4;
                        hi |= i32::from((qh[l] >> (2 * pair + 1)) & 1) << 4;
                    }
                    q[64 * pair + l] = small(lo);
                    q[64 * pair + l + 32] = small(hi);
                }
            }
        }
        Encoding::Q6K => {
            let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
            let d = half(208);
            for (j, &v) in sc.iter().enumerate() {
                s[j] = d * f32::from(v as i8);
            }
            for hb in 0..2 {
                let (ql, qh) = (&ql[64 * hb..], &qh[32 * hb..]);
                let q = &mut q[128 * hb..128 * hb + 128];
                for l in 0..32 {
                    let six = |low: u8, high: u8| small(i32::from(low | (high << 4)) - 32);
                    q[l] = six(ql[l] & 0x0f, qh[l] & 3);
                    q[l + 32] = six(ql[l + 32] & 0x0f, (qh[l] >> 2) & 3);
                    q[l + 64] = six(ql[l] >> 4, (qh[l] >> 4) & 3);
                    q[l + 96] = six(ql[l + 32] >> 4, (qh[l] >> 6) & 3);
                }
            }
        }
        Encoding::F32 | Encoding::F16 | Encoding::BF16 => {}
    }
}

/// Output rows per parallel task.
const CHUNK: usize = 64;
/// Input rows multiplied with each rebuilt weight.
const GROUP: usize = 8;

/// The vector operations the kernel needs, for AVX-512 (16 lanes) and AVX2 (8 lanes).
trait Lanes: Copy {
    const N: usize;
    type F: Copy;
    fn splat(self, v: f32) -> Self::F;
    /// `N` integers as floats.
    fn widen(self, q: &[i8]) -> Self::F;
    fn load(self, x: &[f32]) -> Self::F;
    fn mul(self, a: Self::F, b: Self::F) -> Self::F;
    fn sub(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a·b + c`.
    fn fma(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    fn sum(self, a: Self::F) -> f32;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use pulp::bytemuck::cast;
    use pulp::x86::{V3, V4};
    use pulp::{Simd, f32x8, f32x16, i8x16};

    impl super::Lanes for V4 {
        const N: usize = 16;
        type F = f32x16;
        #[inline(always)]
        fn splat(self, v: f32) -> f32x16 {
            self.splat_f32x16(v)
        }
        #[inline(always)]
        fn widen(self, q: &[i8]) -> f32x16 {
            let a = q.first_chunk::<16>().copied().unwrap_or_default();
            self.convert_i32x16_to_f32x16(self.convert_i8x16_to_i32x16(cast::<_, i8x16>(a)))
        }
        #[inline(always)]
        fn load(self, x: &[f32]) -> f32x16 {
            cast(x.first_chunk::<16>().copied().unwrap_or_default())
        }
        #[inline(always)]
        fn mul(self, a: f32x16, b: f32x16) -> f32x16 {
            self.mul_f32s(a, b)
        }
        #[inline(always)]
        fn sub(self, a: f32x16, b: f32x16) -> f32x16 {
            self.sub_f32s(a, b)
        }
        #[inline(always)]
        fn fma(self, a: f32x16, b: f32x16, c: f32x16) -> f32x16 {
            self.mul_add_f32x16(a, b, c)
        }
        #[inline(always)]
        fn sum(self, a: f32x16) -> f32 {
            self.reduce_sum_f32s(a)
        }
    }

    impl super::Lanes for V3 {
        const N: usize = 8;
        type F = f32x8;
        #[inline(always)]
        fn splat(self, v: f32) -> f32x8 {
            self.splat_f32x8(v)
        }
        #[inline(always)]
        fn widen(self, q: &[i8]) -> f32x8 {
            // The low 8 bytes are the ones widened.
            let mut a = [0i8; 16];
            a[..8].copy_from_slice(q.first_chunk::<8>().unwrap_or(&[0; 8]));
            self.convert_i32x8_to_f32x8(self.convert_i8x16_to_i32x8(cast::<_, i8x16>(a)))
        }
        #[inline(always)]
        fn load(self, x: &[f32]) -> f32x8 {
            cast(x.first_chunk::<8>().copied().unwrap_or_default())
        }
        #[inline(always)]
        fn mul(self, a: f32x8, b: f32x8) -> f32x8 {
            self.mul_f32s(a, b)
        }
        #[inline(always)]
        fn sub(self, a: f32x8, b: f32x8) -> f32x8 {
            self.sub_f32s(a, b)
        }
        #[inline(always)]
        fn fma(self, a: f32x8, b: f32x8, c: f32x8) -> f32x8 {
            self.mul_add_f32s(a, b, c)
        }
        #[inline(always)]
        fn sum(self, a: f32x8) -> f32 {
            self.reduce_sum_f32s(a)
        }
    }
}

/// Runs `task` with the kernel of `isa`'s own vector type, whose operations `Lanes` names.
fn run(isa: Isa, task: Task<'_>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::V4(s) => Simd::vectorize(s, Kernel { isa: s, task }),
        #[cfg(target_arch = "x86_64")]
        Isa::V3(s) => Simd::vectorize(s, Kernel { isa: s, task }),
    }
}

/// Up to [`GROUP`] rows of `x` times the weight's rows `outs`, into `y` (`[rows, outs]`).
struct Task<'a> {
    p: &'a Packed,
    x: &'a [f32],
    outs: std::ops::Range<usize>,
    y: &'a mut [f32],
}

/// A task run inside the instruction set's context (`vectorize` enables its features), with
/// the operations of `isa` rather than the generic ones.
struct Kernel<'a, L> {
    isa: L,
    task: Task<'a>,
}

impl<L: Lanes> WithSimd for Kernel<'_, L> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let t = self.task;
        if t.p.min.is_empty() {
            by_rows::<L, false>(self.isa, t)
        } else {
            by_rows::<L, true>(self.isa, t)
        }
    }
}

#[inline(always)]
fn by_rows<L: Lanes, const MIN: bool>(isa: L, t: Task<'_>) {
    match t.x.len() / t.p.inp {
        // Several output rows at once where few input rows would leave one chain of
        // dependent multiply-adds per register.
        1 => rows::<L, MIN, 1, 4>(isa, t),
        2 => rows::<L, MIN, 2, 4>(isa, t),
        3 => rows::<L, MIN, 3, 2>(isa, t),
        4 => rows::<L, MIN, 4, 2>(isa, t),
        5 => rows::<L, MIN, 5, 1>(isa, t),
        6 => rows::<L, MIN, 6, 1>(isa, t),
        7 => rows::<L, MIN, 7, 1>(isa, t),
        _ => rows::<L, MIN, 8, 1>(isa, t),
    }
}

/// `R` input rows times the task's weight rows, `O` at a time (then one at a time for the
/// rest); `MIN`: the format has block minimums.
#[inline(always)]
fn rows<L: Lanes, const MIN: bool, const R: usize, const O: usize>(isa: L, t: Task<'_>) {
    let Task { p, x, outs, y } = t;
    let width = outs.len();
    let mut o = outs.start;
    while o < outs.end {
        let at = o - outs.start;
        if o + O <= outs.end {
            store(y, width, at, weight_rows::<L, MIN, R, O>(isa, p, x, o));
            o += O;
        } else {
            store(y, width, at, weight_rows::<L, MIN, R, 1>(isa, p, x, o));
            o += 1;
        }
    }
}

/// Sums `[O][R]` of weight rows from column `at` on, into `y` (`[R, width]`).
#[inline(always)]
fn store<const R: usize, const O: usize>(
    y: &mut [f32],
    width: usize,
    at: usize,
    sums: [[f32; R]; O],
) {
    for (k, row) in sums.iter().enumerate() {
        for (r, &v) in row.iter().enumerate() {
            y[r * width + at + k] = v;
        }
    }
}

/// The dot products of `R` input rows with weight rows `o..o + O`, `[O][R]`: each block's
/// weights are rebuilt once (`q·s − m`) and multiplied into all `R` rows, every loop bound a
/// constant so that the `O × R` sums stay in registers.
#[inline(always)]
fn weight_rows<L: Lanes, const MIN: bool, const R: usize, const O: usize>(
    isa: L,
    p: &Packed,
    x: &[f32],
    o: usize,
) -> [[f32; R]; O] {
    let (inp, block) = (p.inp, p.block);
    let nb = inp / block;
    let zero = isa.splat(0.0);
    let q: [&[i8]; O] = std::array::from_fn(|k| &p.q[(o + k) * inp..(o + k + 1) * inp]);
    let scale: [&[f32]; O] = std::array::from_fn(|k| &p.scale[(o + k) * nb..(o + k + 1) * nb]);
    let min: [&[f32]; O] = std::array::from_fn(|k| {
        if MIN {
            &p.min[(o + k) * nb..(o + k + 1) * nb]
        } else {
            &[]
        }
    });
    let xr: [&[f32]; R] = std::array::from_fn(|r| &x[r * inp..(r + 1) * inp]);
    let mut acc = [[zero; R]; O];
    for b in 0..nb {
        let (mut s, mut m) = ([zero; O], [zero; O]);
        for k in 0..O {
            s[k] = isa.splat(scale[k][b]);
            if MIN {
                m[k] = isa.splat(min[k][b]);
            }
        }
        for v in (0..block).step_by(L::N) {
            let c = b * block + v;
            let mut xs = [zero; R];
            for r in 0..R {
                xs[r] = isa.load(&xr[r][c..]);
            }
            for k in 0..O {
                let mut w = isa.mul(isa.widen(&q[k][c..]), s[k]);
                if MIN {
                    w = isa.sub(w, m[k]);
                }
                for r in 0..R {
                    acc[k][r] = isa.fma(w, xs[r], acc[k][r]);
                }
            }
        }
    }
    // Loops, not `map`: a closure is not inlined into the vector context, and the
    // reduction's intrinsics would each become a call.
    let mut sums = [[0.0f32; R]; O];
    for k in 0..O {
        for r in 0..R {
            sums[k][r] = isa.sum(acc[k][r]);
        }
    }
    sums
}

/// The f32 values of a packed weight, `[out, in]` (tests).
#[cfg(test)]
fn values(p: &Packed) -> Vec<f32> {
    (0..p.out * p.inp).map(|i| p.value(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::quant::dequantize;

    /// Blocks of `enc` with every byte drawn from a fixed stream, scales kept small and finite.
    fn blocks(enc: Encoding, n: usize) -> Vec<u8> {
        let (per, size) = enc.block();
        let mut rng = crate::util::rng::Rng::stream(7, enc.name());
        let mut raw: Vec<u8> = (0..n / per * size).map(|_| rng.next_u64() as u8).collect();
        // f16 scales between 2^-8 and 2^-6 (exponent 7..9), either sign.
        let f16_at = |raw: &mut Vec<u8>, at: usize, r: u64| {
            let h = ((r & 0x8000) | ((7 + r % 3) << 10) | (r >> 20 & 0x3ff)) as u16;
            raw[at..at + 2].copy_from_slice(&h.to_le_bytes());
        };
        for b in 0..n / per {
            let base = b * size;
            match enc {
                Encoding::Q6K => f16_at(&mut raw, base + 208, rng.next_u64()),
                Encoding::Q4K | Encoding::Q5K => {
                    f16_at(&mut raw, base, rng.next_u64());
                    f16_at(&mut raw, base + 2, rng.next_u64());
                }
                _ => f16_at(&mut raw, base, rng.next_u64()),
            }
        }
        raw
    }

    #[test]
    fn packed_blocks_rebuild_the_dequantised_values_and_multiply_like_them() {
        let encs = [
            (Encoding::Q4_0, 64),
            (Encoding::Q5_0, 96),
            (Encoding::Q8_0, 32),
            (Encoding::Q4K, 256),
            (Encoding::Q5K, 512),
            (Encoding::Q6K, 256),
        ];
        for (enc, inp) in encs {
            // 70 outputs: a partial chunk and partial groups of output rows.
            let out = 70;
            let raw = blocks(enc, out * inp);
            let mut want = vec![0.0f32; out * inp];
            dequantize(enc, &raw, &mut want);
            let p = Packed::from_blocks(enc, &raw, out, inp, &want)
                .unwrap_or_else(|| panic!("{} does not pack exactly", enc.name()));
            assert_eq!(values(&p), want, "{}", enc.name());
            // Every x86-64 machine this runs on has AVX2 at least.
            let isas = Isa::available();
            assert!(!isas.is_empty(), "no AVX2 or AVX-512 found");
            for (isa, rows) in isas
                .into_iter()
                .flat_map(|i| [1, 2, 3, 5, 9, 12].map(|r| (i, r)))
            {
                let x: Vec<f32> = (0..rows * inp)
                    .map(|i| ((i * 37) % 23) as f32 / 11.0 - 1.0)
                    .collect();
                let y = p.matmul_on(isa, &x, rows).expect("sizes agree");
                for r in 0..rows {
                    for o in 0..out {
                        let dot: f64 = (0..inp)
                            .map(|i| f64::from(x[r * inp + i]) * f64::from(want[o * inp + i]))
                            .sum();
                        let got = f64::from(y[r * out + o]);
                        assert!(
                            (got - dot).abs() <= 1e-4 * (1.0 + dot.abs()),
                            "{} {rows} rows at ({r}, {o}): {got} vs {dot}",
                            enc.name()
                        );
                    }
                }
                // A row's result does not depend on the rows beside it.
                let alone = p.matmul_on(isa, &x[..inp], 1).expect("sizes agree");
                assert_eq!(alone[..], y[..out], "{} {rows} rows", enc.name());
            }
        }
    }

    #[test]
    fn a_changed_weight_is_no_longer_mirrored() {
        let (out, inp) = (40, 64);
        let raw = blocks(Encoding::Q8_0, out * inp);
        let mut w = vec![0.0f32; out * inp];
        dequantize(Encoding::Q8_0, &raw, &mut w);
        let p = Packed::from_blocks(Encoding::Q8_0, &raw, out, inp, &w).expect("packs");
        assert!(p.mirrors(&w, false));
        let t = crate::model::load::transpose(&w, out, inp);
        assert!(p.mirrors(&t, true));
        assert!(!p.mirrors(&w, true));
        // A training step moves every weight a little.
        let moved: Vec<f32> = w.iter().map(|v| v - 1e-4).collect();
        assert!(!p.mirrors(&moved, false));
        // Values the dequantiser did not produce are never packed.
        let mut other = w.clone();
        other[5] += 1.0;
        assert!(Packed::from_blocks(Encoding::Q8_0, &raw, out, inp, &other).is_none());
    }

    #[test]
    fn reordered_rows_move_with_their_scales() {
        let (out, inp) = (4, 256);
        let raw = blocks(Encoding::Q4K, out * inp);
        let mut w = vec![0.0f32; out * inp];
        dequantize(Encoding::Q4K, &raw, &mut w);
        let p = Packed::from_blocks(Encoding::Q4K, &raw, out, inp, &w).expect("packs");
        let r = p.rows_in_order(&[2, 0, 3, 1]);
        let v = values(&r);
        for (dst, src) in [2, 0, 3, 1].into_iter().enumerate() {
            assert_eq!(v[dst * inp..(dst + 1) * inp], w[src * inp..(src + 1) * inp]);
        }
    }
}
