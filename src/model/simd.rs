//! The CPU's vector instruction set for the hand-written kernels (attention, skinny and
//! packed products, the MLP's gate), chosen at run time: one binary runs AVX-512 where the
//! CPU has it and AVX2 with FMA where it does not.

use pulp::{Simd, WithSimd};

#[derive(Clone, Copy)]
pub(crate) enum Isa {
    #[cfg(target_arch = "x86_64")]
    V4(pulp::x86::V4),
    #[cfg(target_arch = "x86_64")]
    V3(pulp::x86::V3),
}

impl Isa {
    /// The widest instruction set this CPU has; `None` without AVX2 and FMA (the callers
    /// then use burn's operations).
    pub(crate) fn detect() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(s) = pulp::x86::V4::try_new() {
                return Some(Isa::V4(s));
            }
            if let Some(s) = pulp::x86::V3::try_new() {
                return Some(Isa::V3(s));
            }
        }
        None
    }

    /// Every instruction set this CPU has, the widest first (tests run each kernel on each).
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Isa> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            out.extend(pulp::x86::V4::try_new().map(Isa::V4));
            out.extend(pulp::x86::V3::try_new().map(Isa::V3));
        }
        out
    }

    /// f32 values per vector.
    pub(crate) fn lanes(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::V4(_) => 16,
            #[cfg(target_arch = "x86_64")]
            Isa::V3(_) => 8,
        }
    }

    /// Runs `op` with this instruction set's features enabled.
    pub(crate) fn run<Op: WithSimd>(self, op: Op) -> Op::Output {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::V4(s) => Simd::vectorize(s, op),
            #[cfg(target_arch = "x86_64")]
            Isa::V3(s) => Simd::vectorize(s, op),
        }
    }
}
