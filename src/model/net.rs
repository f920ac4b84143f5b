//! The transformer on burn: decoder blocks of grouped-query attention with RoPE and a SwiGLU
//! MLP, RMSNorm, tied or separate output embedding — one implementation for Qwen3 (q/k
//! norms), Qwen2 (q/k/v biases) and Llama (llama3 RoPE scaling). Weights are stored
//! transposed (`[in, out]`) so a projection is one matmul. A key/value cache per layer lets
//! generation feed one token at a time; rows of a batch may be left-padded, so positions and
//! the attention mask are per row. Any projection may carry a LoRA adapter (`Adapter`),
//! applied factored — `x·w + scale·(x·a)·b` — so a frozen `w` needs no gradient of its own.

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Int, TensorData};
use rayon::prelude::*;

use super::config::Config;
use super::packed::{Packed, Packs};
use crate::util::rng::Rng;

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
    /// LoRA adapters of `q`, `k`, `v`, `o` (last, so a model without them keeps its
    /// parameter order).
    pub lora: AttnLora,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate: Param<Tensor<2>>,
    pub up: Param<Tensor<2>>,
    pub down: Param<Tensor<2>>,
    pub lora: MlpLora,
}

/// A low-rank update of one projection `w: [in, out]`: `a: [in, rank]`, `b: [rank, out]`
/// (PEFT's `lora_A` and `lora_B`, transposed like every weight here), read as
/// `x·w + scale·(x·a)·b`.
#[derive(Module, Debug)]
pub struct Adapter {
    pub a: Param<Tensor<2>>,
    pub b: Param<Tensor<2>>,
    /// `alpha / rank`.
    #[module(skip)]
    pub scale: f64,
    /// Share of the adapter's inputs zeroed in a training pass (PEFT's `lora_dropout`).
    #[module(skip)]
    pub dropout: f64,
}

#[derive(Module, Debug, Default)]
pub struct AttnLora {
    pub q: Option<Adapter>,
    pub k: Option<Adapter>,
    pub v: Option<Adapter>,
    pub o: Option<Adapter>,
}

#[derive(Module, Debug, Default)]
pub struct MlpLora {
    pub gate: Option<Adapter>,
    pub up: Option<Adapter>,
    pub down: Option<Adapter>,
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
    /// A GGUF's projections (and tied head) in their quantised blocks, by parameter, for
    /// the products of decoding (see [`super::packed`]); empty for other checkpoints.
    #[module(skip)]
    pub packed: Packs,
}

/// The score added for a key a query must not see: −∞, so its weight is exactly 0 (and the
/// CPU's `exp` takes its fast path: a large finite negative score underflows through libm's
/// slow error-handling path, which cost a fifth of a training step). Every query sees at
/// least its own position (see the mask below), so no row is all −∞ and no NaN appears.
const MASKED: f32 = f32::NEG_INFINITY;

/// A layer's keys and values: `[batch, kv_heads, seen, head_dim]` each.
pub type Kv = (Tensor<4>, Tensor<4>);

/// Token ids `[batch, t]` of one prefill pass and, per row, which are real (not padding).
pub type Chunk = (Tensor<2, Int>, Vec<Vec<bool>>);

/// Keys and values of the positions seen so far, per layer, and what a pass needs to know of
/// the rows: their real tokens, their next position, and the adapters' dropout seed.
#[derive(Clone, Debug)]
pub struct Cache {
    pub layers: Vec<Option<Kv>>,
    /// Per row: whether each position seen so far is a real token (false: left padding).
    pub valid: Vec<Vec<bool>>,
    /// Per row: the position id of the next token.
    pub next_pos: Vec<usize>,
    /// Training passes: the seed of the adapters' dropout masks (`None`: no dropout).
    pub dropout: Option<u64>,
    /// Passes run so far (the prompt, then the completions after it), so that each pass
    /// draws its dropout masks from its own stream.
    pub passes: usize,
}

impl Cache {
    pub fn new(layers: usize, batch: usize) -> Cache {
        Cache {
            layers: vec![None; layers],
            valid: vec![Vec::new(); batch],
            next_pos: vec![0; batch],
            dropout: None,
            passes: 0,
        }
    }

