//! The training loops behind the `sft` and `grpo` stages: questions turned into prompts and
//! rule-derived reference answers, batches in a seeded order, SFT's cross-entropy or GRPO's
//! rollouts → rewards → advantages → clipped objective, AdamW with linear decay, per-step
//! metrics, and checkpoints in the stage's scratch folder from which a killed run resumes
//! to the same weights bit for bit on the CPU.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::grpo::{
    self, AdamW, LossConfig, LossStats, LossType, Scale, completion_logprobs, completion_mask,
};
use super::prompt::{Dataset, Encoded, Examples, PromptOptions, Prompter, Question};
use super::reward::{self, Rewards, Weights};
use crate::model::device::{Backend, Dtype, device_with};
use crate::model::generate::{Finish, GenOptions, Generation, Sampling};
use crate::model::load::Model;
use crate::util::rng::Rng;

/// Every setting of a training or evaluation job, typed. Built by its stage from the stage's
/// parameters (whose defaults live once, in the stage kind's spec); the groups a job does
/// not have are `None` (SFT samples nothing, evaluation optimises nothing).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainParams {
    pub seed: u64,
    /// Prompts per step (GRPO: each sampled `group_size` times); SFT: sequences per step;
    /// evaluation: questions generated together.
    pub batch: usize,
    pub max_prompt_tokens: usize,
    pub max_completion_tokens: usize,
    /// Questions over a token budget are skipped (counted in the metrics) or stop the job.
    pub overflow: Overflow,
    pub examples: usize,
    pub evidence: bool,
    pub chat: bool,
    pub enable_thinking: Option<bool>,
    pub backend: Backend,
    pub dtype: Dtype,
    /// The optimiser and the schedule (SFT, GRPO).
    pub optim: Option<Optim>,
    /// How completions are sampled (GRPO rollouts, evaluation).
    pub sampling: Option<SampleParams>,
    /// GRPO's groups, loss and rewards.
    pub grpo: Option<GrpoParams>,
}

/// A question over a token budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    Skip,
    Error,
}

/// The learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Decay to 0 over the run, no warm-up (the paper).
    Linear,
    Constant,
}

/// The order questions are visited in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// A new seeded order each pass.
    Shuffle,
    Ascending,
    Descending,
}

/// The optimiser, the schedule and the checkpoints of a training job.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Optim {
    /// Optimiser steps (× `iterations` for GRPO); 0: one pass over the questions.
    pub steps: u64,
    /// Sequences per forward/backward pass (gradients are accumulated); 0: the whole step.
    pub micro_batch: usize,
    pub learning_rate: f64,
    pub lr_schedule: Schedule,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// Global gradient-norm clip (0: none).
    pub max_grad_norm: f64,
    pub order: Order,
    /// Steps between checkpoints; 0: every 10 % of the steps.
    pub checkpoint_every: u64,
    /// Save the trained weights in bf16 (half the size) instead of f32.
    pub save_bf16: bool,
}

/// Sampling of completions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SampleParams {
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: usize,
}

/// GRPO's group size, clipped objective and reward weights.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GrpoParams {
    pub group_size: usize,
    pub loss_type: LossType,
    pub epsilon: f64,
    /// Default: `epsilon`.
    pub epsilon_high: Option<f64>,
    pub beta: f64,
    /// μ: optimiser steps per batch of rollouts.
    pub iterations: usize,
    pub scale_rewards: bool,
    pub mask_truncated_completions: bool,
    pub reward_f1: f64,
    pub reward_em: f64,
    pub reward_format: f64,
}

impl TrainParams {
    pub fn prompt_options(&self) -> PromptOptions {
        PromptOptions {
            examples: self.examples,
            evidence: self.evidence,
            chat: self.chat,
            enable_thinking: self.enable_thinking,
            seed: self.seed,
        }
    }

    fn optim(&self) -> Result<&Optim, String> {
        self.optim
            .as_ref()
            .ok_or_else(|| missing_group("optimiser"))
    }
    fn grpo(&self) -> Result<&GrpoParams, String> {
        self.grpo.as_ref().ok_or_else(|| missing_group("GRPO"))
    }

    /// Sampling as the job says, up to the completion budget.
    fn gen_options(&self, seed: u64) -> Result<GenOptions, String> {
        let s = self
            .sampling
            .as_ref()
            .ok_or_else(|| missing_group("sampling"))?;
        Ok(GenOptions {
            max_new_tokens: self.max_completion_tokens,
            stop: Vec::new(),
            sampling: Sampling {
                temperature: s.temperature,
                top_k: s.top_k,
                top_p: s.top_p,
                min_p: 0.0,
                seed,
            },
            prefill_chunk: 512,
            ignore_eos: false,
        })
    }

    /// The reward weights: GRPO's, else the paper's (set-F1 alone) for evaluation.
    fn weights(&self) -> Weights {
        self.grpo
            .as_ref()
            .map_or_else(Weights::default, |g| Weights {
                f1: g.reward_f1,
                em: g.reward_em,
                format: g.reward_format,
            })
    }
    fn device(&self) -> Result<Device, String> {
        device_with(self.backend, self.dtype)
    }
}

fn missing_group(what: &str) -> String {
    format!(
        "internal error[synthpipe::stage::param]: this job has no {what} settings (this is a bug in synthpipe)"
    )
}

/// Paths a training job reads and writes.
pub struct Job<'a> {
    pub params: TrainParams,
    pub model: &'a Path,
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

