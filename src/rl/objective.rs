//! The GRPO objective on burn, with TRL 0.21's semantics: group-normalised advantages, the
//! clipped token-level importance ratio, the optional KL penalty to a frozen reference, and
//! the four loss aggregations (`bnpo`, `grpo`, `dr_grpo`, `dapo`); the completion
//! log-probabilities they are computed from (also SFT's cross-entropy); and AdamW with
//! global gradient-norm clipping, gradient accumulation and a resumable state.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, TensorData};
use serde::{Deserialize, Serialize};

use crate::model::config::Config;
use crate::model::generate::ids_tensor;
use crate::model::net::{Cache, Transformer};
use crate::model::safetensors;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Token-level: the sum over the batch's completion tokens divided by their number.
    #[default]
    Bnpo,
    /// Sequence-level: each completion's token mean, averaged over completions.
    Grpo,
    /// Dr. GRPO: the sum divided by completions × the completion budget (no length bias).
    DrGrpo,
    /// DAPO: the sum divided by the completion tokens of the whole batch, across
    /// accumulation steps (bnpo at the batch level).
    Dapo,
}

impl LossType {
    pub fn name(self) -> &'static str {
        match self {
            LossType::Bnpo => "bnpo",
            LossType::Grpo => "grpo",
            LossType::DrGrpo => "dr_grpo",
            LossType::Dapo => "dapo",
        }
    }
}

/// The objective's settings (DESIGN.md §5 gives the paper's values, which are the defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct LossConfig {
    pub loss_type: LossType,
    /// Lower clip: the ratio is kept ≥ 1 − epsilon.
    pub epsilon: f64,
    /// Upper clip: the ratio is kept ≤ 1 + epsilon_high (DAPO raises it; TRL's default is
    /// `epsilon`).
    pub epsilon_high: f64,
    /// Weight of the KL penalty to the reference model (0: no reference model at all).
    pub beta: f64,
    /// The completion budget (dr_grpo's normaliser).
    pub max_completion_tokens: usize,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            loss_type: LossType::Bnpo,
            epsilon: 0.2,
            epsilon_high: 0.2,
            beta: 0.0,
            max_completion_tokens: 4096,
        }
    }
}

