//! The `sft` stage: supervised fine-tuning on rule-derived chains of thought.

use super::spec::*;
use super::train::{self, optim_of, train_params};
use super::{Io, StageError};
use crate::rl::params::{Optim, TrainParams};

pub const KIND: KindSpec = KindSpec {
    name: "sft",
    // 2: questions drawn from `rules` are composed as `generate` 2 composes them.
    // 3: the model folder records its training settings (training.json).
    // 4: per-layer recomputation (`gradient_checkpointing`) and per-layer dropout seeds.
    version: 4,
    doc: "Supervised fine-tuning on rule-derived chain-of-thought answers (written hop by hop from each question's program): a warm start for a model trained from scratch, and a baseline for GRPO. Resumes from its last checkpoint when killed.",
    params: &[
        MODEL_IN,
        ADAPTER_IN,
        TRAIN_DATASET,
        DRAW_RULES,
        DRAW_SET,
        DRAW_FIRST,
        DRAW_HOLDOUT,
        EXAMPLES_IN,
        STEPS,
        int("batch", 1, "8", "sequences per step"),
        MICRO,
        CHECKPOINTING,
        float("learning_rate", "1e-5", "peak learning rate"),
        SCHEDULE,
        WD,
        BETA1,
        BETA2,
        ADAM_EPS,
        CLIP,
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
    [draw, optim, prompt] {
});

pub fn execute(p: &Params, io: &Io) -> Result<(), StageError> {
    let params = train_params!(p, optim: Some(optim_of!(p)), sampling: None, grpo: None);
    let draw = train::draw(io, &p.set, p.first_seed, |_| {})?;
    let job = train::job(io, params, draw, ("model", "metrics"))?;
    Ok(crate::rl::sft::sft(&job)?)
}
