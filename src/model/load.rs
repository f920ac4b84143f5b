//! Building a `Transformer` from a checkpoint — a Hugging Face folder (config.json,
//! safetensors, tokenizer) or a GGUF file — one tensor at a time, so peak memory stays near
//! the f32 model's size (a GGUF's block-quantised projections are also kept packed, for
//! decoding); and saving a model in Hugging Face's layout.

use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use serde_json::json;

use super::config::{Arch, Config};
use super::error::{LoadCode, LoadError};
use super::gguf::Gguf;
use super::net::{Adapter, Attention, AttnLora, Block, Mlp, MlpLora, Transformer};
use super::packed::Packed;
use super::safetensors::{self, Checkpoint};
use super::tokenizer::Tokenizer;

/// A loaded model: architecture, weights, tokenizer.
pub struct Model {
    pub cfg: Config,
    pub net: Transformer,
    pub tokenizer: Tokenizer,
    /// Where it came from, for messages.
    pub source: PathBuf,
}

enum Weights {
    Hf(Checkpoint),
    Gguf(Gguf),
    /// A fresh model: Hugging Face's initialisation (normal with standard deviation `std` for
    /// projections and embeddings, ones for norms, zeros for biases), each tensor from its own
    /// stream named after it, so the values do not depend on the loading order.
    Random {
        seed: u64,
        std: f64,
    },
}

/// A weight's name in each format; `{}` stands for the layer number.
struct Name {
    hf: &'static str,
    gguf: &'static str,
}

const fn n(hf: &'static str, gguf: &'static str) -> Name {
    Name { hf, gguf }
}

const EMBED: Name = n("model.embed_tokens.weight", "token_embd.weight");
const NORM: Name = n("model.norm.weight", "output_norm.weight");
const HEAD: Name = n("lm_head.weight", "output.weight");
const Q: Name = n(
    "model.layers.{}.self_attn.q_proj.weight",
    "blk.{}.attn_q.weight",
);
const K: Name = n(
    "model.layers.{}.self_attn.k_proj.weight",
    "blk.{}.attn_k.weight",
);
const V: Name = n(
    "model.layers.{}.self_attn.v_proj.weight",
    "blk.{}.attn_v.weight",
);
const O: Name = n(
    "model.layers.{}.self_attn.o_proj.weight",
    "blk.{}.attn_output.weight",
);
const QB: Name = n(
    "model.layers.{}.self_attn.q_proj.bias",
    "blk.{}.attn_q.bias",
);
const KB: Name = n(
    "model.layers.{}.self_attn.k_proj.bias",
    "blk.{}.attn_k.bias",
);
const VB: Name = n(
    "model.layers.{}.self_attn.v_proj.bias",
    "blk.{}.attn_v.bias",
);
const QN: Name = n(
    "model.layers.{}.self_attn.q_norm.weight",
    "blk.{}.attn_q_norm.weight",
);
const KN: Name = n(
    "model.layers.{}.self_attn.k_norm.weight",
    "blk.{}.attn_k_norm.weight",
);
const GATE: Name = n(
    "model.layers.{}.mlp.gate_proj.weight",
    "blk.{}.ffn_gate.weight",
);
const UP: Name = n("model.layers.{}.mlp.up_proj.weight", "blk.{}.ffn_up.weight");
const DOWN: Name = n(
    "model.layers.{}.mlp.down_proj.weight",
    "blk.{}.ffn_down.weight",
);
const ATTN_NORM: Name = n(
    "model.layers.{}.input_layernorm.weight",
    "blk.{}.attn_norm.weight",
);
const MLP_NORM: Name = n(
    "model.layers.{}.post_attention_layernorm.weight",
    "blk.{}.ffn_norm.weight",
);

impl Weights {
    fn file(&self) -> &Path {
        match self {
            Weights::Hf(c) => c
                .tensors
                .values()
                .next()
                .map_or(Path::new("model.safetensors"), |e| e.file.as_path()),
            Weights::Gguf(g) => &g.path,
            Weights::Random { .. } => Path::new("(random initialisation)"),
        }
    }
    fn name(&self, n: &Name, layer: usize) -> String {
        let pat = match self {
            Weights::Hf(_) | Weights::Random { .. } => n.hf,
            Weights::Gguf(_) => n.gguf,
        };
        pat.replace("{}", &layer.to_string())
    }
    fn has(&self, n: &Name, layer: usize) -> bool {
        let name = self.name(n, layer);
        match self {
            Weights::Hf(c) => c.tensors.contains_key(&name),
            Weights::Gguf(g) => g.tensor(&name).is_some(),
            Weights::Random { .. } => true,
        }
    }
    /// A tensor with its row-major shape, checked against `want`.
    fn read(&self, n: &Name, layer: usize, want: &[usize]) -> Result<Vec<f32>, LoadError> {
        Ok(self.read_as(n, layer, want, false)?.0)
    }

