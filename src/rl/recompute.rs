//! Training passes with per-layer recomputation (gradient checkpointing): the forward pass
//! runs without autodiff and keeps only each layer's input; the backward pass then recomputes
//! one layer at a time from its input, with autodiff, and pulls the gradient through it. Memory
//! holds one layer's activations instead of every layer's, at the cost of a second forward
//! pass. The vocabulary projection — the largest activation of all, tokens × vocabulary — runs
//! over chunks of the completion tokens.
//!
//! The gradients equal those of the plain pass ([`super::objective::completion_logprobs`],
//! then `backward`) to float tolerance, shared-prompt groups and LoRA dropout included: each
//! layer of each pass draws its dropout masks from its own seed, so the recomputed layer draws
//! the masks its first run drew.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Gradients, IndexingUpdateOp, Int, TensorData};

use super::objective::{completions_layout, layout, prompts_layout, scalar};
use crate::model::config::Config;
use crate::model::generate::{ids_tensor, read_f32};
use crate::model::net::{Block, Cache, Pass, Transformer, row_index, runs};

/// Float elements the vocabulary projection of one chunk of tokens may hold (128 MiB in f32):
/// the logits, their log-softmax and its gradient are each this large.
const HEAD_CHUNK: usize = 1 << 25;

/// Token rows that run through every layer together.
struct Segment {
    ids: Tensor<2, Int>,
    pass: Pass,
    rows: usize,
    width: usize,
}

/// A completion token that counts: where its log-probability goes and which hidden state
/// predicts it.
#[derive(Clone, Copy)]
struct Tok {
    /// Row and index in the `[batch, width]` log-probabilities.
    row: usize,
    index: usize,
    /// The segment and the flat position (`row · width + column`) of the predicting state.
    seg: usize,
    at: usize,
    target: u32,
}

/// How a micro-batch runs: one segment (every prompt with its completion), or for groups
/// sharing a prompt, the distinct prompts and then the completions attending to them.
struct Plan {
    segs: Vec<Segment>,
    /// The prompt row each completion row of segment 1 attends to.
    attend: Option<Tensor<1, Int>>,
    /// By segment, then row, then index.
    tokens: Vec<Tok>,
    batch: usize,
    width: usize,
}

fn plan(
    net: &Transformer,
    cfg: &Config,
    pad: u32,
    prompts: &[Vec<u32>],
    completions: &[Vec<u32>],
    dropout: Option<u64>,
) -> Plan {
    let device = net.embed.val().device();
    let (distinct, row_of) = runs(prompts);
    let b = prompts.len();
    let c = completions.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let layers = cfg.num_layers;
    let tok = |row: usize, index: usize, seg: usize, at: usize| Tok {
        row,
        index,
        seg,
        at,
        target: completions[row][index],
    };
    if distinct.len() == b {
        // Prompts left-padded, completions right-padded: column p − 1 + i predicts token i.
        let (ids, valid, p, c) = layout(prompts, completions, pad);
        let mut cache = Cache::new(layers, b).with_dropout(dropout);
        let pass = net.begin(cfg, &valid, &mut cache, &device);
        let width = p + c;
        let tokens = (0..b)
            .flat_map(|r| (0..completions[r].len()).map(move |i| (r, i)))
            .map(|(r, i)| tok(r, i, 0, r * width + p - 1 + i))
            .collect();
        return Plan {
            segs: vec![Segment {
                ids: ids_tensor(&ids, &device),
                pass,
                rows: b,
                width,
            }],
            attend: None,
            tokens,
            batch: b,
            width: c,
        };
    }
    // The distinct prompts: the last column predicts each completion's first token.
    let (ids, valid, p) = prompts_layout(&distinct, pad);
    let u = distinct.len();
    let mut cache = Cache::new(layers, u).with_dropout(dropout);
    let pass = net.begin(cfg, &valid, &mut cache, &device);
    let mut segs = vec![Segment {
        ids: ids_tensor(&ids, &device),
        pass,
        rows: u,
        width: p,
    }];
    let mut tokens: Vec<Tok> = (0..b)
        .filter(|&r| !completions[r].is_empty())
        .map(|r| tok(r, 0, 0, row_of[r] * p + p - 1))
        .collect();
    if c > 1 {
        // The completions, right-padded, after their prompt: column i − 1 predicts token i.
        let mut cache = cache.select_rows(&row_of);
        let (ids, valid) = completions_layout(completions, c, pad);
        let pass = net.begin(cfg, &valid, &mut cache, &device);
        segs.push(Segment {
            ids: ids_tensor(&ids, &device),
            pass,
            rows: b,
            width: c,
        });
        tokens.extend(
            (0..b)
                .flat_map(|r| (1..completions[r].len()).map(move |i| (r, i)))
                .map(|(r, i)| tok(r, i, 1, r * c + i - 1)),
        );
    }
    Plan {
        segs,
        attend: Some(row_index(&row_of, &device)),
        tokens,
        batch: b,
        width: c,
    }
}

