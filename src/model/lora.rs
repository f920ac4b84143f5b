//! LoRA: which projections get adapters and at what rank, attaching fresh ones to a frozen
//! model, folding them into the weights, and PEFT's adapter layout (`adapter_config.json` and
//! `adapter_model.safetensors` with PEFT's tensor names) both ways.

use std::path::Path;

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::net::{Adapter, Transformer};
use super::safetensors::{self, Checkpoint};
use crate::util::rng::Rng;

/// The folder in a LoRA-trained model folder that holds the adapter in PEFT's layout.
pub const ADAPTER_DIR: &str = "adapter";

/// A projection an adapter can sit on, by the short name pipelines use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::Q,
        Target::K,
        Target::V,
        Target::O,
        Target::Gate,
        Target::Up,
        Target::Down,
    ];
    /// The short names, in `ALL`'s order (what a pipeline writes).
    pub const NAMES: [&'static str; 7] = ["q", "k", "v", "o", "gate", "up", "down"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
    pub fn parse(s: &str) -> Option<Target> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
    }
    /// The module's name in Hugging Face's Qwen/Llama code, which PEFT's names follow.
    pub fn module(self) -> &'static str {
        match self {
            Target::Q => "self_attn.q_proj",
            Target::K => "self_attn.k_proj",
            Target::V => "self_attn.v_proj",
            Target::O => "self_attn.o_proj",
            Target::Gate => "mlp.gate_proj",
            Target::Up => "mlp.up_proj",
            Target::Down => "mlp.down_proj",
        }
    }
    fn leaf(self) -> &'static str {
        self.module().rsplit('.').next().unwrap_or_default()
    }
}

/// The adapters of a model: rank, scaling numerator, dropout of the adapters' input while
/// training, and the projections that carry one (a stage's `lora` parameter).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSpec {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub targets: Vec<Target>,
}

impl LoraSpec {
    /// PEFT's scaling of the update: `alpha / rank`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// The adapter slot of projection `t` in block `b`.
fn slot(b: &mut super::net::Block, t: Target) -> &mut Option<Adapter> {
    match t {
        Target::Q => &mut b.attn.lora.q,
        Target::K => &mut b.attn.lora.k,
        Target::V => &mut b.attn.lora.v,
        Target::O => &mut b.attn.lora.o,
        Target::Gate => &mut b.mlp.lora.gate,
        Target::Up => &mut b.mlp.lora.up,
        Target::Down => &mut b.mlp.lora.down,
    }
}

fn weight(b: &super::net::Block, t: Target) -> &Param<Tensor<2>> {
    match t {
        Target::Q => &b.attn.q,
        Target::K => &b.attn.k,
        Target::V => &b.attn.v,
        Target::O => &b.attn.o,
        Target::Gate => &b.mlp.gate,
        Target::Up => &b.mlp.up,
        Target::Down => &b.mlp.down,
    }
}

fn adapter(b: &super::net::Block, t: Target) -> Option<&Adapter> {
    match t {
        Target::Q => b.attn.lora.q.as_ref(),
        Target::K => b.attn.lora.k.as_ref(),
        Target::V => b.attn.lora.v.as_ref(),
        Target::O => b.attn.lora.o.as_ref(),
        Target::Gate => b.mlp.lora.gate.as_ref(),
        Target::Up => b.mlp.lora.up.as_ref(),
        Target::Down => b.mlp.lora.down.as_ref(),
    }
}

fn param2(values: Vec<f32>, shape: [usize; 2], device: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

/// Freezes every weight of `net` (no gradients, so no optimiser state either) and gives each
/// target projection a fresh adapter, initialised as PEFT does: `a` uniform in ±1/√in
/// (Kaiming-uniform with a = √5), `b` zero, so the model's outputs are unchanged until it
/// trains. Each adapter draws from its own stream of `seed`.
pub fn attach(net: Transformer, spec: &LoraSpec, seed: u64) -> Transformer {
    let mut net = net.no_grad();
    let device = net.embed.val().device();
    for (l, b) in net.blocks.iter_mut().enumerate() {
        for &t in &spec.targets {
            let [inp, out] = weight(b, t).val().dims();
            let mut rng = Rng::stream(seed, &format!("lora/{l}/{}", t.name()));
            let bound = 1.0 / (inp as f64).sqrt();
            let a: Vec<f32> = (0..inp * spec.rank)
                .map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32)
                .collect();
            *slot(b, t) = Some(Adapter {
                a: param2(a, [inp, spec.rank], &device),
                b: param2(vec![0.0; spec.rank * out], [spec.rank, out], &device),
                scale: spec.scale(),
                dropout: spec.dropout,
            });
        }
    }
    net
}

/// `net` with every adapter's training dropout set to `dropout`.
pub fn with_dropout(mut net: Transformer, dropout: f64) -> Transformer {
    for b in &mut net.blocks {
        for t in Target::ALL {
            if let Some(ad) = slot(b, t) {
                ad.dropout = dropout;
            }
        }
    }
    net
}

/// The adapters `net` carries, read back as a spec (`None` without any).
pub fn spec_of(net: &Transformer) -> Option<LoraSpec> {
    let first = net.blocks.first()?;
    let targets: Vec<Target> = Target::ALL
        .into_iter()
        .filter(|&t| adapter(first, t).is_some())
        .collect();
    let ad = adapter(first, *targets.first()?)?;
    let rank = ad.a.val().dims()[1];
    Some(LoraSpec {
        rank,
        alpha: ad.scale * rank as f64,
        dropout: ad.dropout,
        targets,
    })
}

/// `net` with every adapter folded into its weight (`w + scale·a·b`) and removed: a plain
/// model, as a merged Hugging Face folder holds it.
pub fn merged(net: &Transformer) -> Transformer {
    let mut out = net.clone();
    for b in &mut out.blocks {
        for t in Target::ALL {
            let Some(ad) = slot(b, t).take() else {
                continue;
            };
            let w = weight(b, t).val();
            let delta = ad.a.val().matmul(ad.b.val()).mul_scalar(ad.scale);
            let merged = Param::from_tensor(w + delta);
            match t {
                Target::Q => b.attn.q = merged,
                Target::K => b.attn.k = merged,
                Target::V => b.attn.v = merged,
                Target::O => b.attn.o = merged,
                Target::Gate => b.mlp.gate = merged,
                Target::Up => b.mlp.up = merged,
                Target::Down => b.mlp.down = merged,
            }
        }
    }
    out
}

use super::load::{transpose, values};

/// PEFT's name of a factor: `base_model.model.model.layers.L.self_attn.q_proj.lora_A.weight`.
fn peft_name(layer: usize, t: Target, factor: &str) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.lora_{factor}.weight",
        t.module()
    )
}

