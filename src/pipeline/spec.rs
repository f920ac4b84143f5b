//! What a pipeline file may say: the top-level keys, every stage kind with its parameters
//! (type, default, meaning), inputs and outputs. Validation, the cache key, the JSON Schema
//! (`synthpipe schema pipeline`) and docs/pipelines.md all read these tables, so they cannot
//! drift apart.

use serde_json::{Map, Value as Json, json};

/// The type of a parameter's value.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    Int {
        min: i64,
        max: i64,
    },
    Float {
        min: f64,
        max: f64,
    },
    Bool,
    Str,
    /// A list of strings.
    StrList,
    /// Universe seeds: an integer, a list of integers, or a string such as `"1..=10,42"`.
    Seeds,
    /// Values for the parameters a rule file declares (`NAME: VALUE`).
    Settings,
    /// A file or folder (a path relative to the pipeline file) or another stage's output
    /// (`{from: STAGE.OUTPUT}`).
    Input(InputKind),
    /// Another stage's output, written `STAGE.OUTPUT` (`STAGE` alone when it has one output).
    Ref(InputKind),
    /// A share between 0 and 1, or a list of universe seeds (as `Seeds`).
    ShareOrSeeds,
    /// An inclusive integer range: `N`, `"A..=B"`, `"A.."` or `"..=B"`.
    Range,
    /// A list of mappings, each with the given fields.
    List(&'static [ParamSpec]),
    /// One of the given words.
    Choice(&'static [&'static str]),
}

/// What an input must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A rule file (its cache identity is its checked IR).
    Rules,
    /// A dataset folder (`questions.jsonl`, `articles.jsonl`, …) or a `dataset` output.
    Dataset,
    /// Gold questions: a dataset folder or output, or a `questions.jsonl` file.
    Questions,
    /// A language model: a Hugging Face folder, a `.gguf` file, or a `model` output.
    Model,
    /// Any file.
    File,
    /// An `evaluate` stage's results.
    Evaluation,
    /// A training stage's (`sft`, `grpo`) metrics.
    Training,
}

impl InputKind {
    pub fn describe(self) -> &'static str {
        match self {
            InputKind::Rules => "a rule file",
            InputKind::Dataset => "a dataset (a folder or a stage's dataset output)",
            InputKind::Questions => "questions (a dataset or a questions.jsonl file)",
            InputKind::Model => {
                "a model (a Hugging Face folder, a .gguf file or a stage's model output)"
            }
            InputKind::File => "a file",
            InputKind::Evaluation => "an evaluation (an `evaluate` stage's results)",
            InputKind::Training => "a training log (an `sft` or `grpo` stage's metrics)",
        }
    }
    /// Whether an upstream output of this kind can feed this input.
    pub fn accepts(self, out: OutputKind) -> bool {
        matches!(
            (self, out),
            (
                InputKind::Dataset | InputKind::Questions,
                OutputKind::Dataset
            ) | (
                InputKind::File,
                OutputKind::Metrics | OutputKind::Evaluation | OutputKind::Training
            ) | (InputKind::Model, OutputKind::Model)
                | (InputKind::Evaluation, OutputKind::Evaluation)
                | (InputKind::Training, OutputKind::Training)
        )
    }
}

/// What an output is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// A dataset folder, laid out as docs/dataset.md says.
    Dataset,
    /// A folder with `metrics.json`.
    Metrics,
    /// A model folder in Hugging Face's layout.
    Model,
    /// An evaluation: `predictions.jsonl` and `metrics.json` (an `eval::Evaluation`).
    Evaluation,
    /// A training log: `metrics.jsonl` (one line per step) and `metrics.json`.
    Training,
    /// A report folder: `report.html`, `report.md` and `plots/`.
    Report,
}

