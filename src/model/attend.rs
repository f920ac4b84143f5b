//! Causal attention of a prefill over its key/value cache on the CPU, skipping what the mask
//! hides.
//!
//! burn's fused CPU attention scores every key tile against every query and applies the mask
//! afterwards, with a scalar `exp` per score: on a causal prefill half of that work is for
//! keys no query may see. Here each block of queries stops at the last key it may see, keys
//! are scored a vector at a time against a transposed copy of the keys, and the softmax's
//! exponentials are vectorised. Online softmax as in flash attention: no score matrix is kept.

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::simd::Isa;

/// Query rows per parallel task, and rows scored together (each key vector loaded is used
/// this many times).
const BLOCK: usize = 32;
const GROUP: usize = 4;
/// Vectors of keys per tile of the online softmax: GROUP × TILE_VECTORS score accumulators
/// stay in registers while the head dimension is summed.
const TILE_VECTORS: usize = 4;

/// Shapes of one call: queries `[batch, heads, t, head_dim]`, keys and values
/// `[batch, kv_heads, seen, head_dim]`, all row-major.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub t: usize,
    pub seen: usize,
    pub head_dim: usize,
}

/// Softmax(q·kᵀ·scale + mask)·v, laid out `[batch, t, heads × head_dim]` (the output
/// projection's input). Query `i` of row `r` sees key `j` when `j ≤ seen − t + i` and
/// `valid[r][j]` (padding is not), and always sees its own key. `None` where this CPU has
/// neither AVX-512 nor AVX2 with FMA, or the head size is not a whole number of vectors
/// (the caller then uses burn's attention).
pub fn causal(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d: Dims,
    valid: &[Vec<bool>],
    scale: f32,
) -> Option<Vec<f32>> {
    let isa = Isa::detect()?;
    let lanes = isa.lanes();
    let (hd, seen, t) = (d.head_dim, d.seen, d.t);
    if !hd.is_multiple_of(lanes)
        || d.kv_heads == 0
        || !d.heads.is_multiple_of(d.kv_heads)
        || t > seen
    {
        return None;
    }
    debug_assert_eq!(q.len(), d.batch * d.heads * t * hd);
    debug_assert_eq!(k.len(), d.batch * d.kv_heads * seen * hd);
    let rep = d.heads / d.kv_heads;
    // Keys transposed per (row, kv head) to `[head_dim, padded]`: a vector of consecutive
    // keys' d-th components is one load. Padding keys are zero and never visible.
    let padded = seen.div_ceil(lanes * TILE_VECTORS) * lanes * TILE_VECTORS;
    let kt: Vec<Vec<f32>> = (0..d.batch * d.kv_heads)
        .into_par_iter()
        .map(|bg| {
            let src = &k[bg * seen * hd..(bg + 1) * seen * hd];
            let mut out = vec![0.0f32; hd * padded];
            for (j, key) in src.chunks_exact(hd).enumerate() {
                for (c, &x) in key.iter().enumerate() {
                    out[c * padded + j] = x;
                }
            }
            out
        })
        .collect();
    let blocks = t.div_ceil(BLOCK);
    let tasks: Vec<(usize, usize, usize)> = (0..d.batch)
        .flat_map(|r| (0..d.heads).flat_map(move |h| (0..blocks).map(move |b| (r, h, b))))
        .collect();
    let parts: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(r, h, b)| {
            let g = h / rep;
            let rows = b * BLOCK..((b + 1) * BLOCK).min(t);
            let base = (r * d.heads + h) * t * hd;
            let kv = (r * d.kv_heads + g) * seen * hd;
            let mut out = vec![0.0f32; rows.len() * hd];
            isa.run(Block {
                q: &q[base + rows.start * hd..base + rows.end * hd],
                kt: &kt[r * d.kv_heads + g],
                v: &v[kv..kv + seen * hd],
                valid: &valid[r],
                past: seen - t,
                first: rows.start,
                hd,
                padded,
                scale,
                out: &mut out,
            });
            out
        })
        .collect();
    let width = d.heads * hd;
    let mut y = vec![0.0f32; d.batch * t * width];
    for (&(r, h, b), part) in tasks.iter().zip(&parts) {
        for (n, row) in part.chunks_exact(hd).enumerate() {
            let i = b * BLOCK + n;
            let at = (r * t + i) * width + h * hd;
            y[at..at + hd].copy_from_slice(row);
        }
    }
    Some(y)
}

