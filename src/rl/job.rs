//! A training job: the paths it reads and writes, the set-up both loops share (device,
//! model or last checkpoint, optimiser, questions, step count), the learning-rate
//! schedule, and the outputs — the model folder with the settings it was trained with, and
//! the metrics.

use std::path::Path;

use burn::prelude::*;

use serde_json::json;

use super::batching::{prepare, step_items};
use super::checkpoint::Checkpoints;
use super::curriculum::{Draw, draw_items};
use super::objective::{self, AdamW};
use super::params::{Schedule, TrainParams};
use crate::dataset::{Dataset, Question};
use crate::model::load::Model;
use crate::model::lora;
use crate::prompt::Item;

/// Paths a training job reads and writes.
pub struct Job<'a> {
    pub params: TrainParams,
    pub model: &'a Path,
    /// A LoRA adapter on `model` to continue training.
    pub adapter: Option<&'a Path>,
    /// A fixed dataset of questions, or (`draw`) universes generated on the fly.
    pub dataset: Option<&'a Path>,
    pub draw: Option<Draw>,
    /// Where worked examples come from (default: the training dataset).
    pub examples: Option<&'a Path>,
    pub out_model: &'a Path,
    pub out_metrics: &'a Path,
    pub scratch: &'a Path,
    pub progress: bool,
}

/// Shared set-up of both loops: the device, the model (from the last checkpoint when there
/// is one), the optimiser, the items and the step count.
pub(crate) struct Setup {
    pub(crate) with_target: bool,
    pub(crate) model: Model,
    pub(crate) opt: AdamW,
    pub(crate) start: u64,
    pub(crate) total: u64,
    pub(crate) items: Vec<Item>,
    pub(crate) skipped: usize,
    /// Drawing on the fly: the rule file's IR and the worked-example pool.
    pub(crate) drawn: Option<(crate::lang::ir::Ir, Vec<Question>)>,
    pub(crate) ckpt: Checkpoints,
    pub(crate) every: u64,
}

/// `with_target`: the reference answers are needed (SFT) and must fit the completion budget.
pub(crate) fn setup(job: &Job, with_target: bool) -> Result<Setup, String> {
    let p = &job.params;
    let device = p.device()?.autodiff();
    std::fs::create_dir_all(job.scratch).map_err(|e| format!("cannot create scratch: {e}"))?;
    let ckpt = Checkpoints {
        dir: job.scratch.to_path_buf(),
    };
    let o = p.optim()?;
    let mut opt = AdamW::new(o.adam_beta1, o.adam_beta2, o.adam_epsilon, o.weight_decay);
    let (model, start) = match ckpt.load(&device, &mut opt, job.model)? {
        Some(x) => x,
        None => (start_model(job, &device)?, 0),
    };
    ckpt.truncate_metrics(start)?;
    let (items, skipped, drawn) = match &job.draw {
        None => {
            let (items, skipped) = prepare(job, &model, with_target)?;
            (items, skipped, None)
        }
        Some(draw) => {
            if o.steps == 0 {
                return Err("drawing questions on the fly needs `steps` (there is no pass over a fixed set)".into());
            }
            let (_, checked) = crate::lang::check_file(&draw.rules)
                .map_err(|e| format!("cannot read `{}`: {e}", draw.rules.display()))?;
            let ir = checked.ir.ok_or_else(|| {
                format!(
                    "`{}` has errors; run `synthpipe check` on it",
                    draw.rules.display()
                )
            })?;
            let pool = match job.examples {
                Some(path) => Dataset::load(path)?.questions,
                None if p.examples == 0 || p.style == crate::prompt::Style::Paper => Vec::new(),
                None => {
                    return Err("worked examples for questions drawn on the fly need `examples_from` (or `examples: 0`)".into());
                }
            };
            (Vec::new(), 0, Some((ir, pool)))
        }
    };
    let total = if o.steps > 0 {
        o.steps
    } else {
        (items.len() as u64).div_ceil(p.batch.max(1) as u64)
    };
    let every = if o.checkpoint_every > 0 {
        o.checkpoint_every
    } else {
        total.div_ceil(10).max(1)
    };
    Ok(Setup {
        with_target,
        model,
        opt,
        start,
        total,
        items,
        skipped,
        drawn,
        ckpt,
        every,
    })
}

