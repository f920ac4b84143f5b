//! The `report` stage's documents from evaluations and training logs written here: what the
//! Markdown says (snapshot), paired differences equal to `synthpipe eval --baseline`'s,
//! a self-contained HTML page whose plots match the PNG/SVG files, unavailable benchmarks
//! named, byte-identical reruns, and errors for inputs that are not evaluations.

mod common;

use std::path::{Path, PathBuf};

use common::{root, tmpdir};
use serde_json::json;
use synthpipe::eval::bench::{Benchmark, load_file};
use synthpipe::eval::{self, Answer, Evaluation};
use synthpipe::report::{self, EvalInput, Options, TrainInput};

/// Scores `answers` (id, extracted answer, generation) on a fixture and returns the
/// evaluation, as an `evaluate` stage would.
fn evaluation(bench: Benchmark, fixture: &str, answers: &[(&str, &str, &str)]) -> Evaluation {
    let loaded = load_file(
        bench,
        &root().join("tests/fixtures/eval").join(fixture),
        None,
    );
    assert!(loaded.errors.is_empty(), "{fixture}: {:?}", loaded.errors);
    let answers: Vec<Answer> = answers
        .iter()
        .map(|(id, a, g)| Answer {
            id: id.to_string(),
            answer: a.to_string(),
            generation: Some(g.to_string()),
            line: 0,
        })
        .collect();
    eval::evaluate(bench, &loaded.records, &answers, "predictions.jsonl").unwrap()
}

/// Writes an evaluation's metrics.json into its own folder, as the stage does.
fn results(dir: &Path, name: &str, e: &Evaluation, skipped: usize) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let mut v = serde_json::to_value(e).unwrap();
    v["skipped_for_budget"] = json!(skipped);
    v["skipped_records"] = json!(0);
    std::fs::write(out.join("metrics.json"), v.to_string()).unwrap();
    out
}

fn training(dir: &Path, name: &str, kind: &str, lines: &[serde_json::Value]) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(out.join("metrics.jsonl"), text).unwrap();
    std::fs::write(
        out.join("metrics.json"),
        json!({"kind": kind, "steps": lines.len()}).to_string(),
    )
    .unwrap();
    out
}

const HOTPOT_IDS: [&str; 3] = [
    "5a8b57f25542995d1e6f1371",
    "dev_row_17",
    "q with spaces/and:odd#chars",
];

struct Fixture {
    evals: Vec<EvalInput>,
    training: Vec<TrainInput>,
    base_hotpot: Evaluation,
    trained_hotpot: Evaluation,
}

