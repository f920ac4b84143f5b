//! The `generate` stage: a rule file → a dataset folder, one universe per seed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;

use super::spec::*;
use super::{Io, StageError};

pub const KIND: KindSpec = KindSpec {
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
    check: super::no_check,
    typed: super::reads_as::<Params>,
    run: |io| execute(&io.typed()?, io),
};

/// The typed parameters (`rules` is an input).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub seeds: Vec<u64>,
    /// Every parameter the rule file declares, resolved by the loader.
    pub set: BTreeMap<String, Json>,
    pub derived: bool,
}

pub fn execute(p: &Params, io: &Io) -> Result<(), StageError> {
    use crate::universe::{dataset, params::Params as RuleParams};
    let rules = io.input("rules")?;
    let (_, checked) = crate::lang::check_file(rules)
        .map_err(|e| format!("cannot read `{}`: {e}", rules.display()))?;
    let ir = checked.ir.ok_or_else(|| {
        format!(
            "`{}` has errors; run `synthpipe check` on it",
            rules.display()
        )
    })?;
    let params = RuleParams::resolve(&ir, &super::settings(&p.set)).map_err(|e| e.to_string())?;
    let opts = dataset::Options {
        derived: p.derived,
        progress: io.progress,
    };
    let generated = dataset::generate(&ir, &params, &p.seeds, io.output("dataset")?, &opts)
        .map_err(|e| StageError(e.render()))?;
    for w in generated.manifest.counts.warnings() {
        eprintln!("{w}");
    }
    Ok(())
}
