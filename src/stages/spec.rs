//! What a stage kind declares: its parameters (type, default, meaning), inputs, outputs and
//! version, the top-level keys of a pipeline file, and the parameters several kinds share.
//! Validation, the cache key, the JSON Schema (`synthpipe schema pipeline`) and
//! docs/pipelines.md all read these tables, so they cannot drift apart.

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
    /// One mapping with the given fields (absent ones take their defaults).
    Map(&'static [ParamSpec]),
    /// One of the given words.
    Choice(&'static [&'static str]),
    /// A non-empty list of the given words, each at most once.
    Choices(&'static [&'static str]),
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
    /// Checks that span several parameters, after each was checked alone.
    pub check: fn(&mut super::Check),
    /// Whether resolved parameters read as the kind's typed `Params` (a loader bug if not).
    pub typed: fn(&super::Io) -> Result<(), super::StageError>,
    /// Runs the stage: typed parameters from the resolved ones, then the work.
    pub run: fn(&super::Io) -> Result<(), super::StageError>,
}

impl KindSpec {
    pub fn param(&self, name: &str) -> Option<&'static ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
    pub fn output(&self, name: &str) -> Option<&'static OutputSpec> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

pub const fn p(
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

pub const fn req(name: &'static str, ty: Ty, doc: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        ty,
        default: None,
        required: true,
        doc,
    }
}

pub const SEED: ParamSpec = p(
    "seed",
    Ty::Int {
        min: 0,
        max: i64::MAX,
    },
    Some("0"),
    "seed of the stage's own random choices",
);

pub const fn int(
    name: &'static str,
    min: i64,
    default: &'static str,
    doc: &'static str,
) -> ParamSpec {
    p(name, Ty::Int { min, max: i64::MAX }, Some(default), doc)
}

pub const fn float(name: &'static str, default: &'static str, doc: &'static str) -> ParamSpec {
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

pub const BACKEND: ParamSpec = p(
    "backend",
    Ty::Choice(&["auto", "flex", "wgpu", "cuda", "vulkan"]),
    Some("\"auto\""),
    "burn backend: `auto` (a GPU through wgpu when there is one, else flex), `flex` (CPU), `wgpu`; `cuda`/`vulkan` need a build with that feature",
);
pub const DTYPE: ParamSpec = p(
    "dtype",
    Ty::Choice(&["f32", "bf16", "f16"]),
    Some("\"f32\""),
    "the float type the model computes in",
);
pub const MODEL_IN: ParamSpec = req(
    "model",
    Ty::Input(InputKind::Model),
    "the model: a Hugging Face folder, a .gguf file, or `{from: STAGE.model}`",
);
pub const ADAPTER_IN: ParamSpec = p(
    "adapter",
    Ty::Input(InputKind::Model),
    None,
    "a LoRA adapter on `model`: a PEFT folder, or a LoRA-trained model (its `adapter/` folder); training continues it",
);
pub const TRAIN_DATASET: ParamSpec = p(
    "dataset",
    Ty::Input(InputKind::Dataset),
    None,
    "the training questions (with their universes' articles); or give `rules`",
);
pub const DRAW_RULES: ParamSpec = p(
    "rules",
    Ty::Input(InputKind::Rules),
    None,
    "draw questions on the fly from this rule file instead of `dataset`: a new universe every step",
);
pub const DRAW_SET: ParamSpec = p(
    "set",
    Ty::Settings,
    None,
    "values for the rule file's parameters (with `rules`)",
);
pub const DRAW_FIRST: ParamSpec = int(
    "first_seed",
    0,
    "1000000",
    "seed of the first universe drawn on the fly; each step takes the next",
);
pub const DRAW_HOLDOUT: ParamSpec = p(
    "holdout",
    Ty::Input(InputKind::Dataset),
    None,
    "universes never drawn on the fly: their seeds are skipped (e.g. `{from: split.test}`)",
);
pub const EXAMPLES_IN: ParamSpec = p(
    "examples_from",
    Ty::Input(InputKind::Dataset),
    None,
    "where worked examples come from (default: `dataset`); always a universe other than the question's",
);
pub const EXAMPLES: ParamSpec = int(
    "examples",
    0,
    "11",
    "worked chain-of-thought examples in each prompt (the paper: 11)",
);
pub const PROMPT: ParamSpec = p(
    "prompt",
    Ty::Choice(&["synthpipe", "paper"]),
    Some("\"synthpipe\""),
    "prompt layout: `synthpipe` (short instruction, examples from another universe of the same rules) or `paper` (phantom_eval's template and fixed worked examples, for the family rules and the real benchmarks)",
);
pub const EVIDENCE: ParamSpec = p(
    "evidence",
    Ty::Bool,
    Some("true"),
    "put every article of the question's universe into the prompt",
);
pub const CHAT: ParamSpec = p(
    "chat",
    Ty::Bool,
    Some("true"),
    "format prompts with the model's chat template (false: plain text ending in `Answer:`)",
);
pub const THINKING: ParamSpec = p(
    "enable_thinking",
    Ty::Bool,
    None,
    "Qwen3's thinking switch for the chat template (unset: the template's default)",
);
pub const MAX_PROMPT: ParamSpec = int("max_prompt_tokens", 1, "6000", "prompt budget in tokens");
pub const MAX_COMPLETION: ParamSpec = int(
    "max_completion_tokens",
    1,
    "4096",
    "completion budget in tokens (also the reference answers' for SFT)",
);
pub const OVERFLOW: ParamSpec = p(
    "overflow",
    Ty::Choice(&["skip", "error"]),
    Some("\"skip\""),
    "a question over a token budget is skipped (and counted in metrics.json) or stops the stage",
);
pub const STEPS: ParamSpec = int(
    "steps",
    0,
    "0",
    "training steps (0: one pass over the questions)",
);
pub const MICRO: ParamSpec = int(
    "micro_batch",
    0,
    "0",
    "sequences per forward/backward pass, gradients accumulated over the step (0: all at once)",
);
pub const CHECKPOINTING: ParamSpec = p(
    "gradient_checkpointing",
    Ty::Bool,
    Some("true"),
    "recompute each layer in the backward pass instead of keeping every layer's activations: far less memory for a second forward pass (TRL's default; the paper's recipes set it too)",
);
pub const SCHEDULE: ParamSpec = p(
    "lr_schedule",
    Ty::Choice(&["linear", "constant"]),
    Some("\"linear\""),
    "`linear`: decay to 0 over the run without warm-up (the paper)",
);
pub const WD: ParamSpec = float("weight_decay", "0.0", "AdamW's decoupled weight decay");
pub const BETA1: ParamSpec = float("adam_beta1", "0.9", "AdamW β₁");
pub const BETA2: ParamSpec = float("adam_beta2", "0.999", "AdamW β₂");
pub const ADAM_EPS: ParamSpec = float("adam_epsilon", "1e-8", "AdamW ε");
pub const CLIP: ParamSpec = float(
    "max_grad_norm",
    "1.0",
    "clip the global gradient norm to this (0: no clipping)",
);
pub const ORDER: ParamSpec = p(
    "order",
    Ty::Choice(&["shuffle", "ascending", "descending"]),
    Some("\"shuffle\""),
    "question order: a seeded shuffle per pass, or by ascending / descending difficulty (curricula)",
);
pub const CKPT: ParamSpec = int(
    "checkpoint_every",
    0,
    "0",
    "steps between resumable checkpoints (0: every 10 % of the steps)",
);
pub const SAVE_BF16: ParamSpec = p(
    "save_bf16",
    Ty::Bool,
    Some("false"),
    "save the trained weights in bf16 instead of f32",
);
/// The fields of `lora`, with PEFT's usual settings as defaults.
pub const LORA_FIELDS: &[ParamSpec] = &[
    int("rank", 1, "16", "rank of each adapter"),
    float(
        "alpha",
        "32",
        "scaling numerator: an adapter's update is scaled by alpha / rank",
    ),
    p(
        "dropout",
        Ty::Float {
            min: 0.0,
            max: 0.99,
        },
        Some("0.0"),
        "share of an adapter's inputs zeroed in training passes",
    ),
    p(
        "targets",
        Ty::Choices(&crate::model::lora::Target::NAMES),
        Some(r#"["q", "k", "v", "o", "gate", "up", "down"]"#),
        "projections that get an adapter",
    ),
];
pub const LORA: ParamSpec = p(
    "lora",
    Ty::Map(LORA_FIELDS),
    None,
    "train LoRA adapters on the frozen model instead of every weight (`lora: {}` takes the defaults); the model output is then the merged model, with the adapter in PEFT's layout in its `adapter/` folder",
);
pub const TRAIN_OUTPUTS: &[OutputSpec] = &[
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
    (
        "executor",
        "`local` (in the `synthpipe run` process) or `slurm` (its own SLURM job); default: the pipeline's",
    ),
    (
        "resources",
        "the SLURM job's resources: cpus, gpus, mem, time, partition, account, extra_args",
    ),
];

/// Keys of a stage's `resources:` (SLURM).
pub const RESOURCE_KEYS: &[(&str, &str)] = &[
    (
        "cpus",
        "cores (`--cpus-per-task`; default: the stage's `cpus`, else 4)",
    ),
    (
        "gpus",
        "GPUs (`--gres=gpu:N`; default 1 for a stage that runs a model on a backend other than `flex`, else 0)",
    ),
    ("mem", "memory (`--mem`): megabytes, or `16G`"),
    (
        "time",
        "time limit (`--time`): minutes, `HH:MM:SS` or `D-HH:MM:SS`",
    ),
    ("partition", "`--partition`"),
    ("account", "`--account`"),
    ("extra_args", "more `sbatch` options, as a list"),
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
    (
        "executor",
        "where stages run: `local` (default) or `slurm`; `run --executor` overrides it",
    ),
];

/// The JSON Schema (2020-12) of a pipeline file.
pub fn json_schema() -> Json {
    let mut kinds = Vec::new();
    let mut defaults = Map::new();
    for k in super::KINDS {
        let mut props = Map::new();
        props.insert(
            "kind".into(),
            json!({"const": k.name, "description": k.doc}),
        );
        for (key, doc) in &STAGE_KEYS[1..] {
            let ty = match *key {
                "cpus" => json!({"type": "integer", "minimum": 0}),
                "executor" => executor_schema(),
                "resources" => resources_schema(),
                _ => json!({"type": "string"}),
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
            "executor": with_doc(executor_schema(), TOP_KEYS[4].1),
        },
    })
}

fn executor_schema() -> Json {
    json!({"type": "string", "enum": ["local", "slurm"]})
}

fn resources_schema() -> Json {
    let mut props = Map::new();
    for (key, doc) in RESOURCE_KEYS {
        let ty = match *key {
            "cpus" | "gpus" => json!({"type": "integer", "minimum": 0}),
            "mem" | "time" => json!({"type": ["string", "integer"]}),
            "extra_args" => json!({"type": "array", "items": {"type": "string"}}),
            _ => json!({"type": "string"}),
        };
        props.insert(key.to_string(), with_doc(ty, doc));
    }
    json!({"type": "object", "properties": props, "additionalProperties": false})
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
        Ty::Choices(words) => {
            json!({"type": "array", "minItems": 1, "uniqueItems": true, "items": {"type": "string", "enum": words}})
        }
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
            json!({"type": "array", "minItems": 1, "items": mapping_schema(fields)})
        }
        Ty::Map(fields) => mapping_schema(fields),
    };
    let mut schema = json!({"anyOf": [ty, reference]});
    if let Some(d) = p.default {
        schema["default"] = serde_json::from_str(d).unwrap_or(json!(d));
    }
    with_doc(schema, p.doc)
}

/// The schema of a mapping with the given fields.
fn mapping_schema(fields: &[ParamSpec]) -> Json {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in fields {
        props.insert(f.name.into(), param_schema(f));
        if f.required {
            required.push(json!(f.name));
        }
    }
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
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
        Ty::Map(fields) => format!(
            "a mapping of {}",
            fields
                .iter()
                .map(|f| format!("`{}`", f.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Ty::Choices(words) => format!(
            "a list of {}",
            words
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
