//! Architecture hyper-parameters, read from a Hugging Face `config.json` or a GGUF file's
//! metadata, and written back as `config.json`. Three families: Qwen3 (q/k RMSNorm, no
//! biases), Qwen2 / Qwen2.5 (q/k/v biases) and Llama (optional `llama3` RoPE scaling). Any
//! configuration outside what the model code implements is refused, naming the field.

use std::path::Path;

use serde_json::{Value as Json, json};

use super::error::{LoadCode, LoadError};
use super::gguf::{Gguf, Meta};

/// The architectures synthpipe runs (as pipeline files name them: `qwen3`, `qwen2`, `llama`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Qwen3,
    Qwen2,
    Llama,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Qwen3 => "qwen3",
            Arch::Qwen2 => "qwen2",
            Arch::Llama => "llama",
        }
    }
    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "qwen3" => Some(Arch::Qwen3),
            "qwen2" => Some(Arch::Qwen2),
            "llama" => Some(Arch::Llama),
            _ => None,
        }
    }
    fn hf_class(self) -> &'static str {
        match self {
            Arch::Qwen3 => "Qwen3ForCausalLM",
            Arch::Qwen2 => "Qwen2ForCausalLM",
            Arch::Llama => "LlamaForCausalLM",
        }
    }
}

/// Llama 3's RoPE frequency scaling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Llama3Rope {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