/// The adapters as PEFT stores them: `lora_A.weight` `[rank, in]`, `lora_B.weight`
/// `[out, rank]` (`torch.nn.Linear`'s `[out, in]`).
pub fn peft_tensors(net: &Transformer) -> Result<Vec<safetensors::Named>, String> {
    let mut out = Vec::new();
    for (l, b) in net.blocks.iter().enumerate() {
        for t in Target::ALL {
            let Some(ad) = adapter(b, t) else { continue };
            let [inp, r] = ad.a.val().dims();
            let [_, o] = ad.b.val().dims();
            out.push((
                peft_name(l, t, "A"),
                vec![r, inp],
                transpose(&values(&ad.a)?, inp, r),
            ));
            out.push((
                peft_name(l, t, "B"),
                vec![o, r],
                transpose(&values(&ad.b)?, r, o),
            ));
        }
    }
    Ok(out)
}

/// PEFT's `adapter_config.json` for `spec` on the base model `base`.
pub fn peft_config(spec: &LoraSpec, base: &str) -> serde_json::Value {
    json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": spec.rank,
        "lora_alpha": spec.alpha,
        "lora_dropout": spec.dropout,
        "target_modules": spec.targets.iter().map(|t| t.leaf()).collect::<Vec<_>>(),
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
        "use_rslora": false,
        "use_dora": false,
    })
}

/// Writes `net`'s adapters into `dir` in PEFT's layout.
pub fn save_peft(dir: &Path, net: &Transformer, base: &str) -> Result<(), String> {
    let spec = spec_of(net).ok_or("the model carries no LoRA adapters")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    safetensors::write(
        &dir.join("adapter_model.safetensors"),
        &peft_tensors(net)?,
        false,
    )
    .map_err(|e| format!("cannot write the adapter: {e}"))?;
    let text =
        serde_json::to_string_pretty(&peft_config(&spec, base)).map_err(|e| e.to_string())? + "\n";
    std::fs::write(dir.join("adapter_config.json"), text)
        .map_err(|e| format!("cannot write adapter_config.json: {e}"))
}

