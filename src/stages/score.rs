//! The `score` stage: predictions against gold answers with PhantomWiki's set metrics.

use serde::Deserialize;

use super::spec::*;
use super::{Io, StageError};

pub const KIND: KindSpec = KindSpec {
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
    check: super::no_check,
    typed: super::reads_as::<Params>,
    run: |io| execute(&io.typed()?, io),
};

/// No parameters besides the inputs `gold` and `predictions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

pub fn execute(_: &Params, io: &Io) -> Result<(), StageError> {
    let gold = io.input("gold")?;
    let gold = if gold.is_dir() {
        gold.join("questions.jsonl")
    } else {
        gold.to_path_buf()
    };
    let report = crate::eval::score::score_files(&gold, io.input("predictions")?)
        .map_err(|errs| crate::eval::score::render_errors(&errs, false))?;
    let out = io.output("metrics")?;
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n";
    std::fs::write(out.join("metrics.json"), text)
        .map_err(|e| StageError(format!("cannot write metrics: {e}")))
}