impl Llama3Rope {
    /// Each frequency's divisor under this scaling (llama.cpp's `rope_freqs` tensor).
    pub fn divisors(&self, theta: f64, head_dim: usize) -> Vec<f64> {
        let low = self.original_max_position_embeddings / self.low_freq_factor;
        let high = self.original_max_position_embeddings / self.high_freq_factor;
        (0..head_dim / 2)
            .map(|i| {
                let f = 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64);
                let wavelen = 2.0 * std::f64::consts::PI / f;
                if wavelen < high {
                    1.0
                } else if wavelen > low {
                    self.factor
                } else {
                    let smooth = (self.original_max_position_embeddings / wavelen
                        - self.low_freq_factor)
                        / (self.high_freq_factor - self.low_freq_factor);
                    1.0 / ((1.0 - smooth) / self.factor + smooth)
                }
            })
            .collect()
    }

    /// The scaling whose divisors are `divisors`: the factor is the largest divisor; the
    /// other parameters are searched among the values Llama 3 releases use and powers of two
    /// for the original context.
    pub fn fit(divisors: &[f32], theta: f64, head_dim: usize) -> Option<Llama3Rope> {
        if divisors.len() != head_dim / 2 {
            return None;
        }
        let factor = divisors.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if !factor.is_finite() || factor < 1.0 {
            return None;
        }
        let factor = f64::from(factor);
        for original in (4..=20).map(|p| f64::from(1u32 << p)) {
            for (low_freq_factor, high_freq_factor) in
                [(1.0, 4.0), (1.0, 2.0), (2.0, 4.0), (1.0, 8.0)]
            {
                let r = Llama3Rope {
                    factor,
                    low_freq_factor,
                    high_freq_factor,
                    original_max_position_embeddings: original,
                };
                let fits = r
                    .divisors(theta, head_dim)
                    .iter()
                    .zip(divisors)
                    .all(|(a, &b)| (a - f64::from(b)).abs() <= 1e-4 * a.abs().max(1.0));
                if fits {
                    return Some(r);
                }
            }
        }
        None
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Rope>,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: usize,
    /// Biases on the q/k/v projections (Qwen2; Llama with `attention_bias`).
    pub qkv_bias: bool,
    /// RMSNorm on queries and keys per head (Qwen3).
    pub qk_norm: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

/// A token-id field of config.json or generation_config.json: one id or a list of ids.
pub fn token_ids(v: &Json) -> Vec<u32> {
    match v {
        Json::Array(a) => a
            .iter()
            .filter_map(Json::as_u64)
            .map(|v| v as u32)
            .collect(),
        v => v.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
    }
}

impl Config {
    /// Parameters, counting tied embeddings once.
    pub fn parameter_count(&self) -> u64 {
        let (h, i, v) = (
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.vocab_size as u64,
        );
        let (q, kv) = (
            (self.num_heads * self.head_dim) as u64,
            (self.num_kv_heads * self.head_dim) as u64,
        );
        let attn = h * q
            + 2 * h * kv
            + q * h
            + if self.qkv_bias { q + 2 * kv } else { 0 }
            + if self.qk_norm {
                2 * self.head_dim as u64
            } else {
                0
            };
        let layer = attn + 3 * h * i + 2 * h;
        let embed = v * h * if self.tie_word_embeddings { 1 } else { 2 };
        layer * self.num_layers as u64 + embed + h
    }

    /// Checks the relations between sizes that the model code relies on.
    pub(crate) fn validate(self, file: &Path) -> Result<Config, LoadError> {
        let fail = |field: &str, why: String| {
            Err(LoadError::new(
                LoadCode::Unsupported,
                file,
                format!("`{field}`: {why}"),
                "synthpipe implements grouped-query attention with even head dimensions",
            ))
        };
        if self.num_heads == 0
            || self.num_kv_heads == 0
            || !self.num_heads.is_multiple_of(self.num_kv_heads)
        {
            return fail(
                "num_key_value_heads",
                format!(
                    "{} query heads cannot share {} key/value heads evenly",
                    self.num_heads, self.num_kv_heads
                ),
            );
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return fail(
                "head_dim",
                format!(
                    "{} is not a positive even number (RoPE rotates pairs)",
                    self.head_dim
                ),
            );
        }
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
        ] {
            if v == 0 {
                return fail(field, "must be positive".into());
            }
        }
        Ok(self)
    }

    /// Reads `config.json` of a Hugging Face model folder.
    pub fn from_hf(path: &Path) -> Result<Config, LoadError> {
        let text = std::fs::read(path).map_err(|e| {
            LoadError::new(
                LoadCode::Config,
                path,
                format!("cannot read: {e}"),
                "a Hugging Face model folder has a config.json",
            )
        })?;
        let j: Json = serde_json::from_slice(&text).map_err(|e| {
            LoadError::new(
                LoadCode::Config,
                path,
                format!("not JSON: {e}"),
                "fix or re-download config.json",
            )
        })?;
        Config::from_hf_json(&j, path)
    }

    pub fn from_hf_json(j: &Json, path: &Path) -> Result<Config, LoadError> {
        let missing = |field: &str| {
            LoadError::new(
                LoadCode::Config,
                path,
                format!("`{field}` is missing or not a number"),
                "config.json lacks a hyper-parameter this architecture needs",
            )
        };
        let int = |field: &str| {
            j[field]
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| missing(field))
        };
        let float = |field: &str, default: Option<f64>| {
            j[field].as_f64().or(default).ok_or_else(|| missing(field))
        };
        let model_type = j["model_type"].as_str().unwrap_or_default();
        let Some(arch) = Arch::parse(model_type) else {
            return Err(LoadError::new(
                LoadCode::Unsupported,
                path,
                format!(
                    "`model_type` is `{model_type}`; synthpipe implements qwen3, qwen2 and llama"
                ),
                "use a Qwen3, Qwen2/Qwen2.5 or Llama checkpoint",
            ));
        };
        if j["mlp_bias"].as_bool() == Some(true) {
            return Err(LoadError::new(
                LoadCode::Unsupported,
                path,
                "`mlp_bias` is true",
                "synthpipe implements MLPs without biases",
            ));
        }
        if let Some(act) = j["hidden_act"].as_str().filter(|a| *a != "silu") {
            return Err(LoadError::new(
                LoadCode::Unsupported,
                path,
                format!("`hidden_act` is `{act}`"),
                "synthpipe implements SwiGLU with SiLU",
            ));
        }
        if j["use_sliding_window"].as_bool() == Some(true) {
            return Err(LoadError::new(
                LoadCode::Unsupported,
                path,
                "`use_sliding_window` is true",
                "synthpipe implements full attention only",
            ));
        }
        // transformers 5 writes `rope_parameters` (theta, type and scaling in one object);
        // earlier versions write `rope_theta` and `rope_scaling`.
        let rope = match (&j["rope_parameters"], &j["rope_scaling"]) {
            (p @ Json::Object(_), _) => Some(("rope_parameters", p)),
            (_, Json::Null) => None,
            (_, s) => Some(("rope_scaling", s)),
        };
        let rope_scaling = match rope {
            None => None,
            Some((key, r)) => {
                let kind = r["rope_type"]
                    .as_str()
                    .or(r["type"].as_str())
                    .unwrap_or("default");
                match kind {
                    "default" => None,
                    "llama3" => {
                        let f =
                            |k: &str| r[k].as_f64().ok_or_else(|| missing(&format!("{key}.{k}")));
                        Some(Llama3Rope {
                            factor: f("factor")?,
                            low_freq_factor: f("low_freq_factor")?,
                            high_freq_factor: f("high_freq_factor")?,
                            original_max_position_embeddings: f(
                                "original_max_position_embeddings",
                            )?,
                        })
                    }
                    other => {
                        return Err(LoadError::new(
                            LoadCode::Unsupported,
                            path,
                            format!(
                                "`{key}.rope_type` is `{other}`; synthpipe implements `llama3` scaling (or none)"
                            ),
                            "remove the scaling for short contexts, or use a checkpoint with llama3 scaling",
                        ));
                    }
                }
            }
        };
        let rope_theta = j["rope_parameters"]["rope_theta"]
            .as_f64()
            .or(j["rope_theta"].as_f64())
            .unwrap_or(10000.0);
        let hidden = int("hidden_size")?;
        let heads = int("num_attention_heads")?;
        let head_dim = match j["head_dim"].as_u64() {
            Some(d) => d as usize,
            None if heads > 0 => hidden / heads,
            None => return Err(missing("num_attention_heads")),
        };
        let eos = token_ids(&j["eos_token_id"]);
        Config {
            arch,
            vocab_size: int("vocab_size")?,
            hidden_size: hidden,
            intermediate_size: int("intermediate_size")?,
            num_layers: int("num_hidden_layers")?,
            num_heads: heads,
            num_kv_heads: j["num_key_value_heads"]
                .as_u64()
                .map_or(heads, |v| v as usize),
            head_dim,
            rope_theta,
            rope_scaling,
            rms_norm_eps: float("rms_norm_eps", Some(1e-6))?,
            tie_word_embeddings: j["tie_word_embeddings"].as_bool().unwrap_or(false),
            max_position_embeddings: j["max_position_embeddings"]
                .as_u64()
                .map_or(32768, |v| v as usize),
            qkv_bias: match arch {
                Arch::Qwen2 => true,
                _ => j["attention_bias"].as_bool().unwrap_or(false),
            },
            qk_norm: arch == Arch::Qwen3,
            bos_token_id: j["bos_token_id"].as_u64().map(|v| v as u32),
            eos_token_ids: eos,
        }
        .validate(path)
    }

    /// Reads the hyper-parameters from a GGUF file's metadata (`ARCH.block_count`, …).
    pub fn from_gguf(g: &Gguf) -> Result<Config, LoadError> {
        let arch_name = g
            .require("general.architecture")?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(arch) = Arch::parse(&arch_name) else {
            return Err(LoadError::new(
                LoadCode::Unsupported,
                &g.path,
                format!(
                    "`general.architecture` is `{arch_name}`; synthpipe implements qwen3, qwen2 and llama"
                ),
                "use a Qwen3, Qwen2/Qwen2.5 or Llama GGUF",
            ));
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let int = |k: &str| -> Result<usize, LoadError> {
            let m = g.require(&key(k))?;
            m.as_u64().map(|v| v as usize).ok_or_else(|| {
                LoadError::new(
                    LoadCode::Metadata,
                    &g.path,
                    format!("`{}` is not an integer", key(k)),
                    "the file is damaged",
                )
            })
        };
        let hidden = int("embedding_length")?;
        let heads = int("attention.head_count")?;
        let vocab = match g.meta(&key("vocab_size")).and_then(Meta::as_u64) {
            Some(v) => v as usize,
            None => g
                .require("tokenizer.ggml.tokens")?
                .as_array()
                .map_or(0, <[Meta]>::len),
        };
        let head_dim = g
            .meta(&key("attention.key_length"))
            .and_then(Meta::as_u64)
            .map_or(hidden.checked_div(heads).unwrap_or(0), |v| v as usize);
        let rope_theta = g
            .meta(&key("rope.freq_base"))
            .and_then(Meta::as_f64)
            .unwrap_or(10000.0);
        let rope_scaling = match g.meta(&key("rope.scaling.type")).and_then(Meta::as_str) {
            None | Some("none") => None,
            Some(other) => {
                return Err(LoadError::new(
                    LoadCode::Unsupported,
                    &g.path,
                    format!("`{}` is `{other}`", key("rope.scaling.type")),
                    "synthpipe implements GGUF models without RoPE scaling, or with Llama 3's (a rope_freqs tensor)",
                ));
            }
        };
        // llama.cpp stores Llama 3's RoPE scaling as a per-frequency divisor tensor; recover
        // the scaling parameters from it so the model runs and saves as Hugging Face has it.
        let rope_scaling = match g.tensor("rope_freqs.weight") {
            None => rope_scaling,
            Some(_) => {
                let (_, factors) = g.read_f32("rope_freqs.weight")?;
                match Llama3Rope::fit(&factors, rope_theta, head_dim) {
                    Some(r) => Some(r),
                    None => {
                        return Err(LoadError::new(
                            LoadCode::Unsupported,
                            &g.path,
                            "the `rope_freqs.weight` tensor does not follow Llama 3's RoPE scaling",
                            "synthpipe implements Llama 3 RoPE scaling; convert the original Hugging Face model instead",
                        ));
                    }
                }
            }
        };
        let tok = |k: &str| g.meta(k).and_then(Meta::as_u64).map(|v| v as u32);
        Config {
            arch,
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: int("feed_forward_length")?,
            num_layers: int("block_count")?,
            num_heads: heads,
            num_kv_heads: g
                .meta(&key("attention.head_count_kv"))
                .and_then(Meta::as_u64)
                .map_or(heads, |v| v as usize),
            head_dim,
            rope_theta,
            rope_scaling,
            rms_norm_eps: g
                .meta(&key("attention.layer_norm_rms_epsilon"))
                .and_then(Meta::as_f64)
                .unwrap_or(1e-6),
            tie_word_embeddings: g.tensor("output.weight").is_none(),
            max_position_embeddings: g
                .meta(&key("context_length"))
                .and_then(Meta::as_u64)
                .map_or(32768, |v| v as usize),
            qkv_bias: g.tensor("blk.0.attn_q.bias").is_some(),
            qk_norm: g.tensor("blk.0.attn_q_norm.weight").is_some(),
            bos_token_id: tok("tokenizer.ggml.bos_token_id"),
            eos_token_ids: tok("tokenizer.ggml.eos_token_id").into_iter().collect(),
        }
        .validate(&g.path)
    }

    /// `config.json` in Hugging Face's layout, so transformers and vLLM load a saved model.
    pub fn to_hf_json(&self, dtype: &str) -> Json {
        let mut j = json!({
            "architectures": [self.arch.hf_class()],
            "model_type": self.arch.name(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "attention_bias": self.qkv_bias,
            "torch_dtype": dtype,
            "use_cache": true,
        });
        // Both layouts: transformers 5 reads `rope_parameters`, earlier versions and vLLM
        // read `rope_theta` / `rope_scaling`.
        j["rope_parameters"] = json!({"rope_theta": self.rope_theta, "rope_type": "default"});
        if let Some(r) = self.rope_scaling {
            let scaling = json!({
                "rope_type": "llama3",
                "factor": r.factor,
                "low_freq_factor": r.low_freq_factor,
                "high_freq_factor": r.high_freq_factor,
                "original_max_position_embeddings": r.original_max_position_embeddings,
            });
            let mut params = scaling.clone();
            params["rope_theta"] = json!(self.rope_theta);
            j["rope_parameters"] = params;
            j["rope_scaling"] = scaling;
        }
        if let Some(b) = self.bos_token_id {
            j["bos_token_id"] = json!(b);
        }
        match self.eos_token_ids.as_slice() {
            [] => {}
            [one] => j["eos_token_id"] = json!(one),
            many => j["eos_token_id"] = json!(many),
        }
        j
    }
}