/// The model training starts from: the input model, with its adapter continued (the
/// stage's `lora` may change only the dropout) or fresh adapters when `lora` is set.
fn start_model(job: &Job, device: &Device) -> Result<Model, String> {
    let lora_param = job.params.optim()?.lora.as_ref();
    let mut m = lora::load_adapted(job.model, job.adapter, device)?;
    match (lora::spec_of(&m.net), lora_param) {
        (Some(have), Some(want)) => {
            let mut targets = want.targets.clone();
            targets.sort();
            if (have.rank, have.alpha, &have.targets) != (want.rank, want.alpha, &targets) {
                return Err(format!(
                    "the adapter has rank {}, alpha {} on {:?}, but `lora` asks for rank {}, alpha {} on {:?}: continue it with matching settings (or leave `lora` out), or train a new one without `adapter`",
                    have.rank, have.alpha, have.targets, want.rank, want.alpha, want.targets
                ));
            }
            m.net = lora::with_dropout(m.net, want.dropout);
        }
        (Some(_), None) => {}
        (None, Some(spec)) => m.net = lora::attach(m.net, spec, job.params.seed),
        (None, None) => {}
    }
    Ok(m)
}

impl Setup {
    /// The seed of LoRA's dropout masks for micro-batch `micro` of step `step`, so a resumed
    /// run draws the same masks (`None` without dropout).
    pub(crate) fn dropout_seed(&self, job: &Job, step: u64, micro: usize) -> Option<u64> {
        let dropout = lora::spec_of(&self.model.net).is_some_and(|s| s.dropout > 0.0);
        dropout.then(|| {
            let label = format!("lora-dropout/{step}/{micro}");
            crate::util::rng::Rng::stream(job.params.seed, &label).next_u64()
        })
    }

    /// One micro-batch's forward and backward pass, gradients accumulated into the
    /// optimiser: with per-layer recomputation when the job asks for it, else keeping every
    /// layer's activations. `loss` maps the completion log-probabilities to the loss and its
    /// statistics; returns the loss's value and those.
    pub(crate) fn train_pass<S>(
        &mut self,
        job: &Job,
        prompts: &[Vec<u32>],
        completions: &[Vec<u32>],
        dropout: Option<u64>,
        loss: impl FnOnce(Tensor<2>) -> Result<(Tensor<1>, S), String>,
    ) -> Result<(f64, S), String> {
        let pad = pad_id(&self.model);
        let (net, cfg) = (&self.model.net, &self.model.cfg);
        if job.params.optim()?.gradient_checkpointing {
            let opt = &mut self.opt;
            super::recompute::backward(net, cfg, pad, prompts, completions, dropout, loss, |g| {
                opt.accumulate(net, g)
            })
        } else {
            let lp = objective::completion_logprobs(net, cfg, pad, prompts, completions, dropout);
            let (loss, stats) = loss(lp)?;
            let value = objective::scalar(&loss)?;
            let grads = loss.backward();
            self.opt.accumulate(net, &grads);
            Ok((value, stats))
        }
    }

    /// One optimiser step on the accumulated gradients; returns the gradient norm.
    pub(crate) fn apply(&mut self, lr: f64, max_norm: f64) -> Result<f64, String> {
        let (net, norm) = self.opt.step(self.model.net.clone(), lr, max_norm)?;
        self.model.net = net;
        Ok(norm)
    }

    /// Records finished step `step` (0-based): its metrics line, then a checkpoint when
    /// one is due (never after the last step: the output follows).
    pub(crate) fn record(&self, step: u64, line: &serde_json::Value) -> Result<(), String> {
        self.ckpt.append_metrics(line)?;
        if (step + 1).is_multiple_of(self.every) && step + 1 < self.total {
            self.ckpt.save(&self.model, &self.opt, step + 1)?;
        }
        Ok(())
    }