/// Questions drawn on the fly from the generator: a new universe every step (never one of
/// the held-out seeds), optionally with an adaptive difficulty that keeps the mean reward
/// in a band by moving the question depth and then the relation bank.
#[derive(Clone, Debug)]
pub struct Draw {
    pub rules: PathBuf,
    /// Values for the rule file's parameters.
    pub set: Vec<(String, String)>,
    pub first_seed: u64,
    pub holdout: std::collections::BTreeSet<u64>,
    /// `Some((low, high))`: adapt the difficulty to keep the reward in this band.
    pub band: Option<(f64, f64)>,
    /// Steps at one level before the reward is judged.
    pub window: usize,
    pub depth_param: String,
    pub depth_min: i64,
    pub depth_max: i64,
    pub bank_param: String,
    /// Relation banks from easiest to hardest (empty: the depth alone moves).
    pub banks: Vec<String>,
}

impl Draw {
    /// Drawing without an adaptive difficulty: every universe at the rule file's settings.
    pub fn fixed(
        rules: PathBuf,
        set: Vec<(String, String)>,
        first_seed: u64,
        holdout: std::collections::BTreeSet<u64>,
    ) -> Draw {
        Draw {
            rules,
            set,
            first_seed,
            holdout,
            band: None,
            window: 1,
            depth_param: String::new(),
            depth_min: 0,
            depth_max: 0,
            bank_param: String::new(),
            banks: Vec::new(),
        }
    }

    /// The universe seed of step `step`: the `step`-th seed from `first_seed` on that is
    /// not held out.
    fn seed(&self, step: u64) -> u64 {
        let mut seed = self.first_seed;
        let mut left = step;
        loop {
            if !self.holdout.contains(&seed) {
                if left == 0 {
                    return seed;
                }
                left -= 1;
            }
            seed += 1;
        }
    }

    fn levels(&self) -> i64 {
        (self.depth_max - self.depth_min + 1).max(1) * self.banks.len().max(1) as i64
    }

    /// The rule-parameter values of difficulty `level` (none without a band).
    fn level_settings(&self, level: i64) -> Vec<(String, String)> {
        if self.band.is_none() {
            return Vec::new();
        }
        let span = (self.depth_max - self.depth_min + 1).max(1);
        let level = level.clamp(0, self.levels() - 1);
        let mut out = vec![(
            self.depth_param.clone(),
            (self.depth_min + level % span).to_string(),
        )];
        if let Some(bank) = self.banks.get((level / span) as usize) {
            out.push((self.bank_param.clone(), bank.clone()));
        }
        out
    }

    /// The next level after steps at `level` whose mean rewards are `recent`.
    fn adapt(&self, level: i64, recent: &[f64]) -> i64 {
        let Some((low, high)) = self.band else {
            return level;
        };
        if recent.len() < self.window.max(1) {
            return level;
        }
        let m = recent.iter().sum::<f64>() / recent.len() as f64;
        if m > high {
            (level + 1).min(self.levels() - 1)
        } else if m < low {
            (level - 1).max(0)
        } else {
            level
        }
    }
}

/// A question ready for training.
#[derive(Clone)]
struct Item {
    q: Question,
    enc: Encoded,
}

/// Encodes every question of `data`, with worked examples from `pool`; returns the items
/// and how many were skipped for their budgets.
fn encode_all(
    p: &TrainParams,
    data: Dataset,
    pool: &[Question],
    model: &Model,
    with_target: bool,
) -> Result<(Vec<Item>, usize), String> {
    let examples = Examples::choose(pool, p.examples, p.seed);
    let prompter = Prompter {
        tokenizer: &model.tokenizer,
        opts: p.prompt_options(),
        max_prompt_tokens: p.max_prompt_tokens,
        max_completion_tokens: p.max_completion_tokens,
    };
    let mut items = Vec::with_capacity(data.questions.len());
    let mut skipped = 0;
    for q in data.questions {
        let ex = if p.examples == 0 {
            &[][..]
        } else {
            examples.for_universe(&q.universe).ok_or_else(|| {
                format!(
                    "no worked examples for universe `{}`: the examples need questions of another universe",
                    q.universe
                )
            })?
        };
        let evidence = if p.evidence {
            Some(
                data.evidence
                    .get(&q.universe)
                    .map(String::as_str)
                    .ok_or_else(|| {
                        format!("universe `{}` has no articles for the evidence", q.universe)
                    })?,
            )
        } else {
            None
        };
        match prompter.encode(&q, evidence, ex, with_target)? {
            Ok(enc) => items.push(Item { q, enc }),
            Err(_) if p.overflow == Overflow::Skip => skipped += 1,
            Err(over) => {
                return Err(format!(
                    "{over}; raise max_prompt_tokens / max_completion_tokens, use fewer examples, or set `overflow: skip`"
                ));
            }
        }
    }
    Ok((items, skipped))
}

/// The worked-example pool: `examples_from`, else the questions themselves.
fn example_pool(job: &Job, own: &[Question]) -> Result<Vec<Question>, String> {
    match job.examples {
        Some(path) => Ok(Dataset::load(path)?.questions),
        None => Ok(own.to_vec()),
    }
}

/// Encodes every question of the job's fixed dataset.
fn prepare(job: &Job, model: &Model, with_target: bool) -> Result<(Vec<Item>, usize), String> {
    let path = job
        .dataset
        .ok_or("the stage needs `dataset` (or `rules` to draw questions on the fly)")?;
    let data = Dataset::load(path)?;
    let pool = example_pool(job, &data.questions)?;
    let (items, skipped) = encode_all(&job.params, data, &pool, model, with_target)?;
    if items.is_empty() {
        return Err(format!(
            "no question of `{}` fits the token budgets ({skipped} skipped)",
            path.display()
        ));
    }
    Ok((items, skipped))
}