/// Base and trained models on the HotpotQA and MuSiQue fixtures, and both training logs.
fn fixture(dir: &Path) -> Fixture {
    let base_hotpot = evaluation(
        Benchmark::HotpotQa,
        "hotpotqa.json",
        &[
            (HOTPOT_IDS[0], "Osterby", "It is Osterby."),
            (HOTPOT_IDS[1], "Ida", "Maybe Ida."),
        ],
    );
    let trained_hotpot = evaluation(
        Benchmark::HotpotQa,
        "hotpotqa.json",
        &[
            (HOTPOT_IDS[0], "Osterby", "Osterby."),
            (HOTPOT_IDS[1], "Ida Penn", "Ida Penn."),
            (HOTPOT_IDS[2], "yes", "yes"),
        ],
    );
    // MuSiQue: the base model finds only the first hop; the trained one every hop.
    let base_musique = evaluation(
        Benchmark::Musique,
        "musique.jsonl",
        &[
            ("2hop__101_202", "1900", "Altrix Works built it. 1900."),
            ("3hop1__1_2_3", "Zorvan", "She was born in Zorvan."),
        ],
    );
    let trained_musique = evaluation(
        Benchmark::Musique,
        "musique.jsonl",
        &[
            (
                "2hop__101_202",
                "1894",
                "Altrix Works built it; it was founded in 1894.",
            ),
            (
                "3hop1__1_2_3",
                "Osterby",
                "Zorvan, in Norland, whose capital is Osterby.",
            ),
        ],
    );
    let evals = vec![
        EvalInput {
            model: "base".into(),
            name: None,
            dir: results(dir, "base_hotpot", &base_hotpot, 0),
        },
        EvalInput {
            model: "trained".into(),
            name: None,
            dir: results(dir, "trained_hotpot", &trained_hotpot, 0),
        },
        EvalInput {
            model: "base".into(),
            name: None,
            dir: results(dir, "base_musique", &base_musique, 1),
        },
        EvalInput {
            model: "trained".into(),
            name: None,
            dir: results(dir, "trained_musique", &trained_musique, 0),
        },
    ];
    let sft: Vec<_> = (1..=40)
        .map(|s| json!({"step": s, "loss": 4.0 / f64::from(s)}))
        .collect();
    let grpo: Vec<_> = (1..=40)
        .map(|s| {
            let x = f64::from(s) / 40.0;
            json!({"step": s, "reward_mean": 0.1 + 0.5 * x, "f1": 0.4 * x, "completion_length": 60.0 - 20.0 * x})
        })
        .collect();
    let training = vec![
        TrainInput {
            model: "sft".into(),
            dir: training(dir, "sft", "sft", &sft),
        },
        TrainInput {
            model: "trained".into(),
            dir: training(dir, "grpo", "grpo", &grpo),
        },
    ];
    Fixture {
        evals,
        training,
        base_hotpot,
        trained_hotpot,
    }
}