/// TRL's advantages: each reward minus its group's mean, divided by the group's (sample)
/// standard deviation plus 1e-4 when `scale`. `rewards` holds consecutive groups of `group`.
pub fn advantages(rewards: &[f64], group: usize, scale: bool) -> Vec<f64> {
    let group = group.max(1);
    rewards
        .chunks(group)
        .flat_map(|g| {
            let n = g.len() as f64;
            let mean = g.iter().sum::<f64>() / n;
            // torch.std: Bessel-corrected; a group of one has no spread (NaN in torch).
            let std = if g.len() > 1 {
                (g.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            } else {
                0.0
            };
            g.iter()
                .map(move |r| {
                    let a = r - mean;
                    if scale { a / (std + 1e-4) } else { a }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Left-pads prompts and right-pads completions into one block, so every completion starts
/// at the same column. Returns ids, validity, the prompt width and the completion width.
pub(crate) fn layout(
    prompts: &[Vec<u32>],
    completions: &[Vec<u32>],
    pad: u32,
) -> (Vec<Vec<u32>>, Vec<Vec<bool>>, usize, usize) {
    let p = prompts.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let c = completions.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(prompts.len());
    let mut valid = Vec::with_capacity(prompts.len());
    for (pr, co) in prompts.iter().zip(completions) {
        let mut r = vec![pad; p - pr.len()];
        let mut v = vec![false; p - pr.len()];
        r.extend(pr);
        v.extend(std::iter::repeat_n(true, pr.len()));
        r.extend(co);
        v.extend(std::iter::repeat_n(true, co.len()));
        r.resize(p + c, pad);
        v.resize(p + c, false);
        ids.push(r);
        valid.push(v);
    }
    (ids, valid, p, c)
}

/// The prompts alone, left-padded to the longest: ids, validity and the width.
pub(crate) fn prompts_layout(
    prompts: &[Vec<u32>],
    pad: u32,
) -> (Vec<Vec<u32>>, Vec<Vec<bool>>, usize) {
    let (ids, valid, p, _) = layout(prompts, &vec![Vec::new(); prompts.len()], pad);
    let ids = ids.into_iter().map(|r| r[..p].to_vec()).collect();
    let valid = valid.into_iter().map(|r| r[..p].to_vec()).collect();
    (ids, valid, p)
}

/// The completions alone, right-padded to `width`: ids and validity.
pub(crate) fn completions_layout(
    completions: &[Vec<u32>],
    width: usize,
    pad: u32,
) -> (Vec<Vec<u32>>, Vec<Vec<bool>>) {
    completions
        .iter()
        .map(|co| {
            let mut r = co.clone();
            r.resize(width, pad);
            let mut v = vec![true; co.len()];
            v.resize(width, false);
            (r, v)
        })
        .unzip()
}

/// Log-probabilities `[batch, width]` of each completion token given its prompt and the
/// completion before it, as a tensor (in the autodiff graph when `net` is on an autodiff
/// device). Positions past a completion's end hold meaningless values: mask them.
///
/// Consecutive rows with one prompt (a GRPO group) run that prompt once: its keys and values
/// are shared by the group's completions, which attend to them, and the gradient of every
/// completion flows back through the one prompt pass. `dropout`: a training pass's seed for
/// the adapters' dropout masks.
pub fn completion_logprobs(
    net: &Transformer,
    cfg: &Config,
    pad: u32,
    prompts: &[Vec<u32>],
    completions: &[Vec<u32>],
    dropout: Option<u64>,
) -> Tensor<2> {
    let device = net.embed.val().device();
    let (distinct, row_of) = crate::model::net::runs(prompts);
    let b = prompts.len();
    let c = completions.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let hidden = cfg.hidden_size;
    let h = if distinct.len() == b {
        // One block, prompts left-padded and completions right-padded: position p − 1 + i
        // predicts completion token i, and only those positions reach the vocabulary.
        let (ids, valid, p, c) = layout(prompts, completions, pad);
        let mut cache = Cache::new(cfg.num_layers, b).with_dropout(dropout);
        let h = net.hidden(cfg, ids_tensor(&ids, &device), &valid, &mut cache);
        h.slice([0..b, p - 1..p - 1 + c, 0..hidden])
    } else {
        // The distinct prompts, left-padded; the last position predicts the first token.
        let (ids, valid, p) = prompts_layout(&distinct, pad);
        let u = distinct.len();
        let mut cache = Cache::new(cfg.num_layers, u).with_dropout(dropout);
        let hp = net.hidden(cfg, ids_tensor(&ids, &device), &valid, &mut cache);
        let rows = crate::model::net::row_index(&row_of, &device);
        let first = hp.slice([0..u, p - 1..p, 0..hidden]).select(0, rows);
        if c == 1 {
            first
        } else {
            // The completions, right-padded, after their prompt's cached keys and values.
            let mut cache = cache.select_rows(&row_of);
            let (ids, valid) = completions_layout(completions, c, pad);
            let hc = net.hidden(cfg, ids_tensor(&ids, &device), &valid, &mut cache);
            Tensor::cat(vec![first, hc.slice([0..b, 0..c - 1, 0..hidden])], 1)
        }
    };
    let lp = log_softmax(net.logits(h), 2);
    let targets: Vec<i64> = completions
        .iter()
        .flat_map(|co| {
            let mut t: Vec<i64> = co.iter().map(|&x| i64::from(x)).collect();
            t.resize(c, i64::from(pad));
            t
        })
        .collect();
    let idx =
        Tensor::<1, Int>::from_data(TensorData::new(targets, [b * c]), &device).reshape([b, c, 1]);
    lp.gather(2, idx).reshape([b, c])
}

/// A `[rows, width]` tensor of host values on `device`.
pub fn matrix(rows: &[Vec<f32>], width: usize, device: &Device) -> Tensor<2> {
    let b = rows.len();
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            let mut r = r.clone();
            r.resize(width, 0.0);
            r
        })
        .collect();
    Tensor::<1>::from_data(TensorData::new(flat, [b * width]), device).reshape([b, width])
}

/// 1 for each completion token that counts, 0 for padding (and for whole completions a
/// caller excludes, e.g. truncated ones).
pub fn completion_mask(completions: &[Vec<u32>], keep: &[bool]) -> Vec<Vec<f32>> {
    completions
        .iter()
        .zip(keep)
        .map(|(c, &k)| vec![if k { 1.0 } else { 0.0 }; c.len()])
        .collect()
}

/// How a micro-batch's loss is scaled so that accumulated micro-batches give the batch's
/// loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    /// Micro-batches the batch is split into (TRL divides each by their number).
    pub micro_batches: usize,
    /// Completion tokens (masked in) of the whole batch: DAPO's normaliser.
    pub batch_tokens: f64,
}

impl Scale {
    pub fn whole(mask: &[Vec<f32>]) -> Scale {
        Scale {
            micro_batches: 1,
            batch_tokens: mask.iter().flatten().map(|&m| f64::from(m)).sum(),
        }
    }
}

/// What the objective saw, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossStats {
    /// Share of tokens whose ratio fell under 1 − ε with a negative advantage.
    pub clip_low: f64,
    /// Share of tokens whose ratio rose over 1 + ε_high with a positive advantage.
    pub clip_high: f64,
    /// Either of the two.
    pub clip_region: f64,
    /// Mean per-token KL to the reference (0 without one).
    pub kl: f64,
    /// Completion tokens counted.
    pub tokens: f64,
}

/// Host values of a tensor (in or out of the autodiff graph).
fn host<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, String> {
    crate::model::generate::read_f32(t.inner())
}

/// The value of a one-element tensor, e.g. a loss.
pub fn scalar(t: &Tensor<1>) -> Result<f64, String> {
    Ok(host(t.clone())?.first().copied().map_or(0.0, f64::from))
}

/// The GRPO loss of one micro-batch. `logp`: the current policy's completion
/// log-probabilities (in the graph); `old`: the sampling policy's (`None` when they are the
/// current ones, μ = 1: the ratio is then exactly 1 and only its gradient remains);
/// `reference`: the frozen reference's (needed when β ≠ 0); `adv`: one advantage per row.
pub fn policy_loss(
    logp: Tensor<2>,
    old: Option<Tensor<2>>,
    reference: Option<Tensor<2>>,
    adv: &[f32],
    mask: &[Vec<f32>],
    cfg: &LossConfig,
    scale: Scale,
) -> Result<(Tensor<1>, LossStats), String> {
    let device = logp.device();
    let [b, c] = logp.dims();
    let mask_t = matrix(mask, c, &device);
    let adv_t = Tensor::<1>::from_data(TensorData::new(adv.to_vec(), [b]), &device)
        .reshape([b, 1])
        .expand([b, c]);
    let old = old.unwrap_or_else(|| logp.clone().detach());
    let ratio = (logp.clone() - old).exp();
    let clipped = ratio
        .clone()
        .clamp(1.0 - cfg.epsilon, 1.0 + cfg.epsilon_high);
    // min(unclipped, clipped) with the unclipped term taken on ties, so the gradient at
    // ratio 1 is exactly the unclipped objective's (burn's min_pair does not say which side
    // a tie's gradient goes to).
    let unclipped = ratio.clone() * adv_t.clone();
    let clipped = clipped * adv_t;
    let take = unclipped.clone().lower_equal(clipped.clone());
    let mut per_token = clipped.mask_where(take, unclipped).neg();
    let mut kl_host = None;
    if cfg.beta != 0.0 {
        let r = reference.ok_or("β ≠ 0 needs the reference model's log-probabilities")?;
        let d = r - logp.clone();
        let kl = d.clone().exp() - d - 1.0;
        kl_host = Some(host(kl.clone())?);
        per_token = per_token + kl.mul_scalar(cfg.beta);
    }

    // Metrics from the host copy of the ratio.
    let ratio_h = host(ratio)?;
    let mut stats = LossStats::default();
    for r in 0..b {
        for t in 0..c {
            let m = f64::from(mask.get(r).and_then(|m| m.get(t)).copied().unwrap_or(0.0));
            if m == 0.0 {
                continue;
            }
            let q = f64::from(ratio_h[r * c + t]);
            let a = f64::from(adv[r]);
            let low = q < 1.0 - cfg.epsilon && a < 0.0;
            let high = q > 1.0 + cfg.epsilon_high && a > 0.0;
            stats.tokens += m;
            stats.clip_low += m * f64::from(u8::from(low));
            stats.clip_high += m * f64::from(u8::from(high));
            stats.clip_region += m * f64::from(u8::from(low || high));
            if let Some(k) = &kl_host {
                stats.kl += m * f64::from(k[r * c + t]);
            }
        }
    }
    if stats.tokens > 0.0 {
        stats.clip_low /= stats.tokens;
        stats.clip_high /= stats.tokens;
        stats.clip_region /= stats.tokens;
        stats.kl /= stats.tokens;
    }

    let masked = per_token * mask_t.clone();
    let micro = scale.micro_batches.max(1) as f64;
    let loss = match cfg.loss_type {
        LossType::Grpo => {
            let lens = mask_t.sum_dim(1).clamp_min(1.0).reshape([b]);
            (masked.sum_dim(1).reshape([b]) / lens)
                .mean()
                .div_scalar(micro)
        }
        LossType::Bnpo => masked.sum().div_scalar(stats.tokens.max(1.0) * micro),
        LossType::DrGrpo => masked
            .sum()
            .div_scalar((b * cfg.max_completion_tokens).max(1) as f64 * micro),
        LossType::Dapo => masked.sum().div_scalar(scale.batch_tokens.max(1.0)),
    };
    Ok((loss, stats))
}

/// SFT's loss: the mean negative log-likelihood of the masked-in completion tokens, scaled
/// by `1 / micro_batches` so that accumulated micro-batches give the batch mean when they
/// hold equal token counts.
pub fn nll_loss(logp: Tensor<2>, mask: &[Vec<f32>], batch_tokens: f64) -> Tensor<1> {
    let [_, c] = logp.dims();
    let mask_t = matrix(mask, c, &logp.device());
    (logp * mask_t)
        .sum()
        .neg()
        .div_scalar(batch_tokens.max(1.0))
}

/// Gradients of every parameter, flattened, in the model's parameter order.
struct Collect<'a> {
    grads: &'a burn::tensor::Gradients,
    out: Vec<Option<Tensor<1>>>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let n = param.val().dims().iter().product::<usize>();
        self.out
            .push(param.val().grad(self.grads).map(|g| g.reshape([n])));
    }
}

