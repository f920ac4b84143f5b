//! The MLP's gate on the CPU: `silu(g)·u` in one vectorised pass.
//!
//! burn's CPU backend computes SiLU with libm's scalar `expf` and then multiplies in a second
//! pass; in a prefill that is about 7 % of the time. Here each value is read once and the
//! exponential is [`super::attend::exp`]'s, 16 (or 8) at a time.

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::simd::Isa;

/// Values per parallel task: a multiple of every vector width, fixed so that results do not
/// depend on the number of threads.
const CHUNK: usize = 16 * 1024;

/// `g·u / (1 + e^−g)` elementwise, or `None` where this CPU has neither AVX-512 nor AVX2 with
/// FMA (or the lengths differ).
pub fn silu_times(g: &[f32], u: &[f32]) -> Option<Vec<f32>> {
    if g.len() != u.len() {
        return None;
    }
    silu_times_on(Isa::detect()?, g, u)
}

fn silu_times_on(isa: Isa, g: &[f32], u: &[f32]) -> Option<Vec<f32>> {
    let mut y = vec![0.0f32; g.len()];
    y.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(y, (g, u))| isa.run(Gate { g, u, y }));
    Some(y)
}

struct Gate<'a> {
    g: &'a [f32],
    u: &'a [f32],
    y: &'a mut [f32],
}

impl WithSimd for Gate<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (gv, gt) = S::as_simd_f32s(self.g);
        let (uv, ut) = S::as_simd_f32s(self.u);
        let (yv, yt) = S::as_mut_simd_f32s(self.y);
        let one = simd.splat_f32s(1.0);
        for ((y, &g), &u) in yv.iter_mut().zip(gv).zip(uv) {
            let e = super::attend::exp(simd, simd.neg_f32s(g));
            *y = simd.div_f32s(simd.mul_f32s(g, u), simd.add_f32s(one, e));
        }
        // The last few values (a chunk's length need not be a multiple of the width).
        for ((y, &g), &u) in yt.iter_mut().zip(gt).zip(ut) {
            *y = g * u / (1.0 + (-g).exp());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_gate_is_silu_times_up_to_a_few_ulp_on_every_instruction_set() {
        // Past both ends of the exponential's range, and a length with a partial chunk
        // and a partial vector.
        let n = super::CHUNK + 1003;
        let g: Vec<f32> = (0..n)
            .map(|i| -120.0 + 240.0 * i as f32 / n as f32)
            .collect();
        let u: Vec<f32> = (0..n).map(|i| ((i * 37) % 23) as f32 / 7.0 - 1.5).collect();
        let isas = super::Isa::available();
        // Every x86-64 machine this runs on has AVX2 at least.
        assert!(!isas.is_empty(), "no AVX2 or AVX-512 found");
        for isa in isas {
            let y = super::silu_times_on(isa, &g, &u).expect("lengths agree");
            for i in 0..n {
                let (gi, ui) = (f64::from(g[i]), f64::from(u[i]));
                let want = gi * ui / (1.0 + (-gi).exp());
                let got = f64::from(y[i]);
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs() + 1e-30,
                    "silu({gi})·{ui} = {got}, not {want}"
                );
            }
        }
    }
}
