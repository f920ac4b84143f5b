//! The `report` stage: HTML and Markdown reports of evaluations and training runs.

use serde::Deserialize;
use serde_json::Value as Json;

use super::spec::*;
use super::{At, Check, Io, StageError, Trouble};
use crate::eval::bench::Benchmark;

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

pub const KIND: KindSpec = KindSpec {
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
    check,
    typed: super::reads_as::<Params>,
    run: |io| execute(&io.typed()?, io),
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub title: String,
    pub evaluations: Vec<Named>,
    pub training: Option<Vec<Named>>,
    pub baseline: Option<String>,
    pub expect: Vec<String>,
}

/// An evaluation or training log (its `from` is an input) with the model's name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    pub model: String,
    pub name: Option<String>,
}

/// `expect` names benchmarks; `baseline` is one of the evaluated models.
fn check(c: &mut Check) {
    let expect: Vec<String> = c
        .param("expect")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if c.given("expect") {
        for (i, w) in expect.iter().enumerate() {
            if Benchmark::parse(w).is_none() {
                c.report(
                    At::Item("expect".into(), i),
                    Trouble::InvalidValue,
                    format!("`{w}` is not a benchmark"),
                    format!(
                        "expect any of {}",
                        Benchmark::ALL.map(Benchmark::name).join(", ")
                    ),
                );
            }
        }
    }
    let models: Vec<String> = c
        .param("evaluations")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e["model"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if c.given("baseline")
        && let Some(b) = c
            .param("baseline")
            .and_then(Json::as_str)
            .map(str::to_string)
        && !models.is_empty()
        && !models.contains(&b)
    {
        let help = crate::lang::diag::did_you_mean(&b, models.iter().map(String::as_str))
            .unwrap_or_else(|| format!("the evaluated models are: {}", models.join(", ")));
        c.report(
            At::Value("baseline".into()),
            Trouble::InvalidValue,
            format!("`{b}` is not the `model` of any evaluation"),
            help,
        );
    }
}

pub fn execute(p: &Params, io: &Io) -> Result<(), StageError> {
    use crate::report::{EvalInput, Options, TrainInput};
    let evals = p
        .evaluations
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(EvalInput {
                model: e.model.clone(),
                name: e.name.clone(),
                dir: io.input(&format!("evaluations.{i}.from"))?.to_path_buf(),
            })
        })
        .collect::<Result<Vec<_>, StageError>>()?;
    let training = p
        .training
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, t)| {
            Ok(TrainInput {
                model: t.model.clone(),
                dir: io.input(&format!("training.{i}.from"))?.to_path_buf(),
            })
        })
        .collect::<Result<Vec<_>, StageError>>()?;
    let opts = Options {
        title: p.title.clone(),
        baseline: p.baseline.clone(),
        expect: p
            .expect
            .iter()
            .filter_map(|b| Benchmark::parse(b))
            .collect(),
    };
    Ok(crate::report::write(
        &opts,
        &evals,
        &training,
        io.output("report")?,
    )?)
}