#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: Ty,
    /// The value when the key is absent; `None` with `required: false` means "not set".
    pub default: Option<&'static str>,
    pub required: bool,
    pub doc: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub struct OutputSpec {
    pub name: &'static str,
    pub kind: OutputKind,
    pub doc: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub struct KindSpec {
    pub name: &'static str,
    /// Bumped by hand whenever the kind's results change for the same key inputs: every
    /// cached output of the kind is then rebuilt.
    pub version: u32,
    pub doc: &'static str,
    pub params: &'static [ParamSpec],
    pub outputs: &'static [OutputSpec],
    /// Cores the stage uses by default (0: all); stages that need the whole machine (training)
    /// run alone.
    pub cpus: usize,
    pub exclusive: bool,
}

impl KindSpec {
    pub fn param(&self, name: &str) -> Option<&'static ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
    pub fn output(&self, name: &str) -> Option<&'static OutputSpec> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

const fn p(
    name: &'static str,
    ty: Ty,
    default: Option<&'static str>,
    doc: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        ty,
        default,
        required: false,
        doc,
    }
}

const fn req(name: &'static str, ty: Ty, doc: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        ty,
        default: None,
        required: true,
        doc,
    }
}

const SEED: ParamSpec = p(
    "seed",
    Ty::Int {
        min: 0,
        max: i64::MAX,
    },
    Some("0"),
    "seed of the stage's own random choices",
);

pub const GENERATE: KindSpec = KindSpec {
    name: "generate",
    // 2: PhantomWiki's per-entity "How many" (`count_each`), question ids from the
    // universe, distinct comparison slots, `same` over counts, article lines without empty
    // values, verified cardinalities.
    version: 2,
    doc: "Generate a dataset (entities, facts, articles, questions, manifest) from a rule file: one universe per seed.",
    params: &[
        req("rules", Ty::Input(InputKind::Rules), "the rule file"),
        p(
            "seeds",
            Ty::Seeds,
            Some("0"),
            "universe seeds: `N`, `[N, ...]` or `\"A..=B\"` (one universe each)",
        ),
        p(
            "set",
            Ty::Settings,
            None,
            "values for parameters the rule file declares; the others keep their declared defaults",
        ),
        p(
            "derived",
            Ty::Bool,
            Some("false"),
            "also write derived facts to facts.jsonl",
        ),
    ],
    outputs: &[OutputSpec {
        name: "dataset",
        kind: OutputKind::Dataset,
        doc: "the dataset folder (docs/dataset.md)",
    }],
    cpus: 0,
    exclusive: false,
};

pub const SPLIT: KindSpec = KindSpec {
    name: "split",
    version: 1,
    doc: "Split a dataset into train / dev / test by universe (never by question): shares of its universes drawn with `seed`, or explicit seed lists.",
    params: &[
        req(
            "dataset",
            Ty::Input(InputKind::Dataset),
            "the dataset to split",
        ),
        p(
            "train",
            Ty::ShareOrSeeds,
            Some("0.8"),
            "share of universes, or their seeds",
        ),
        p(
            "dev",
            Ty::ShareOrSeeds,
            Some("0.1"),
            "share of universes, or their seeds",
        ),
        p(
            "test",
            Ty::ShareOrSeeds,
            Some("0.1"),
            "share of universes, or their seeds",
        ),
        SEED,
    ],
    outputs: &[
        OutputSpec {
            name: "train",
            kind: OutputKind::Dataset,
            doc: "the training universes",
        },
        OutputSpec {
            name: "dev",
            kind: OutputKind::Dataset,
            doc: "the development universes",
        },
        OutputSpec {
            name: "test",
            kind: OutputKind::Dataset,
            doc: "the test universes",
        },
    ],
    cpus: 1,
    exclusive: false,
};

const SOURCE: &[ParamSpec] = &[
    p(
        "from",
        Ty::Ref(InputKind::Dataset),
        None,
        "a stage's dataset output, `STAGE.OUTPUT` (give `from` or `path`)",
    ),
    p(
        "path",
        Ty::Input(InputKind::Dataset),
        None,
        "a dataset folder (give `from` or `path`)",
    ),
    p(
        "weight",
        Ty::Float {
            min: 0.0,
            max: 1e12,
        },
        Some("1.0"),
        "relative share of `questions` drawn from this source",
    ),
    p(
        "difficulty",
        Ty::Range,
        None,
        "keep only questions whose difficulty is in this range",
    ),
    p(
        "hops",
        Ty::Range,
        None,
        "keep only questions with this many hops",
    ),
    p(
        "question_type",
        Ty::StrList,
        None,
        "keep only questions of these types",
    ),
];