/// The queries `first..` (up to [`BLOCK`] rows of one head) against their keys.
struct Block<'a> {
    q: &'a [f32],
    kt: &'a [f32],
    v: &'a [f32],
    valid: &'a [bool],
    /// Keys before the first query of the pass.
    past: usize,
    first: usize,
    hd: usize,
    padded: usize,
    scale: f32,
    out: &'a mut [f32],
}

impl WithSimd for Block<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let lanes = std::mem::size_of::<S::f32s>() / std::mem::size_of::<f32>();
        let Block {
            q,
            kt,
            v,
            valid,
            past,
            first,
            hd,
            padded,
            scale,
            out,
        } = self;
        let rows = q.len() / hd;
        let tile = TILE_VECTORS * lanes;
        // Scaled queries, padded with zero rows to whole groups (their scores are unused).
        let mut qs = vec![0.0f32; rows.div_ceil(GROUP) * GROUP * hd];
        for (a, b) in qs.iter_mut().zip(q) {
            *a = b * scale;
        }
        let kt = S::as_simd_f32s(kt).0;
        let row_vectors = padded / lanes;
        let head_vectors = hd / lanes;
        let v = S::as_simd_f32s(v).0;
        let mut max = vec![f32::NEG_INFINITY; rows];
        let mut sum = vec![0.0f32; rows];
        let mut scores = vec![0.0f32; GROUP * tile];
        let neg_inf = simd.splat_f32s(f32::NEG_INFINITY);
        let zero = simd.splat_f32s(0.0);
        // The last key any query of the block sees.
        let end = past + first + rows;
        for t0 in (0..end).step_by(tile) {
            let t1 = (t0 + tile).min(end);
            let all_valid = valid[t0..t1].iter().all(|&ok| ok);
            let k0 = t0 / lanes;
            for g0 in (0..rows).step_by(GROUP) {
                // Scores of GROUP queries against the tile: the head dimension summed with
                // every accumulator in a register.
                let mut acc = [[zero; TILE_VECTORS]; GROUP];
                for dd in 0..hd {
                    let at = dd * row_vectors + k0;
                    let kv: [S::f32s; TILE_VECTORS] = std::array::from_fn(|c| kt[at + c]);
                    for (n, a) in acc.iter_mut().enumerate() {
                        let x = simd.splat_f32s(qs[(g0 + n) * hd + dd]);
                        for (ac, k) in a.iter_mut().zip(&kv) {
                            *ac = simd.mul_add_f32s(x, *k, *ac);
                        }
                    }
                }
                let g1 = (g0 + GROUP).min(rows);
                // Per row, how many of the tile's keys it may see.
                let mut reach = [0usize; GROUP];
                for (n, a) in acc.iter().enumerate().take(g1 - g0) {
                    let row = &mut scores[n * tile..(n + 1) * tile];
                    S::as_mut_simd_f32s(row).0.copy_from_slice(a);
                }
                for n in 0..g1 - g0 {
                    let r = g0 + n;
                    let own = past + first + r;
                    let row = &mut scores[n * tile..(n + 1) * tile];
                    // Hidden keys: padding (but its own key), later than the query, and
                    // the tile's tail.
                    let seen_here = ((own + 1).min(t1)).saturating_sub(t0);
                    if !all_valid {
                        for (c, s) in row.iter_mut().enumerate().take(seen_here) {
                            if !valid[t0 + c] && t0 + c != own {
                                *s = f32::NEG_INFINITY;
                            }
                        }
                    }
                    row[seen_here..].fill(f32::NEG_INFINITY);
                    let vs = S::as_mut_simd_f32s(row).0;
                    let tile_max =
                        simd.reduce_max_f32s(vs.iter().fold(neg_inf, |m, x| simd.max_f32s(m, *x)));
                    if tile_max == f32::NEG_INFINITY {
                        // Nothing visible: no weight on any value of this tile.
                        row.fill(0.0);
                        continue;
                    }
                    let new_max = max[r].max(tile_max);
                    let correction = if max[r] == f32::NEG_INFINITY {
                        0.0
                    } else {
                        (max[r] - new_max).exp()
                    };
                    let m = simd.splat_f32s(new_max);
                    let mut total = zero;
                    for x in vs.iter_mut() {
                        let e = exp(simd, simd.sub_f32s(*x, m));
                        // Hidden keys add exactly nothing.
                        let hidden = simd.less_than_or_equal_f32s(*x, neg_inf);
                        *x = simd.select_f32s(hidden, zero, e);
                        total = simd.add_f32s(total, *x);
                    }
                    sum[r] = sum[r] * correction + simd.reduce_sum_f32s(total);
                    max[r] = new_max;
                    let corr = simd.splat_f32s(correction);
                    for o in S::as_mut_simd_f32s(&mut out[r * hd..(r + 1) * hd]).0 {
                        *o = simd.mul_f32s(*o, corr);
                    }
                    reach[n] = seen_here;
                }
                // Values weighted by the group's probabilities (0 for hidden keys), every
                // value vector loaded once for the whole group.
                let keys = reach[..g1 - g0].iter().copied().max().unwrap_or(0);
                let o = &mut out[g0 * hd..g1 * hd];
                let p = &scores[..(g1 - g0) * tile];
                let at = (t0 * head_vectors, tile);
                match head_vectors {
                    1 => weigh::<S, 1>(simd, p, v, at, keys, o),
                    2 => weigh::<S, 2>(simd, p, v, at, keys, o),
                    4 => weigh::<S, 4>(simd, p, v, at, keys, o),
                    8 => weigh::<S, 8>(simd, p, v, at, keys, o),
                    _ => weigh_any(simd, p, v, at, keys, head_vectors, o),
                }
            }
        }
        for (r, o) in out.chunks_exact_mut(hd).enumerate() {
            let inv = if sum[r] > 0.0 { 1.0 / sum[r] } else { 0.0 };
            for x in o {
                *x *= inv;
            }
        }
    }
}