    /// The questions of step `step` (at difficulty `level` when drawn on the fly), and the
    /// drawn universe's seed.
    pub(crate) fn batch(
        &self,
        job: &Job,
        step: u64,
        level: i64,
    ) -> Result<(Vec<Item>, Option<u64>), String> {
        match (&self.drawn, &job.draw) {
            (Some((ir, pool)), Some(draw)) => {
                let (items, seed) = draw_items(
                    job,
                    draw,
                    ir,
                    pool,
                    &self.model,
                    (step, level),
                    self.with_target,
                )?;
                Ok((items, Some(seed)))
            }
            _ => Ok((
                step_items(&self.items, &job.params, job.params.optim()?.order, step)
                    .into_iter()
                    .map(|i| self.items[i].clone())
                    .collect(),
                None,
            )),
        }
    }
}

pub(crate) fn learning_rate(p: &TrainParams, opt_step: u64, opt_total: u64) -> Result<f64, String> {
    let o = p.optim()?;
    Ok(if o.lr_schedule == Schedule::Constant {
        o.learning_rate
    } else {
        objective::linear_lr(o.learning_rate, opt_step, opt_total)
    })
}

/// Writes the outputs: the model folder and the metrics folder (metrics.jsonl and a
/// summary in metrics.json: `LABEL_first_tenth` / `LABEL_last_tenth`, the mean of metric
/// `field` over the first and the last tenth of the steps, read from the metrics file so
/// that steps before a resume count too).
/// The file in a trained model folder that records how it was trained.
pub const TRAINING_FILE: &str = "training.json";
pub use crate::model::lora::ADAPTER_DIR;

pub(crate) fn finish(
    job: &Job,
    s: &Setup,
    kind: &str,
    field: &str,
    label: &str,
) -> Result<(), String> {
    let values: Vec<f64> = s
        .ckpt
        .read_metrics()?
        .iter()
        .map(|m| m[field].as_f64().unwrap_or(0.0))
        .collect();
    let tenth = values.len().div_ceil(10);
    let summary = json!({
        "kind": kind,
        "steps": s.total,
        "questions": s.items.len(),
        "skipped_for_budget": s.skipped,
        format!("{label}_first_tenth"): mean(values.iter().take(tenth).copied()),
        format!("{label}_last_tenth"): mean(values.iter().rev().take(tenth).copied()),
    });
    let bf16 = job.params.optim()?.save_bf16;
    // With adapters, `save_hf` folds them into their weights, tensor by tensor: the merged
    // model loads anywhere as it is; the adapter beside it is PEFT's, for
    // `PeftModel.from_pretrained(base, MODEL/adapter)`.
    s.model.save_hf(job.out_model, bf16)?;
    if lora::spec_of(&s.model.net).is_some() {
        let base = job.model.display().to_string();
        lora::save_peft(&job.out_model.join(ADAPTER_DIR), &s.model.net, &base)?;
    }
    // The settings beside the weights they made (burn's habit with its configs): which kind
    // trained the model, for how many steps, with every parameter.
    let made = json!({"kind": kind, "steps": s.total, "params": job.params});
    let text = serde_json::to_string_pretty(&made).map_err(|e| e.to_string())? + "\n";
    std::fs::write(job.out_model.join(TRAINING_FILE), text)
        .map_err(|e| format!("cannot write {TRAINING_FILE}: {e}"))?;
    std::fs::create_dir_all(job.out_metrics).map_err(|e| e.to_string())?;
    std::fs::copy(s.ckpt.metrics(), job.out_metrics.join("metrics.jsonl"))
        .map_err(|e| format!("cannot copy metrics: {e}"))?;
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())? + "\n";
    std::fs::write(job.out_metrics.join("metrics.json"), text)
        .map_err(|e| format!("cannot write metrics.json: {e}"))
}

pub(crate) fn mean(xs: impl IntoIterator<Item = f64>) -> f64 {
    let (s, n) = xs
        .into_iter()
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

pub(crate) fn std_dev(xs: &[f64]) -> f64 {
    let m = mean(xs.iter().copied());
    mean(xs.iter().map(|x| (x - m).powi(2))).sqrt()
}

pub(crate) fn pad_id(m: &Model) -> u32 {
    m.tokenizer.eos_token_ids.first().copied().unwrap_or(0)
}