pub const MIX: KindSpec = KindSpec {
    name: "mix",
    version: 1,
    doc: "Concatenate and sample datasets (several domains, difficulties, ...) with weights and a seed; the articles, entities and facts of every universe a chosen question is about come along.",
    params: &[
        req(
            "sources",
            Ty::List(SOURCE),
            "the datasets to mix, each with a weight and optional filters",
        ),
        p(
            "questions",
            Ty::Int {
                min: 1,
                max: i64::MAX,
            },
            None,
            "how many questions to draw in all (default: every question that passes the filters, weights unused)",
        ),
        SEED,
    ],
    outputs: &[OutputSpec {
        name: "dataset",
        kind: OutputKind::Dataset,
        doc: "the mixed dataset, questions shuffled",
    }],
    cpus: 1,
    exclusive: false,
};

pub const SCORE: KindSpec = KindSpec {
    name: "score",
    version: 1,
    doc: "Score predictions against gold answers (EM, precision, recall, F1; PhantomWiki's convention), overall and by hops, difficulty and question type.",
    params: &[
        req("gold", Ty::Input(InputKind::Questions), "gold questions"),
        req(
            "predictions",
            Ty::Input(InputKind::File),
            "predictions, JSON Lines with `id` and `prediction` or `answers`",
        ),
    ],
    outputs: &[OutputSpec {
        name: "metrics",
        kind: OutputKind::Metrics,
        doc: "a folder with metrics.json",
    }],
    cpus: 1,
    exclusive: false,
};

const fn int(name: &'static str, min: i64, default: &'static str, doc: &'static str) -> ParamSpec {
    p(name, Ty::Int { min, max: i64::MAX }, Some(default), doc)
}

const fn float(name: &'static str, default: &'static str, doc: &'static str) -> ParamSpec {
    p(
        name,
        Ty::Float {
            min: 0.0,
            max: 1e12,
        },
        Some(default),
        doc,
    )
}

const BACKEND: ParamSpec = p(
    "backend",
    Ty::Choice(&["auto", "flex", "wgpu", "cuda", "vulkan"]),
    Some("\"auto\""),
    "burn backend: `auto` (a GPU through wgpu when there is one, else flex), `flex` (CPU), `wgpu`; `cuda`/`vulkan` need a build with that feature",
);
const DTYPE: ParamSpec = p(
    "dtype",
    Ty::Choice(&["f32", "bf16", "f16"]),
    Some("\"f32\""),
    "the float type the model computes in",
);
const MODEL_IN: ParamSpec = req(
    "model",
    Ty::Input(InputKind::Model),
    "the model: a Hugging Face folder, a .gguf file, or `{from: STAGE.model}`",
);
const TRAIN_DATASET: ParamSpec = p(
    "dataset",
    Ty::Input(InputKind::Dataset),
    None,
    "the training questions (with their universes' articles); or give `rules`",
);
const DRAW_RULES: ParamSpec = p(
    "rules",
    Ty::Input(InputKind::Rules),
    None,
    "draw questions on the fly from this rule file instead of `dataset`: a new universe every step",
);
const DRAW_SET: ParamSpec = p(
    "set",
    Ty::Settings,
    None,
    "values for the rule file's parameters (with `rules`)",
);
const DRAW_FIRST: ParamSpec = int(
    "first_seed",
    0,
    "1000000",
    "seed of the first universe drawn on the fly; each step takes the next",
);
const DRAW_HOLDOUT: ParamSpec = p(
    "holdout",
    Ty::Input(InputKind::Dataset),
    None,
    "universes never drawn on the fly: their seeds are skipped (e.g. `{from: split.test}`)",
);
const EXAMPLES_IN: ParamSpec = p(
    "examples_from",
    Ty::Input(InputKind::Dataset),
    None,
    "where worked examples come from (default: `dataset`); always a universe other than the question's",
);
const EXAMPLES: ParamSpec = int(
    "examples",
    0,
    "11",
    "worked chain-of-thought examples in each prompt (the paper: 11)",
);
const EVIDENCE: ParamSpec = p(
    "evidence",
    Ty::Bool,
    Some("true"),
    "put every article of the question's universe into the prompt",
);
const CHAT: ParamSpec = p(
    "chat",
    Ty::Bool,
    Some("true"),
    "format prompts with the model's chat template (false: plain text ending in `Answer:`)",
);
const THINKING: ParamSpec = p(
    "enable_thinking",
    Ty::Bool,
    None,
    "Qwen3's thinking switch for the chat template (unset: the template's default)",
);
const MAX_PROMPT: ParamSpec = int("max_prompt_tokens", 1, "6000", "prompt budget in tokens");
const MAX_COMPLETION: ParamSpec = int(
    "max_completion_tokens",
    1,
    "4096",
    "completion budget in tokens (also the reference answers' for SFT)",
);
const OVERFLOW: ParamSpec = p(
    "overflow",
    Ty::Choice(&["skip", "error"]),
    Some("\"skip\""),
    "a question over a token budget is skipped (and counted in metrics.json) or stops the stage",
);
const STEPS: ParamSpec = int(
    "steps",
    0,
    "0",
    "training steps (0: one pass over the questions)",
);
const MICRO: ParamSpec = int(
    "micro_batch",
    0,
    "0",
    "sequences per forward/backward pass, gradients accumulated over the step (0: all at once)",
);
const SCHEDULE: ParamSpec = p(
    "lr_schedule",
    Ty::Choice(&["linear", "constant"]),
    Some("\"linear\""),
    "`linear`: decay to 0 over the run without warm-up (the paper)",
);
const WD: ParamSpec = float("weight_decay", "0.0", "AdamW's decoupled weight decay");
const BETA1: ParamSpec = float("adam_beta1", "0.9", "AdamW β₁");
const BETA2: ParamSpec = float("adam_beta2", "0.999", "AdamW β₂");
const ADAM_EPS: ParamSpec = float("adam_epsilon", "1e-8", "AdamW ε");
const CLIP: ParamSpec = float(
    "max_grad_norm",
    "1.0",
    "clip the global gradient norm to this (0: no clipping)",
);
const ORDER: ParamSpec = p(
    "order",
    Ty::Choice(&["shuffle", "ascending", "descending"]),
    Some("\"shuffle\""),
    "question order: a seeded shuffle per pass, or by ascending / descending difficulty (curricula)",
);
const CKPT: ParamSpec = int(
    "checkpoint_every",
    0,
    "0",
    "steps between resumable checkpoints (0: every 10 % of the steps)",
);
const SAVE_BF16: ParamSpec = p(
    "save_bf16",
    Ty::Bool,
    Some("false"),
    "save the trained weights in bf16 instead of f32",
);
const TRAIN_OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "model",
        kind: OutputKind::Model,
        doc: "the trained model, a Hugging Face folder",
    },
    OutputSpec {
        name: "metrics",
        kind: OutputKind::Training,
        doc: "metrics.jsonl (one line per step) and a summary in metrics.json",
    },
];