/// `out[n] += Σ_c p[n][c] · v[key c]` for the rows of a group (`p` rows of `tile`
/// scores, `out` rows of `HV` vectors), the first `keys` keys of a tile whose first value
/// vector is at `at.0`: every accumulator in a register, each value vector loaded once.
#[inline(always)]
fn weigh<S: Simd, const HV: usize>(
    simd: S,
    p: &[f32],
    v: &[S::f32s],
    at: (usize, usize),
    keys: usize,
    out: &mut [f32],
) {
    let (v0, tile) = at;
    let rows = p.len() / tile;
    let out = S::as_mut_simd_f32s(out).0;
    for (n0, chunk) in (0..rows).step_by(2).zip(out.chunks_mut(2 * HV)) {
        let pair = (rows - n0).min(2);
        let mut acc = [[simd.splat_f32s(0.0); HV]; 2];
        for (a, o) in acc.iter_mut().zip(chunk.chunks(HV)) {
            a.copy_from_slice(o);
        }
        for c in 0..keys {
            let vv: [S::f32s; HV] = std::array::from_fn(|x| v[v0 + c * HV + x]);
            for (n, a) in acc.iter_mut().enumerate().take(pair) {
                let w = simd.splat_f32s(p[(n0 + n) * tile + c]);
                for (ax, x) in a.iter_mut().zip(&vv) {
                    *ax = simd.mul_add_f32s(w, *x, *ax);
                }
            }
        }
        for (a, o) in acc.iter().zip(chunk.chunks_mut(HV)) {
            o.copy_from_slice(a);
        }
    }
}

/// [`weigh`] for any number of vectors per head.
fn weigh_any<S: Simd>(
    simd: S,
    p: &[f32],
    v: &[S::f32s],
    at: (usize, usize),
    keys: usize,
    hv: usize,
    out: &mut [f32],
) {
    let (v0, tile) = at;
    let out = S::as_mut_simd_f32s(out).0;
    for (n, o) in out.chunks_mut(hv).enumerate() {
        for c in 0..keys {
            let w = simd.splat_f32s(p[n * tile + c]);
            for (x, ox) in o.iter_mut().enumerate() {
                *ox = simd.mul_add_f32s(w, v[v0 + c * hv + x], *ox);
            }
        }
    }
}