/// Generates the universe of step `step` at difficulty `level` into the scratch folder and
/// returns `batch` of its questions (in a seeded order, repeated if it has fewer).
fn draw_items(
    job: &Job,
    draw: &Draw,
    ir: &crate::lang::ir::Ir,
    pool: &[Question],
    model: &Model,
    (step, level): (u64, i64),
    with_target: bool,
) -> Result<(Vec<Item>, u64), String> {
    use crate::universe::{dataset, params::Params};
    let p = &job.params;
    let mut set = draw.set.clone();
    for (k, v) in draw.level_settings(level) {
        set.retain(|(n, _)| n != &k);
        set.push((k, v));
    }
    let params = Params::resolve(ir, &set).map_err(|e| e.to_string())?;
    let seed = draw.seed(step);
    let dir = job.scratch.join("drawn");
    let _ = std::fs::remove_dir_all(&dir);
    dataset::generate(ir, &params, &[seed], &dir, &dataset::Options::default())
        .map_err(|e| format!("cannot generate universe {seed}: {e}"))?;
    let data = Dataset::load(&dir)?;
    let (mut items, _) = encode_all(p, data, pool, model, with_target)?;
    if items.is_empty() {
        return Err(format!(
            "universe {seed} has no question that fits the token budgets; lower the difficulty or raise the budgets"
        ));
    }
    let mut rng = Rng::stream(p.seed, &format!("draw/{step}"));
    rng.shuffle(&mut items);
    let n = items.len();
    Ok(((0..p.batch).map(|k| items[k % n].clone()).collect(), seed))
}

/// The item indices of pass `epoch`.
fn pass_order(items: &[Item], order: Order, seed: u64, epoch: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..items.len()).collect();
    match order {
        Order::Ascending => idx.sort_by_key(|&i| (items[i].q.difficulty, i)),
        Order::Descending => idx.sort_by_key(|&i| (std::cmp::Reverse(items[i].q.difficulty), i)),
        Order::Shuffle => Rng::stream(seed, &format!("order/{epoch}")).shuffle(&mut idx),
    }
    idx
}

/// The items of step `step`: consecutive slices of the passes laid end to end.
fn step_items(items: &[Item], p: &TrainParams, order: Order, step: u64) -> Vec<usize> {
    let n = items.len() as u64;
    (0..p.batch as u64)
        .map(|k| {
            let at = step * p.batch as u64 + k;
            let epoch = at / n;
            pass_order(items, order, p.seed, epoch)[(at % n) as usize]
        })
        .collect()
}

fn micro_ranges(n: usize, micro: usize) -> Vec<std::ops::Range<usize>> {
    let m = if micro == 0 { n.max(1) } else { micro };
    (0..n).step_by(m).map(|s| s..(s + m).min(n)).collect()
}

/// Resumable state in the scratch folder: the model after `step` steps, the optimiser's
/// moments, and the metrics lines so far.
struct Checkpoints {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    step: u64,
    optimiser_steps: u64,
}

