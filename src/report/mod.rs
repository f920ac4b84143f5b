//! The `report` stage: a run's evaluations (`evaluate` outputs) and training logs (`sft` /
//! `grpo` metrics) → a self-contained HTML page, a Markdown summary and plots (SVG and
//! PNG). Both documents are rendered from one list of blocks, so they always agree.

pub mod plot;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::eval::bench::Benchmark;
use crate::eval::metrics::{self, Paired};
use crate::eval::{Evaluation, Group, ProbeCell};
use plot::{BarSeries, Bars, Chart, Line, Lines, Panel};

/// One `evaluate` output and the model it belongs to.
#[derive(Clone, Debug)]
pub struct EvalInput {
    /// The model's name in the report (`base`, `trained`, `SFT`, …).
    pub model: String,
    /// What the report calls these questions (default: the benchmark's name).
    pub name: Option<String>,
    /// The folder with `metrics.json`.
    pub dir: PathBuf,
}

/// One training stage's metrics folder (`metrics.jsonl` and `metrics.json`).
#[derive(Clone, Debug)]
pub struct TrainInput {
    pub model: String,
    pub dir: PathBuf,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub title: String,
    /// The model the others are compared with (default: the first evaluation's).
    pub baseline: Option<String>,
    /// Benchmarks the report accounts for: one without an evaluation is listed as
    /// unavailable instead of silently missing.
    pub expect: Vec<Benchmark>,
}

/// One model's evaluation with what it left out.
struct Run {
    model: String,
    eval: Evaluation,
    skipped_for_budget: usize,
    skipped_records: usize,
}

/// The evaluations of every model on one set of questions.
struct Section {
    name: String,
    bench: Benchmark,
    runs: Vec<Run>,
}

/// A model against the baseline on the questions both answered.
struct Comparison {
    model: String,
    questions: usize,
    f1: Paired,
    em: Paired,
    /// Axis → stratum value → the paired F1 difference there.
    strata: BTreeMap<String, BTreeMap<String, Paired>>,
}

/// What the documents are made of.
enum Block {
    Heading(u8, String),
    Para(String),
    List(Vec<String>),
    Table {
        head: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Figure {
        stem: String,
        svg: String,
        caption: String,
    },
}

/// The name a benchmark has in a report.
pub fn title_of(b: Benchmark) -> &'static str {
    match b {
        Benchmark::HotpotQa => "HotpotQA",
        Benchmark::TwoWiki => "2WikiMultiHopQA",
        Benchmark::Musique => "MuSiQue",
        Benchmark::Cofca => "CofCA",
        Benchmark::Synthetic => "synthpipe questions",
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("`{}` is not JSON: {e}", path.display()))
}

fn load_run(input: &EvalInput) -> Result<Run, String> {
    let path = input.dir.join("metrics.json");
    let v = read_json(&path)?;
    let count = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
    let (skipped_for_budget, skipped_records) =
        (count("skipped_for_budget"), count("skipped_records"));
    let eval: Evaluation = serde_json::from_value(v).map_err(|e| {
        format!(
            "`{}` is not the metrics of an `evaluate` stage ({e}); give the report `{{from: STAGE.results}}` of evaluate stages",
            path.display()
        )
    })?;
    // Comparisons pair questions by id: a repeated id would pair the wrong scores.
    let mut seen = BTreeSet::new();
    if let Some(q) = eval.questions.iter().find(|q| !seen.insert(q.id.as_str())) {
        return Err(format!(
            "error[synthpipe::report::duplicate_id]: `{}` scores question `{}` twice\n  help: evaluate a dataset whose ids are unique (synthpipe's are; `mix` refuses repeats)",
            path.display(),
            q.id
        ));
    }
    Ok(Run {
        model: input.model.clone(),
        eval,
        skipped_for_budget,
        skipped_records,
    })
}

/// Stratum values in reading order: numbers by value, then words alphabetically.
fn natural(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = values
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    v.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    });
    v
}

