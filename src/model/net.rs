//! The transformer on burn: decoder blocks of grouped-query attention with RoPE and a SwiGLU
//! MLP, RMSNorm, tied or separate output embedding — one implementation for Qwen3 (q/k
//! norms), Qwen2 (q/k/v biases) and Llama (llama3 RoPE scaling). Weights are stored
//! transposed (`[in, out]`) so a projection is one matmul. A key/value cache per layer lets
//! generation feed one token at a time; rows of a batch may be left-padded, so positions and
//! the attention mask are per row.

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Int, TensorData};

use super::config::Config;

#[derive(Module, Debug)]
pub struct Attention {
    pub q: Param<Tensor<2>>,
    pub k: Param<Tensor<2>>,
    pub v: Param<Tensor<2>>,
    pub o: Param<Tensor<2>>,
    pub q_bias: Option<Param<Tensor<1>>>,
    pub k_bias: Option<Param<Tensor<1>>>,
    pub v_bias: Option<Param<Tensor<1>>>,
    pub q_norm: Option<Param<Tensor<1>>>,
    pub k_norm: Option<Param<Tensor<1>>>,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate: Param<Tensor<2>>,
    pub up: Param<Tensor<2>>,
    pub down: Param<Tensor<2>>,
}

#[derive(Module, Debug)]
pub struct Block {
    pub attn_norm: Param<Tensor<1>>,
    pub attn: Attention,
    pub mlp_norm: Param<Tensor<1>>,
    pub mlp: Mlp,
}

#[derive(Module, Debug)]
pub struct Transformer {
    /// `[vocab, hidden]`.
    pub embed: Param<Tensor<2>>,
    pub blocks: Vec<Block>,
    pub norm: Param<Tensor<1>>,
    /// `[hidden, vocab]`; `None` when tied to `embed`.
    pub lm_head: Option<Param<Tensor<2>>>,
}

/// Keys and values of the positions seen so far, per layer: `[batch, kv_heads, seen, head_dim]`.
#[derive(Clone, Debug)]
pub struct Cache {
    pub layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Per row: whether each position seen so far is a real token (false: left padding).
    pub valid: Vec<Vec<bool>>,
    /// Per row: the position id of the next token.
    pub next_pos: Vec<usize>,
}

impl Cache {
    pub fn new(layers: usize, batch: usize) -> Cache {
        Cache {
            layers: vec![None; layers],
            valid: vec![Vec::new(); batch],
            next_pos: vec![0; batch],
        }
    }
    pub fn seen(&self) -> usize {
        self.valid.first().map_or(0, Vec::len)
    }
}

/// RoPE inverse frequencies, with Llama 3's scaling when configured.
pub fn inv_freq(cfg: &Config) -> Vec<f64> {
    let half = cfg.head_dim / 2;
    (0..half)
        .map(|i| {
            let f = 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / cfg.head_dim as f64);
            match cfg.rope_scaling {
                None => f,
                Some(r) => {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let low = r.original_max_position_embeddings / r.low_freq_factor;
                    let high = r.original_max_position_embeddings / r.high_freq_factor;
                    if wavelen < high {
                        f
                    } else if wavelen > low {
                        f / r.factor
                    } else {
                        let smooth = (r.original_max_position_embeddings / wavelen
                            - r.low_freq_factor)
                            / (r.high_freq_factor - r.low_freq_factor);
                        (1.0 - smooth) * f / r.factor + smooth * f
                    }
                }
            }
        })
        .collect()
}

fn rms_norm<const D: usize>(x: Tensor<D>, w: &Param<Tensor<1>>, eps: f64) -> Tensor<D> {
    let var = x.clone().powi_scalar(2).mean_dim(D - 1);
    let normed = x * var.add_scalar(eps).sqrt().recip();
    let w = w.val();
    let mut shape = [1usize; D];
    shape[D - 1] = w.dims()[0];
    normed * w.reshape(shape)
}

/// `x · w (+ b)` for `x: [.., in]`, `w: [in, out]`.
fn linear(x: Tensor<3>, w: &Param<Tensor<2>>, b: Option<&Param<Tensor<1>>>) -> Tensor<3> {
    let y = x.matmul(w.val().unsqueeze_dim(0));
    match b {
        Some(b) => y + b.val().unsqueeze_dim::<2>(0).unsqueeze_dim(0),
        None => y,
    }
}

/// Rotates `x: [batch, heads, t, head_dim]` by the angles of its positions (`cos`, `sin`:
/// `[batch, 1, t, head_dim]`), halves rotated against each other as Hugging Face does.
fn rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let [b, h, t, d] = x.dims();
    let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..d / 2]);
    let x2 = x.clone().slice([0..b, 0..h, 0..t, d / 2..d]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}

impl Transformer {
    /// Logits `[batch, t, vocab]` for `ids` (`[batch, t]`), appending to `cache`. `valid[r][i]`
    /// says whether token `i` of row `r` is real (left padding is not).
    pub fn forward(
        &self,
        cfg: &Config,
        ids: Tensor<2, Int>,
        valid: &[Vec<bool>],
        cache: &mut Cache,
    ) -> Tensor<3> {
        let h = self.hidden(cfg, ids, valid, cache);
        self.logits(h)
    }