    /// The same cache for a training pass whose adapters drop inputs, with masks drawn
    /// from `seed`.
    pub fn with_dropout(mut self, seed: Option<u64>) -> Cache {
        self.dropout = seed;
        self
    }
    pub fn seen(&self) -> usize {
        self.valid.first().map_or(0, Vec::len)
    }

    /// The cache of the first `n` positions of a cache of real tokens only (a prefilled
    /// prefix), to continue from there.
    pub fn truncated(&self, n: usize) -> Cache {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                l.as_ref().map(|(k, v)| {
                    let [b, h, _, d] = k.dims();
                    (
                        k.clone().slice([0..b, 0..h, 0..n, 0..d]),
                        v.clone().slice([0..b, 0..h, 0..n, 0..d]),
                    )
                })
            })
            .collect();
        Cache {
            layers,
            valid: self.valid.iter().map(|v| v[..n].to_vec()).collect(),
            next_pos: vec![n; self.valid.len()],
            dropout: self.dropout,
            passes: self.passes,
        }
    }

    /// The rows of `parts`, in order, as one cache: each part's positions after the first
    /// `shared` (a prefix every row has) are moved right by masked padding so that every
    /// row's last position lines up, as if the rows had been prefilled left-padded together.
    pub fn join(parts: Vec<Cache>, shared: usize) -> Cache {
        let width = parts.iter().map(Cache::seen).max().unwrap_or(0);
        let layers = (0..parts.first().map_or(0, |c| c.layers.len()))
            .map(|l| {
                let padded = |t: &Tensor<4>| {
                    let [b, h, seen, d] = t.dims();
                    if seen == width {
                        return t.clone();
                    }
                    let gap = Tensor::zeros([b, h, width - seen, d], &t.device());
                    Tensor::cat(
                        vec![
                            t.clone().slice([0..b, 0..h, 0..shared, 0..d]),
                            gap,
                            t.clone().slice([0..b, 0..h, shared..seen, 0..d]),
                        ],
                        2,
                    )
                };
                let kvs: Option<Vec<&Kv>> = parts.iter().map(|c| c.layers[l].as_ref()).collect();
                kvs.map(|kvs| {
                    (
                        Tensor::cat(kvs.iter().map(|(k, _)| padded(k)).collect(), 0),
                        Tensor::cat(kvs.iter().map(|(_, v)| padded(v)).collect(), 0),
                    )
                })
            })
            .collect();
        let valid = parts
            .iter()
            .flat_map(|c| {
                c.valid.iter().map(|v| {
                    let mut row = v[..shared].to_vec();
                    row.resize(shared + width - v.len(), false);
                    row.extend_from_slice(&v[shared..]);
                    row
                })
            })
            .collect();
        Cache {
            layers,
            valid,
            next_pos: parts.iter().flat_map(|c| c.next_pos.clone()).collect(),
            dropout: parts.first().and_then(|c| c.dropout),
            passes: parts.first().map_or(0, |c| c.passes),
        }
    }

    /// The cache whose row `i` is this one's row `rows[i]` (rows may repeat): the keys and
    /// values of one prompt shared by several continuations. In the autodiff graph the
    /// gradients of the copies add up in the shared row.
    pub fn select_rows(&self, rows: &[usize]) -> Cache {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                l.as_ref().map(|(k, v)| {
                    let idx = row_index(rows, &k.device());
                    (k.clone().select(0, idx.clone()), v.clone().select(0, idx))
                })
            })
            .collect();
        Cache {
            layers,
            valid: rows.iter().map(|&r| self.valid[r].clone()).collect(),
            next_pos: rows.iter().map(|&r| self.next_pos[r]).collect(),
            dropout: self.dropout,
            passes: self.passes,
        }
    }
}

/// Row indices as an index tensor for `select`.
pub fn row_index(rows: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    Tensor::<1, Int>::from_data(TensorData::new(v, [rows.len()]), device)
}

/// Consecutive runs of equal rows (the prompts of a GRPO group): the distinct rows, each
/// once, and for every row the index of its distinct row.
pub fn runs<T: PartialEq + Clone>(rows: &[T]) -> (Vec<T>, Vec<usize>) {
    let mut distinct: Vec<T> = Vec::new();
    let mut of = Vec::with_capacity(rows.len());
    for r in rows {
        if distinct.last() != Some(r) {
            distinct.push(r.clone());
        }
        of.push(distinct.len() - 1);
    }
    (distinct, of)
}