fn compare(section: &str, base: &Evaluation, run: &Run) -> Comparison {
    let by_id: BTreeMap<&str, _> = base.questions.iter().map(|q| (q.id.as_str(), q)).collect();
    let (mut a, mut b, mut a_em, mut b_em) = (vec![], vec![], vec![], vec![]);
    let mut cells: BTreeMap<(String, String), (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for q in &run.eval.questions {
        let Some(p) = by_id.get(q.id.as_str()) else {
            continue;
        };
        a.push(p.scores.f1);
        b.push(q.scores.f1);
        a_em.push(p.scores.em);
        b_em.push(q.scores.em);
        for (axis, value) in &q.strata {
            let c = cells.entry((axis.clone(), value.clone())).or_default();
            c.0.push(p.scores.f1);
            c.1.push(q.scores.f1);
        }
    }
    let label = format!("report/{section}/{}", run.model);
    let mut strata: BTreeMap<String, BTreeMap<String, Paired>> = BTreeMap::new();
    for ((axis, value), (x, y)) in cells {
        let p = metrics::paired(&x, &y, &format!("{label}/{axis}={value}"));
        strata.entry(axis).or_default().insert(value, p);
    }
    Comparison {
        model: run.model.clone(),
        questions: a.len(),
        f1: metrics::paired(&a, &b, &format!("{label}/f1")),
        em: metrics::paired(&a_em, &b_em, &format!("{label}/em")),
        strata,
    }
}

fn pm(e: &metrics::Estimate) -> String {
    format!("{:.3} ± {:.3}", e.mean, e.sem)
}

fn p_text(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

/// A paired difference with its p-value; `p —` where every question moved by the same
/// amount, so that the normal approximation has no spread to work with.
fn delta(p: &Paired) -> String {
    let p_value = match p.z {
        None if p.difference.mean != 0.0 => "—".to_string(),
        _ => p_text(p.p_value),
    };
    format!(
        "{:+.3} ± {:.3} (p {p_value})",
        p.difference.mean, p.difference.sem
    )
}

/// A file-name-safe form of a label.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// What a training log plots, by stage kind: (field in metrics.jsonl, its name).
fn curves_of(kind: &str) -> &'static [(&'static str, &'static str)] {
    match kind {
        "grpo" => &[
            ("reward_mean", "reward"),
            ("f1", "F1"),
            ("completion_length", "completion length (tokens)"),
        ],
        _ => &[("loss", "loss")],
    }
}

/// Trailing means over `w` values: the trend under a noisy per-step curve.
fn smooth(points: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    let mut sum = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            sum += y;
            if i >= w {
                sum -= points[i - w].1;
            }
            (x, sum / (i + 1).min(w) as f64)
        })
        .collect()
}

struct Builder<'a> {
    blocks: Vec<Block>,
    plots: &'a Path,
    figures: usize,
}

impl Builder<'_> {
    fn h(&mut self, level: u8, text: impl Into<String>) {
        self.blocks.push(Block::Heading(level, text.into()));
    }
    fn p(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Para(text.into()));
    }
    fn table(&mut self, head: Vec<String>, rows: Vec<Vec<String>>) {
        self.blocks.push(Block::Table { head, rows });
    }
    fn figure(&mut self, chart: &Chart, name: &str, caption: String) -> Result<(), String> {
        self.figures += 1;
        let stem = format!("{:02}-{}", self.figures, slug(name));
        let svg = chart.render(self.plots, &stem)?;
        self.blocks.push(Block::Figure { stem, svg, caption });
        Ok(())
    }
}