/// eˣ of a vector to about 2 ulp (x clamped to [−87, 88]): 2ⁿ·eʳ with n = round(x / ln 2),
/// |r| ≤ ln 2 / 2, eʳ by its Taylor polynomial of degree 6, 2ⁿ built in the exponent bits.
#[inline(always)]
pub(crate) fn exp<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2²³ rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = simd.max_f32s(x, simd.splat_f32s(-87.0));
    let x = simd.min_f32s(x, simd.splat_f32s(88.0));
    let shifted = simd.mul_add_f32s(x, simd.splat_f32s(LOG2E), simd.splat_f32s(MAGIC));
    let n = simd.sub_f32s(shifted, simd.splat_f32s(MAGIC));
    let r = simd.mul_add_f32s(n, simd.splat_f32s(-LN2_HI), x);
    let r = simd.mul_add_f32s(n, simd.splat_f32s(-LN2_LO), r);
    let mut p = simd.splat_f32s(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = simd.mul_add_f32s(p, r, simd.splat_f32s(c));
    }
    // The integer n sits in `shifted`'s bits as 0x4B40_0000 + n; 2ⁿ's bits are (n + 127) << 23.
    let bits = simd.transmute_u32s_f32s(shifted);
    let biased = simd.add_u32s(bits, simd.splat_u32s(127u32.wrapping_sub(0x4B40_0000)));
    let two_n = simd.wrapping_dyn_shl_u32s(biased, simd.splat_u32s(23));
    simd.mul_f32s(p, simd.transmute_f32s_u32s(two_n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, in f64.
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        d: Dims,
        valid: &[Vec<bool>],
        scale: f32,
    ) -> Vec<f32> {
        let (hd, t, seen) = (d.head_dim, d.t, d.seen);
        let rep = d.heads / d.kv_heads;
        let mut y = vec![0.0f32; d.batch * t * d.heads * hd];
        for r in 0..d.batch {
            for h in 0..d.heads {
                let g = h / rep;
                for i in 0..t {
                    let own = seen - t + i;
                    let qi = &q[((r * d.heads + h) * t + i) * hd..][..hd];
                    let mut w = vec![f64::NEG_INFINITY; seen];
                    for (j, wj) in w.iter_mut().enumerate() {
                        if j <= own && (valid[r][j] || j == own) {
                            let kj = &k[((r * d.kv_heads + g) * seen + j) * hd..][..hd];
                            *wj = qi
                                .iter()
                                .zip(kj)
                                .map(|(a, b)| *a as f64 * *b as f64)
                                .sum::<f64>()
                                * scale as f64;
                        }
                    }
                    let m = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = w.iter().map(|x| (x - m).exp()).collect();
                    let s: f64 = e.iter().sum();
                    for c in 0..hd {
                        let o: f64 = (0..seen)
                            .map(|j| e[j] * v[((r * d.kv_heads + g) * seen + j) * hd + c] as f64)
                            .sum();
                        y[(r * t + i) * d.heads * hd + h * hd + c] = (o / s) as f32;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn matches_the_definition_with_a_cache_padding_and_grouped_heads() {
        // Tiles, blocks and vectors left partial; a cached past; left padding in one row
        // (in the last case, padding queries too: they see their own key only).
        for (batch, heads, kv_heads, t, seen, hd) in [
            (1, 2, 1, 5, 5, 16),
            (2, 4, 2, 70, 200, 32),
            (1, 14, 2, 37, 37, 64),
            (2, 2, 1, 20, 20, 16),
        ] {
            let d = Dims {
                batch,
                heads,
                kv_heads,
                t,
                seen,
                head_dim: hd,
            };
            let val = |n: usize, salt: usize| -> Vec<f32> {
                (0..n)
                    .map(|i| (((i * 31 + salt) % 97) as f32 - 48.0) / 40.0)
                    .collect()
            };
            let q = val(batch * heads * t * hd, 1);
            let k = val(batch * kv_heads * seen * hd, 2);
            let v = val(batch * kv_heads * seen * hd, 3);
            let valid: Vec<Vec<bool>> = (0..batch)
                .map(|r| (0..seen).map(|j| r == 0 || j >= 3).collect())
                .collect();
            let scale = 1.0 / (hd as f32).sqrt();
            let got = causal(&q, &k, &v, d, &valid, scale).expect("no AVX2 or AVX-512 found");
            let want = reference(&q, &k, &v, d, &valid, scale);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 2e-5 * (1.0 + b.abs()),
                    "{d:?} at {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn vector_exp_is_within_a_few_ulp() {
        struct E(Vec<f32>);
        impl WithSimd for E {
            type Output = Vec<f32>;
            fn with_simd<S: Simd>(self, simd: S) -> Vec<f32> {
                let lanes = std::mem::size_of::<S::f32s>() / 4;
                let mut xs = self.0;
                for c in xs.chunks_exact_mut(lanes) {
                    let (v, _) = S::as_mut_simd_f32s(c);
                    v[0] = exp(simd, v[0]);
                }
                xs
            }
        }
        let xs: Vec<f32> = (0..4096)
            .map(|i| -80.0 + i as f32 * (80.0 / 4096.0))
            .collect();
        let isas = Isa::available();
        assert!(!isas.is_empty(), "no AVX2 or AVX-512 found");
        for isa in isas {
            let got = isa.run(E(xs.clone()));
            for (x, g) in xs.iter().zip(got) {
                let want = (*x as f64).exp();
                assert!(
                    ((g as f64) - want).abs() <= 4e-7 * want,
                    "exp({x}) = {g}, not {want}, {} lanes",
                    isa.lanes()
                );
            }
        }
    }
}