/// AdamW as PyTorch defines it (decoupled weight decay, bias-corrected moments, ε outside
/// the square root) over a `Transformer`'s parameters, with gradient accumulation and
/// global gradient-norm clipping. Its state is saved and restored exactly, so a resumed run
/// continues bit for bit.
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Optimiser steps taken.
    pub steps: u64,
    moments: Vec<Option<(Tensor<1>, Tensor<1>)>>,
    accumulated: Vec<Option<Tensor<1>>>,
}

impl AdamW {
    pub fn new(beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> AdamW {
        AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
            steps: 0,
            moments: Vec::new(),
            accumulated: Vec::new(),
        }
    }

    /// Adds the gradients of one backward pass to the accumulated ones.
    pub fn accumulate(&mut self, net: &Transformer, grads: &burn::tensor::Gradients) {
        let mut c = Collect {
            grads,
            out: Vec::new(),
        };
        net.visit(&mut c);
        if self.accumulated.len() < c.out.len() {
            self.accumulated.resize(c.out.len(), None);
        }
        for (acc, g) in self.accumulated.iter_mut().zip(c.out) {
            if let Some(g) = g {
                *acc = Some(match acc.take() {
                    Some(a) => a + g,
                    None => g,
                });
            }
        }
    }

    /// The global L2 norm of the accumulated gradients (summed in f64, in parameter order,
    /// so the same on any thread count).
    pub fn grad_norm(&self) -> Result<f64, String> {
        let mut total = 0.0f64;
        for g in self.accumulated.iter().flatten() {
            total += scalar(&g.clone().square().sum())?;
        }
        Ok(total.sqrt())
    }