/// Writes `report.html`, `report.md` and `plots/` into `out`.
pub fn write(
    opts: &Options,
    evals: &[EvalInput],
    training: &[TrainInput],
    out: &Path,
) -> Result<(), String> {
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots)
        .map_err(|e| format!("cannot create `{}`: {e}", plots.display()))?;
    let mut sections: Vec<Section> = Vec::new();
    let mut models: Vec<String> = Vec::new();
    for input in evals {
        let run = load_run(input)?;
        let bench = run.eval.benchmark;
        let name = input
            .name
            .clone()
            .unwrap_or_else(|| title_of(bench).to_string());
        if !models.contains(&run.model) {
            models.push(run.model.clone());
        }
        match sections.iter_mut().find(|s| s.name == name) {
            Some(s) if s.bench != bench => {
                return Err(format!(
                    "`{name}` names both {} and {} evaluations; give them different `name`s",
                    s.bench.name(),
                    bench.name()
                ));
            }
            Some(s) if s.runs.iter().any(|r| r.model == run.model) => {
                return Err(format!(
                    "model `{}` has two evaluations called `{name}`; give one a different `name`",
                    run.model
                ));
            }
            Some(s) => s.runs.push(run),
            None => sections.push(Section {
                name,
                bench,
                runs: vec![run],
            }),
        }
    }
    let baseline = match &opts.baseline {
        Some(b) if !models.contains(b) => {
            return Err(format!(
                "the baseline `{b}` is none of the evaluated models ({})",
                models.join(", ")
            ));
        }
        Some(b) => Some(b.clone()),
        None => models.first().cloned(),
    };
    let mut b = Builder {
        blocks: Vec::new(),
        plots: &plots,
        figures: 0,
    };
    b.h(1, opts.title.clone());
    let mut intro = format!(
        "Models: {}. Scores are means over questions ± the standard error of the mean.",
        models
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(base) = baseline.as_ref().filter(|_| models.len() > 1) {
        let _ = write!(
            intro,
            " Differences are paired by question against `{base}` (the baseline): mean difference ± its standard error, and the two-sided p-value of no difference."
        );
    }
    b.p(intro);

    let comparisons: Vec<Vec<Comparison>> = sections
        .iter()
        .map(|s| {
            let base = s.runs.iter().find(|r| Some(&r.model) == baseline.as_ref());
            s.runs
                .iter()
                .filter(|r| Some(&r.model) != baseline.as_ref())
                .filter_map(|r| base.map(|bs| compare(&s.name, &bs.eval, r)))
                .collect()
        })
        .collect();

    summary(&mut b, &sections, &models, &comparisons);
    unavailable(&mut b, opts, &sections, &models);
    for (s, cmp) in sections.iter().zip(&comparisons) {
        section(&mut b, s, cmp)?;
    }
    training_section(&mut b, training)?;

    let md = markdown(&b.blocks);
    let html = html(&opts.title, &b.blocks);
    std::fs::write(out.join("report.md"), md)
        .map_err(|e| format!("cannot write report.md: {e}"))?;
    std::fs::write(out.join("report.html"), html)
        .map_err(|e| format!("cannot write report.html: {e}"))
}

fn summary(b: &mut Builder, sections: &[Section], models: &[String], cmps: &[Vec<Comparison>]) {
    if sections.is_empty() {
        return;
    }
    b.h(2, "Summary");
    let mut head = vec!["evaluated on".to_string(), "questions".to_string()];
    head.extend(models.iter().map(|m| format!("{m} F1")));
    let others: BTreeSet<&str> = cmps.iter().flatten().map(|c| c.model.as_str()).collect();
    let others: Vec<&String> = models
        .iter()
        .filter(|m| others.contains(m.as_str()))
        .collect();
    head.extend(others.iter().map(|m| format!("{m} − baseline, F1")));
    let rows = sections
        .iter()
        .zip(cmps)
        .map(|(s, cmp)| {
            let n = s
                .runs
                .iter()
                .map(|r| r.eval.overall.questions)
                .max()
                .unwrap_or(0);
            let mut row = vec![s.name.clone(), n.to_string()];
            for m in models {
                row.push(
                    s.runs
                        .iter()
                        .find(|r| &r.model == m)
                        .map_or("—".into(), |r| pm(&r.eval.overall.f1)),
                );
            }
            for m in &others {
                row.push(
                    cmp.iter()
                        .find(|c| &&c.model == m)
                        .map_or("—".into(), |c| delta(&c.f1)),
                );
            }
            row
        })
        .collect();
    b.table(head, rows);
}

fn unavailable(b: &mut Builder, opts: &Options, sections: &[Section], models: &[String]) {
    let mut items = Vec::new();
    for e in &opts.expect {
        if !sections.iter().any(|s| s.bench == *e) {
            items.push(format!(
                "{}: not evaluated in this run (no `evaluate` stage with `benchmark: {}` feeds this report, for example because its data are not available here).",
                title_of(*e),
                e.name()
            ));
        }
    }
    for s in sections {
        for m in models {
            if !s.runs.iter().any(|r| &r.model == m) {
                items.push(format!("{}: model `{m}` has no evaluation.", s.name));
            }
        }
    }
    if !items.is_empty() {
        b.h(2, "Not in this report");
        b.blocks.push(Block::List(items));
    }
}

fn axis_title(axis: &str) -> &str {
    match axis {
        "type" => "question type",
        other => other,
    }
}