impl Checkpoints {
    fn current(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }
    fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }

    /// Loads the last checkpoint, if a complete one exists: the model, and the optimiser's
    /// state restored into `opt`; returns the model and the steps it covers.
    fn load(&self, device: &Device, opt: &mut AdamW) -> Result<Option<(Model, u64)>, String> {
        let dir = self.current();
        let Ok(text) = std::fs::read_to_string(dir.join("state.json")) else {
            return Ok(None);
        };
        let state: CheckpointState =
            serde_json::from_str(&text).map_err(|e| format!("a damaged checkpoint: {e}"))?;
        let model = Model::load(&dir.join("model"), device).map_err(|e| e.to_string())?;
        let tensors = crate::model::safetensors::Checkpoint::open(&dir.join("optimiser"))
            .and_then(|c| {
                c.tensors
                    .keys()
                    .map(|name| c.read_f32(name).map(|(shape, v)| (name.clone(), shape, v)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| format!("cannot read the optimiser state: {e}"))?;
        opt.restore(state.optimiser_steps, tensors, device);
        Ok(Some((model, state.step)))
    }

    /// Writes a checkpoint next to the current one, then swaps it in, so a kill at any
    /// moment leaves one complete checkpoint.
    fn save(&self, model: &Model, opt: &AdamW, step: u64) -> Result<(), String> {
        let tmp = self.dir.join("checkpoint.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        model.save_hf(&tmp.join("model"), false)?;
        std::fs::create_dir_all(tmp.join("optimiser")).map_err(|e| e.to_string())?;
        crate::model::safetensors::write(
            &tmp.join("optimiser").join("model.safetensors"),
            &opt.state()?,
            false,
        )
        .map_err(|e| format!("cannot write the optimiser state: {e}"))?;
        let state = CheckpointState {
            step,
            optimiser_steps: opt.steps,
        };
        std::fs::write(
            tmp.join("state.json"),
            serde_json::to_string(&state).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("cannot write a checkpoint: {e}"))?;
        let cur = self.current();
        let old = self.dir.join("checkpoint.old");
        let _ = std::fs::remove_dir_all(&old);
        if cur.exists() {
            std::fs::rename(&cur, &old).map_err(|e| format!("cannot swap checkpoints: {e}"))?;
        }
        std::fs::rename(&tmp, &cur).map_err(|e| format!("cannot swap checkpoints: {e}"))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Keeps the first `steps` metrics lines (those the checkpoint covers).
    fn truncate_metrics(&self, steps: u64) -> Result<(), String> {
        let text = std::fs::read_to_string(self.metrics()).unwrap_or_default();
        let kept: String = text
            .lines()
            .take(steps as usize)
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(self.metrics(), kept).map_err(|e| format!("cannot write metrics: {e}"))
    }

    fn read_metrics(&self) -> Result<Vec<serde_json::Value>, String> {
        let text = std::fs::read_to_string(self.metrics())
            .map_err(|e| format!("cannot read metrics: {e}"))?;
        text.lines()
            .map(|l| serde_json::from_str(l).map_err(|e| format!("damaged metrics: {e}")))
            .collect()
    }

    fn append_metrics(&self, line: &serde_json::Value) -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.metrics())
            .map_err(|e| format!("cannot write metrics: {e}"))?;
        writeln!(f, "{line}").map_err(|e| format!("cannot write metrics: {e}"))
    }
}

/// A progress bar with the step, the latest reward or loss, and the ETA.
fn bar(wanted: bool, total: u64, label: &str) -> indicatif::ProgressBar {
    if !wanted || !crate::util::interactive() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(total);
    b.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{label} {{elapsed:>4}} [{{bar:20}}] step {{pos}}/{{len}} {{msg}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b
}

/// Shared set-up of both loops: the device, the model (from the last checkpoint when there
/// is one), the optimiser, the items and the step count.
struct Setup {
    with_target: bool,
    model: Model,
    opt: AdamW,
    start: u64,
    total: u64,
    items: Vec<Item>,
    skipped: usize,
    /// Drawing on the fly: the rule file's IR and the worked-example pool.
    drawn: Option<(crate::lang::ir::Ir, Vec<Question>)>,
    ckpt: Checkpoints,
    every: u64,
}

/// `with_target`: the reference answers are needed (SFT) and must fit the completion budget.
fn setup(job: &Job, with_target: bool) -> Result<Setup, String> {
    let p = &job.params;
    let device = p.device()?.autodiff();
    std::fs::create_dir_all(job.scratch).map_err(|e| format!("cannot create scratch: {e}"))?;
    let ckpt = Checkpoints {
        dir: job.scratch.to_path_buf(),
    };
    let o = p.optim()?;
    let mut opt = AdamW::new(o.adam_beta1, o.adam_beta2, o.adam_epsilon, o.weight_decay);
    let (model, start) = match ckpt.load(&device, &mut opt)? {
        Some(x) => x,
        None => (
            Model::load(job.model, &device).map_err(|e| e.to_string())?,
            0,
        ),
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
                None if p.examples == 0 => Vec::new(),
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

impl Setup {
    /// One optimiser step on the accumulated gradients; returns the gradient norm.
    fn apply(&mut self, lr: f64, max_norm: f64) -> Result<f64, String> {
        let (net, norm) = self.opt.step(self.model.net.clone(), lr, max_norm)?;
        self.model.net = net;
        Ok(norm)
    }

    /// Records finished step `step` (0-based): its metrics line, then a checkpoint when
    /// one is due (never after the last step: the output follows).
    fn record(&self, step: u64, line: &serde_json::Value) -> Result<(), String> {
        self.ckpt.append_metrics(line)?;
        if (step + 1).is_multiple_of(self.every) && step + 1 < self.total {
            self.ckpt.save(&self.model, &self.opt, step + 1)?;
        }
        Ok(())
    }

    /// The questions of step `step` (at difficulty `level` when drawn on the fly), and the
    /// drawn universe's seed.
    fn batch(&self, job: &Job, step: u64, level: i64) -> Result<(Vec<Item>, Option<u64>), String> {
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

fn learning_rate(p: &TrainParams, opt_step: u64, opt_total: u64) -> Result<f64, String> {
    let o = p.optim()?;
    Ok(if o.lr_schedule == Schedule::Constant {
        o.learning_rate
    } else {
        grpo::linear_lr(o.learning_rate, opt_step, opt_total)
    })
}

/// Writes the outputs: the model folder and the metrics folder (metrics.jsonl and a
/// summary in metrics.json: `LABEL_first_tenth` / `LABEL_last_tenth`, the mean of metric
/// `field` over the first and the last tenth of the steps, read from the metrics file so
/// that steps before a resume count too).
fn finish(job: &Job, s: &Setup, kind: &str, field: &str, label: &str) -> Result<(), String> {
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
    s.model
        .save_hf(job.out_model, job.params.optim()?.save_bf16)?;
    std::fs::create_dir_all(job.out_metrics).map_err(|e| e.to_string())?;
    std::fs::copy(s.ckpt.metrics(), job.out_metrics.join("metrics.jsonl"))
        .map_err(|e| format!("cannot copy metrics: {e}"))?;
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())? + "\n";
    std::fs::write(job.out_metrics.join("metrics.json"), text)
        .map_err(|e| format!("cannot write metrics.json: {e}"))
}

fn mean(xs: impl IntoIterator<Item = f64>) -> f64 {
    let (s, n) = xs
        .into_iter()
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

fn std_dev(xs: &[f64]) -> f64 {
    let m = mean(xs.iter().copied());
    mean(xs.iter().map(|x| (x - m).powi(2))).sqrt()
}

fn pad_id(m: &Model) -> u32 {
    m.tokenizer.eos_token_ids.first().copied().unwrap_or(0)
}

/// Supervised fine-tuning on the rule-derived chains of thought.
pub fn sft(job: &Job) -> Result<(), String> {
    let p = &job.params;
    let mut s = setup(job, true)?;
    let pb = bar(job.progress, s.total, "sft");
    pb.set_position(s.start);
    for step in s.start..s.total {
        let started = Instant::now();
        let (batch, universe) = s.batch(job, step, 0)?;
        let prompts: Vec<Vec<u32>> = batch.iter().map(|it| it.enc.prompt.clone()).collect();
        let targets: Vec<Vec<u32>> = batch.iter().map(|it| it.enc.target.clone()).collect();
        let tokens: f64 = targets.iter().map(|t| t.len() as f64).sum();
        let mut loss_sum = 0.0;
        for r in micro_ranges(batch.len(), p.optim()?.micro_batch) {
            let lp = completion_logprobs(
                &s.model.net,
                &s.model.cfg,
                pad_id(&s.model),
                &prompts[r.clone()],
                &targets[r.clone()],
            );
            let mask = completion_mask(&targets[r.clone()], &vec![true; r.len()]);
            let loss = grpo::nll_loss(lp, &mask, tokens);
            loss_sum += grpo::scalar(&loss)?;
            let grads = loss.backward();
            s.opt.accumulate(&s.model.net, &grads);
        }
        let lr = learning_rate(p, step, s.total)?;
        let norm = s.apply(lr, p.optim()?.max_grad_norm)?;
        let secs = started.elapsed().as_secs_f64();
        s.record(step, &json!({
            "step": step + 1,
            "universe_seed": universe,
            "loss": loss_sum,
            "grad_norm": norm,
            "learning_rate": lr,
            "tokens": tokens,
            "tokens_per_second": (tokens + prompts.iter().map(|x| x.len() as f64).sum::<f64>()) / secs,
            "step_seconds": secs,
        }))?;
        pb.inc(1);
        pb.set_message(format!("loss {loss_sum:.3}"));
    }
    pb.finish_and_clear();
    finish(job, &s, "sft", "loss", "loss")
}

/// One step's rollouts: per completion its tokens (with the EOS when it stopped), whether
/// it was cut by the budget, and its rewards.
struct Rollouts {
    /// Each prompt repeated once per completion of its group.
    prompts: Vec<Vec<u32>>,
    completions: Vec<Vec<u32>>,
    truncated: Vec<bool>,
    rewards: Vec<Rewards>,
    /// The first completion's text, for a look at what the policy writes.
    sample: String,
    new_tokens: usize,
    seconds: f64,
}

fn rollouts(
    model: &Model,
    items: &[&Item],
    p: &TrainParams,
    seed: u64,
) -> Result<Rollouts, String> {
    let started = Instant::now();
    let policy = model.valid();
    let g = p.grpo()?.group_size.max(1);
    let prompts: Vec<Vec<u32>> = items
        .iter()
        .flat_map(|it| std::iter::repeat_n(it.enc.prompt.clone(), g))
        .collect();
    let opts = p.gen_options(seed)?;
    let (gens, timing) = policy.generate(&prompts, &opts)?;
    let eos = pad_id(model);
    let weights = p.weights();
    let mut out = Rollouts {
        prompts,
        completions: Vec::with_capacity(gens.len()),
        truncated: Vec::with_capacity(gens.len()),
        rewards: Vec::with_capacity(gens.len()),
        sample: gens.first().map(|g| g.text.clone()).unwrap_or_default(),
        new_tokens: timing.new_tokens,
        seconds: 0.0,
    };
    for (k, out_k) in gens.into_iter().enumerate() {
        let q = &items[k / g].q;
        out.rewards
            .push(reward::reward(&out_k.text, &q.answers, &weights));
        let mut toks = out_k.tokens;
        // The EOS the model chose is part of what it is trained on (TRL's mask includes it).
        if out_k.finish == Finish::Eos {
            toks.push(eos);
        }
        out.truncated.push(out_k.finish == Finish::Length);
        out.completions.push(toks);
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// Records a step's mean reward at `level` and moves the level when the window is full.
fn advance(draw: &Draw, level: &mut i64, recent: &mut Vec<f64>, reward: f64) {
    recent.push(reward);
    let next = draw.adapt(*level, recent);
    if next != *level || recent.len() >= draw.window.max(1) {
        recent.clear();
    }
    *level = next;
}

/// Group relative policy optimisation with verifiable rewards.
pub fn grpo(job: &Job) -> Result<(), String> {
    let p = &job.params;
    let gp = p.grpo()?;
    let mu = gp.iterations.max(1) as u64;
    let mut s = setup(job, false)?;
    let cfg = LossConfig {
        loss_type: gp.loss_type,
        epsilon: gp.epsilon,
        epsilon_high: gp.epsilon_high.unwrap_or(gp.epsilon),
        beta: gp.beta,
        max_completion_tokens: p.max_completion_tokens,
    };
    // The frozen reference (only with a KL term): the starting model, without autodiff.
    let reference = if gp.beta != 0.0 {
        Some(Model::load(job.model, &p.device()?).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let pb = bar(job.progress, s.total, "grpo");
    pb.set_position(s.start);
    // The adaptive difficulty's state is a function of the metrics so far: replayed, it is
    // the same after a resume.
    let (mut level, mut recent) = (0i64, Vec::new());
    if let Some(draw) = &job.draw {
        for m in s.ckpt.read_metrics()? {
            level = m["level"].as_i64().unwrap_or(0);
            advance(
                draw,
                &mut level,
                &mut recent,
                m["reward_mean"].as_f64().unwrap_or(0.0),
            );
        }
    }
    for step in s.start..s.total {
        let started = Instant::now();
        let (batch, universe) = s.batch(job, step, level)?;
        let items: Vec<&Item> = batch.iter().collect();
        let seed = Rng::stream(p.seed, &format!("rollouts/{step}")).next_u64();
        let ro = rollouts(&s.model, &items, p, seed)?;
        let g = p.grpo()?.group_size.max(1);
        let totals: Vec<f64> = ro.rewards.iter().map(|r| r.total).collect();
        let adv: Vec<f32> = grpo::advantages(&totals, g, gp.scale_rewards)
            .into_iter()
            .map(|a| a as f32)
            .collect();
        let prompts = &ro.prompts;
        let keep: Vec<bool> = ro
            .truncated
            .iter()
            .map(|&t| !(t && gp.mask_truncated_completions))
            .collect();
        let mask = completion_mask(&ro.completions, &keep);
        let ranges = micro_ranges(prompts.len(), p.optim()?.micro_batch);
        let scale = Scale {
            micro_batches: ranges.len(),
            batch_tokens: Scale::whole(&mask).batch_tokens,
        };
        let pad = pad_id(&s.model);
        // Log-probabilities of the sampling policy (needed when μ > 1 moves the policy
        // away from it) and of the reference, without gradients.
        let frozen = |m: &Model| -> Result<Vec<Tensor<2>>, String> {
            ranges
                .iter()
                .map(|r| {
                    Ok(completion_logprobs(
                        &m.net,
                        &m.cfg,
                        pad,
                        &prompts[r.clone()],
                        &ro.completions[r.clone()],
                    )
                    .inner())
                })
                .collect()
        };
        let old = if mu > 1 {
            Some(frozen(&s.model.valid())?)
        } else {
            None
        };
        let refs = match &reference {
            Some(m) => Some(frozen(m)?),
            None => None,
        };
        // Nothing to learn when every advantage is 0 and there is no KL term: the
        // gradient is exactly 0, so the passes are skipped (AdamW still steps).
        let idle = cfg.beta == 0.0 && adv.iter().all(|&a| a == 0.0);
        let mut stats = Vec::new();
        let mut loss_sum = 0.0;
        let mut norm = 0.0;
        let mut lr = 0.0;
        for it in 0..mu {
            if !idle {
                for (k, r) in ranges.iter().enumerate() {
                    let lp = completion_logprobs(
                        &s.model.net,
                        &s.model.cfg,
                        pad,
                        &prompts[r.clone()],
                        &ro.completions[r.clone()],
                    );
                    let dev = lp.device();
                    let (loss, st) = grpo::policy_loss(
                        lp,
                        old.as_ref()
                            .map(|o| o[k].clone().autodiff().to_device(&dev)),
                        refs.as_ref()
                            .map(|o| o[k].clone().autodiff().to_device(&dev)),
                        &adv[r.clone()],
                        &mask[r.clone()],
                        &cfg,
                        scale,
                    )?;
                    loss_sum += grpo::scalar(&loss)?;
                    stats.push(st);
                    let grads = loss.backward();
                    s.opt.accumulate(&s.model.net, &grads);
                }
            }
            let opt_step = step * mu + it;
            lr = learning_rate(p, opt_step, s.total * mu)?;
            norm = s.apply(lr, p.optim()?.max_grad_norm)?;
        }
        let secs = started.elapsed().as_secs_f64();
        let tokens: f64 = stats.iter().map(|x| x.tokens).sum();
        let weighted = |f: fn(&LossStats) -> f64| {
            if tokens > 0.0 {
                stats.iter().map(|x| f(x) * x.tokens).sum::<f64>() / tokens
            } else {
                0.0
            }
        };
        let reward_mean = mean(totals.iter().copied());
        let lens: Vec<f64> = ro.completions.iter().map(|c| c.len() as f64).collect();
        s.record(
            step,
            &json!({
                "step": step + 1,
                "reward_mean": reward_mean,
                "reward_std": std_dev(&totals),
                "f1": mean(ro.rewards.iter().map(|r| r.f1)),
                "em": mean(ro.rewards.iter().map(|r| r.em)),
                "format_rate": mean(ro.rewards.iter().map(|r| r.format)),
                "loss": loss_sum / mu as f64,
                "kl": weighted(|x| x.kl),
                "clip_low": weighted(|x| x.clip_low),
                "clip_high": weighted(|x| x.clip_high),
                "clip_region": weighted(|x| x.clip_region),
                "grad_norm": norm,
                "learning_rate": lr,
                "completion_length": mean(lens.iter().copied()),
                "prompt_length": mean(items.iter().map(|it| it.enc.prompt.len() as f64)),
                "truncated_rate": mean(ro.truncated.iter().map(|&t| f64::from(u8::from(t)))),
                "tokens_per_second": ro.new_tokens as f64 / ro.seconds.max(1e-9),
                "rollout_seconds": ro.seconds,
                "step_seconds": secs,
                "universe_seed": universe,
                "level": level,
                "sample": ro.sample,
            }),
        )?;
        if let Some(draw) = &job.draw {
            advance(draw, &mut level, &mut recent, reward_mean);
        }
        pb.inc(1);
        pb.set_message(format!("reward {reward_mean:.3}"));
    }
    pb.finish_and_clear();
    finish(job, &s, "grpo", "reward_mean", "reward")
}

/// Generates an answer to every prompt, `batch` at a time, with the evaluation's sampling
/// (a seeded stream per batch), under a progress bar with the running F1. `score(i, g)`
/// scores prompt `i`'s generation (handed over, so its text can be kept without a copy)
/// and returns its F1 and its predictions.jsonl line; the lines come back joined, in
/// prompt order.
fn answer_all(
    job: &Job,
    model: &Model,
    prompts: &[Vec<u32>],
    batch: usize,
    mut score: impl FnMut(usize, Generation) -> (f64, serde_json::Value),
) -> Result<String, String> {
    let p = &job.params;
    let batch = batch.max(1);
    let pb = bar(
        job.progress,
        prompts.len().div_ceil(batch) as u64,
        "evaluate",
    );
    let (mut lines, mut f1_sum) = (String::new(), 0.0);
    for (b, chunk) in prompts.chunks(batch).enumerate() {
        let opts = p.gen_options(Rng::stream(p.seed, &format!("evaluate/{b}")).next_u64())?;
        let (gens, _) = model.generate(chunk, &opts)?;
        for (j, g) in gens.into_iter().enumerate() {
            let (f1, line) = score(b * batch + j, g);
            f1_sum += f1;
            lines.push_str(&line.to_string());
            lines.push('\n');
        }
        pb.inc(1);
        let done = (b * batch + chunk.len()).max(1);
        pb.set_message(format!("F1 {:.3}", f1_sum / done as f64));
    }
    pb.finish_and_clear();
    Ok(lines)
}

/// The identity of a prompt in predictions.jsonl: blake3 of its token ids.
fn prompt_hash(tokens: &[u32]) -> String {
    let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
    format!("b3:{}", blake3::hash(&bytes).to_hex())
}

/// Answers every question of the job's dataset with the model (the training prompts) and
/// scores the answers: `predictions.jsonl` and `metrics.json` in `out`.
pub fn evaluate(job: &Job, batch: usize, out: &Path) -> Result<(), String> {
    use crate::eval::{self, bench::Benchmark};
    let p = &job.params;
    let model = Model::load(job.model, &p.device()?).map_err(|e| e.to_string())?;
    let (items, skipped) = prepare(job, &model, false)?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create the output: {e}"))?;
    let prompts: Vec<Vec<u32>> = items.iter().map(|it| it.enc.prompt.clone()).collect();
    let weights = p.weights();
    let mut preds = Vec::with_capacity(items.len());
    let lines = answer_all(job, &model, &prompts, batch, |i, g| {
        let it = &items[i];
        let r = reward::reward(&g.text, &it.q.answers, &weights);
        let answer = reward::last_answer(&g.text).unwrap_or("").to_string();
        let line = json!({
            "id": it.q.id,
            "prompt_hash": prompt_hash(&it.enc.prompt),
            "generation": g.text,
            "prediction": answer,
            "answers": reward::predicted(&g.text),
            "f1": r.f1,
            "em": r.em,
            "format": r.format,
            "truncated": g.finish == Finish::Length,
        });
        preds.push(eval::Answer {
            id: it.q.id.clone(),
            answer,
            generation: Some(g.text),
            line: 0,
        });
        (r.f1, line)
    })?;
    // The same questions as records of the `synthetic` benchmark: F1 ± s.e.m. by
    // difficulty, hops and type, and the composition probe over the program's steps.
    let dir = job.dataset.ok_or("the stage needs `dataset`")?;
    let loaded = eval::bench::load_file(Benchmark::Synthetic, dir, None);
    let asked: std::collections::BTreeSet<&str> = items.iter().map(|it| it.q.id.as_str()).collect();
    let records: Vec<_> = loaded
        .records
        .into_iter()
        .filter(|r| asked.contains(r.id.as_str()))
        .collect();
    let report = eval::evaluate(Benchmark::Synthetic, &records, &preds, "predictions.jsonl")
        .map_err(|e| {
            format!(
                "{} prediction(s) do not match the dataset (this is a bug in synthpipe)",
                e.len()
            )
        })?;
    std::fs::write(out.join("predictions.jsonl"), lines)
        .map_err(|e| format!("cannot write predictions: {e}"))?;
    let mut summary = serde_json::to_value(&report).map_err(|e| e.to_string())?;
    summary["skipped_for_budget"] = json!(skipped);
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())? + "\n";
    std::fs::write(out.join("metrics.json"), text)
        .map_err(|e| format!("cannot write metrics.json: {e}"))
}

/// What a benchmark evaluation reads besides the model and the prompt settings.
pub struct BenchmarkJob<'a> {
    pub bench: crate::eval::bench::Benchmark,
    pub data: &'a Path,
    pub aliases: Option<&'a Path>,
    /// Score only the first `limit` records (0: all).
    pub limit: usize,
}

/// Answers a real benchmark's questions (reading-comprehension prompts) and scores them
/// with its official metric: predictions.jsonl and metrics.json (an `eval::Evaluation`
/// with strata and the composition probe, plus what was skipped).
pub fn evaluate_benchmark(job: &Job, b: &BenchmarkJob, out: &Path) -> Result<(), String> {
    use crate::eval::{self, bench};
    let p = &job.params;
    let diagnostics = |errors: &[crate::score::ScoreError]| {
        errors
            .iter()
            .map(|e| format!("{}: {e}", e.code.full()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let aliases = b
        .aliases
        .map(bench::load_aliases)
        .transpose()
        .map_err(|e| diagnostics(&e))?;
    let loaded = bench::load_file(b.bench, b.data, aliases.as_ref());
    if !loaded.errors.is_empty() {
        // Malformed records are reported and left out; the rest are evaluated.
        eprintln!("{}", diagnostics(&loaded.errors));
    }
    let mut records = loaded.records;
    if b.limit > 0 {
        records.truncate(b.limit);
    }
    if records.is_empty() {
        return Err(format!(
            "no {} record could be read from `{}`",
            b.bench.name(),
            b.data.display()
        ));
    }
    let model = Model::load(job.model, &p.device()?).map_err(|e| e.to_string())?;
    let prompter = Prompter {
        tokenizer: &model.tokenizer,
        opts: p.prompt_options(),
        max_prompt_tokens: p.max_prompt_tokens,
        max_completion_tokens: p.max_completion_tokens,
    };
    let mut items = Vec::with_capacity(records.len());
    let mut skipped = 0;
    for r in &records {
        let text = eval::prompt::prompt_text(b.bench, r, p.examples, p.chat);
        let prompt = model.tokenizer.encode(&prompter.wrap(text)?)?;
        if prompt.len() > p.max_prompt_tokens {
            if p.overflow == Overflow::Skip {
                skipped += 1;
                continue;
            }
            return Err(format!(
                "question `{}`: its prompt has {} tokens, over the budget of {}; raise max_prompt_tokens, use fewer examples, or set `overflow: skip`",
                r.id,
                prompt.len(),
                p.max_prompt_tokens
            ));
        }
        items.push((r, prompt));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create the output: {e}"))?;
    let prompts: Vec<Vec<u32>> = items.iter().map(|(_, t)| t.clone()).collect();
    let mut answers = Vec::with_capacity(items.len());
    let lines = answer_all(job, &model, &prompts, p.batch, |i, g| {
        let (r, prompt) = &items[i];
        let answer = reward::last_answer(&g.text).unwrap_or("").to_string();
        let s = eval::score_one(b.bench, r, &answer);
        let line = json!({
            "id": r.id,
            "prompt_hash": prompt_hash(prompt),
            "generation": g.text,
            "prediction": answer,
            "f1": s.f1,
            "em": s.em,
            "precision": s.precision,
            "recall": s.recall,
            "format": reward::well_formed(&g.text),
            "truncated": g.finish == Finish::Length,
        });
        answers.push(eval::Answer {
            id: r.id.clone(),
            answer,
            generation: Some(g.text),
            line: 0,
        });
        (s.f1, line)
    })?;
    let scored: Vec<bench::Record> = items.iter().map(|(r, _)| (*r).clone()).collect();
    let evaluation = eval::evaluate(b.bench, &scored, &answers, "predictions.jsonl")
        .map_err(|e| diagnostics(&e))?;
    std::fs::write(out.join("predictions.jsonl"), lines)
        .map_err(|e| format!("cannot write predictions: {e}"))?;
    let mut summary = serde_json::to_value(&evaluation).map_err(|e| e.to_string())?;
    summary["skipped_for_budget"] = json!(skipped);
    summary["skipped_records"] = json!(loaded.errors.len());
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())? + "\n";
    std::fs::write(out.join("metrics.json"), text)
        .map_err(|e| format!("cannot write metrics.json: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(band: Option<(f64, f64)>, banks: &[&str]) -> Draw {
        Draw {
            rules: PathBuf::new(),
            set: Vec::new(),
            first_seed: 10,
            holdout: [11, 12, 14].into_iter().collect(),
            band,
            window: 2,
            depth_param: "question_depth".into(),
            depth_min: 3,
            depth_max: 5,
            bank_param: "relations".into(),
            banks: banks.iter().map(|b| b.to_string()).collect(),
        }
    }

    #[test]
    fn drawn_universes_skip_held_out_seeds() {
        let d = draw(None, &[]);
        let seeds: Vec<u64> = (0..4).map(|k| d.seed(k)).collect();
        assert_eq!(seeds, vec![10, 13, 15, 16]);
    }

    #[test]
    fn difficulty_moves_depth_then_bank_within_the_band() {
        let d = draw(Some((0.2, 0.6)), &["easy", "all"]);
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(d.levels(), 6);
        assert_eq!(
            d.level_settings(0),
            vec![pair("question_depth", "3"), pair("relations", "easy")]
        );
        assert_eq!(
            d.level_settings(4),
            vec![pair("question_depth", "4"), pair("relations", "all")]
        );
        // Judged only once the window is full; up above the band, down below, capped.
        assert_eq!(d.adapt(1, &[0.9]), 1);
        assert_eq!(d.adapt(1, &[0.9, 0.7]), 2);
        assert_eq!(d.adapt(1, &[0.1, 0.1]), 0);
        assert_eq!(d.adapt(0, &[0.1, 0.1]), 0);
        assert_eq!(d.adapt(5, &[1.0, 1.0]), 5);
        assert_eq!(d.adapt(3, &[0.4, 0.4]), 3);
        // Replaying the rewards gives the same levels (what a resume does).
        let (mut level, mut recent) = (0, Vec::new());
        let mut path = Vec::new();
        for r in [0.9, 0.9, 0.9, 0.7, 0.1, 0.0, 0.5, 0.5] {
            advance(&d, &mut level, &mut recent, r);
            path.push(level);
        }
        assert_eq!(path, vec![0, 1, 1, 2, 2, 1, 1, 1]);
        // Without a band nothing is overridden.
        assert!(draw(None, &["easy"]).level_settings(3).is_empty());
    }
}
