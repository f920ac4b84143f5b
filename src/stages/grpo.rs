//! The `grpo` stage: GRPO with verifiable rewards (the paper's recipe by default).

use super::spec::*;
use super::train::{self, optim_of, train_params};
use super::{Io, StageError};
use crate::eval::run::SampleParams;
use crate::rl::objective::LossType;
use crate::rl::params::{GrpoParams, Optim, TrainParams};

pub const KIND: KindSpec = KindSpec {
    name: "grpo",
    // 2: questions drawn from `rules` are composed as `generate` 2 composes them.
    // 3: the model folder records its training settings (training.json).
    // 4: per-layer recomputation (`gradient_checkpointing`) and per-layer dropout seeds.
    // 5: rewards read answers as PhantomWiki's regex reads them (no line break in a span).
    // 6: rollouts' few-row products by model::skinny (float sums in another order), and
    //    finished completions leave the batch.
    // 7: a GGUF's rollouts read its packed blocks (model::packed; sums in another order).
    // 8: the MLP's gate outside autodiff (rollouts) by model::swiglu (a vector exponential).
    version: 8,
    doc: "GRPO with verifiable rewards (TRL 0.21 semantics; defaults are the paper's recipe): groups of sampled completions per question, set-F1 rewards of the last <answer> span, group-normalised advantages, the clipped objective, AdamW with linear decay. Resumes from its last checkpoint when killed.",
    params: &[
        MODEL_IN,
        ADAPTER_IN,
        TRAIN_DATASET,
        DRAW_RULES,
        DRAW_SET,
        DRAW_FIRST,
        DRAW_HOLDOUT,
        float(
            "reward_low",
            "0.0",
            "with `rules`: below this mean reward (over `adapt_window` steps) the questions get easier",
        ),
        float(
            "reward_high",
            "0.0",
            "with `rules`: above this the questions get harder (0: no adaptive difficulty)",
        ),
        int(
            "adapt_window",
            1,
            "4",
            "steps at one difficulty before the reward is judged",
        ),
        p(
            "depth_param",
            Ty::Str,
            Some("\"question_depth\""),
            "the rule parameter the adaptive difficulty moves first",
        ),
        int("depth_min", 0, "3", "the easiest value of `depth_param`"),
        int("depth_max", 0, "20", "the hardest value of `depth_param`"),
        p(
            "bank_param",
            Ty::Str,
            Some("\"relations\""),
            "the rule parameter naming the relation bank",
        ),
        p(
            "banks",
            Ty::StrList,
            Some("[]"),
            "relation banks from easy to hard, stepped through after `depth_max` (e.g. `[easy, all]`)",
        ),
        EXAMPLES_IN,
        STEPS,
        int("batch", 1, "2", "prompts per step"),
        int("group_size", 1, "16", "completions sampled per prompt (G)"),
        MICRO,
        CHECKPOINTING,
        float("learning_rate", "1e-6", "peak learning rate"),
        SCHEDULE,
        WD,
        BETA1,
        BETA2,
        ADAM_EPS,
        CLIP,
        float("temperature", "1.0", "sampling temperature of the rollouts"),
        float("top_p", "1.0", "nucleus sampling of the rollouts (1: off)"),
        int("top_k", 0, "0", "top-k sampling of the rollouts (0: off)"),
        p(
            "loss_type",
            Ty::Choice(&["bnpo", "grpo", "dr_grpo", "dapo"]),
            Some("\"bnpo\""),
            "how token losses are aggregated (docs/training.md)",
        ),
        float(
            "epsilon",
            "0.2",
            "lower clip of the importance ratio (1 − ε)",
        ),
        p(
            "epsilon_high",
            Ty::Float {
                min: 0.0,
                max: 1e12,
            },
            None,
            "upper clip (1 + ε_high; default ε; DAPO uses 0.28)",
        ),
        float(
            "beta",
            "0.0",
            "weight of the KL penalty to the starting model (0: none)",
        ),
        int(
            "iterations",
            1,
            "1",
            "μ: optimiser steps per batch of rollouts",
        ),
        p(
            "scale_rewards",
            Ty::Bool,
            Some("true"),
            "divide advantages by the group's standard deviation",
        ),
        p(
            "mask_truncated_completions",
            Ty::Bool,
            Some("false"),
            "leave completions cut by the budget out of the loss",
        ),
        p(
            "skip_idle",
            Ty::Bool,
            Some("true"),
            "skip the forward and backward passes of a step whose every advantage is 0 (with β = 0 its gradient is exactly 0; AdamW still steps); `false` runs them, as TRL does",
        ),
        float("reward_f1", "1.0", "weight of the set-F1 reward"),
        float("reward_em", "0.0", "weight of the exact-match reward"),
        float(
            "reward_format",
            "0.0",
            "weight of the format reward (ends in <answer>…</answer>)",
        ),
        MAX_PROMPT,
        MAX_COMPLETION,
        OVERFLOW,
        PROMPT,
        EXAMPLES,
        EVIDENCE,
        CHAT,
        THINKING,
        ORDER,
        CKPT,
        BACKEND,
        DTYPE,
        SAVE_BF16,
        LORA,
        SEED,
    ],
    outputs: TRAIN_OUTPUTS,
    cpus: 0,
    exclusive: true,
    check: train::one_source,
    typed: super::reads_as::<Params>,
    run: |io| execute(&io.typed()?, io),
};

train::model_params!(
    /// The typed parameters (`model`, `dataset`, `rules`, `holdout` and `examples_from` are
    /// inputs).
    [draw, optim, sampling, prompt] {
    pub reward_low: f64,
    pub reward_high: f64,
    pub adapt_window: usize,
    pub depth_param: String,
    pub depth_min: i64,
    pub depth_max: i64,
    pub bank_param: String,
    pub banks: Vec<String>,
    pub group_size: usize,
    pub loss_type: LossType,
    pub epsilon: f64,
    pub epsilon_high: Option<f64>,
    pub beta: f64,
    pub iterations: usize,
    pub scale_rewards: bool,
    pub mask_truncated_completions: bool,
    pub skip_idle: bool,
    pub reward_f1: f64,
    pub reward_em: f64,
    pub reward_format: f64,
});

pub fn execute(p: &Params, io: &Io) -> Result<(), StageError> {
    let params = train_params!(
        p,
        optim: Some(optim_of!(p)),
        sampling: Some(SampleParams {
            temperature: p.temperature,
            top_p: p.top_p,
            top_k: p.top_k,
        }),
        grpo: Some(GrpoParams {
            group_size: p.group_size,
            loss_type: p.loss_type,
            epsilon: p.epsilon,
            epsilon_high: p.epsilon_high,
            beta: p.beta,
            iterations: p.iterations,
            scale_rewards: p.scale_rewards,
            mask_truncated_completions: p.mask_truncated_completions,
            skip_idle: p.skip_idle,
            reward_f1: p.reward_f1,
            reward_em: p.reward_em,
            reward_format: p.reward_format,
        })
    );
    let draw = train::draw(io, &p.set, p.first_seed, |d| {
        d.band = (p.reward_high > 0.0).then_some((p.reward_low, p.reward_high));
        d.window = p.adapt_window.max(1);
        d.depth_param = p.depth_param.clone();
        d.depth_min = p.depth_min;
        d.depth_max = p.depth_max;
        d.bank_param = p.bank_param.clone();
        d.banks = p.banks.clone();
    })?;
    let job = train::job(io, params, draw, ("model", "metrics"))?;
    Ok(crate::rl::grpo::grpo(&job)?)
}