fn section(b: &mut Builder, s: &Section, cmps: &[Comparison]) -> Result<(), String> {
    b.h(2, format!("{} ({})", s.name, s.bench.name()));
    let mut rows = Vec::new();
    for r in &s.runs {
        let g: &Group = &r.eval.overall;
        rows.push(vec![
            r.model.clone(),
            g.questions.to_string(),
            pm(&g.f1),
            format!("{:.3} … {:.3}", g.f1.ci_low, g.f1.ci_high),
            pm(&g.em),
            format!("{:.3}", g.precision),
            format!("{:.3}", g.recall),
        ]);
    }
    b.table(
        [
            "model",
            "questions",
            "F1 ± s.e.m.",
            "F1 95 % CI",
            "EM ± s.e.m.",
            "precision",
            "recall",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    );
    if !cmps.is_empty() {
        let rows = cmps
            .iter()
            .map(|c| {
                vec![
                    c.model.clone(),
                    c.questions.to_string(),
                    format!("{:.3} → {:.3}", c.f1.a, c.f1.b),
                    delta(&c.f1),
                    format!(
                        "{:+.3} … {:+.3}",
                        c.f1.difference.ci_low, c.f1.difference.ci_high
                    ),
                    delta(&c.em),
                ]
            })
            .collect();
        b.p("Paired by question against the baseline:");
        b.table(
            [
                "model",
                "paired questions",
                "F1 baseline → model",
                "F1 difference",
                "F1 difference 95 % CI",
                "EM difference",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        );
    }
    let mut notes = Vec::new();
    for r in &s.runs {
        if r.eval.overall.missing > 0 {
            notes.push(format!(
                "`{}`: {} question(s) had no answer and score 0.",
                r.model, r.eval.overall.missing
            ));
        }
        if r.skipped_for_budget > 0 {
            notes.push(format!(
                "`{}`: {} question(s) left out, their prompts over the token budget.",
                r.model, r.skipped_for_budget
            ));
        }
        if r.skipped_records > 0 {
            notes.push(format!(
                "`{}`: {} record(s) of the data file could not be read and are not scored.",
                r.model, r.skipped_records
            ));
        }
    }
    if !notes.is_empty() {
        b.blocks.push(Block::List(notes));
    }
    let axes: BTreeSet<&String> = s.runs.iter().flat_map(|r| r.eval.strata.keys()).collect();
    for axis in axes {
        let values = natural(
            s.runs
                .iter()
                .filter_map(|r| r.eval.strata.get(axis))
                .flat_map(|m| m.keys().cloned()),
        );
        fn cell<'r>(r: &'r Run, axis: &str, v: &str) -> Option<&'r Group> {
            r.eval.strata.get(axis).and_then(|m| m.get(v))
        }
        let mut head = vec![axis_title(axis).to_string(), "n".to_string()];
        head.extend(s.runs.iter().map(|r| format!("{} F1", r.model)));
        head.extend(cmps.iter().map(|c| format!("{} − baseline", c.model)));
        let rows = values
            .iter()
            .map(|v| {
                let n = s
                    .runs
                    .iter()
                    .filter_map(|r| cell(r, axis, v))
                    .map(|g| g.questions)
                    .max();
                let mut row = vec![v.clone(), n.unwrap_or(0).to_string()];
                row.extend(
                    s.runs
                        .iter()
                        .map(|r| cell(r, axis, v).map_or("—".into(), |g| pm(&g.f1))),
                );
                row.extend(cmps.iter().map(|c| {
                    c.strata
                        .get(axis)
                        .and_then(|m| m.get(v))
                        .map_or("—".into(), delta)
                }));
                row
            })
            .collect();
        b.h(3, format!("By {}", axis_title(axis)));
        b.table(head, rows);
        let chart = Chart::Bars(Bars {
            title: format!("{}: F1 by {}", s.name, axis_title(axis)),
            x_desc: axis_title(axis).to_string(),
            y_desc: "F1".into(),
            categories: values.clone(),
            series: s
                .runs
                .iter()
                .map(|r| BarSeries {
                    label: r.model.clone(),
                    values: values
                        .iter()
                        .map(|v| cell(r, axis, v).map(|g| (g.f1.mean, g.f1.sem)))
                        .collect(),
                })
                .collect(),
        });
        b.figure(
            &chart,
            &format!("{}-{axis}", s.name),
            format!("F1 ± s.e.m. by {} ({})", axis_title(axis), s.name),
        )?;
    }
    probe(b, s)
}

