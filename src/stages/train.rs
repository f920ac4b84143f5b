//! What the training and evaluation stages share: the check that questions come from one
//! place, the trainer's settings from a stage's typed parameters, drawing on the fly, and
//! the job handed to `rl::train`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::{At, Check, Io, StageError, Trouble};
use crate::rl::curriculum::Draw;
use crate::rl::job::Job;
use crate::rl::params::TrainParams;

/// `sft` and `grpo` read fixed questions (`dataset`) or draw them (`rules`): exactly one.
pub fn one_source(c: &mut Check) {
    // Counted as written, so an input that failed its own check is not reported twice.
    let given = ["dataset", "rules"].iter().filter(|k| c.given(k)).count();
    if given != 1 {
        let kind = c.kind;
        c.report(
            At::Stage,
            Trouble::MissingKey,
            format!("a `{kind}` stage needs exactly one of `dataset` and `rules`"),
            "give `dataset: {from: STAGE.OUTPUT}` for fixed questions, or `rules: FILE` to draw new universes every step",
        );
    }
}

/// Drawing on the fly, when the stage has `rules`: the universes to skip come from
/// `holdout`; `adapt` sets the adaptive difficulty (GRPO) on the draw.
pub fn draw(
    io: &Io,
    set: &Option<BTreeMap<String, Json>>,
    first_seed: u64,
    adapt: impl FnOnce(&mut Draw),
) -> Result<Option<Draw>, StageError> {
    let Some(rules) = io.opt_input("rules") else {
        return Ok(None);
    };
    let mut holdout = BTreeSet::new();
    if let Some(h) = io.opt_input("holdout") {
        let data = crate::dataset::Dataset::load(h)?;
        holdout.extend(data.questions.iter().map(|q| q.seed));
    }
    let mut d = Draw::fixed(
        rules.to_path_buf(),
        set.as_ref().map(super::settings).unwrap_or_default(),
        first_seed,
        holdout,
    );
    adapt(&mut d);
    Ok(Some(d))
}

/// The job of a training stage (outputs `model` and `metrics`) or an evaluation (`results`).
pub fn job<'a>(
    io: &'a Io,
    params: TrainParams,
    draw: Option<Draw>,
    outputs: (&str, &str),
) -> Result<Job<'a>, StageError> {
    Ok(Job {
        params,
        model: io.input("model")?,
        adapter: io.opt_input("adapter"),
        dataset: io.opt_input("dataset"),
        draw,
        examples: io.opt_input("examples_from"),
        out_model: io.output(outputs.0)?,
        out_metrics: io.output(outputs.1)?,
        scratch: io.scratch,
        progress: io.progress,
    })
}

/// The optimiser settings every training kind has, field for field.
macro_rules! optim_of {
    ($p:expr) => {
        Optim {
            steps: $p.steps,
            micro_batch: $p.micro_batch,
            gradient_checkpointing: $p.gradient_checkpointing,
            learning_rate: $p.learning_rate,
            lr_schedule: $p.lr_schedule,
            weight_decay: $p.weight_decay,
            adam_beta1: $p.adam_beta1,
            adam_beta2: $p.adam_beta2,
            adam_epsilon: $p.adam_epsilon,
            max_grad_norm: $p.max_grad_norm,
            order: $p.order,
            checkpoint_every: $p.checkpoint_every,
            save_bf16: $p.save_bf16,
            lora: $p.lora.clone(),
        }
    };
}
pub(crate) use optim_of;

/// The settings every model kind has (prompts, budgets, device, seed), with the groups the
/// kind has.
macro_rules! train_params {
    ($p:expr, optim: $o:expr, sampling: $s:expr, grpo: $g:expr) => {
        TrainParams {
            seed: $p.seed,
            batch: $p.batch,
            max_prompt_tokens: $p.max_prompt_tokens,
            max_completion_tokens: $p.max_completion_tokens,
            overflow: $p.overflow,
            style: $p.prompt,
            examples: $p.examples,
            evidence: $p.evidence,
            chat: $p.chat,
            enable_thinking: $p.enable_thinking,
            backend: $p.backend,
            dtype: $p.dtype,
            optim: $o,
            sampling: $s,
            grpo: $g,
        }
    };
}
pub(crate) use train_params;

/// The typed `Params` of a model kind: its own fields, then those of each group it has,
/// every group's fields written once here (`draw`: drawing on the fly; `optim`: the
/// optimiser and schedule; `sampling`; `prompt`: layout, budgets, device and seed). Unknown
/// fields are refused, and no field has a default: the spec's table holds them.
macro_rules! model_params {
    ($(#[$meta:meta])* [$($group:ident),*] { $($own:tt)* }) => {
        $crate::stages::train::model_params!(@munch [$($group),*] [] { $(#[$meta])* } { $($own)* });
    };
    (@munch [draw $(, $rest:ident)*] [$($acc:tt)*] $meta:tt $own:tt) => {
        $crate::stages::train::model_params!(@munch [$($rest),*] [$($acc)*
            /// With `rules`: the rule file's parameters, resolved by the loader.
            pub set: Option<std::collections::BTreeMap<String, serde_json::Value>>,
            pub first_seed: u64,
        ] $meta $own);
    };
    (@munch [optim $(, $rest:ident)*] [$($acc:tt)*] $meta:tt $own:tt) => {
        $crate::stages::train::model_params!(@munch [$($rest),*] [$($acc)*
            pub steps: u64,
            pub batch: usize,
            pub micro_batch: usize,
            pub gradient_checkpointing: bool,
            pub learning_rate: f64,
            pub lr_schedule: $crate::rl::params::Schedule,
            pub weight_decay: f64,
            pub adam_beta1: f64,
            pub adam_beta2: f64,
            pub adam_epsilon: f64,
            pub max_grad_norm: f64,
            pub order: $crate::rl::params::Order,
            pub checkpoint_every: u64,
            pub save_bf16: bool,
            pub lora: Option<$crate::model::lora::LoraSpec>,
        ] $meta $own);
    };
    (@munch [sampling $(, $rest:ident)*] [$($acc:tt)*] $meta:tt $own:tt) => {
        $crate::stages::train::model_params!(@munch [$($rest),*] [$($acc)*
            pub temperature: f64,
            pub top_p: f64,
            pub top_k: usize,
        ] $meta $own);
    };
    (@munch [prompt $(, $rest:ident)*] [$($acc:tt)*] $meta:tt $own:tt) => {
        $crate::stages::train::model_params!(@munch [$($rest),*] [$($acc)*
            pub max_prompt_tokens: usize,
            pub max_completion_tokens: usize,
            pub overflow: $crate::prompt::OnOverflow,
            pub prompt: $crate::prompt::Style,
            pub examples: usize,
            pub evidence: bool,
            pub chat: bool,
            pub enable_thinking: Option<bool>,
            pub backend: $crate::model::device::Backend,
            pub dtype: $crate::model::device::Dtype,
            pub seed: u64,
        ] $meta $own);
    };
    (@munch [] [$($acc:tt)*] { $($meta:tt)* } { $($own:tt)* }) => {
        $($meta)*
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Params {
            $($own)*
            $($acc)*
        }
    };
}
pub(crate) use model_params;