pub const LM_INIT: KindSpec = KindSpec {
    name: "lm_init",
    version: 1,
    doc: "A new model with seeded random weights (as `synthpipe lm init`): a byte-level BPE tokenizer trained on a dataset's text, or another model's tokenizer.",
    params: &[
        p(
            "dataset",
            Ty::Input(InputKind::Dataset),
            None,
            "train the tokenizer on this dataset's articles, questions and answers",
        ),
        p(
            "tokenizer",
            Ty::Input(InputKind::Model),
            None,
            "or take this model's tokenizer",
        ),
        int(
            "vocab",
            259,
            "4096",
            "vocabulary size of a trained tokenizer (at most)",
        ),
        p(
            "arch",
            Ty::Choice(&["qwen3", "qwen2", "llama"]),
            Some("\"qwen3\""),
            "architecture",
        ),
        int("layers", 1, "4", "decoder blocks"),
        int("hidden", 1, "256", "hidden size"),
        int("heads", 1, "4", "attention heads"),
        int(
            "kv_heads",
            1,
            "2",
            "key/value heads (grouped-query attention)",
        ),
        int("intermediate", 0, "0", "MLP size (0: 3 × hidden)"),
        int("context", 1, "4096", "maximum positions"),
        float("rope_theta", "1000000.0", "RoPE base"),
        p(
            "tie_embeddings",
            Ty::Bool,
            Some("true"),
            "share the input embedding with the output layer",
        ),
        float(
            "init_std",
            "0.02",
            "standard deviation of the random weights",
        ),
        SEED,
    ],
    outputs: &[OutputSpec {
        name: "model",
        kind: OutputKind::Model,
        doc: "the new model, a Hugging Face folder",
    }],
    cpus: 0,
    exclusive: false,
};