/// Layer `l` over every segment; segment 1 attends to segment 0's keys and values.
fn layer(block: &Block, cfg: &Config, plan: &Plan, l: usize, xs: Vec<Tensor<3>>) -> Vec<Tensor<3>> {
    let mut xs = xs.into_iter();
    let mut kv = None;
    let mut out = Vec::with_capacity(plan.segs.len());
    if let Some(x) = xs.next() {
        out.push(block.forward(cfg, x, &plan.segs[0].pass, l, &mut kv));
    }
    if let (Some(x), Some(rows)) = (xs.next(), &plan.attend) {
        let mut kv = kv.map(|(k, v)| (k.select(0, rows.clone()), v.select(0, rows.clone())));
        out.push(block.forward(cfg, x, &plan.segs[1].pass, l, &mut kv));
    }
    out
}

/// Log-probabilities `[k]` of `targets` given the last layer's states `h` (`[k, hidden]`).
fn head(net: &Transformer, cfg: &Config, h: Tensor<2>, targets: &[u32]) -> Tensor<1> {
    let [k, d] = h.dims();
    let device = h.device();
    let lp = log_softmax(net.logits(net.norm_out(cfg, h).reshape([1, k, d])), 2);
    let idx: Vec<i64> = targets.iter().map(|&t| i64::from(t)).collect();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [k]), &device).reshape([1, k, 1]);
    lp.gather(2, idx).reshape([k])
}

/// The states `[k, hidden]` that predict `toks` (all from one segment's flat states).
fn states(flat: &[Tensor<2>], toks: &[Tok]) -> Tensor<2> {
    let seg = toks[0].seg;
    let at: Vec<usize> = toks.iter().map(|t| t.at).collect();
    let device = flat[seg].device();
    flat[seg].clone().select(0, row_index(&at, &device))
}