    /// As [`Weights::read`], with the tensor's blocks packed where it is a GGUF tensor in a
    /// block format (see [`Packed`]).
    fn read_packed(
        &self,
        n: &Name,
        layer: usize,
        want: &[usize],
    ) -> Result<(Vec<f32>, Option<Packed>), LoadError> {
        self.read_as(n, layer, want, true)
    }

    fn read_as(
        &self,
        n: &Name,
        layer: usize,
        want: &[usize],
        pack: bool,
    ) -> Result<(Vec<f32>, Option<Packed>), LoadError> {
        let name = self.name(n, layer);
        let mut packed = None;
        let (shape, values) = match self {
            Weights::Hf(c) => c.read_f32(&name)?,
            Weights::Gguf(g) => {
                let (shape, enc, raw) = g.read_raw(&name)?;
                let values = Gguf::decode(&shape, enc, &raw);
                if let (true, [out, inp]) = (pack && shape == want, want) {
                    packed = Packed::from_blocks(enc, &raw, *out, *inp, &values);
                }
                (shape, values)
            }
            Weights::Random { seed, std } => {
                let len = want.iter().product();
                let values = if name.ends_with(".bias") {
                    vec![0.0; len]
                } else if name.contains("norm") {
                    vec![1.0; len]
                } else {
                    normals(*seed, &name, *std, len)
                };
                (want.to_vec(), values)
            }
        };
        if shape != want {
            return Err(LoadError::new(
                LoadCode::TensorBounds,
                self.file(),
                format!(
                    "tensor `{name}` has shape {shape:?}, but the configuration needs {want:?}"
                ),
                "the weights do not belong to this configuration",
            ));
        }
        Ok((values, packed))
    }
}

/// `len` draws from N(0, std²) by Box–Muller on the stream named `name`.
fn normals(seed: u64, name: &str, std: f64, len: usize) -> Vec<f32> {
    let mut rng = crate::util::rng::Rng::stream(seed, name);
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        // 1 - unit() lies in (0, 1], so the logarithm is finite.
        let r = (-2.0 * (1.0 - rng.unit()).ln()).sqrt() * std;
        let a = std::f64::consts::TAU * rng.unit();
        out.push((r * a.cos()) as f32);
        out.push((r * a.sin()) as f32);
    }
    out.truncate(len);
    out
}

/// `[rows, cols]` → `[cols, rows]`.
/// `v` (`rows × cols`, row-major) transposed.
pub(crate) fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// llama.cpp stores Llama's q/k projections with each head's rows interleaved for its RoPE
/// kernel; this undoes that so the rotate-half RoPE of Hugging Face applies.
fn unpermute(v: &[f32], heads: usize, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for (dst, src) in unpermuted_rows(heads, rows).into_iter().enumerate() {
        out[dst * cols..(dst + 1) * cols].copy_from_slice(&v[src * cols..(src + 1) * cols]);
    }
    out
}

/// For each row in Hugging Face's order, its row in llama.cpp's interleaved order.
fn unpermuted_rows(heads: usize, rows: usize) -> Vec<usize> {
    let hd = rows / heads;
    let mut order = vec![0; rows];
    for h in 0..heads {
        for i in 0..hd / 2 {
            for two in 0..2 {
                // Source row in GGUF order: (h, i, two); destination in HF order: (h, two, i).
                order[h * hd + two * (hd / 2) + i] = h * hd + i * 2 + two;
            }
        }
    }
    order
}