pub const SFT: KindSpec = KindSpec {
    name: "sft",
    // 2: questions drawn from `rules` are composed as `generate` 2 composes them.
    version: 2,
    doc: "Supervised fine-tuning on rule-derived chain-of-thought answers (written hop by hop from each question's program): a warm start for a model trained from scratch, and a baseline for GRPO. Resumes from its last checkpoint when killed.",
    params: &[
        MODEL_IN,
        TRAIN_DATASET,
        DRAW_RULES,
        DRAW_SET,
        DRAW_FIRST,
        DRAW_HOLDOUT,
        EXAMPLES_IN,
        STEPS,
        int("batch", 1, "8", "sequences per step"),
        MICRO,
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
        EXAMPLES,
        EVIDENCE,
        CHAT,
        THINKING,
        ORDER,
        CKPT,
        BACKEND,
        DTYPE,
        SAVE_BF16,
        SEED,
    ],
    outputs: TRAIN_OUTPUTS,
    cpus: 0,
    exclusive: true,
};

pub const GRPO: KindSpec = KindSpec {
    name: "grpo",
    // 2: questions drawn from `rules` are composed as `generate` 2 composes them.
    version: 2,
    doc: "GRPO with verifiable rewards (TRL 0.21 semantics; defaults are the paper's recipe): groups of sampled completions per question, set-F1 rewards of the last <answer> span, group-normalised advantages, the clipped objective, AdamW with linear decay. Resumes from its last checkpoint when killed.",
    params: &[
        MODEL_IN,
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
        EXAMPLES,
        EVIDENCE,
        CHAT,
        THINKING,
        ORDER,
        CKPT,
        BACKEND,
        DTYPE,
        SAVE_BF16,
        SEED,
    ],
    outputs: TRAIN_OUTPUTS,
    cpus: 0,
    exclusive: true,
};

pub const EVALUATE: KindSpec = KindSpec {
    name: "evaluate",
    // 2: metrics.json is an `eval::Evaluation` (F1 / EM ± s.e.m., strata, probe).
    // 3: each scored question carries its strata; 2Wiki is named `2wiki`.
    version: 3,
    doc: "Answer a synthpipe dataset's questions (the training prompts) or a real benchmark's (reading comprehension with worked examples) with a model, sampling with the paper's evaluation settings, and score them: predictions.jsonl and metrics.json (EM, F1 ± s.e.m. overall and by stratum; for benchmarks also the composition probe).",
    params: &[
        MODEL_IN,
        p(
            "dataset",
            Ty::Input(InputKind::Dataset),
            None,
            "a synthpipe dataset's questions (with their universes' articles); or give `benchmark` and `data`",
        ),
        p(
            "benchmark",
            Ty::Choice(&["synthetic", "hotpotqa", "2wiki", "musique", "cofca"]),
            Some("\"synthetic\""),
            "which questions: `synthetic` reads `dataset`; a real benchmark reads `data`, with its official metric and strata",
        ),
        p(
            "data",
            Ty::Input(InputKind::File),
            None,
            "the benchmark file (its official JSON array or JSON Lines)",
        ),
        p(
            "aliases",
            Ty::Input(InputKind::File),
            None,
            "2WikiMultiHopQA's id_aliases.json (answers also match the answer entity's aliases)",
        ),
        int(
            "limit",
            0,
            "0",
            "score only the first N questions of `data` (0: all)",
        ),
        EXAMPLES_IN,
        int("batch", 1, "8", "questions generated together"),
        float("temperature", "0.6", "sampling temperature (0: greedy)"),
        float("top_p", "0.95", "nucleus sampling (1: off)"),
        int("top_k", 0, "20", "top-k sampling (0: off)"),
        MAX_PROMPT,
        MAX_COMPLETION,
        OVERFLOW,
        EXAMPLES,
        EVIDENCE,
        CHAT,
        THINKING,
        BACKEND,
        DTYPE,
        SEED,
    ],
    outputs: &[OutputSpec {
        name: "results",
        kind: OutputKind::Evaluation,
        doc: "predictions.jsonl (id, generation, extracted answer, scores) and metrics.json",
    }],
    cpus: 0,
    exclusive: true,
};

