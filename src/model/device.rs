//! Device selection: the backend and float type a model runs on (`auto` resolved by probing
//! for a GPU adapter), shared by the `lm` commands and the model stages alike.

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Which burn backend runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A GPU through wgpu when wgpu finds a hardware adapter, else `flex`.
    Auto,
    /// wgpu (on a machine without a GPU: a software Vulkan driver, much slower than flex).
    Wgpu,
    /// burn's pure-Rust CPU backend.
    Flex,
    /// burn's CUDA backend (built with `--features cuda`).
    Cuda,
    /// burn's Vulkan backend through wgpu with SPIR-V kernels (built with `--features vulkan`).
    Vulkan,
}

impl Backend {
    /// Every backend a pipeline may name, in the order the docs list them.
    pub const ALL: [Backend; 5] = [
        Backend::Auto,
        Backend::Flex,
        Backend::Wgpu,
        Backend::Cuda,
        Backend::Vulkan,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Wgpu => "wgpu",
            Backend::Flex => "flex",
            Backend::Cuda => "cuda",
            Backend::Vulkan => "vulkan",
        }
    }

    /// Whether this build can run the backend (`cuda` and `vulkan` are opt-in features).
    // The arms are `cfg!` values that differ between builds, not a fixed pattern.
    #[allow(clippy::match_like_matches_macro)]
    pub fn built(self) -> bool {
        match self {
            Backend::Cuda => cfg!(feature = "cuda"),
            Backend::Vulkan => cfg!(feature = "vulkan"),
            _ => true,
        }
    }

    /// The backends this build runs, as the command line offers them.
    pub fn available() -> Vec<&'static str> {
        [
            Backend::Auto,
            Backend::Wgpu,
            Backend::Flex,
            Backend::Cuda,
            Backend::Vulkan,
        ]
        .into_iter()
        .filter(|b| b.built())
        .map(Backend::name)
        .collect()
    }

    /// The backend named `s` (any case) that this build runs.
    pub fn parse(s: &str) -> Result<Backend, String> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s) && b.built())
            .ok_or_else(|| format!("unknown backend `{s}`"))
    }
}

/// The float type the model computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    Bf16,
    F16,
}

impl Dtype {
    pub const ALL: [Dtype; 3] = [Dtype::F32, Dtype::Bf16, Dtype::F16];

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
        }
    }

    pub fn parse(s: &str) -> Result<Dtype, String> {
        Dtype::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown dtype `{s}`"))
    }
}

/// Whether this Linux machine has a GPU device node at all. Without one, loading the Vulkan
/// drivers just to find lavapipe costs time and makes them print noise on stderr.
fn gpu_device_node() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let dri = std::fs::read_dir("/dev/dri").is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    });
    dri || Path::new("/dev/nvidia0").exists() || Path::new("/dev/dxg").exists()
}

/// The name of a hardware GPU adapter wgpu can reach (integrated, discrete or virtual — not a
/// software rasteriser such as lavapipe), if there is one.
pub fn gpu_adapter() -> Option<String> {
    use burn::backend::wgpu::wgpu;
    if !gpu_device_node() {
        return None;
    }
    let backends = wgpu::Backends::PRIMARY;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    futures_lite::future::block_on(instance.enumerate_adapters(backends))
        .iter()
        .map(wgpu::Adapter::get_info)
        .find(|i| {
            matches!(
                i.device_type,
                wgpu::DeviceType::DiscreteGpu
                    | wgpu::DeviceType::IntegratedGpu
                    | wgpu::DeviceType::VirtualGpu
            )
        })
        .map(|i| i.name)
}

/// The backend `b` stands for: `Auto` is wgpu when [`gpu_adapter`] finds a GPU, else flex.
/// The same choice the stage cache keys record ([`super::machine::Machine::resolve`]).
pub fn resolve(b: Backend) -> Backend {
    match b {
        Backend::Auto => match super::machine::Machine::detect().resolve("auto").as_str() {
            "cuda" => Backend::Cuda,
            "wgpu" => Backend::Wgpu,
            _ => Backend::Flex,
        },
        other => other,
    }
}

/// The device of backend `b` (resolved), or a message when this build lacks it.
pub fn device(b: Backend) -> Result<Device, String> {
    match resolve(b) {
        Backend::Wgpu => Ok(Device::wgpu(Default::default())),
        #[cfg(feature = "cuda")]
        Backend::Cuda => Ok(Device::cuda(0)),
        #[cfg(feature = "vulkan")]
        Backend::Vulkan => Ok(Device::vulkan(Default::default())),
        Backend::Flex | Backend::Auto => Ok(Device::flex()),
        #[allow(unreachable_patterns)]
        other => Err(format!(
            "unknown backend `{}` (this build has no `{0}` feature)",
            other.name()
        )),
    }
}

/// The CPU device, for work that never runs on a GPU (random initialisation).
pub fn cpu() -> Device {
    Device::flex()
}

/// The device for `b` computing in `dtype`, or a message when the backend lacks that type.
pub fn device_with(b: Backend, dtype: Dtype) -> Result<Device, String> {
    use burn::tensor::FloatDType;
    let mut d = device(b)?;
    let (want, name) = match dtype {
        Dtype::F32 => return Ok(d),
        Dtype::Bf16 => (FloatDType::BF16, "bf16"),
        Dtype::F16 => (FloatDType::F16, "f16"),
    };
    if !d.supports_dtype(want) {
        return Err(format!("the {b:?} backend does not compute in {name}"));
    }
    d.configure(want)
        .map_err(|e| format!("cannot switch the {b:?} backend to {name}: {e:?}"))?;
    Ok(d)
}