fn param2(values: Vec<f32>, shape: [usize; 2], device: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

fn param1(values: Vec<f32>, device: &Device) -> Param<Tensor<1>> {
    let n = values.len();
    Param::from_tensor(Tensor::from_data(TensorData::new(values, [n]), device))
}

impl Model {
    /// Loads a Hugging Face model folder or a `.gguf` file onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Model, LoadError> {
        let (cfg, weights, tokenizer) = if path.is_dir() {
            let cfg = Config::from_hf(&path.join("config.json"))?;
            let tok = Tokenizer::from_hf_dir(path)?;
            (cfg, Weights::Hf(Checkpoint::open(path)?), tok)
        } else {
            let g = Gguf::open(path)?;
            let cfg = Config::from_gguf(&g)?;
            let tok = Tokenizer::from_gguf(&g)?;
            (cfg, Weights::Gguf(g), tok)
        };
        let net = build(&cfg, &weights, device)?;
        Ok(Model {
            cfg,
            net,
            tokenizer,
            source: path.to_path_buf(),
        })
    }

    /// A randomly initialised model of `cfg` (seeded: the same seed gives the same weights).
    pub fn init(
        cfg: Config,
        tokenizer: Tokenizer,
        seed: u64,
        std: f64,
        device: &Device,
    ) -> Result<Model, LoadError> {
        let net = build(&cfg, &Weights::Random { seed, std }, device)?;
        Ok(Model {
            cfg,
            net,
            tokenizer,
            source: PathBuf::from("(random initialisation)"),
        })
    }

    /// The same weights without autodiff: what rollouts and scoring use while a copy trains
    /// (the tensors are shared, not copied).
    pub fn valid(&self) -> Model {
        Model {
            cfg: self.cfg.clone(),
            net: self.net.valid(),
            tokenizer: self.tokenizer.clone(),
            source: self.source.clone(),
        }
    }

    /// Writes the model in Hugging Face's layout (config.json, model.safetensors,
    /// tokenizer.json, tokenizer_config.json, generation_config.json) into `dir`; LoRA
    /// adapters are folded into their weights.
    pub fn save_hf(&self, dir: &Path, bf16: bool) -> Result<(), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        safetensors::write_lazy(
            &dir.join("model.safetensors"),
            export(&self.cfg, &self.net),
            bf16,
        )
        .map_err(|e| format!("cannot write the weights: {e}"))?;
        let cfg = self
            .cfg
            .to_hf_json(if bf16 { "bfloat16" } else { "float32" });
        let write = |name: &str, v: &serde_json::Value| {
            let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())? + "\n";
            std::fs::write(dir.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))
        };
        write("config.json", &cfg)?;
        let mut gen_cfg = json!({"eos_token_id": self.tokenizer.eos_token_ids});
        if let Some(b) = self.cfg.bos_token_id {
            gen_cfg["bos_token_id"] = json!(b);
        }
        write("generation_config.json", &gen_cfg)?;
        self.tokenizer.save(dir)
    }
}

fn build(cfg: &Config, w: &Weights, device: &Device) -> Result<Transformer, LoadError> {
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (q_out, kv_out) = (
        cfg.num_heads * cfg.head_dim,
        cfg.num_kv_heads * cfg.head_dim,
    );
    let gguf_llama = matches!(w, Weights::Gguf(_)) && cfg.arch == Arch::Llama;
    let packs = std::cell::RefCell::new(std::collections::HashMap::new());
    // A projection stored `[out, in]`, kept as `[in, out]` (and packed where it can be).
    let proj = |n: &Name,
                l: usize,
                out: usize,
                inp: usize,
                heads: Option<usize>|
     -> Result<Param<Tensor<2>>, LoadError> {
        let (mut values, mut packed) = w.read_packed(n, l, &[out, inp])?;
        if let (true, Some(heads)) = (gguf_llama, heads) {
            values = unpermute(&values, heads, out, inp);
            packed = packed.map(|p| p.rows_in_order(&unpermuted_rows(heads, out)));
        }
        let param = param2(transpose(&values, out, inp), [inp, out], device);
        if let Some(p) = packed {
            packs.borrow_mut().insert(param.id, p);
        }
        Ok(param)
    };
    let vec1 = |n: &Name, l: usize, len: usize| -> Result<Param<Tensor<1>>, LoadError> {
        Ok(param1(w.read(n, l, &[len])?, device))
    };
    let opt1 = |n: &Name,
                l: usize,
                len: usize,
                wanted: bool|
     -> Result<Option<Param<Tensor<1>>>, LoadError> {
        if wanted {
            vec1(n, l, len).map(Some)
        } else {
            Ok(None)
        }
    };
    let mut blocks = Vec::with_capacity(cfg.num_layers);
    for l in 0..cfg.num_layers {
        blocks.push(Block {
            attn_norm: vec1(&ATTN_NORM, l, h)?,
            attn: Attention {
                q: proj(&Q, l, q_out, h, Some(cfg.num_heads))?,
                k: proj(&K, l, kv_out, h, Some(cfg.num_kv_heads))?,
                v: proj(&V, l, kv_out, h, None)?,
                o: proj(&O, l, h, q_out, None)?,
                q_bias: opt1(&QB, l, q_out, cfg.qkv_bias)?,
                k_bias: opt1(&KB, l, kv_out, cfg.qkv_bias)?,
                v_bias: opt1(&VB, l, kv_out, cfg.qkv_bias)?,
                q_norm: opt1(&QN, l, cfg.head_dim, cfg.qk_norm)?,
                k_norm: opt1(&KN, l, cfg.head_dim, cfg.qk_norm)?,
                lora: AttnLora::default(),
            },
            mlp_norm: vec1(&MLP_NORM, l, h)?,
            mlp: Mlp {
                gate: proj(&GATE, l, i, h, None)?,
                up: proj(&UP, l, i, h, None)?,
                down: proj(&DOWN, l, h, i, None)?,
                lora: MlpLora::default(),
            },
        });
    }
    // Some checkpoints store a head even when the config ties it; the file wins.
    let lm_head = if w.has(&HEAD, 0) && !cfg.tie_word_embeddings {
        Some(proj(&HEAD, 0, v, h, None)?)
    } else if !cfg.tie_word_embeddings {
        return Err(LoadError::new(
            LoadCode::MissingTensor,
            w.file(),
            format!(
                "the output projection `{}` is missing and the embeddings are not tied",
                w.name(&HEAD, 0)
            ),
            "the checkpoint is incomplete",
        ));
    } else {
        None
    };
    let (values, embed_packed) = if lm_head.is_none() {
        w.read_packed(&EMBED, 0, &[v, h])?
    } else {
        (w.read(&EMBED, 0, &[v, h])?, None)
    };
    let embed = param2(values, [v, h], device);
    let mut packs = packs.into_inner();
    // A tied output head is the embedding itself, `[vocab, hidden]`: its packed rows serve.
    if let (None, Some(p)) = (&lm_head, embed_packed) {
        packs.insert(embed.id, p);
    }
    Ok(Transformer {
        embed,
        blocks,
        norm: vec1(&NORM, 0, h)?,
        lm_head,
        packed: std::sync::Arc::new(packs),
    })
}