/// Whether `dir` holds a PEFT adapter.
pub fn is_peft(dir: &Path) -> bool {
    dir.join("adapter_config.json").is_file()
}

/// Reads a PEFT LoRA adapter from `dir` and attaches it to `net` (whose weights it freezes):
/// what `PeftModel.from_pretrained` does with a base model.
pub fn load_peft(dir: &Path, net: Transformer) -> Result<Transformer, String> {
    let what = |e: String| format!("`{}`: {e}", dir.display());
    let text = std::fs::read_to_string(dir.join("adapter_config.json"))
        .map_err(|e| what(format!("cannot read adapter_config.json: {e}")))?;
    let cfg: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| what(format!("adapter_config.json is not JSON: {e}")))?;
    if cfg["peft_type"] != "LORA" {
        return Err(what(format!(
            "adapter_config.json has peft_type {}, not \"LORA\"",
            cfg["peft_type"]
        )));
    }
    for (key, fine) in [
        ("use_dora", json!(false)),
        ("use_rslora", json!(false)),
        ("fan_in_fan_out", json!(false)),
    ] {
        if !cfg[key].is_null() && cfg[key] != fine {
            return Err(what(format!("`{key}: {}` is not supported", cfg[key])));
        }
    }
    let rank = cfg["r"]
        .as_u64()
        .filter(|&r| r > 0)
        .ok_or_else(|| what("adapter_config.json needs `r`, a positive integer".into()))?
        as usize;
    let alpha = cfg["lora_alpha"]
        .as_f64()
        .ok_or_else(|| what("adapter_config.json needs `lora_alpha`, a number".into()))?;
    let dropout = cfg["lora_dropout"].as_f64().unwrap_or(0.0);
    let ckpt = Checkpoint {
        tensors: safetensors::read_header(&dir.join("adapter_model.safetensors"))
            .map_err(|e| what(e.to_string()))?,
    };
    let mut net = net.no_grad();
    let device = net.embed.val().device();
    let mut found = 0;
    for (l, b) in net.blocks.iter_mut().enumerate() {
        for t in Target::ALL {
            let (an, bn) = (peft_name(l, t, "A"), peft_name(l, t, "B"));
            if !ckpt.tensors.contains_key(&an) {
                continue;
            }
            let [inp, out] = weight(b, t).val().dims();
            let read = |name: &str, shape: [usize; 2]| -> Result<Vec<f32>, String> {
                let (s, v) = ckpt.read_f32(name).map_err(|e| what(e.to_string()))?;
                if s != shape {
                    return Err(what(format!(
                        "`{name}` has shape {s:?}, the model needs {shape:?}"
                    )));
                }
                Ok(v)
            };
            let a = read(&an, [rank, inp])?;
            let bv = read(&bn, [out, rank])?;
            *slot(b, t) = Some(Adapter {
                a: param2(transpose(&a, rank, inp), [inp, rank], &device),
                b: param2(transpose(&bv, out, rank), [rank, out], &device),
                scale: alpha / rank as f64,
                dropout,
            });
            found += 2;
        }
    }
    if found == 0 || found != ckpt.tensors.len() {
        return Err(what(format!(
            "adapter_model.safetensors holds {} tensors, {found} of which are LoRA factors of this model's projections",
            ckpt.tensors.len()
        )));
    }
    Ok(net)
}

/// The adapter folder `path` names: a PEFT folder itself, or a LoRA-trained model folder
/// with one in `adapter/`.
pub fn adapter_dir(path: &Path) -> Result<std::path::PathBuf, String> {
    if is_peft(path) {
        return Ok(path.to_path_buf());
    }
    let inner = path.join(ADAPTER_DIR);
    if is_peft(&inner) {
        return Ok(inner);
    }
    Err(format!(
        "`{}` holds no LoRA adapter (no adapter_config.json, nor adapter/adapter_config.json)",
        path.display()
    ))
}

/// Loads the model at `model` onto `device`, with the adapter at `adapter` attached (as
/// `adapter_dir` finds it).
pub fn load_adapted(
    model: &Path,
    adapter: Option<&Path>,
    device: &Device,
) -> Result<super::load::Model, String> {
    let mut m = super::load::Model::load(model, device).map_err(|e| e.to_string())?;
    if let Some(a) = adapter {
        m.net = load_peft(&adapter_dir(a)?, m.net)?;
    }
    Ok(m)
}
