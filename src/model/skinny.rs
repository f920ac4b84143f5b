//! Products of a few rows with a weight matrix on the CPU (batched decoding's projections).
//!
//! burn's CPU matmul (gemm) packs the weights for every call and runs kernels sized for
//! many rows; with 2–12 rows, as when a batch decodes one token per row, it reaches about
//! a third of the memory bandwidth that reading the weights once needs. Here each weight is
//! read once, in tiles of a few contiguous rows, and multiplied into every input row while
//! it is in registers.

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::simd::Isa;

/// Rows handled together: every weight loaded is used this many times.
const GROUP: usize = 8;
/// Output columns per parallel task (each task's results are independent of the others,
/// so the sums do not depend on the number of threads).
const CHUNK: usize = 256;
/// Weight rows per tile: the partial sums of a tile stay in registers.
const TILE_K: usize = 16;

/// `x · w` for `x: [rows, k]` and `w: [k, n]` (both row-major), or `None` where this CPU
/// has neither AVX-512 nor AVX2 with FMA (the caller then uses burn's matmul).
pub fn matmul(x: &[f32], rows: usize, w: &[f32], k: usize, n: usize) -> Option<Vec<f32>> {
    debug_assert_eq!((x.len(), w.len()), (rows * k, k * n));
    let simd = Isa::detect()?;
    let parts: Vec<Vec<f32>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let cols = c * CHUNK..((c + 1) * CHUNK).min(n);
            let width = cols.len();
            let mut out = vec![0.0f32; rows * width];
            for r0 in (0..rows).step_by(GROUP) {
                let r1 = (r0 + GROUP).min(rows);
                let tile = Tile {
                    x: &x[r0 * k..r1 * k],
                    w,
                    k,
                    n,
                    cols: cols.clone(),
                    out: &mut out[r0 * width..r1 * width],
                };
                simd.run(tile);
            }
            out
        })
        .collect();
    let mut y = vec![0.0f32; rows * n];
    for (c, part) in parts.iter().enumerate() {
        let c0 = c * CHUNK;
        let width = part.len() / rows;
        for (r, src) in part.chunks_exact(width).enumerate() {
            y[r * n + c0..r * n + c0 + width].copy_from_slice(src);
        }
    }
    Some(y)
}

/// Up to [`GROUP`] rows of `x` times the columns `cols` of `w`, added into `out`
/// (`[rows, cols.len()]`).
struct Tile<'a> {
    x: &'a [f32],
    w: &'a [f32],
    k: usize,
    n: usize,
    cols: std::ops::Range<usize>,
    out: &'a mut [f32],
}

impl WithSimd for Tile<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        match self.x.len() / self.k {
            1 => tile::<S, 1>(simd, self),
            2 => tile::<S, 2>(simd, self),
            3 => tile::<S, 3>(simd, self),
            4 => tile::<S, 4>(simd, self),
            5 => tile::<S, 5>(simd, self),
            6 => tile::<S, 6>(simd, self),
            7 => tile::<S, 7>(simd, self),
            _ => tile::<S, 8>(simd, self),
        }
    }
}

#[inline(always)]
fn tile<S: Simd, const R: usize>(simd: S, t: Tile<'_>) {
    let Tile {
        x,
        w,
        k,
        n,
        cols,
        out,
    } = t;
    let width = cols.len();
    let lanes = std::mem::size_of::<S::f32s>() / std::mem::size_of::<f32>();
    // Two vectors of columns per step: R × 2 accumulators stay in registers.
    let step = 2 * lanes;
    let full = width / step * step;
    let zero = simd.splat_f32s(0.0);
    for k0 in (0..k).step_by(TILE_K) {
        let k1 = (k0 + TILE_K).min(k);
        let mut c = 0;
        while c < full {
            let mut acc = [[zero; 2]; R];
            for kk in k0..k1 {
                let at = kk * n + cols.start + c;
                let (v, _) = S::as_simd_f32s(&w[at..at + step]);
                let (w0, w1) = (v[0], v[1]);
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = simd.splat_f32s(x[r * k + kk]);
                    a[0] = simd.mul_add_f32s(xv, w0, a[0]);
                    a[1] = simd.mul_add_f32s(xv, w1, a[1]);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                let (o, _) = S::as_mut_simd_f32s(&mut out[r * width + c..r * width + c + step]);
                o[0] = simd.add_f32s(o[0], a[0]);
                o[1] = simd.add_f32s(o[1], a[1]);
            }
            c += step;
        }
        for c in full..width {
            for r in 0..R {
                let s: f32 = (k0..k1)
                    .map(|kk| x[r * k + kk] * w[kk * n + cols.start + c])
                    .sum();
                out[r * width + c] += s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn few_rows_times_a_matrix_is_the_plain_product() {
        // Sizes that leave partial tiles, chunks and vectors everywhere.
        for (rows, k, n) in [(1, 3, 5), (3, 37, 300), (8, 50, 533), (11, 17, 64)] {
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 37) % 11) as f32 - 5.0)
                .collect();
            let w: Vec<f32> = (0..k * n).map(|i| ((i * 13) % 7) as f32 * 0.25).collect();
            // Every x86-64 machine this runs on has AVX2 at least.
            let y = super::matmul(&x, rows, &w, k, n).expect("no AVX2 or AVX-512 found");
            for r in 0..rows {
                for c in 0..n {
                    let want: f32 = (0..k).map(|i| x[r * k + i] * w[i * n + c]).sum();
                    let got = y[r * n + c];
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{rows}×{k}×{n} at ({r}, {c}): {got} vs {want}"
                    );
                }
            }
        }
    }
}