/// Chunks of the plan's tokens, each from one segment and at most `per` long.
fn chunks(tokens: &[Tok], per: usize) -> Vec<&[Tok]> {
    let mut out = Vec::new();
    let mut rest = tokens;
    while !rest.is_empty() {
        let seg = rest[0].seg;
        let n = rest.iter().take(per).take_while(|t| t.seg == seg).count();
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

/// One micro-batch's forward and backward pass with per-layer recomputation. `loss` maps the
/// completion log-probabilities (`[batch, width]`, a leaf of the autodiff graph; positions past
/// a completion's end hold 0) to the loss and what it saw; every gradient set of the backward
/// pass goes to `sink` (they add up to the gradient of the plain pass). Returns the loss's
/// value and `loss`'s statistics.
#[allow(clippy::too_many_arguments)]
pub fn backward<S>(
    net: &Transformer,
    cfg: &Config,
    pad: u32,
    prompts: &[Vec<u32>],
    completions: &[Vec<u32>],
    dropout: Option<u64>,
    loss: impl FnOnce(Tensor<2>) -> Result<(Tensor<1>, S), String>,
    mut sink: impl FnMut(&Gradients),
) -> Result<(f64, S), String> {
    let device = net.embed.val().device();
    let fixed = net.valid();
    let plan = plan(&fixed, cfg, pad, prompts, completions, dropout);

    let (mut inputs, last) = forward(&fixed, cfg, &plan, true);

    // The loss on the log-probabilities, as a leaf: its gradient weighs each token below.
    let (b, c) = (plan.batch, plan.width);
    let lp = token_logprobs(&fixed, cfg, &plan, &last)?;
    let leaf = Tensor::<1>::from_data(TensorData::new(lp, [b * c]), &device)
        .reshape([b, c])
        .require_grad();
    let (loss_t, stats) = loss(leaf.clone())?;
    let value = scalar(&loss_t)?;
    let grads = loss_t.backward();
    let Some(weights) = leaf.grad(&grads) else {
        return Ok((value, stats));
    };
    let weights = read_f32(weights)?;
    let weight = |t: &Tok| weights[t.row * c + t.index];
    let per = head_chunk(cfg);

    // The head, chunk by chunk. Tokens the loss gives no weight (an idle group) still run,
    // so a step costs what its shape costs (`skip_idle` skips whole idle steps).
    let mut g: Vec<Tensor<2>> = last.iter().map(Tensor::zeros_like).collect();
    for ch in chunks(&plan.tokens, per) {
        let targets: Vec<u32> = ch.iter().map(|t| t.target).collect();
        let h = states(&last, ch).autodiff().require_grad();
        let w: Vec<f32> = ch.iter().map(weight).collect();
        let w = Tensor::<1>::from_data(TensorData::new(w, [ch.len()]), &device);
        let s = (head(net, cfg, h.clone(), &targets) * w).sum();
        let grads = s.backward();
        sink(&grads);
        if let Some(gh) = h.grad(&grads) {
            let seg = ch[0].seg;
            let at: Vec<usize> = ch.iter().map(|t| t.at).collect();
            let idx = row_index(&at, &g[seg].device());
            // Several tokens may share a state (a group's prompt predicts every first
            // token): their gradients add up.
            g[seg] = g[seg]
                .clone()
                .select_assign(0, idx, gh, IndexingUpdateOp::Add);
        }
    }

    // The layers, last to first, each recomputed from its input with autodiff.
    let embed_trains = net.embed.val().is_require_grad();
    for l in (0..net.blocks.len()).rev() {
        let want_input = l > 0 || embed_trains;
        let xs: Vec<Tensor<3>> = inputs
            .pop()
            .expect("one saved input per layer")
            .into_iter()
            .map(|x| {
                let x = x.autodiff();
                if want_input { x.require_grad() } else { x }
            })
            .collect();
        let ys = layer(&net.blocks[l], cfg, &plan, l, xs.clone());
        let s = surrogate(ys, &g, &plan);
        let grads = s.backward();
        sink(&grads);
        if want_input {
            g = xs
                .iter()
                .zip(&g)
                .map(|(x, old)| x.grad(&grads).map_or_else(|| old.zeros_like(), flat))
                .collect();
        }
    }
    if embed_trains {
        let es: Vec<Tensor<3>> = plan
            .segs
            .iter()
            .map(|s| net.embed_ids(s.ids.clone()))
            .collect();
        let grads = surrogate(es, &g, &plan).backward();
        sink(&grads);
    }
    Ok((value, stats))
}

/// Completion log-probabilities `[batch, width]` without autodiff (0 past a completion's end),
/// as [`backward`] computes them, for a policy that does not train (the sampling policy's
/// when μ > 1, the reference's): one layer's activations and one chunk of vocabulary
/// projections at a time.
pub fn logprobs(
    net: &Transformer,
    cfg: &Config,
    pad: u32,
    prompts: &[Vec<u32>],
    completions: &[Vec<u32>],
) -> Result<Tensor<2>, String> {
    let fixed = net.valid();
    let plan = plan(&fixed, cfg, pad, prompts, completions, None);
    let (_, last) = forward(&fixed, cfg, &plan, false);
    let lp = token_logprobs(&fixed, cfg, &plan, &last)?;
    let device = fixed.embed.val().device();
    Ok(
        Tensor::<1>::from_data(TensorData::new(lp, [plan.batch * plan.width]), &device)
            .reshape([plan.batch, plan.width]),
    )
}

/// Tokens per chunk of the vocabulary projection.
fn head_chunk(cfg: &Config) -> usize {
    (HEAD_CHUNK / cfg.vocab_size.max(1)).max(1)
}

/// The pass without autodiff: every layer's inputs (when `keep`) and the last layer's
/// outputs, flat (`[rows · width, hidden]` per segment).
fn forward(
    fixed: &Transformer,
    cfg: &Config,
    plan: &Plan,
    keep: bool,
) -> (Vec<Vec<Tensor<3>>>, Vec<Tensor<2>>) {
    let mut xs: Vec<Tensor<3>> = plan
        .segs
        .iter()
        .map(|s| fixed.embed_ids(s.ids.clone()))
        .collect();
    let mut inputs = Vec::with_capacity(if keep { fixed.blocks.len() } else { 0 });
    for (l, block) in fixed.blocks.iter().enumerate() {
        let next = layer(block, cfg, plan, l, xs.clone());
        if keep {
            inputs.push(xs);
        }
        xs = next;
    }
    (inputs, xs.into_iter().map(flat).collect())
}

fn flat(t: Tensor<3>) -> Tensor<2> {
    let [r, w, d] = t.dims();
    t.reshape([r * w, d])
}

/// Every counted token's log-probability, at `row · width + index` (0 elsewhere).
fn token_logprobs(
    fixed: &Transformer,
    cfg: &Config,
    plan: &Plan,
    last: &[Tensor<2>],
) -> Result<Vec<f32>, String> {
    let c = plan.width;
    let mut lp = vec![0.0f32; plan.batch * c];
    for ch in chunks(&plan.tokens, head_chunk(cfg)) {
        let targets: Vec<u32> = ch.iter().map(|t| t.target).collect();
        let vals = read_f32(head(fixed, cfg, states(last, ch), &targets))?;
        for (t, v) in ch.iter().zip(vals) {
            lp[t.row * c + t.index] = v;
        }
    }
    Ok(lp)
}

/// `Σ ⟨y, g⟩` over the segments: its gradient is the chain rule's next step back from `g`,
/// the gradient of each segment's output.
fn surrogate(ys: Vec<Tensor<3>>, g: &[Tensor<2>], plan: &Plan) -> Tensor<1> {
    ys.into_iter()
        .zip(g)
        .zip(&plan.segs)
        .map(|((y, g), s)| {
            let d = y.dims()[2];
            (y * g.clone().reshape([s.rows, s.width, d])).sum()
        })
        .reduce(|a, b| a + b)
        .expect("a plan has a segment")
}