    /// Clips the accumulated gradients to `max_norm` (0: no clipping) as
    /// `torch.nn.utils.clip_grad_norm_` does, takes one step with learning rate `lr`, and
    /// clears the accumulation. Returns the norm before clipping.
    pub fn step(
        &mut self,
        net: Transformer,
        lr: f64,
        max_norm: f64,
    ) -> Result<(Transformer, f64), String> {
        let norm = self.grad_norm()?;
        let coef = if max_norm > 0.0 {
            (max_norm / (norm + 1e-6)).min(1.0)
        } else {
            1.0
        };
        self.steps += 1;
        let n = self.accumulated.len().max(self.moments.len());
        self.moments.resize(n, None);
        let mut m = Step {
            opt: self,
            lr,
            coef,
            index: 0,
        };
        let net = net.map(&mut m);
        self.accumulated.clear();
        Ok((net, norm))
    }

    /// The moments as named tensors (for a checkpoint).
    pub fn state(&self) -> Result<Vec<safetensors::Named>, String> {
        let mut out = Vec::new();
        for (i, m) in self.moments.iter().enumerate() {
            if let Some((m1, m2)) = m {
                for (name, t) in [("m", m1), ("v", m2)] {
                    let v = host(t.clone())?;
                    out.push((format!("{name}.{i}"), vec![v.len()], v));
                }
            }
        }
        Ok(out)
    }