fn probe(b: &mut Builder, s: &Section) -> Result<(), String> {
    let cells: BTreeSet<(u64, usize)> = s
        .runs
        .iter()
        .flat_map(|r| r.eval.probe.iter().map(|c| (c.hops, c.k)))
        .collect();
    if cells.is_empty() {
        return Ok(());
    }
    b.h(3, "Composition probe");
    b.p(
        "The share of generations that mention the k-th gold intermediate answer (normalised) \
         of a chain of n steps: whether the model finds each hop on the way, not only the \
         final answer.",
    );
    fn find(r: &Run, n: u64, k: usize) -> Option<&ProbeCell> {
        r.eval.probe.iter().find(|c| c.hops == n && c.k == k)
    }
    let mut head = vec!["n".to_string(), "k".to_string()];
    head.extend(s.runs.iter().map(|r| r.model.clone()));
    let rows = cells
        .iter()
        .map(|&(n, k)| {
            let mut row = vec![n.to_string(), k.to_string()];
            row.extend(s.runs.iter().map(|r| {
                find(r, n, k).map_or("—".into(), |c| {
                    format!("{:.3} ({} of {})", c.share, c.found, c.questions)
                })
            }));
            row
        })
        .collect();
    b.table(head, rows);
    let lengths: BTreeSet<u64> = cells.iter().map(|c| c.0).collect();
    let panels = s
        .runs
        .iter()
        .map(|r| Panel {
            title: r.model.clone(),
            x_desc: "k (step of the chain)".into(),
            y_desc: "share mentioning the k-th answer".into(),
            y_range: Some((0.0, 1.0)),
            integer_x: true,
            lines: lengths
                .iter()
                .enumerate()
                .map(|(i, &n)| Line {
                    label: format!("n = {n}"),
                    points: r
                        .eval
                        .probe
                        .iter()
                        .filter(|c| c.hops == n)
                        .map(|c| (c.k as f64, c.share))
                        .collect(),
                    color: i,
                    faint: false,
                    markers: true,
                })
                .collect(),
        })
        .collect();
    let chart = Chart::Lines(Lines {
        title: format!("{}: composition probe", s.name),
        panels,
    });
    b.figure(
        &chart,
        &format!("{}-probe", s.name),
        format!(
            "Share of generations that mention the k-th intermediate answer, per chain length n ({})",
            s.name
        ),
    )
}

