//! A training job's settings, typed: the prompt layout and budgets, the device, and the
//! groups only some jobs have (the optimiser for SFT and GRPO, sampling, GRPO's loss and
//! rewards). Stages build them from their parameters; the defaults live in the stage specs.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::objective::LossType;
use super::reward::Weights;
use crate::eval::run::SampleParams;
use crate::model::device::{Backend, Dtype, device_with};
use crate::model::generate::GenOptions;
use crate::model::tokenizer::Tokenizer;
use crate::prompt::{OnOverflow, PromptOptions, Prompter, Style};

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
    pub overflow: OnOverflow,
    /// The prompt layout (synthpipe's or the paper's).
    pub style: Style,
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
    /// Recompute each layer in the backward pass (`rl::recompute`) instead of keeping every
    /// layer's activations.
    pub gradient_checkpointing: bool,
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
    /// Train LoRA adapters on a frozen model instead of every weight.
    pub lora: Option<crate::model::lora::LoraSpec>,
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
    /// Skip the passes of a step whose gradient is exactly 0.
    pub skip_idle: bool,
    pub reward_f1: f64,
    pub reward_em: f64,
    pub reward_format: f64,
}

impl TrainParams {
    pub fn prompt_options(&self) -> PromptOptions {
        PromptOptions {
            style: self.style,
            examples: self.examples,
            evidence: self.evidence,
            chat: self.chat,
            enable_thinking: self.enable_thinking,
            seed: self.seed,
        }
    }

    pub(crate) fn optim(&self) -> Result<&Optim, String> {
        self.optim
            .as_ref()
            .ok_or_else(|| missing_group("optimiser"))
    }
    pub(crate) fn grpo(&self) -> Result<&GrpoParams, String> {
        self.grpo.as_ref().ok_or_else(|| missing_group("GRPO"))
    }

    /// Sampling as the job says, up to the completion budget.
    pub(crate) fn gen_options(&self, seed: u64) -> Result<GenOptions, String> {
        let s = self
            .sampling
            .as_ref()
            .ok_or_else(|| missing_group("sampling"))?;
        Ok(s.gen_options(self.max_completion_tokens, seed))
    }

    /// The prompt builder for `tokenizer` with this job's layout and budgets.
    pub(crate) fn prompter<'a>(&self, tokenizer: &'a Tokenizer) -> Prompter<'a> {
        Prompter {
            tokenizer,
            opts: self.prompt_options(),
            max_prompt_tokens: self.max_prompt_tokens,
            max_completion_tokens: self.max_completion_tokens,
        }
    }

    /// GRPO's reward weights (only GRPO jobs reward; evaluation scores in `eval::run`).
    pub(crate) fn weights(&self) -> Result<Weights, String> {
        let g = self.grpo()?;
        Ok(Weights {
            f1: g.reward_f1,
            em: g.reward_em,
            format: g.reward_format,
        })
    }
    pub(crate) fn device(&self) -> Result<Device, String> {
        device_with(self.backend, self.dtype)
    }
}

pub(crate) fn missing_group(what: &str) -> String {
    format!(
        "internal error[synthpipe::stage::param]: this job has no {what} settings (this is a bug in synthpipe)"
    )
}