/// RoPE inverse frequencies, with Llama 3's scaling when configured.
pub fn inv_freq(cfg: &Config) -> Vec<f64> {
    let divisors = cfg
        .rope_scaling
        .map(|r| r.divisors(cfg.rope_theta, cfg.head_dim));
    (0..cfg.head_dim / 2)
        .map(|i| {
            let f = 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / cfg.head_dim as f64);
            divisors.as_ref().map_or(f, |d| f / d[i])
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

/// Rows up to which a projection is split into column blocks computed on separate threads.
/// burn's CPU backend runs a matrix-vector product (one decode step) on one thread, which
/// leaves the other cores idle on the most memory-bound part of generation.
const SPLIT_ROWS: usize = 8;

/// `x · w (+ b)`, plus the adapter's `scale · (x · a) · b`, for `x: [.., in]`, `w: [in, out]`.
/// `drop`: a training pass, where the adapter's inputs go through its dropout.
fn linear(
    x: Tensor<3>,
    w: &Param<Tensor<2>>,
    b: Option<&Param<Tensor<1>>>,
    lora: Option<&Adapter>,
    pass: &Pass,
) -> Tensor<3> {
    let drop = pass.dropout.is_some();
    let delta = lora.map(|ad| {
        // PEFT's `nn.Dropout` in train mode; the device's stream, seeded per layer by the
        // pass, draws the mask, so a recomputed layer draws the same one.
        let x = if drop && ad.dropout > 0.0 {
            let keep = 1.0 - ad.dropout;
            let m = x.random_like(burn::tensor::Distribution::Bernoulli(keep));
            x.clone() * m.div_scalar(keep)
        } else {
            x.clone()
        };
        x.matmul(ad.a.val().unsqueeze_dim(0))
            .matmul(ad.b.val().unsqueeze_dim(0))
            .mul_scalar(ad.scale)
    });
    let y = dense(x, w, b, pass.packed.get(&w.id));
    match delta {
        Some(d) => y + d,
        None => y,
    }
}

/// `x · w (+ b)` for `x: [.., in]`, `w: [in, out]`; `packed`: `w`'s blocks, if any.
fn dense(
    x: Tensor<3>,
    w: &Param<Tensor<2>>,
    b: Option<&Param<Tensor<1>>>,
    packed: Option<&Packed>,
) -> Tensor<3> {
    let [batch, t, _] = x.dims();
    let y = if let Some(y) = packed.and_then(|p| from_blocks(&x, &w.val(), p, true)) {
        y
    } else if let Some(y) = few_rows(&x, w) {
        y
    } else if batch * t <= SPLIT_ROWS {
        // Split over the input dimension: a block of rows of `w` is contiguous, so no
        // thread copies its part of the weights; the partial products are summed.
        let w = w.val();
        let [inp, out] = w.dims();
        // The blocks and the order of the sum are fixed, so the result does not depend on
        // the number of threads.
        let partials: Vec<Tensor<3>> = split_ranges(inp)
            .into_par_iter()
            .map(|r| {
                x.clone()
                    .slice([0..batch, 0..t, r.clone()])
                    .matmul(w.clone().slice([r, 0..out]).unsqueeze_dim(0))
            })
            .collect();
        let mut partials = partials.into_iter();
        let first = partials
            .next()
            .unwrap_or_else(|| x.clone().matmul(w.unsqueeze_dim(0)));
        partials.fold(first, |a, b| a + b)
    } else {
        x.matmul(w.val().unsqueeze_dim(0))
    };
    match b {
        Some(b) => y + b.val().unsqueeze_dim::<2>(0).unsqueeze_dim(0),
        None => y,
    }
}

/// Attention of a CPU prefill by [`super::attend::causal`], as `[batch, t, heads × head_dim]`;
/// `None` where that kernel does not apply (not f32, no AVX2), so burn's attention runs.
fn causal_on_cpu(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, pass: &Pass) -> Option<Tensor<3>> {
    let [batch, heads, t, head_dim] = q.dims();
    let [_, kv_heads, seen, _] = k.dims();
    if pass.valid.len() != batch || pass.valid.iter().any(|r| r.len() != seen) {
        return None;
    }
    let host = |x: &Tensor<4>| x.clone().into_data().try_into_vec::<f32>().ok();
    let dims = super::attend::Dims {
        batch,
        heads,
        kv_heads,
        t,
        seen,
        head_dim,
    };
    let scale = 1.0 / (head_dim as f32).sqrt();
    let y = super::attend::causal(&host(q)?, &host(k)?, &host(v)?, dims, &pass.valid, scale)?;
    Some(Tensor::from_data(
        TensorData::new(y, [batch, t, heads * head_dim]),
        &q.device(),
    ))
}

/// Rows (tokens of a batch) from which burn's matmul is as fast as [`super::skinny`]'s.
const FEW_ROWS: usize = 12;

/// `x · w` by [`super::skinny`] where that is faster than burn's matmul: 2 to [`FEW_ROWS`]
/// rows of f32 on the CPU outside autodiff (batched decoding), against at least 512
/// output columns. `None` otherwise.
fn few_rows(x: &Tensor<3>, w: &Param<Tensor<2>>) -> Option<Tensor<3>> {
    use burn::backend::Flex;
    let [batch, t, inp] = x.dims();
    let w = w.val();
    let [_, out] = w.dims();
    if !(2..=FEW_ROWS).contains(&(batch * t)) || out < 512 {
        return None;
    }
    let flex = |t: burn::tensor::Tensor<2>| t.try_into_primitive::<Flex>().ok();
    let xp = flex(x.clone().reshape([batch * t, inp]))?;
    let wp = flex(w)?;
    let y = super::skinny::matmul(
        xp.as_slice::<f32>()?,
        batch * t,
        wp.as_slice::<f32>()?,
        inp,
        out,
    )?;
    Some(Tensor::from_data(
        TensorData::new(y, [batch, t, out]),
        &x.device(),
    ))
}

/// `x · w` from `w`'s packed blocks for up to [`FEW_ROWS`] rows of f32 on the CPU outside
/// autodiff (decoding), while `w` (`[in, out]`, or `[out, in]` where not `transposed`) still
/// holds the values it was packed from. `None` otherwise.
fn from_blocks(x: &Tensor<3>, w: &Tensor<2>, p: &Packed, transposed: bool) -> Option<Tensor<3>> {
    use burn::backend::Flex;
    let [batch, t, inp] = x.dims();
    let [out, _] = p.dims();
    if !(1..=FEW_ROWS).contains(&(batch * t)) {
        return None;
    }
    let flex = |t: burn::tensor::Tensor<2>| t.try_into_primitive::<Flex>().ok();
    let wp = flex(w.clone())?;
    if !p.mirrors(wp.as_slice::<f32>()?, transposed) {
        return None;
    }
    let xp = flex(x.clone().reshape([batch * t, inp]))?;
    let y = p.matmul(xp.as_slice::<f32>()?, batch * t)?;
    Some(Tensor::from_data(
        TensorData::new(y, [batch, t, out]),
        &x.device(),
    ))
}

/// `silu(g)·u`: on the CPU outside autodiff (f32, contiguous) in one vectorised pass
/// ([`super::swiglu`]), else by burn's operations.
fn swiglu(g: Tensor<3>, u: Tensor<3>) -> Tensor<3> {
    use burn::backend::Flex;
    let flex = |t: &Tensor<3>| t.clone().try_into_primitive::<Flex>().ok();
    if let (Some(gp), Some(up)) = (flex(&g), flex(&u)) {
        let y = gp
            .as_slice::<f32>()
            .zip(up.as_slice::<f32>())
            .and_then(|(gs, us)| super::swiglu::silu_times(gs, us));
        if let Some(y) = y {
            return Tensor::from_data(TensorData::new(y, g.dims()), &g.device());
        }
    }
    silu(g) * u
}

/// Blocks a split projection is cut into: fixed, not the thread count, so that results are
/// the same on any machine; enough to keep 8 cores busy.
const SPLIT_BLOCKS: usize = 8;

/// `0..n` in up to [`SPLIT_BLOCKS`] contiguous blocks of at least 64.
fn split_ranges(n: usize) -> Vec<std::ops::Range<usize>> {
    let parts = SPLIT_BLOCKS.min(n.div_ceil(64)).max(1);
    let step = n.div_ceil(parts);
    (0..n).step_by(step).map(|s| s..(s + step).min(n)).collect()
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

/// What every layer of one pass shares: the rotary tables of its positions, the attention
/// mask, and the seed of its dropout masks.
#[derive(Clone, Debug)]
pub struct Pass {
    cos: Tensor<4>,
    sin: Tensor<4>,
    /// `[batch, 1, t, seen]`: 0 where a query sees a key, −∞ where it must not.
    mask: Tensor<4>,
    /// The same mask as booleans (true: blocked), for the CPU's fused attention.
    blocked: Tensor<4, Bool>,
    /// Per row, which of the keys seen so far are real (left padding is not): the mask's
    /// source, for [`super::attend`].
    valid: std::sync::Arc<Vec<Vec<bool>>>,
    /// Training passes with dropout: the seed each layer's masks are drawn from.
    dropout: Option<u64>,
    /// The model's packed weights.
    packed: Packs,
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
        let mut x = self.embed_ids(ids);
        let pass = self.begin(cfg, valid, cache, &device);
        for (l, block) in self.blocks.iter().enumerate() {
            x = block.forward(cfg, x, &pass, l, &mut cache.layers[l]);
        }
        self.norm_out(cfg, x)
    }

    /// The last chunk's hidden states, through the final norm, after prefilling `chunks`
    /// (`[batch, t]` ids and their `valid` flags) one after another into `cache`; `None`
    /// for no chunks. With `overlap` (the CPU), chunk `c` runs layer `l` while chunk `c − 1`
    /// runs layer `l + 1`: each needs only what the other finished a step before (its own
    /// previous layer; the keys of the chunks before it), so the two cores stay busy
    /// through each other's serial steps. Each block computes exactly what it computes when
    /// the chunks run in turn.
    pub fn hidden_chunks(
        &self,
        cfg: &Config,
        chunks: Vec<Chunk>,
        cache: &mut Cache,
        overlap: bool,
    ) -> Option<Tensor<3>> {
        if !overlap || chunks.len() < 2 {
            return chunks
                .into_iter()
                .map(|(ids, valid)| self.hidden(cfg, ids, &valid, cache))
                .last();
        }
        let device = chunks[0].0.device();
        // Every chunk's positions and mask depend only on the rows' tokens, not on the
        // keys, so all passes can begin before any layer runs.
        let passes: Vec<Pass> = chunks
            .iter()
            .map(|(_, valid)| self.begin(cfg, valid, cache, &device))
            .collect();
        let mut xs: Vec<Option<Tensor<3>>> = chunks
            .into_iter()
            .map(|(ids, _)| Some(self.embed_ids(ids)))
            .collect();
        let (n, depth) = (xs.len(), self.blocks.len());
        for step in 0..n + depth - 1 {
            // The (chunk, layer) pairs of this diagonal touch different layers' caches.
            let mut slots: Vec<Option<&mut Option<Kv>>> =
                cache.layers.iter_mut().map(Some).collect();
            let jobs: Vec<(usize, usize, Tensor<3>, &mut Option<Kv>)> = (0..n)
                .filter(|&c| c <= step && step - c < depth)
                .filter_map(|c| {
                    let l = step - c;
                    Some((c, l, xs[c].take()?, slots[l].take()?))
                })
                .collect();
            let done: Vec<(usize, Tensor<3>)> = jobs
                .into_par_iter()
                .map(|(c, l, x, slot)| (c, self.blocks[l].forward(cfg, x, &passes[c], l, slot)))
                .collect();
            for (c, x) in done {
                xs[c] = Some(x);
            }
        }
        xs.pop().flatten().map(|x| self.norm_out(cfg, x))
    }

    /// The embeddings `[batch, t, hidden]` of `ids` (`[batch, t]`).
    pub fn embed_ids(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [batch, t] = ids.dims();
        let hidden = self.embed.val().dims()[1];
        self.embed
            .val()
            .select(0, ids.reshape([batch * t]))
            .reshape([batch, t, hidden])
    }

    /// The last layer's output through the final norm.
    pub fn norm_out<const D: usize>(&self, cfg: &Config, x: Tensor<D>) -> Tensor<D> {
        rms_norm(x, &self.norm, cfg.rms_norm_eps)
    }

    /// Starts a pass over the next `valid` tokens of every row of `cache` (`[batch][t]`):
    /// their positions (each row counts only its real tokens), rotary tables and mask. The
    /// cache then counts them as seen; the layers append their keys and values.
    pub fn begin(
        &self,
        cfg: &Config,
        valid: &[Vec<bool>],
        cache: &mut Cache,
        device: &Device,
    ) -> Pass {
        let batch = valid.len();
        let t = valid.first().map_or(0, Vec::len);
        let mut positions = Vec::with_capacity(batch * t);
        for (r, row) in valid.iter().enumerate() {
            let mut p = cache.next_pos[r];
            for &ok in row {
                positions.push(p as f64);
                if ok {
                    p += 1;
                }
            }
            cache.next_pos[r] = p;
            cache.valid[r].extend_from_slice(row);
        }
        // cos/sin tables computed on the host in f64: positions are exact integers there,
        // whatever float type the device computes in (bf16 cannot even hold position 257).
        let freqs = inv_freq(cfg);
        let (half, hd) = (cfg.head_dim / 2, cfg.head_dim);
        let mut cos = Vec::with_capacity(batch * t * hd);
        let mut sin = Vec::with_capacity(batch * t * hd);
        for &p in &positions {
            for _ in 0..2 {
                for f in &freqs {
                    let a = p * f;
                    cos.push(a.cos() as f32);
                    sin.push(a.sin() as f32);
                }
            }
        }
        debug_assert_eq!(cos.len(), batch * t * 2 * half);
        let table = |v: Vec<f32>| {
            Tensor::<1>::from_data(TensorData::new(v, [batch * t * hd]), device)
                .reshape([batch, 1, t, hd])
        };
        let (cos, sin) = (table(cos), table(sin));

        // Mask [batch, 1, t, seen]: a query sees earlier-or-same real keys.
        let seen = cache.seen();
        let past = seen - t;
        let mut mask = Vec::with_capacity(batch * t * seen);
        for r in 0..batch {
            for i in 0..t {
                for j in 0..seen {
                    // A padding query sees itself only: its output is never used, but
                    // a row with every key blocked would be NaN.
                    let own = j == past + i;
                    let blocked = j > past + i || (!cache.valid[r][j] && !own);
                    mask.push(if blocked { MASKED } else { 0.0 });
                }
            }
        }
        let blocked: Vec<bool> = mask.iter().map(|&m| m == MASKED).collect();
        let mask = Tensor::<1>::from_data(TensorData::new(mask, [batch * t * seen]), device)
            .reshape([batch, 1, t, seen]);
        let blocked =
            Tensor::<1, Bool>::from_data(TensorData::new(blocked, [batch * t * seen]), device)
                .reshape([batch, 1, t, seen]);
        let dropout = cache
            .dropout
            .map(|s| Rng::stream(s, &format!("pass/{}", cache.passes)).next_u64());
        cache.passes += 1;
        Pass {
            cos,
            sin,
            mask,
            blocked,
            valid: std::sync::Arc::new(cache.valid.clone()),
            dropout,
            packed: self.packed.clone(),
        }
    }
    /// Projects hidden states to logits over the vocabulary.
    pub fn logits(&self, h: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(w) => dense(h, w, None, self.packed.get(&w.id)),
            // (E · hᵀ)ᵀ rather than h · Eᵀ: the embedding stays in its row-major layout, so
            // the largest matrix of the model is never transposed into a copy. Few rows
            // (decoding): vocabulary blocks on separate threads, as in `linear`.
            None => {
                let e = self.embed.val();
                if let Some(y) = self
                    .packed
                    .get(&self.embed.id)
                    .and_then(|p| from_blocks(&h, &e, p, false))
                {
                    return y;
                }
                let [b, t, d] = h.dims();
                let v = e.dims()[0];
                let ht = h.reshape([b * t, d]).transpose();
                let y = if b * t <= SPLIT_ROWS {
                    let rows: Vec<Tensor<2>> = split_ranges(v)
                        .into_par_iter()
                        .map(|r| e.clone().slice([r, 0..d]).matmul(ht.clone()))
                        .collect();
                    Tensor::cat(rows, 0)
                } else {
                    e.matmul(ht)
                };
                y.transpose().reshape([b, t, v])
            }
        }
    }
}

impl Block {
    /// Layer `layer` of a pass: `x` (`[batch, t, hidden]`) attends to the keys and values in
    /// `kv` and its own, which it appends there.
    pub fn forward(
        &self,
        cfg: &Config,
        x: Tensor<3>,
        pass: &Pass,
        layer: usize,
        kv: &mut Option<Kv>,
    ) -> Tensor<3> {
        if let Some(seed) = pass.dropout {
            x.device()
                .seed(Rng::stream(seed, &format!("layer/{layer}")).next_u64());
        }
        let a = rms_norm(x.clone(), &self.attn_norm, cfg.rms_norm_eps);
        let x = x + self.attn.forward(cfg, a, pass, kv);
        let m = rms_norm(x.clone(), &self.mlp_norm, cfg.rms_norm_eps);
        let (mlp, ad) = (&self.mlp, &self.mlp.lora);
        let gate = linear(m.clone(), &mlp.gate, None, ad.gate.as_ref(), pass);
        let up = linear(m, &mlp.up, None, ad.up.as_ref(), pass);
        x + linear(swiglu(gate, up), &mlp.down, None, ad.down.as_ref(), pass)
    }
}

impl Attention {
    fn forward(
        &self,
        cfg: &Config,
        x: Tensor<3>,
        pass: &Pass,
        cache: &mut Option<Kv>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, kvh, hd) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let ad = &self.lora;
        let (cos, sin, mask) = (&pass.cos, &pass.sin, &pass.mask);
        let q = linear(
            x.clone(),
            &self.q,
            self.q_bias.as_ref(),
            ad.q.as_ref(),
            pass,
        )
        .reshape([b, t, h, hd]);
        let k = linear(
            x.clone(),
            &self.k,
            self.k_bias.as_ref(),
            ad.k.as_ref(),
            pass,
        )
        .reshape([b, t, kvh, hd]);
        let v =
            linear(x, &self.v, self.v_bias.as_ref(), ad.v.as_ref(), pass).reshape([b, t, kvh, hd]);
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
        if t > 1 && !q.is_autodiff() && q.device() == Device::flex() {
            // Prefill on the CPU: the causal kernel skips the keys no query may see.
            if let Some(out) = causal_on_cpu(&q, &k, &v, pass) {
                return linear(out, &self.o, None, ad.o.as_ref(), pass);
            }
            // Prefill outside autodiff: the CPU backend's fused attention (grouped-query heads
            // as they are, scores in tiles with an online softmax) never holds the scores of
            // all keys, whose matrix and softmax cost more than the products on long prompts
            // (prefill +17 % on 1,000 tokens, BENCHMARKS.md). A decoding step's single query
            // is as fast either way.
            let out = burn::tensor::module::attention(
                q,
                k,
                v,
                Some(pass.blocked.clone()),
                None,
                AttentionModuleOptions {
                    scale: Some(1.0 / (hd as f64).sqrt()),
                    softcap: None,
                    is_causal: false,
                },
            );
            let out = out.swap_dims(1, 2).reshape([b, t, h * hd]);
            return linear(out, &self.o, None, ad.o.as_ref(), pass);
        }
        // Grouped-query attention without copying keys and values per query head: the
        // `rep` query heads sharing a key/value head are stacked as extra query rows
        // (head j reads key/value head j / rep, as Hugging Face's repeat_kv arranges them).
        let s = k.dims()[2];
        let rep = h / kvh;
        let q = q.reshape([b, kvh, rep * t, hd]);
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (hd as f64).sqrt())
            .reshape([b, kvh, rep, t, s])
            + mask.clone().unsqueeze_dim::<5>(1);
        let probs = softmax(scores.reshape([b, kvh, rep * t, s]), 3);
        let out = probs
            .matmul(v)
            .reshape([b, h, t, hd])
            .swap_dims(1, 2)
            .reshape([b, t, h * hd]);
        linear(out, &self.o, None, ad.o.as_ref(), pass)
    }
}