    /// Final hidden states `[batch, t, hidden]` (after the last norm).
    pub fn hidden(
        &self,
        cfg: &Config,
        ids: Tensor<2, Int>,
        valid: &[Vec<bool>],
        cache: &mut Cache,
    ) -> Tensor<3> {
        let device = ids.device();
        let [batch, t] = ids.dims();
        let hidden = cfg.hidden_size;
        let mut x = self
            .embed
            .val()
            .select(0, ids.reshape([batch * t]))
            .reshape([batch, t, hidden]);

        // Positions: each row counts only its real tokens.
        let mut positions = Vec::with_capacity(batch * t);
        for (r, row) in valid.iter().enumerate() {
            let mut p = cache.next_pos[r];
            for &ok in row {
                positions.push(p as f32);
                if ok {
                    p += 1;
                }
            }
            cache.next_pos[r] = p;
            cache.valid[r].extend_from_slice(row);
        }
        let freqs = inv_freq(cfg);
        let half = cfg.head_dim / 2;
        let pos = Tensor::<1>::from_data(TensorData::new(positions, [batch * t]), &device)
            .reshape([batch * t, 1]);
        let f = Tensor::<1>::from_data(
            TensorData::new(freqs.iter().map(|&v| v as f32).collect::<Vec<_>>(), [half]),
            &device,
        )
        .reshape([1, half]);
        let angles = pos.matmul(f); // [b*t, half]
        let angles =
            Tensor::cat(vec![angles.clone(), angles], 1).reshape([batch, 1, t, cfg.head_dim]);
        let (cos, sin) = (angles.clone().cos(), angles.sin());

        // Mask [batch, 1, t, seen]: a query sees earlier-or-same real keys.
        let seen = cache.seen();
        let past = seen - t;
        let mut mask = Vec::with_capacity(batch * t * seen);
        for r in 0..batch {
            for i in 0..t {
                for j in 0..seen {
                    let blocked = j > past + i || !cache.valid[r][j];
                    mask.push(if blocked { -1e30f32 } else { 0.0 });
                }
            }
        }
        let mask = Tensor::<1>::from_data(TensorData::new(mask, [batch * t * seen]), &device)
            .reshape([batch, 1, t, seen]);

        for (l, block) in self.blocks.iter().enumerate() {
            let a = rms_norm(x.clone(), &block.attn_norm, cfg.rms_norm_eps);
            let a = block
                .attn
                .forward(cfg, a, &cos, &sin, &mask, &mut cache.layers[l]);
            x = x + a;
            let m = rms_norm(x.clone(), &block.mlp_norm, cfg.rms_norm_eps);
            let m = silu(linear(m.clone(), &block.mlp.gate, None)) * linear(m, &block.mlp.up, None);
            x = x + linear(m, &block.mlp.down, None);
        }
        rms_norm(x, &self.norm, cfg.rms_norm_eps)
    }

    /// Projects hidden states to logits over the vocabulary.
    pub fn logits(&self, h: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(w) => h.matmul(w.val().unsqueeze_dim(0)),
            None => h.matmul(self.embed.val().transpose().unsqueeze_dim(0)),
        }
    }
}

impl Attention {
    fn forward(
        &self,
        cfg: &Config,
        x: Tensor<3>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        mask: &Tensor<4>,
        cache: &mut Option<(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, kvh, hd) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let q = linear(x.clone(), &self.q, self.q_bias.as_ref()).reshape([b, t, h, hd]);
        let k = linear(x.clone(), &self.k, self.k_bias.as_ref()).reshape([b, t, kvh, hd]);
        let v = linear(x, &self.v, self.v_bias.as_ref()).reshape([b, t, kvh, hd]);
        let (q, k) = match (&self.q_norm, &self.k_norm) {
            (Some(qn), Some(kn)) => (
                rms_norm(q, qn, cfg.rms_norm_eps),
                rms_norm(k, kn, cfg.rms_norm_eps),
            ),
            _ => (q, k),
        };
        let q = rope(q.swap_dims(1, 2), cos, sin);
        let k = rope(k.swap_dims(1, 2), cos, sin);
        let v = v.swap_dims(1, 2);
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        *cache = Some((k.clone(), v.clone()));
        let s = k.dims()[2];
        let rep = h / kvh;
        let expand = |x: Tensor<4>| -> Tensor<4> {
            if rep == 1 {
                x
            } else {
                x.unsqueeze_dim::<5>(2)
                    .expand([b, kvh, rep, s, hd])
                    .reshape([b, h, s, hd])
            }
        };
        let (k, v) = (expand(k), expand(v));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (hd as f64).sqrt())
            + mask.clone();
        let probs = softmax(scores, 3);
        let out = probs.matmul(v).swap_dims(1, 2).reshape([b, t, h * hd]);
        linear(out, &self.o, None)
    }
}