pub(crate) fn values<const D: usize>(p: &Param<Tensor<D>>) -> Result<Vec<f32>, String> {
    tensor_values(p.val())
}

fn tensor_values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, String> {
    t.try_into_data()
        .map_err(|e| format!("cannot read a weight back: {e}"))?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| format!("cannot read a weight back: {e:?}"))
}

/// Every weight under its Hugging Face name, `[out, in]` as Hugging Face stores it, with
/// LoRA adapters folded into their weights (`w + scale·a·b`): a plain checkpoint. Each tensor
/// is read back from the device (and merged) a block of rows at a time as it is written, so
/// saving holds no second copy of a weight.
pub fn export<'a>(cfg: &Config, net: &'a Transformer) -> Vec<safetensors::Lazy<'a>> {
    let mut out = Vec::new();
    let name = |n: &Name, l: usize| n.hf.replace("{}", &l.to_string());
    // Stored `[in, out]`: written rows are stored columns, transposed block by block.
    let mut proj = |n: &Name, l: usize, p: &'a Param<Tensor<2>>, ad: Option<&'a Adapter>| {
        let [inp, o] = p.val().dims();
        out.push(safetensors::Lazy {
            name: name(n, l),
            shape: vec![o, inp],
            rows: Box::new(move |r| {
                let w = p.val().inner().slice([0..inp, r.clone()]);
                let w = match ad {
                    Some(ad) => {
                        let rank = ad.b.val().dims()[0];
                        let b = ad.b.val().inner().slice([0..rank, r.clone()]);
                        w + ad.a.val().inner().matmul(b).mul_scalar(ad.scale)
                    }
                    None => w,
                };
                Ok(transpose(&tensor_values(w)?, inp, r.len()))
            }),
        });
    };
    for (l, b) in net.blocks.iter().enumerate() {
        let (a, m) = (&b.attn.lora, &b.mlp.lora);
        proj(&Q, l, &b.attn.q, a.q.as_ref());
        proj(&K, l, &b.attn.k, a.k.as_ref());
        proj(&V, l, &b.attn.v, a.v.as_ref());
        proj(&O, l, &b.attn.o, a.o.as_ref());
        proj(&GATE, l, &b.mlp.gate, m.gate.as_ref());
        proj(&UP, l, &b.mlp.up, m.up.as_ref());
        proj(&DOWN, l, &b.mlp.down, m.down.as_ref());
    }
    if let Some(head) = &net.lm_head {
        proj(&HEAD, 0, head, None);
    }
    let mut vec1 = |n: &Name, l: usize, p: &'a Param<Tensor<1>>| {
        out.push(safetensors::Lazy {
            name: name(n, l),
            shape: vec![p.val().dims()[0]],
            rows: Box::new(move |r| tensor_values(p.val().inner().slice([r]))),
        });
    };
    for (l, b) in net.blocks.iter().enumerate() {
        vec1(&ATTN_NORM, l, &b.attn_norm);
        vec1(&MLP_NORM, l, &b.mlp_norm);
        for (n, p) in [
            (&QB, &b.attn.q_bias),
            (&KB, &b.attn.k_bias),
            (&VB, &b.attn.v_bias),
            (&QN, &b.attn.q_norm),
            (&KN, &b.attn.k_norm),
        ] {
            if let Some(p) = p {
                vec1(n, l, p);
            }
        }
    }
    vec1(&NORM, 0, &net.norm);
    let h = cfg.hidden_size;
    out.push(safetensors::Lazy {
        name: EMBED.hf.to_string(),
        shape: vec![cfg.vocab_size, h],
        rows: Box::new(move |r| tensor_values(net.embed.val().inner().slice([r, 0..h]))),
    });
    out
}
