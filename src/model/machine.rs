//! The facts of a machine that change a model's numbers: which backend `auto` stands for,
//! the GPU adapter, and for the CPU backend the SIMD level and cache sizes its kernels pick
//! their code paths and block sizes by. Stage cache keys hold them (docs/pipelines.md), so
//! a store shared between machines never serves one machine's results to another.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// What this machine offers the backends, probed once per process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The hardware GPU adapter wgpu finds (none: `auto` is the CPU).
    pub gpu: Option<String>,
    /// Whether an NVIDIA device node exists (`auto` is CUDA in a build with that feature).
    pub nvidia: bool,
    /// The CPU class that changes floating-point results on the CPU backend.
    pub cpu: String,
}

impl Machine {
    /// This machine (the GPU probe runs once per process).
    pub fn detect() -> &'static Machine {
        static M: OnceLock<Machine> = OnceLock::new();
        M.get_or_init(|| Machine {
            gpu: super::device::gpu_adapter(),
            nvidia: std::path::Path::new("/dev/nvidia0").exists(),
            cpu: cpu_class(),
        })
    }

    /// The backend a `backend` setting (`auto`, `flex`, `wgpu`, `cuda`, `vulkan`) runs on here.
    pub fn resolve(&self, backend: &str) -> String {
        match backend {
            "auto" if cfg!(feature = "cuda") && self.nvidia => "cuda".into(),
            "auto" if self.gpu.is_some() => "wgpu".into(),
            "auto" => "flex".into(),
            other => other.into(),
        }
    }

    /// The facts a model stage's results depend on, for its cache key: the resolved backend,
    /// the float type, and the device that computes (the CPU class for flex, the adapter for
    /// a GPU backend).
    pub fn env(&self, backend: &str, dtype: &str) -> BTreeMap<String, String> {
        let resolved = self.resolve(backend);
        let device = match resolved.as_str() {
            "flex" => self.cpu.clone(),
            // wgpu without a hardware adapter runs on the software Vulkan driver.
            _ => self.gpu.clone().unwrap_or_else(|| "software".into()),
        };
        BTreeMap::from([
            ("backend".to_string(), resolved),
            ("dtype".to_string(), dtype.to_string()),
            ("device".to_string(), device),
        ])
    }
}

/// The CPU class: architecture, the SIMD level the CPU kernels (gemm, macerator) dispatch
/// on, and the cache sizes gemm sizes its blocks by (blocking changes the order in which
/// products are summed, hence the last bits). Two machines of one class give the same bytes.
pub fn cpu_class() -> String {
    let caches: Vec<String> = gemm_common::cache::CACHE_INFO
        .iter()
        .map(|c| format!("{}k", c.cache_bytes / 1024))
        .collect();
    format!(
        "{}-{} l1/l2/l3 {}",
        std::env::consts::ARCH,
        simd_level(),
        caches.join("/")
    )
}

#[cfg(target_arch = "x86_64")]
fn simd_level() -> &'static str {
    use std::arch::is_x86_feature_detected as has;
    if has!("avx512f")
        && has!("avx512bw")
        && has!("avx512cd")
        && has!("avx512dq")
        && has!("avx512vl")
    {
        "v4"
    } else if has!("avx2") && has!("fma") && has!("f16c") {
        "v3"
    } else if has!("sse4.2") && has!("popcnt") {
        "v2"
    } else {
        "v1"
    }
}

#[cfg(target_arch = "aarch64")]
fn simd_level() -> &'static str {
    if std::arch::is_aarch64_feature_detected!("fp16") {
        "neon-fp16"
    } else {
        "neon"
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn simd_level() -> &'static str {
    "scalar"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_resolves_by_what_the_machine_has() {
        let cpu = Machine {
            gpu: None,
            nvidia: false,
            cpu: "x86_64-v4 l1/l2/l3 48k/2048k/32768k".into(),
        };
        let gpu = Machine {
            gpu: Some("NVIDIA H200".into()),
            ..cpu.clone()
        };
        assert_eq!(cpu.resolve("auto"), "flex");
        assert_eq!(gpu.resolve("auto"), "wgpu");
        assert_eq!(gpu.resolve("flex"), "flex");
        assert_eq!(cpu.env("auto", "f32")["device"], cpu.cpu);
        assert_eq!(gpu.env("auto", "bf16")["device"], "NVIDIA H200");
        assert_ne!(cpu.env("auto", "f32"), gpu.env("auto", "f32"));
        assert!(cpu_class().contains(std::env::consts::ARCH));
    }
}
