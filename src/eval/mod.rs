//! Evaluation on multi-hop benchmarks: records and loaders (`bench`), official metrics
//! and statistics (`metrics`), PhantomWiki's set metrics (`score`), the answer a generation
//! gives (`answer`), benchmark prompts (`prompt`), a model answering and being scored
//! (`run`), and here scoring predictions into overall, stratified and composition-probe
//! results.
//!
//! Data flow: benchmark file → `bench::load_file` → records; predictions file →
//! `parse_predictions`; both → `evaluate` → `Evaluation` (serialisable, with a table).

pub mod answer;
pub mod bench;
pub mod metrics;
pub mod prompt;
pub mod remote;
pub mod run;
pub mod score;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::eval::score::{ErrorCode, ScoreError, Scores};
use bench::{Benchmark, Record};
use metrics::{Estimate, Rules};

/// One model answer to one question.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub id: String,
    /// The extracted answer text that is scored.
    pub answer: String,
    /// The whole generation, when known: what the composition probe reads.
    pub generation: Option<String>,
    pub line: usize,
}

/// Reads predictions: JSON Lines of `{id, prediction}` (optionally `generation`; or
/// `answers` as an array, joined with ", "), or HotpotQA's official prediction file
/// `{"answer": {id: text}, …}`.
pub fn parse_predictions(file: &str, bytes: &[u8]) -> Result<Vec<Answer>, Vec<ScoreError>> {
    parse_predictions_inner(file, bytes).map_err(in_eval)
}

/// Evaluation's problems carry `synthpipe::eval::` codes.
fn in_eval(errors: Vec<ScoreError>) -> Vec<ScoreError> {
    errors.into_iter().map(ScoreError::in_eval).collect()
}

fn parse_predictions_inner(file: &str, bytes: &[u8]) -> Result<Vec<Answer>, Vec<ScoreError>> {
    if let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(bytes)
        && let Some(Value::Object(answers)) = top.get("answer")
    {
        return answers
            .iter()
            .map(|(id, v)| match v {
                Value::String(s) => Ok(Answer {
                    id: id.clone(),
                    answer: s.clone(),
                    generation: None,
                    line: 0,
                }),
                other => Err(vec![
                    ScoreError::whole(
                        ErrorCode::BadRecord,
                        file,
                        format!("the answer of `{id}` must be a string, found {other}"),
                    )
                    .with_help("HotpotQA's prediction file maps ids to answer strings: {\"answer\": {\"id\": \"text\"}}"),
                ]),
            })
            .collect();
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for element in crate::eval::score::jsonl_objects(file, bytes) {
        let (line, text, m) = match element {
            Ok(e) => e,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let parsed = (|| {
            let id = match m.get("id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err("missing `id` (a string)".to_string()),
            };
            let answer = match (m.get("prediction"), m.get("answers")) {
                (Some(Value::String(s)), _) => s.clone(),
                (_, Some(Value::Array(a))) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("`answers` must hold strings")?
                    .join(", "),
                _ => return Err("needs `prediction` (a string) or `answers`".to_string()),
            };
            let generation = m
                .get("generation")
                .and_then(Value::as_str)
                .map(str::to_string);
            Ok(Answer {
                id,
                answer,
                generation,
                line,
            })
        })();
        match parsed {
            Ok(a) => {
                if let Some(first) = seen.insert(a.id.clone(), line) {
                    errors.push(ScoreError::at_line(
                        ErrorCode::DuplicateId,
                        file,
                        line,
                        &text,
                        format!("id `{}` already has a prediction on line {first}", a.id),
                    ));
                } else {
                    out.push(a);
                }
            }
            Err(msg) => errors.push(
                ScoreError::at_line(ErrorCode::BadRecord, file, line, &text, msg).with_help(
                    "each line is {\"id\": \"…\", \"prediction\": \"answer text\"}, or give \
                     HotpotQA's {\"answer\": {id: text}} file",
                ),
            ),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Scores of one question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub id: String,
    #[serde(flatten)]
    pub scores: Scores,
    pub missing: bool,
    /// Axis → the question's stratum there, so that two runs can be compared per stratum.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub strata: BTreeMap<String, String>,
}

/// Mean metrics of a group of questions, F1 and EM with their spread.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub questions: usize,
    pub missing: usize,
    pub f1: Estimate,
    pub em: Estimate,
    pub precision: f64,
    pub recall: f64,
}

/// The composition probe for one (hop count, k): how many generations mention the k-th
/// gold intermediate answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeCell {
    pub hops: u64,
    pub k: usize,
    pub found: usize,
    pub questions: usize,
    pub share: f64,
}

/// Everything a report shows about one model on one benchmark.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub benchmark: Benchmark,
    pub overall: Group,
    /// Axis (`type`, `hops`, `difficulty`) → stratum value → metrics.
    pub strata: BTreeMap<String, BTreeMap<String, Group>>,
    pub probe: Vec<ProbeCell>,
    /// Against a baseline run on the same questions (`--baseline`): F1 and EM of this run
    /// minus the baseline's, paired by question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versus_baseline: Option<Versus>,
    pub questions: Vec<Scored>,
}

/// Paired differences (this run − baseline) of F1 and EM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Versus {
    pub f1: metrics::Paired,
    pub em: metrics::Paired,
}

