//! The `mix` stage: datasets sampled with weights and filters (`dataset::derive`).

use serde::Deserialize;

use super::spec::*;
use super::{At, Check, Io, StageError, Trouble};
use crate::dataset::derive::{self, Range};

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

pub const KIND: KindSpec = KindSpec {
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
    check,
    typed: super::reads_as::<Params>,
    run: |io| execute(&io.typed()?, io),
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub sources: Vec<SourceParams>,
    pub questions: Option<u64>,
    pub seed: u64,
}

/// A source's settings (its `from` or `path` is an input).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceParams {
    pub weight: f64,
    pub difficulty: Option<Range>,
    pub hops: Option<Range>,
    pub question_type: Option<Vec<String>>,
}

/// Every source names its dataset once: `from` or `path`.
fn check(c: &mut Check) {
    let Some(serde_json::Value::Array(items)) = c.param("sources") else {
        return;
    };
    let bad: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, it)| {
            usize::from(!it["from"].is_null()) + usize::from(!it["path"].is_null()) != 1
        })
        .map(|(i, _)| i)
        .collect();
    for i in bad {
        c.report(
            At::Item("sources".into(), i),
            Trouble::MissingKey,
            format!("source {} needs exactly one of `from` and `path`", i + 1),
            "write `from: STAGE.OUTPUT` for a stage's dataset, or `path: FOLDER` for a dataset on disk",
        );
    }
}

pub fn execute(p: &Params, io: &Io) -> Result<(), StageError> {
    let sources = p
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let dir = io
                .opt_input(&format!("sources.{i}.from"))
                .map_or_else(|| io.input(&format!("sources.{i}.path")), Ok)?;
            Ok(derive::Source {
                dir: dir.to_path_buf(),
                weight: s.weight,
                difficulty: s.difficulty,
                hops: s.hops,
                question_type: s.question_type.clone(),
            })
        })
        .collect::<Result<Vec<_>, StageError>>()?;
    Ok(derive::mix(
        &sources,
        p.questions,
        p.seed,
        io.output("dataset")?,
    )?)
}