const REPORT_EVAL: &[ParamSpec] = &[
    req(
        "from",
        Ty::Ref(InputKind::Evaluation),
        "an evaluate stage's results, `STAGE.results`",
    ),
    req(
        "model",
        Ty::Str,
        "the model's name in the report (`base`, `trained`, …): evaluations with the same name are one model's",
    ),
    p(
        "name",
        Ty::Str,
        None,
        "what the report calls these questions (default: the benchmark's name); evaluations with the same name are compared",
    ),
];

const REPORT_TRAIN: &[ParamSpec] = &[
    req(
        "from",
        Ty::Ref(InputKind::Training),
        "an sft or grpo stage's metrics, `STAGE.metrics`",
    ),
    req("model", Ty::Str, "the trained model's name in the report"),
];

pub const REPORT: KindSpec = KindSpec {
    name: "report",
    version: 1,
    doc: "A report of a run: a self-contained HTML page and a Markdown summary with F1 / EM ± s.e.m. per benchmark and stratum, paired differences against a baseline model, the composition probe, training curves, and plots (SVG and PNG); benchmarks expected but not evaluated are listed as unavailable.",
    params: &[
        p(
            "title",
            Ty::Str,
            Some("\"synthpipe report\""),
            "the report's heading",
        ),
        req(
            "evaluations",
            Ty::List(REPORT_EVAL),
            "evaluations to report, each with its model's name",
        ),
        p(
            "training",
            Ty::List(REPORT_TRAIN),
            None,
            "training logs to plot (reward, F1 and completion length per step for GRPO; loss for SFT)",
        ),
        p(
            "baseline",
            Ty::Str,
            None,
            "the model the others are compared with (default: the first evaluation's model)",
        ),
        p(
            "expect",
            Ty::StrList,
            Some("[\"hotpotqa\", \"2wiki\", \"musique\", \"cofca\"]"),
            "benchmarks the report accounts for: those without an evaluation are listed as unavailable",
        ),
    ],
    outputs: &[OutputSpec {
        name: "report",
        kind: OutputKind::Report,
        doc: "report.html (self-contained), report.md and plots/ (SVG and PNG)",
    }],
    cpus: 1,
    exclusive: false,
};

/// Every stage kind, in documentation order.
pub const KINDS: &[&KindSpec] = &[
    &GENERATE, &SPLIT, &MIX, &SCORE, &LM_INIT, &SFT, &GRPO, &EVALUATE, &REPORT,
];

pub fn kind(name: &str) -> Option<&'static KindSpec> {
    KINDS.iter().copied().find(|k| k.name == name)
}

/// Keys every stage may have besides its kind's parameters.
pub const STAGE_KEYS: &[(&str, &str)] = &[
    ("kind", "the stage kind"),
    (
        "cpus",
        "cores the stage may use (default: the kind's; 0 = all); stages run side by side while their cores fit `-j`",
    ),
    (
        "out",
        "also copy the stage's outputs to this folder (relative to the pipeline file) after each run",
    ),
];

/// Top-level keys of a pipeline file.
pub const TOP_KEYS: &[(&str, &str)] = &[
    ("name", "the pipeline's name (letters, digits, `_`, `-`)"),
    ("params", "named values that stages use as `${params.NAME}`"),
    (
        "defaults",
        "per stage kind, parameter values every stage of that kind gets unless it sets its own",
    ),
    ("stages", "the stages, by name"),
];

/// The JSON Schema (2020-12) of a pipeline file.
pub fn json_schema() -> Json {
    let mut kinds = Vec::new();
    let mut defaults = Map::new();
    for k in KINDS {
        let mut props = Map::new();
        props.insert(
            "kind".into(),
            json!({"const": k.name, "description": k.doc}),
        );
        for (key, doc) in &STAGE_KEYS[1..] {
            let ty = if *key == "cpus" {
                json!({"type": "integer", "minimum": 0})
            } else {
                json!({"type": "string"})
            };
            props.insert(key.to_string(), with_doc(ty, doc));
        }
        let mut required = vec![json!("kind")];
        let mut default_props = Map::new();
        for p in k.params {
            props.insert(p.name.into(), param_schema(p));
            default_props.insert(p.name.into(), param_schema(p));
            if p.required {
                required.push(json!(p.name));
            }
        }
        kinds.push(json!({
            "title": k.name,
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": false,
        }));
        defaults.insert(
            k.name.into(),
            json!({"type": "object", "properties": default_props, "additionalProperties": false}),
        );
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://synthpipe.dev/schema/pipeline.json",
        "title": "synthpipe pipeline",
        "type": "object",
        "required": ["name", "stages"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "description": TOP_KEYS[0].1},
            "params": {"type": "object", "description": TOP_KEYS[1].1},
            "defaults": {"type": "object", "properties": defaults, "additionalProperties": false, "description": TOP_KEYS[2].1},
            "stages": {
                "type": "object",
                "description": TOP_KEYS[3].1,
                "minProperties": 1,
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "additionalProperties": {"oneOf": kinds},
            },
        },
    })
}