impl Evaluation {
    /// Compares this run with a baseline scored on the same records (same order).
    pub fn compare(&mut self, baseline: &Evaluation) {
        let col = |e: &Evaluation, f: fn(&Scores) -> f64| -> Vec<f64> {
            e.questions.iter().map(|q| f(&q.scores)).collect()
        };
        self.versus_baseline = Some(Versus {
            f1: metrics::paired(&col(baseline, |s| s.f1), &col(self, |s| s.f1), "versus/f1"),
            em: metrics::paired(&col(baseline, |s| s.em), &col(self, |s| s.em), "versus/em"),
        });
    }
}

fn stratum(axis: &str, r: &Record) -> String {
    match axis {
        "type" => r.kind.clone(),
        "hops" => r.hops.map(|h| h.to_string()),
        "difficulty" => r.difficulty.map(|d| d.to_string()),
        _ => None,
    }
    .unwrap_or_else(|| "unknown".into())
}

/// Scores one answer text against a record with its benchmark's official rules.
pub fn score_one(bench: Benchmark, r: &Record, answer: &str) -> Scores {
    match bench {
        Benchmark::HotpotQa | Benchmark::TwoWiki => {
            metrics::best_of(answer, &r.answers, Rules::Hotpot)
        }
        Benchmark::Musique | Benchmark::Cofca => metrics::best_of(answer, &r.answers, Rules::Squad),
        // Answer sets, PhantomWiki's convention (as `synthpipe score`).
        Benchmark::Synthetic => crate::eval::score::score_answers(
            &r.answers,
            &crate::eval::score::split_prediction(answer),
        ),
    }
}

fn group(items: &[&Scored], label: &str) -> Group {
    let f1: Vec<f64> = items.iter().map(|s| s.scores.f1).collect();
    let em: Vec<f64> = items.iter().map(|s| s.scores.em).collect();
    let n = items.len().max(1) as f64;
    Group {
        questions: items.len(),
        missing: items.iter().filter(|s| s.missing).count(),
        f1: metrics::estimate(&f1, &format!("{label}/f1")),
        em: metrics::estimate(&em, &format!("{label}/em")),
        precision: items.iter().map(|s| s.scores.precision).sum::<f64>() / n,
        recall: items.iter().map(|s| s.scores.recall).sum::<f64>() / n,
    }
}

/// Scores answers against records. Every record counts; one without an answer scores 0
/// (as the official scripts do) and is counted as missing. Answers for ids the records
/// lack are an error.
pub fn evaluate(
    bench: Benchmark,
    records: &[Record],
    answers: &[Answer],
    predictions_file: &str,
) -> Result<Evaluation, Vec<ScoreError>> {
    let known: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let unknown: Vec<ScoreError> = answers
        .iter()
        .filter(|a| !known.contains(a.id.as_str()))
        .map(|a| {
            let msg = format!("no question has id `{}`", a.id);
            if a.line > 0 {
                ScoreError::at_line(ErrorCode::UnknownId, predictions_file, a.line, &a.id, msg)
            } else {
                ScoreError::whole(ErrorCode::UnknownId, predictions_file, msg)
            }
            .with_help("predictions must answer questions of the benchmark file given with --data")
        })
        .collect();
    if !unknown.is_empty() {
        return Err(in_eval(unknown));
    }
    let by_id: BTreeMap<&str, &Answer> = answers.iter().map(|a| (a.id.as_str(), a)).collect();
    let scored: Vec<Scored> = records
        .iter()
        .map(|r| {
            let answer = by_id.get(r.id.as_str());
            Scored {
                id: r.id.clone(),
                scores: answer.map_or_else(Scores::default, |a| score_one(bench, r, &a.answer)),
                missing: answer.is_none(),
                strata: bench
                    .axes()
                    .iter()
                    .map(|axis| (axis.to_string(), stratum(axis, r)))
                    .collect(),
            }
        })
        .collect();
    let all: Vec<&Scored> = scored.iter().collect();
    let mut strata = BTreeMap::new();
    for axis in bench.axes() {
        let mut groups: BTreeMap<String, Vec<&Scored>> = BTreeMap::new();
        for s in &scored {
            groups.entry(s.strata[*axis].clone()).or_default().push(s);
        }
        strata.insert(
            axis.to_string(),
            groups
                .into_iter()
                .map(|(k, v)| {
                    let g = group(&v, &format!("{axis}={k}"));
                    (k, g)
                })
                .collect(),
        );
    }
    Ok(Evaluation {
        benchmark: bench,
        overall: group(&all, "overall"),
        strata,
        probe: probe(records, &by_id),
        versus_baseline: None,
        questions: scored,
    })
}

