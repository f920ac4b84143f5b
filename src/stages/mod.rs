//! Stage kinds, one module each: its spec (parameters with their defaults, inputs, outputs,
//! version), its typed `Params`, the checks that span several parameters, and its executor.
//! `KINDS` registers them; the pipeline engine (`crate::pipeline`) reads only this registry
//! and knows no kind by name. A new kind is a new file here plus its line in `KINDS`.

pub mod spec;

pub mod evaluate;
pub mod generate;
pub mod grpo;
pub mod lm_init;
pub mod mix;
pub mod report;
pub mod score;
pub mod sft;
pub mod split;
mod train;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value as Json;

pub use spec::KindSpec;

/// Every stage kind, in documentation order.
pub const KINDS: &[&KindSpec] = &[
    &generate::KIND,
    &split::KIND,
    &mix::KIND,
    &score::KIND,
    &lm_init::KIND,
    &sft::KIND,
    &grpo::KIND,
    &evaluate::KIND,
    &report::KIND,
];

/// The kind called `name`.
pub fn kind(name: &str) -> Option<&'static KindSpec> {
    KINDS.iter().copied().find(|k| k.name == name)
}

/// What an executor gets: resolved parameters, input paths by place, and a folder per
/// output.
pub struct Io<'a> {
    /// Every parameter, defaults filled in; inputs appear as `{"input": PLACE}`.
    pub params: &'a BTreeMap<String, Json>,
    pub inputs: &'a BTreeMap<String, PathBuf>,
    pub outputs: &'a BTreeMap<String, PathBuf>,
    /// Resumable state that survives a killed run; not part of the output.
    pub scratch: &'a Path,
    pub progress: bool,
}

impl Io<'_> {
    /// The path of a required input (the loader checked it is there).
    pub fn input(&self, place: &str) -> Result<&Path, StageError> {
        self.inputs
            .get(place)
            .map(PathBuf::as_path)
            .ok_or_else(|| StageError::internal(format!("input `{place}` is not resolved")))
    }

    /// The path of an optional input.
    pub fn opt_input(&self, place: &str) -> Option<&Path> {
        self.inputs.get(place).map(PathBuf::as_path)
    }

    pub fn output(&self, name: &str) -> Result<&Path, StageError> {
        self.outputs
            .get(name)
            .map(PathBuf::as_path)
            .ok_or_else(|| StageError::internal(format!("output `{name}` has no folder")))
    }

    /// The parameters as the kind's typed `Params`: inputs (they are paths, in `inputs`) and
    /// unset values left out, unknown fields refused. A failure is a bug: the loader checked
    /// every value against the spec.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, StageError> {
        let mut m = serde_json::Map::new();
        for (k, v) in self.params {
            if let Some(v) = without_inputs(v) {
                m.insert(k.clone(), v);
            }
        }
        serde_json::from_value(Json::Object(m)).map_err(|e| {
            StageError::internal(format!(
                "the validated parameters do not read as the kind's parameters: {e}"
            ))
        })
    }
}

/// A value with its input references (`{"input": PLACE}`) and unset (null) fields removed,
/// in mappings nested in lists too; `None` for a value that is itself one of them. Nulls
/// inside a list stay: they are values (an open end of a range, `[null, 5]`).
fn without_inputs(v: &Json) -> Option<Json> {
    match v {
        Json::Null => None,
        Json::Object(m) if m.len() == 1 && m.get("input").is_some_and(Json::is_string) => None,
        Json::Object(m) => Some(Json::Object(
            m.iter()
                .filter_map(|(k, x)| without_inputs(x).map(|x| (k.clone(), x)))
                .collect(),
        )),
        Json::Array(a) => Some(Json::Array(
            a.iter()
                .map(|x| without_inputs(x).unwrap_or(Json::Null))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Why a stage failed: a message for the user, printed under the stage's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageError(pub String);

impl StageError {
    /// A state the loader rules out: a bug in synthpipe, never skipped.
    pub fn internal(what: impl std::fmt::Display) -> StageError {
        StageError(format!(
            "internal error[synthpipe::stage::param]: {what} (this is a bug in synthpipe)"
        ))
    }
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for StageError {
    fn from(s: String) -> StageError {
        StageError(s)
    }
}

impl From<&str> for StageError {
    fn from(s: &str) -> StageError {
        StageError(s.to_string())
    }
}

/// The checks of a kind that span several parameters, run by the loader on a stage whose
/// parameters each passed their own check. Problems point at a stage, a key, a value or an
/// item of a list; the loader turns them into diagnostics in the YAML.
pub struct Check<'a> {
    /// The resolved parameters (a check may normalise them, e.g. fill an unset part).
    pub params: &'a mut BTreeMap<String, Json>,
    /// The keys the stage writes itself (not filled in from defaults).
    pub given: &'a BTreeSet<String>,
    pub kind: &'static str,
    pub problems: Vec<Problem>,
}

/// Where a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum At {
    /// The stage's name.
    Stage,
    /// A key as written (the stage's name when the key is not written).
    Key(String),
    /// A key's value as written (the stage's name when the key is not written).
    Value(String),
    /// Item `i` of a list value.
    Item(String, usize),
}

/// What kind of problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// A key that must be given is missing, or two exclusive ones are given.
    MissingKey,
    /// Values that do not fit together.
    InvalidValue,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub at: At,
    pub trouble: Trouble,
    pub message: String,
    pub help: String,
}

impl Check<'_> {
    pub fn given(&self, key: &str) -> bool {
        self.given.contains(key)
    }

    pub fn param(&self, key: &str) -> Option<&Json> {
        self.params.get(key)
    }

    pub fn report(
        &mut self,
        at: At,
        trouble: Trouble,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.problems.push(Problem {
            at,
            trouble,
            message: message.into(),
            help: help.into(),
        });
    }
}

/// No checks beyond each parameter's own.
pub fn no_check(_: &mut Check) {}

/// A stage's `set` (resolved against its rule file) as `NAME=VALUE` pairs.
pub fn settings(set: &BTreeMap<String, Json>) -> Vec<(String, String)> {
    set.iter()
        .map(|(k, v)| {
            let text = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// The `typed` entry of a kind whose parameters are `T`.
pub fn reads_as<T: DeserializeOwned>(io: &Io) -> Result<(), StageError> {
    io.typed::<T>().map(|_| ())
}