fn training_section(b: &mut Builder, training: &[TrainInput]) -> Result<(), String> {
    if training.is_empty() {
        return Ok(());
    }
    b.h(2, "Training");
    let mut rows = Vec::new();
    let mut charts = Vec::new();
    for (i, t) in training.iter().enumerate() {
        let summary = read_json(&t.dir.join("metrics.json"))?;
        let kind = summary["kind"].as_str().unwrap_or("training").to_string();
        let path = t.dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let steps: Vec<Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| format!("`{}` has a line that is not JSON: {e}", path.display()))
            })
            .collect::<Result<_, _>>()?;
        let mut panels = Vec::new();
        for (field, name) in curves_of(&kind) {
            let points: Vec<(f64, f64)> = steps
                .iter()
                .enumerate()
                .filter_map(|(j, m)| {
                    let x = m["step"].as_f64().unwrap_or(j as f64 + 1.0);
                    m[*field].as_f64().map(|y| (x, y))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
            let tenth = ys.len().div_ceil(10);
            rows.push(vec![
                t.model.clone(),
                kind.clone(),
                points.len().to_string(),
                name.to_string(),
                format!("{:.3}", metrics::mean(&ys[..tenth])),
                format!("{:.3}", metrics::mean(&ys[ys.len() - tenth..])),
            ]);
            let w = (points.len() / 20).max(1);
            let mut lines = vec![Line {
                label: String::new(),
                points: points.clone(),
                color: 0,
                faint: true,
                markers: false,
            }];
            if w > 1 {
                lines.push(Line {
                    label: format!("mean of {w} steps"),
                    points: smooth(&points, w),
                    color: 0,
                    faint: false,
                    markers: false,
                });
            } else {
                lines[0].faint = false;
            }
            panels.push(Panel {
                title: name.to_string(),
                x_desc: "step".into(),
                y_desc: name.to_string(),
                y_range: None,
                integer_x: false,
                lines,
            });
        }
        if panels.is_empty() {
            rows.push(vec![
                t.model.clone(),
                kind.clone(),
                "0".into(),
                "—".into(),
                "no steps recorded".into(),
                "—".into(),
            ]);
            continue;
        }
        charts.push((
            Chart::Lines(Lines {
                title: format!("{} ({kind}) training", t.model),
                panels,
            }),
            format!("training-{}-{}", i + 1, t.model),
            format!("Per-step training metrics of `{}` ({kind})", t.model),
        ));
    }
    b.table(
        [
            "model",
            "stage",
            "steps",
            "metric",
            "first tenth of steps",
            "last tenth",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    );
    for (chart, name, caption) in charts {
        b.figure(&chart, &name, caption)?;
    }
    Ok(())
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "{} {text}\n", "#".repeat(usize::from(*level)));
            }
            Block::Para(text) => {
                let _ = writeln!(out, "{text}\n");
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(out, "- {i}");
                }
                out.push('\n');
            }
            Block::Table { head, rows } => {
                let row = |cells: &[String]| {
                    format!(
                        "| {} |",
                        cells
                            .iter()
                            .map(|c| md_cell(c))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    )
                };
                let _ = writeln!(out, "{}", row(head));
                let _ = writeln!(
                    out,
                    "|{}",
                    head.iter()
                        .enumerate()
                        .map(|(i, _)| if i == 0 { " --- |" } else { " ---: |" })
                        .collect::<String>()
                );
                for r in rows {
                    let _ = writeln!(out, "{}", row(r));
                }
                out.push('\n');
            }
            Block::Figure { stem, caption, .. } => {
                let _ = writeln!(out, "![{caption}](plots/{stem}.png)\n");
            }
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline code spans (`x`) of block text as HTML.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
h1{border-bottom:2px solid #ddd;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #eee}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}\
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}figcaption{font-size:13px;color:#555}\
code{background:#f2f2f2;padding:0 3px;border-radius:3px}";

fn html(title: &str, blocks: &[Block]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(title)
    );
    for block in blocks {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "<h{level}>{}</h{level}>", inline(text));
            }
            Block::Para(text) => {
                let _ = writeln!(out, "<p>{}</p>", inline(text));
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for i in items {
                    let _ = writeln!(out, "<li>{}</li>", inline(i));
                }
                out.push_str("</ul>\n");
            }
            Block::Table { head, rows } => {
                out.push_str("<table>\n<thead><tr>");
                for h in head {
                    let _ = write!(out, "<th>{}</th>", esc(h));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for r in rows {
                    out.push_str("<tr>");
                    for c in r {
                        let _ = write!(out, "<td>{}</td>", esc(c));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
            Block::Figure { svg, caption, .. } => {
                let _ = writeln!(
                    out,
                    "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>",
                    svg.trim(),
                    inline(caption)
                );
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratum_values_read_in_numeric_then_word_order() {
        let v = natural(["10", "2", "unknown", "3", "bridge"].map(String::from));
        assert_eq!(v, ["2", "3", "10", "bridge", "unknown"]);
    }

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(
            slug("synthpipe questions-difficulty"),
            "synthpipe-questions-difficulty"
        );
        assert_eq!(slug("2Wiki / «type»"), "2wiki-type");
    }

    #[test]
    fn smoothing_is_a_trailing_mean() {
        let pts: Vec<(f64, f64)> = [1.0, 3.0, 5.0, 7.0]
            .iter()
            .enumerate()
            .map(|(i, &y)| (i as f64, y))
            .collect();
        let s: Vec<f64> = smooth(&pts, 2).into_iter().map(|p| p.1).collect();
        assert_eq!(s, [1.0, 2.0, 4.0, 6.0]);
    }

    #[test]
    fn markdown_tables_escape_pipes_and_html_escapes_markup() {
        let blocks = vec![
            Block::Para("a `<b>` c".into()),
            Block::Table {
                head: vec!["x".into(), "y".into()],
                rows: vec![vec!["a|b".into(), "<i>".into()]],
            },
        ];
        let md = markdown(&blocks);
        assert!(md.contains("| a\\|b | <i> |"), "{md}");
        let h = html("t", &blocks);
        assert!(h.contains("<p>a <code>&lt;b&gt;</code> c</p>"), "{h}");
        assert!(h.contains("<td>&lt;i&gt;</td>"), "{h}");
    }
}