fn opts() -> Options {
    Options {
        title: "A report".into(),
        baseline: None,
        expect: vec![
            Benchmark::HotpotQa,
            Benchmark::TwoWiki,
            Benchmark::Musique,
            Benchmark::Cofca,
        ],
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn report_tables_pairs_plots_and_unavailable_benchmarks() {
    let dir = tmpdir("report", "full");
    let f = fixture(&dir);
    let out = dir.join("out");
    report::write(&opts(), &f.evals, &f.training, &out).unwrap();
    let md = read(&out.join("report.md"));
    insta::assert_snapshot!("report_markdown", md);

    // The paired difference is the one `synthpipe eval --baseline` reports.
    let mut trained = f.trained_hotpot.clone();
    trained.compare(&f.base_hotpot);
    let v = trained.versus_baseline.unwrap();
    let want = format!(
        "{:+.3} ± {:.3} (p {:.3})",
        v.f1.difference.mean, v.f1.difference.sem, v.f1.p_value
    );
    assert!(md.contains(&want), "no `{want}` in\n{md}");

    // Benchmarks without an evaluation are named, the evaluated ones are not.
    let missing = md.split("## Not in this report").nth(1).unwrap();
    let missing = missing.split("\n## ").next().unwrap();
    assert!(missing.contains("2WikiMultiHopQA: not evaluated"));
    assert!(missing.contains("CofCA: not evaluated"));
    assert!(!missing.contains("HotpotQA:") && !missing.contains("MuSiQue:"));

    // Every figure is a PNG (linked from the Markdown) and an SVG (inlined in the page).
    let plots = out.join("plots");
    let (png, svg) = (files(&plots, "png"), files(&plots, "svg"));
    let linked = md.matches("](plots/").count();
    assert_eq!(png.len(), linked);
    assert_eq!(svg.len(), linked);
    // HotpotQA and MuSiQue by stratum, the MuSiQue probe, two training logs.
    assert_eq!(linked, 5, "{md}");
    for p in &png {
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", p.display());
        assert!(bytes.len() > 2000, "{} is nearly empty", p.display());
    }
    let html = read(&out.join("report.html"));
    assert_eq!(html.matches("<svg").count(), linked);
    for s in &svg {
        let text = read(s);
        assert!(text.trim_start().starts_with("<svg"), "{}", s.display());
        assert!(html.contains(text.trim()), "{} is not inlined", s.display());
    }
    // Self-contained: nothing is fetched when the page opens.
    for external in ["<script", "<link", "src=", "url("] {
        assert!(!html.contains(external), "the page loads `{external}`");
    }
    for want in [
        "<h2>HotpotQA (hotpotqa)</h2>",
        "<h3>Composition probe</h3>",
        "<td>base</td>",
        "<li>CofCA: not evaluated",
    ] {
        assert!(html.contains(want), "no `{want}` in the page");
    }
}

#[test]
fn reports_are_byte_identical_on_rerun() {
    let dir = tmpdir("report", "rerun");
    let f = fixture(&dir);
    let (a, b) = (dir.join("a"), dir.join("b"));
    report::write(&opts(), &f.evals, &f.training, &a).unwrap();
    report::write(&opts(), &f.evals, &f.training, &b).unwrap();
    for rel in ["report.md", "report.html"] {
        assert_eq!(
            std::fs::read(a.join(rel)).unwrap(),
            std::fs::read(b.join(rel)).unwrap()
        );
    }
    for p in files(&a.join("plots"), "png") {
        let q = b.join("plots").join(p.file_name().unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(q).unwrap());
    }
}

#[test]
fn the_baseline_can_be_any_evaluated_model() {
    let dir = tmpdir("report", "baseline");
    let f = fixture(&dir);
    let out = dir.join("out");
    let o = Options {
        baseline: Some("trained".into()),
        ..opts()
    };
    report::write(&o, &f.evals, &[], &out).unwrap();
    let md = read(&out.join("report.md"));
    assert!(md.contains("against `trained` (the baseline)"), "{md}");
    assert!(md.contains("| base − baseline, F1 |"), "{md}");
    assert!(!md.contains("## Training"));
    let o = Options {
        baseline: Some("nobody".into()),
        ..opts()
    };
    let e = report::write(&o, &f.evals, &[], &out).unwrap_err();
    assert!(
        e.contains("`nobody` is none of the evaluated models"),
        "{e}"
    );
}

#[test]
fn inputs_that_are_not_evaluations_are_errors_not_panics() {
    let dir = tmpdir("report", "bad");
    let f = fixture(&dir);
    let out = dir.join("out");
    // A training log where an evaluation belongs.
    let bad = vec![EvalInput {
        model: "m".into(),
        name: None,
        dir: f.training[0].dir.clone(),
    }];
    let e = report::write(&opts(), &bad, &[], &out).unwrap_err();
    assert!(
        e.contains("is not the metrics of an `evaluate` stage"),
        "{e}"
    );
    // A truncated metrics.json.
    let cut = dir.join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    std::fs::write(
        cut.join("metrics.json"),
        "{\"benchmark\": \"hotpotqa\", \"over",
    )
    .unwrap();
    let e = report::write(
        &opts(),
        &[EvalInput {
            model: "m".into(),
            name: None,
            dir: cut,
        }],
        &[],
        &out,
    )
    .unwrap_err();
    assert!(e.contains("is not JSON"), "{e}");
    // One model evaluated twice under one name.
    let twice = vec![f.evals[0].clone(), f.evals[0].clone()];
    let e = report::write(&opts(), &twice, &[], &out).unwrap_err();
    assert!(e.contains("has two evaluations called `HotpotQA`"), "{e}");
    // A training log that is not JSON Lines.
    let log = dir.join("log");
    std::fs::create_dir_all(&log).unwrap();
    std::fs::write(log.join("metrics.json"), "{\"kind\": \"grpo\"}").unwrap();
    std::fs::write(log.join("metrics.jsonl"), "{\"step\": 1}\nnot json\n").unwrap();
    let e = report::write(
        &opts(),
        &f.evals,
        &[TrainInput {
            model: "m".into(),
            dir: log,
        }],
        &out,
    )
    .unwrap_err();
    assert!(e.contains("has a line that is not JSON"), "{e}");
}