/// For each chain length n and k ≤ n: the share of generations that mention the k-th gold
/// intermediate answer (any accepted string of it). Questions without intermediate
/// answers, or without a prediction, are left out.
fn probe(records: &[Record], by_id: &BTreeMap<&str, &Answer>) -> Vec<ProbeCell> {
    let mut cells: BTreeMap<(u64, usize), (usize, usize)> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.intermediate.is_empty()) {
        let Some(a) = by_id.get(r.id.as_str()) else {
            continue;
        };
        let text = a.generation.as_deref().unwrap_or(&a.answer);
        // The chain's length: the hop count for MuSiQue and CofCA; for synthpipe questions
        // the program's reasoning steps (hops, intersections, comparisons), so k ≤ n.
        let n = r.intermediate.len() as u64;
        for (k, accepted) in r.intermediate.iter().enumerate() {
            let cell = cells.entry((n, k + 1)).or_default();
            cell.1 += 1;
            if accepted.iter().any(|s| metrics::mentions(text, s)) {
                cell.0 += 1;
            }
        }
    }
    cells
        .into_iter()
        .map(|((hops, k), (found, questions))| ProbeCell {
            hops,
            k,
            found,
            questions,
            share: found as f64 / questions.max(1) as f64,
        })
        .collect()
}

impl Evaluation {
    /// The human-readable summary `synthpipe eval` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let row = |out: &mut String, name: &str, g: &Group| {
            let _ = writeln!(
                out,
                "{name:<24} {:>9} {:>8.3} ± {:.3} {:>8.3} ± {:.3} {:>9.3} {:>9.3}",
                g.questions, g.f1.mean, g.f1.sem, g.em.mean, g.em.sem, g.precision, g.recall
            );
        };
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>16} {:>16} {:>9} {:>9}",
            self.benchmark.name(),
            "questions",
            "F1 ± s.e.m.",
            "EM ± s.e.m.",
            "precision",
            "recall"
        );
        row(&mut out, "overall", &self.overall);
        for (axis, groups) in &self.strata {
            for (value, g) in groups {
                row(&mut out, &format!("  {axis} {value}"), g);
            }
        }
        if self.overall.missing > 0 {
            let _ = writeln!(
                out,
                "{} question(s) had no prediction and scored 0",
                self.overall.missing
            );
        }
        if let Some(v) = &self.versus_baseline {
            out.push('\n');
            for (name, p) in [("F1", &v.f1), ("EM", &v.em)] {
                let z = p.z.map_or("z n/a".to_string(), |z| format!("z {z:.2}"));
                let _ = writeln!(
                    out,
                    "versus baseline, {name}: {:.3} → {:.3}, difference {:+.3} ± {:.3} \
                     (95 % CI {:+.3} … {:+.3}, {z}, p {:.2e})",
                    p.a,
                    p.b,
                    p.difference.mean,
                    p.difference.sem,
                    p.difference.ci_low,
                    p.difference.ci_high,
                    p.p_value
                );
            }
        }
        if !self.probe.is_empty() {
            let _ = writeln!(
                out,
                "\ncomposition probe: share of generations that mention the k-th intermediate answer"
            );
            for c in &self.probe {
                let _ = writeln!(
                    out,
                    "  {} hops, k = {}: {:.3} ({} of {})",
                    c.hops, c.k, c.share, c.found, c.questions
                );
            }
        }
        out
    }
}

/// Loads, scores and returns the evaluation of a predictions file; data-file records that
/// do not parse are returned as warnings next to it (the rest still counts).
pub fn eval_files(
    bench: Benchmark,
    data: &Path,
    predictions: &Path,
    baseline: Option<&Path>,
    aliases: Option<&Path>,
) -> Result<(Evaluation, Vec<ScoreError>), Vec<ScoreError>> {
    let aliases = aliases.map(bench::load_aliases).transpose()?;
    let loaded = bench::load_file(bench, data, aliases.as_ref());
    if loaded.records.is_empty() {
        let mut errors = loaded.errors;
        errors.push(
            ScoreError::whole(
                ErrorCode::BadRecord,
                &data.display().to_string(),
                format!("no {} record could be read", bench.name()),
            )
            .with_help("check --benchmark against the file's layout")
            .in_eval(),
        );
        return Err(errors);
    }
    let score = |predictions: &Path| {
        let shown = predictions.display().to_string();
        let bytes = std::fs::read(predictions).map_err(|e| {
            vec![ScoreError::whole(ErrorCode::Read, &shown, format!("cannot read: {e}")).in_eval()]
        })?;
        let answers = parse_predictions(&shown, &bytes)?;
        evaluate(bench, &loaded.records, &answers, &shown)
    };
    let mut evaluation = score(predictions)?;
    if let Some(b) = baseline {
        evaluation.compare(&score(b)?);
    }
    Ok((evaluation, loaded.errors))
}