    /// Restores moments saved by [`AdamW::state`] after `steps` steps.
    pub fn restore(&mut self, steps: u64, tensors: Vec<safetensors::Named>, device: &Device) {
        self.steps = steps;
        let inner = device.clone().inner();
        let mut firsts: std::collections::BTreeMap<usize, Tensor<1>> = Default::default();
        let mut seconds: std::collections::BTreeMap<usize, Tensor<1>> = Default::default();
        for (name, _, v) in tensors {
            let Some((kind, i)) = name.split_once('.') else {
                continue;
            };
            let Ok(i) = i.parse::<usize>() else { continue };
            let n = v.len();
            let t = Tensor::<1>::from_data(TensorData::new(v, [n]), &inner);
            match kind {
                "m" => firsts.insert(i, t),
                "v" => seconds.insert(i, t),
                _ => None,
            };
        }
        let n = firsts.keys().max().map_or(0, |&i| i + 1);
        self.moments = (0..n)
            .map(|i| match (firsts.remove(&i), seconds.remove(&i)) {
                (Some(a), Some(b)) => Some((a, b)),
                _ => None,
            })
            .collect();
    }
}

struct Step<'a> {
    opt: &'a mut AdamW,
    lr: f64,
    coef: f64,
    index: usize,
}

impl ModuleMapper for Step<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let i = self.index;
        self.index += 1;
        // A parameter without gradients this step (the passes were skipped because the
        // gradient is exactly 0) steps with a zero gradient, as PyTorch's would.
        let g = match self.opt.accumulated.get_mut(i).and_then(Option::take) {
            Some(g) => g,
            None => match self.opt.moments.get(i) {
                Some(Some((m, _))) => m.zeros_like(),
                _ => return param,
            },
        };
        let (b1, b2, eps, wd) = (
            self.opt.beta1,
            self.opt.beta2,
            self.opt.eps,
            self.opt.weight_decay,
        );
        let t = self.opt.steps as i32;
        let g = g.inner().mul_scalar(self.coef);
        if self.opt.moments.len() <= i {
            self.opt.moments.resize(i + 1, None);
        }
        let (m, v) = match self.opt.moments[i].take() {
            Some((m, v)) => (
                m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1),
                v.mul_scalar(b2) + g.square().mul_scalar(1.0 - b2),
            ),
            None => (
                g.clone().mul_scalar(1.0 - b1),
                g.square().mul_scalar(1.0 - b2),
            ),
        };
        let (lr, c1, c2) = (self.lr, 1.0 - b1.powi(t), 1.0 - b2.powi(t));
        let update = m.clone().div_scalar(c1) / v.clone().div_scalar(c2).sqrt().add_scalar(eps);
        self.opt.moments[i] = Some((m, v));
        param.map(|p| {
            let dims = p.dims();
            let n = dims.iter().product::<usize>();
            let flat = p.inner().reshape([n]);
            let decayed = if wd == 0.0 {
                flat
            } else {
                flat.mul_scalar(1.0 - lr * wd)
            };
            (decayed - update.mul_scalar(lr))
                .reshape(dims)
                .autodiff()
                .require_grad()
        })
    }
}

/// The learning rate of step `step` (0-based) of `total`: linear decay from `lr` to 0
/// without warm-up, as Hugging Face's linear schedule.
pub fn linear_lr(lr: f64, step: u64, total: u64) -> f64 {
    if total == 0 {
        return lr;
    }
    lr * (total.saturating_sub(step)) as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantages_are_group_normalised() {
        let a = advantages(&[1.0, 0.0, 0.0, 1.0, 0.5, 0.5], 2, true);
        // Group std of (1, 0) is √0.5 (Bessel): (1 − 0.5) / (0.7071 + 1e-4).
        let s = 0.5 / (0.5f64.sqrt() + 1e-4);
        for (x, y) in a.iter().zip([s, -s, -s, s, 0.0, 0.0]) {
            assert!((x - y).abs() < 1e-12, "{a:?}");
        }
        assert_eq!(advantages(&[3.0, 1.0], 2, false), vec![1.0, -1.0]);
    }

    #[test]
    fn learning_rate_decays_linearly_to_zero() {
        assert_eq!(linear_lr(1e-6, 0, 4), 1e-6);
        assert_eq!(linear_lr(1e-6, 2, 4), 0.5e-6);
        assert_eq!(linear_lr(1e-6, 4, 4), 0.0);
    }
}