fn with_doc(mut schema: Json, doc: &str) -> Json {
    if let Json::Object(m) = &mut schema {
        m.insert("description".into(), json!(doc));
    }
    schema
}

const PARAM_REF: &str = r"^\$\{params\.[A-Za-z_][A-Za-z0-9_]*\}$";

fn param_schema(p: &ParamSpec) -> Json {
    let reference = json!({"type": "string", "pattern": PARAM_REF});
    let seeds = json!({"oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "array", "items": {"type": "integer", "minimum": 0}},
        {"type": "string"},
    ]});
    let ty = match p.ty {
        Ty::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Ty::Float { min, max } => json!({"type": "number", "minimum": min, "maximum": max}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Str => json!({"type": "string"}),
        Ty::Choice(words) => json!({"type": "string", "enum": words}),
        Ty::StrList => json!({"type": "array", "items": {"type": "string"}}),
        Ty::Seeds => seeds,
        Ty::Settings => {
            json!({"type": "object", "additionalProperties": {"type": ["string", "number", "integer", "boolean"]}})
        }
        Ty::Input(_) => json!({"oneOf": [
            {"type": "string", "description": "a path relative to the pipeline file"},
            {"type": "object", "properties": {"from": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"}}, "required": ["from"], "additionalProperties": false},
        ]}),
        Ty::Ref(_) => {
            json!({"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"})
        }
        Ty::ShareOrSeeds => json!({"oneOf": [
            {"type": "number", "minimum": 0, "maximum": 1},
            {"type": "array", "items": {"type": "integer", "minimum": 0}},
            {"type": "string"},
        ]}),
        Ty::Range => {
            json!({"oneOf": [{"type": "integer"}, {"type": "string", "pattern": r"^\s*-?\d*\s*\.\.=?\s*-?\d*\s*$"}]})
        }
        Ty::List(fields) => {
            let mut props = Map::new();
            let mut required = Vec::new();
            for f in fields {
                props.insert(f.name.into(), param_schema(f));
                if f.required {
                    required.push(json!(f.name));
                }
            }
            json!({"type": "array", "minItems": 1, "items": {"type": "object", "properties": props, "required": required, "additionalProperties": false}})
        }
    };
    let mut schema = json!({"anyOf": [ty, reference]});
    if let Some(d) = p.default {
        schema["default"] = serde_json::from_str(d).unwrap_or(json!(d));
    }
    with_doc(schema, p.doc)
}

/// A type's name in messages and docs.
pub fn describe(ty: Ty) -> String {
    match ty {
        Ty::Int { min, max } if max == i64::MAX => format!("an integer ≥ {min}"),
        Ty::Int { min, max } => format!("an integer in {min}..={max}"),
        Ty::Float { min, max } if max >= 1e12 => format!("a number ≥ {min}"),
        Ty::Float { min, max } => format!("a number in {min}..={max}"),
        Ty::Bool => "`true` or `false`".into(),
        Ty::Str => "a string".into(),
        Ty::Choice(words) => format!(
            "one of {}",
            words
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Ty::StrList => "a list of strings".into(),
        Ty::Seeds => "seeds: an integer, a list of integers or a string like \"1..=10\"".into(),
        Ty::Settings => "a mapping of rule-file parameters to values".into(),
        Ty::Input(k) => format!("{}: a path or `{{from: STAGE.OUTPUT}}`", k.describe()),
        Ty::Ref(k) => format!("{}: `STAGE.OUTPUT`", k.describe()),
        Ty::ShareOrSeeds => "a share in 0..=1 or universe seeds".into(),
        Ty::Range => "an integer range: N, \"A..=B\", \"A..\" or \"..=B\"".into(),
        Ty::List(_) => "a list of mappings".into(),
    }
}
