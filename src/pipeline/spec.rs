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
    /// Any file.
    File,
}

impl InputKind {
    pub fn describe(self) -> &'static str {
        match self {
            InputKind::Rules => "a rule file",
            InputKind::Dataset => "a dataset (a folder or a stage's dataset output)",
            InputKind::Questions => "questions (a dataset or a questions.jsonl file)",
            InputKind::File => "a file",
        }
    }
    /// Whether an upstream output of this kind can feed this input.
    pub fn accepts(self, out: OutputKind) -> bool {
        matches!(
            (self, out),
            (
                InputKind::Dataset | InputKind::Questions,
                OutputKind::Dataset
            ) | (InputKind::File, OutputKind::Metrics)
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
    version: 1,
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

/// Every stage kind, in documentation order.
pub const KINDS: &[&KindSpec] = &[&GENERATE, &SPLIT, &MIX, &SCORE];

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
