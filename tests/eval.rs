//! Benchmark evaluation: loaders on the official layouts (the shared dev samples when they
//! are on this machine, fixtures written for this project always), the official metrics
//! against numbers computed by HotpotQA's own script, strata and the probe, and
//! `synthpipe eval`'s diagnostics.

mod common;

use std::path::{Path, PathBuf};

use common::{Rng, describe, root, synthpipe, tmpdir};
use serde_json::{Value as Json, json};
use synthpipe::eval::bench::{Benchmark, load_file};

/// `../shared/data-raw` (or `SYNTHPIPE_DATA_RAW`): real dev-set samples, not in the repo.
fn data_raw() -> Option<PathBuf> {
    let dir = std::env::var_os("SYNTHPIPE_DATA_RAW")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data-raw"));
    if dir.join("README.md").is_file() {
        Some(dir)
    } else if std::env::var_os("CI").is_some() {
        // CI must run these: a missing folder there is a failure, never a silent pass.
        panic!(
            "the shared dev samples are not at {} (CI needs them; set SYNTHPIPE_DATA_RAW)",
            dir.display()
        );
    } else {
        eprintln!(
            "skipped: the shared dev samples are not at {} (set SYNTHPIPE_DATA_RAW)",
            dir.display()
        );
        None
    }
}

const SHARED: &[(Benchmark, &str)] = &[
    (Benchmark::HotpotQa, "hotpotqa_dev_distractor_subset.jsonl"),
    (Benchmark::HotpotQa, "hotpotqa_dev_fullwiki_subset.jsonl"),
    (Benchmark::TwoWiki, "2wikimultihopqa_dev_subset.jsonl"),
    (Benchmark::Musique, "musique_ans_dev_subset.jsonl"),
];

/// Runs `synthpipe eval` on a benchmark file and predictions, with `extra` flags.
fn eval_cmd(
    bench: &str,
    data: &Path,
    predictions: &Path,
    extra: &[&str],
    dir: &Path,
) -> std::process::Output {
    let mut args = vec![
        "eval",
        "--benchmark",
        bench,
        "--data",
        data.to_str().unwrap(),
        "--predictions",
        predictions.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    synthpipe(&args, dir)
}

/// Runs `synthpipe eval --json` and returns the evaluation.
fn eval_json(bench: &str, data: &Path, predictions: &Path, dir: &Path) -> Json {
    let o = eval_cmd(bench, data, predictions, &["--json"], dir);
    assert!(o.status.success(), "{}", describe(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn write_predictions(path: &Path, rows: &[(String, String)]) {
    let text: String = rows
        .iter()
        .map(|(id, p)| json!({"id": id, "prediction": p}).to_string() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn gold_answers_score_one_and_wrong_answers_zero_on_every_shared_file() {
    let Some(raw) = data_raw() else { return };
    let dir = tmpdir("eval", "gold");
    for (bench, file) in SHARED {
        let data = raw.join(file);
        let loaded = load_file(*bench, &data, None);
        assert!(loaded.errors.is_empty(), "{file}: {:?}", loaded.errors);
        let gold: Vec<(String, String)> = loaded
            .records
            .iter()
            .map(|r| (r.id.clone(), r.answers[0].clone()))
            .collect();
        let p = dir.join(format!("{file}.gold.jsonl"));
        write_predictions(&p, &gold);
        let e = eval_json(bench.name(), &data, &p, &dir);
        assert_eq!(e["overall"]["em"]["mean"], 1.0, "{file}");
        assert_eq!(e["overall"]["missing"], 0, "{file}");
        // F1 is 1 for every answer with a token left after normalisation. HotpotQA's
        // script gives an answer that normalises to nothing (one fullwiki record's gold is
        // "!!!") F1 0 even against itself; we follow the script, so that one scores 0.
        for (q, r) in e["questions"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&loaded.records)
        {
            let empty = synthpipe::eval::metrics::normalize(&r.answers[0]).is_empty();
            let expected = if empty && *bench != Benchmark::Musique {
                0.0
            } else {
                1.0
            };
            assert_eq!(q["f1"], expected, "{file} {}: {:?}", r.id, r.answers[0]);
        }
        let wrong: Vec<(String, String)> = gold
            .iter()
            .map(|(id, _)| (id.clone(), "qzxv wrongly".to_string()))
            .collect();
        write_predictions(&p, &wrong);
        let e = eval_json(bench.name(), &data, &p, &dir);
        assert_eq!(e["overall"]["f1"]["mean"], 0.0, "{file}");
        assert_eq!(e["overall"]["em"]["mean"], 0.0, "{file}");
    }
}

#[test]
fn strata_of_the_shared_samples_match_their_readme() {
    let Some(raw) = data_raw() else { return };
    let counts = |bench: Benchmark, file: &str, axis: &str| -> Vec<(String, usize)> {
        let loaded = load_file(bench, &raw.join(file), None);
        let mut m = std::collections::BTreeMap::new();
        for r in &loaded.records {
            let key = match axis {
                "type" => r.kind.clone().unwrap(),
                _ => r.hops.unwrap().to_string(),
            };
            *m.entry(key).or_insert(0) += 1;
        }
        m.into_iter().collect()
    };
    let s = |v: &[(&str, usize)]| -> Vec<(String, usize)> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    assert_eq!(
        counts(Benchmark::HotpotQa, SHARED[0].1, "type"),
        s(&[("bridge", 211), ("comparison", 86)])
    );
    assert_eq!(
        counts(Benchmark::HotpotQa, SHARED[1].1, "type"),
        s(&[("bridge", 758), ("comparison", 199)])
    );
    assert_eq!(
        counts(Benchmark::TwoWiki, SHARED[2].1, "type"),
        s(&[
            ("bridge_comparison", 172),
            ("comparison", 155),
            ("compositional", 256),
            ("inference", 74)
        ])
    );
    assert_eq!(
        counts(Benchmark::Musique, SHARED[3].1, "hops"),
        s(&[("2", 145), ("3", 32), ("4", 23)])
    );
    // 2Wiki's evidence counts (its hops) as the README gives them.
    assert_eq!(
        counts(Benchmark::TwoWiki, SHARED[2].1, "hops"),
        s(&[("2", 472), ("3", 6), ("4", 175), ("5", 4)])
    );
}

/// Answers a model might give for gold `g`: exact, re-cased and punctuated, partial,
/// padded, yes/no, empty, another question's answer, articles, a non-ASCII dash.
fn mutate(g: &str, other: &str, rng: &mut Rng) -> Option<String> {
    let words: Vec<&str> = g.split_whitespace().collect();
    Some(match rng.below(13) {
        0 => g.to_string(),
        1 => format!("The {}.", g.to_uppercase()),
        2 => words[..words.len().saturating_sub(1)].join(" "),
        3 => format!("{g} and some extra words"),
        4 => "yes".into(),
        5 => "No".into(),
        6 => String::new(),
        7 => other.to_string(),
        8 => format!("{g} {}", words.first().copied().unwrap_or("x")),
        9 => g.replace(' ', "-"),
        10 => format!("an {g}, a thing"),
        11 => format!("{g} –"),
        _ => return None, // no prediction: the official script scores 0
    })
}

/// Mixed predictions for the records of a HotpotQA-layout file, deterministic.
fn mixed_predictions(answers: &[(String, String)], seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng(seed);
    answers
        .iter()
        .enumerate()
        .filter_map(|(i, (id, g))| {
            let other = &answers[(i * 7 + 3) % answers.len()].1;
            mutate(g, other, &mut rng).map(|p| (id.clone(), p))
        })
        .collect()
}

/// Invented gold answers in HotpotQA's layout, covering the normaliser's edge cases.
fn invented_gold(n: usize) -> Vec<(String, String)> {
    let words = [
        "Paris",
        "the",
        "Beatles",
        "an",
        "a",
        "1969",
        "Zoë",
        "Müller",
        "yes",
        "no",
        "U.S.",
        "New",
        "York",
        "City",
        "O'Brien",
        "co-founder",
        "σοφία",
        "_under_score",
        "A",
        "The",
    ];
    let mut rng = Rng(7);
    (0..n)
        .map(|i| {
            let len = 1 + rng.below(4);
            let g: Vec<&str> = (0..len).map(|_| words[rng.below(words.len())]).collect();
            (format!("inv-{i:04}"), g.join(" "))
        })
        .collect()
}

fn hotpot_file(path: &Path, gold: &[(String, String)]) {
    let text: String = gold
        .iter()
        .map(|(id, a)| {
            json!({"_id": id, "question": "?", "answer": a, "type": "bridge",
                   "context": [["T", ["A sentence."]]], "supporting_facts": [["T", 0]]})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

/// Sums of HotpotQA's official `hotpot_evaluate_v1.py` (answer metrics) divided by the
/// number of gold records, computed once with that script on the files these tests write
/// (`SYNTHPIPE_DUMP=DIR` writes them there).
const OFFICIAL_INVENTED: [f64; 4] = [
    0.195,
    0.3884166666666667,
    0.3623452380952382,
    0.4639583333333333,
];
const OFFICIAL_SHARED: [f64; 4] = [
    0.16161616161616163,
    0.4158671141142917,
    0.3936441130885577,
    0.4828843995510662,
];

fn assert_official(e: &Json, expected: [f64; 4], what: &str) {
    let got = [
        e["overall"]["em"]["mean"].as_f64().unwrap(),
        e["overall"]["f1"]["mean"].as_f64().unwrap(),
        e["overall"]["precision"].as_f64().unwrap(),
        e["overall"]["recall"].as_f64().unwrap(),
    ];
    for (name, (g, x)) in ["em", "f1", "precision", "recall"]
        .iter()
        .zip(got.iter().zip(expected))
    {
        assert!(
            (g - x).abs() < 1e-9,
            "{what}: {name} {g} differs from the official script's {x}"
        );
    }
}

fn dump(name: &str, from: &Path) {
    if let Some(dir) = std::env::var_os("SYNTHPIPE_DUMP") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(from, Path::new(&dir).join(name)).unwrap();
    }
}

/// The official prediction layout, which the oracle script reads.
fn official_predictions(path: &Path, rows: &[(String, String)]) {
    let answer: serde_json::Map<String, Json> = rows
        .iter()
        .map(|(id, p)| (id.clone(), Json::String(p.clone())))
        .collect();
    std::fs::write(path, json!({"answer": answer, "sp": {}}).to_string()).unwrap();
}

#[test]
fn metrics_match_the_official_hotpotqa_script_on_mixed_predictions() {
    let dir = tmpdir("eval", "official");
    let gold = invented_gold(400);
    let data = dir.join("invented.jsonl");
    hotpot_file(&data, &gold);
    let preds = dir.join("invented.pred.json");
    official_predictions(&preds, &mixed_predictions(&gold, 11));
    dump("invented.jsonl", &data);
    dump("invented.pred.json", &preds);
    let e = eval_json("hotpotqa", &data, &preds, &dir);
    assert_official(&e, OFFICIAL_INVENTED, "invented answers");

    let Some(raw) = data_raw() else { return };
    let data = raw.join(SHARED[0].1);
    let loaded = load_file(Benchmark::HotpotQa, &data, None);
    let gold: Vec<(String, String)> = loaded
        .records
        .iter()
        .map(|r| (r.id.clone(), r.answers[0].clone()))
        .collect();
    let preds = dir.join("shared.pred.json");
    official_predictions(&preds, &mixed_predictions(&gold, 12));
    dump("shared.pred.json", &preds);
    let e = eval_json("hotpotqa", &data, &preds, &dir);
    assert_official(&e, OFFICIAL_SHARED, "shared HotpotQA sample");
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/eval").join(name)
}

#[test]
fn every_layout_loads_into_the_common_record() {
    // HotpotQA: the official list layout and Hugging Face's, in one JSON array; ids of any shape.
    let h = load_file(Benchmark::HotpotQa, &fixture("hotpotqa.json"), None);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let ids: Vec<&str> = h.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "5a8b57f25542995d1e6f1371",
            "dev_row_17",
            "q with spaces/and:odd#chars"
        ]
    );
    let first = &h.records[0];
    assert_eq!(first.line, 2);
    assert_eq!(first.kind.as_deref(), Some("comparison"));
    assert_eq!(
        first.paragraphs[0].text,
        "Varnel is a harbour town founded in 1412. It has a lighthouse."
    );
    let supporting: Vec<bool> = first.paragraphs.iter().map(|p| p.supporting).collect();
    assert_eq!(supporting, [true, true, false]);
    assert_eq!(h.records[1].paragraphs.len(), 2);
    assert!(h.records[1].paragraphs.iter().all(|p| p.supporting));

    // 2Wiki: types, evidence counts as hops, aliases from id_aliases.json.
    let aliases = synthpipe::eval::bench::load_aliases(&fixture("id_aliases.json")).unwrap();
    let w = load_file(Benchmark::TwoWiki, &fixture("2wiki.jsonl"), Some(&aliases));
    assert!(w.errors.is_empty(), "{:?}", w.errors);
    assert_eq!(
        w.records[0].answers,
        ["Mira Ardel", "Mira A. Ardel", "Mira Ardel-Koss"]
    );
    assert_eq!(w.records[2].hops, Some(4));
    assert_eq!(w.records[3].kind.as_deref(), Some("inference"));

    // MuSiQue: hops from the id, intermediate answers from the decomposition, aliases.
    let m = load_file(Benchmark::Musique, &fixture("musique.jsonl"), None);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(m.records[0].answers, ["1894", "the year 1894"]);
    assert_eq!(m.records[1].hops, Some(3));
    assert_eq!(
        m.records[1].intermediate,
        [vec!["Zorvan"], vec!["Norland"], vec!["Osterby"]]
    );
    assert!(!m.records[0].paragraphs[2].supporting);

    // CofCA (its published layout as far as it is known: HotpotQA-style records with
    // sub-question answers); hops from the decomposition or from `type`.
    let c = load_file(Benchmark::Cofca, &fixture("cofca.json"), None);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.records[0].hops, Some(3));
    assert_eq!(c.records[0].intermediate.len(), 3);
    assert_eq!(c.records[1].hops, Some(2));
}

#[test]
fn malformed_records_are_diagnosed_and_the_rest_still_loads() {
    let path = fixture("hotpotqa_bad.json");
    // Named relative to the crate, so the rendering (wrapped at 100 columns) does not
    // depend on where the checkout lives.
    let l = synthpipe::eval::bench::load_bytes(
        Benchmark::HotpotQa,
        "tests/fixtures/eval/hotpotqa_bad.json",
        &std::fs::read(&path).unwrap(),
        None,
    );
    let ids: Vec<&str> = l.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["ok-1", "ok-2"]);
    let lines: Vec<Option<usize>> = l.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [Some(3), Some(4), Some(5), Some(7)]);
    let rendered = synthpipe::eval::score::render_errors(&l.errors, false);
    insta::assert_snapshot!("malformed_hotpotqa", rendered);

    // Through the CLI: the good records are scored, the bad ones reported, exit 1.
    let dir = tmpdir("eval", "malformed");
    let preds = dir.join("p.jsonl");
    write_predictions(
        &preds,
        &[
            ("ok-1".into(), "Varnel".into()),
            ("ok-2".into(), "Kelmora".into()),
        ],
    );
    let o = eval_cmd("hotpotqa", &path, &preds, &[], &dir);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("overall"), "{out}");
    assert!(out.contains("0.500"), "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("synthpipe::eval::bad_record"), "{err}");
    assert!(
        err.contains("4 record(s) of the data file were skipped"),
        "{err}"
    );
}

#[test]
fn predictions_in_either_layout_score_alike_and_unknown_ids_are_errors() {
    let dir = tmpdir("eval", "layouts");
    let data = fixture("2wiki.jsonl");
    let rows = vec![
        (
            "8813f87c0bdd11eba7f7acde48001122".to_string(),
            "Mira Ardel-Koss".to_string(),
        ),
        (
            "ab7c1e2a0bdd11eba7f7acde48001122".to_string(),
            "Salt Road.".to_string(),
        ),
        ("c02f".to_string(), "no".to_string()),
    ];
    let jsonl = dir.join("p.jsonl");
    write_predictions(&jsonl, &rows);
    let official = dir.join("p.json");
    official_predictions(&official, &rows);
    let a = eval_json("2wiki", &data, &jsonl, &dir);
    let b = eval_json("2wiki", &data, &official, &dir);
    assert_eq!(a, b);
    // Without the alias file, "Mira Ardel-Koss" ("mira ardelkoss") shares one of two
    // tokens with "Mira Ardel": F1 0.5; "no" against "yes" is 0; d9 is missing (0).
    let f1 = a["overall"]["f1"]["mean"].as_f64().unwrap();
    assert!((f1 - (0.5 + 1.0 + 0.0 + 0.0) / 4.0).abs() < 1e-12, "{f1}");
    assert_eq!(a["overall"]["em"]["mean"], 0.25);
    assert_eq!(a["overall"]["missing"], 1);
    // With it, an exact alias match.
    let aliases = fixture("id_aliases.json");
    let o = eval_cmd(
        "2wiki",
        &data,
        &jsonl,
        &["--aliases", aliases.to_str().unwrap(), "--json"],
        &dir,
    );
    assert!(o.status.success(), "{}", describe(&o));
    let with: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(with["overall"]["em"]["mean"], 0.5);

    write_predictions(&jsonl, &[("nope".into(), "x".into())]);
    let o = eval_cmd("2wiki", &data, &jsonl, &[], &dir);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("synthpipe::eval::unknown_id"));
    let o = synthpipe(
        &[
            "eval",
            "--benchmark",
            "squad",
            "--data",
            "x",
            "--predictions",
            "y",
        ],
        &dir,
    );
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown benchmark `squad`"));
}

#[test]
fn the_probe_counts_intermediate_answers_in_generations_per_hop() {
    let dir = tmpdir("eval", "probe");
    let preds = dir.join("p.jsonl");
    let lines = [
        json!({"id": "2hop__101_202", "prediction": "1894",
               "generation": "Altrix Works built it. It was founded in 1894. <answer>1894</answer>"}),
        json!({"id": "3hop1__1_2_3", "prediction": "Kelmora",
               "generation": "Ada Quill was born in Zorvan, which is in Norland. <answer>Kelmora</answer>"}),
    ];
    std::fs::write(
        &preds,
        lines
            .iter()
            .map(|l| l.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let e = eval_json("musique", &fixture("musique.jsonl"), &preds, &dir);
    let cells: Vec<(u64, u64, u64, u64)> = e["probe"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["hops"].as_u64().unwrap(),
                c["k"].as_u64().unwrap(),
                c["found"].as_u64().unwrap(),
                c["questions"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        cells,
        [
            (2, 1, 1, 1),
            (2, 2, 1, 1),
            (3, 1, 1, 1),
            (3, 2, 1, 1),
            (3, 3, 0, 1)
        ]
    );
    let hops = &e["strata"]["hops"];
    assert_eq!(hops["2"]["f1"]["mean"], 1.0);
    assert_eq!(hops["3"]["f1"]["mean"], 0.0);
}

/// MuSiQue's official answer metric (`metrics/answer.py`: SQuAD rules, maximum over the
/// answer and its aliases), computed once with that code on the predictions below, with
/// missing predictions counted as 0 over all records.
const OFFICIAL_MUSIQUE: [f64; 2] = [0.155, 0.4214006320476907];

#[test]
fn metrics_match_the_official_musique_script_on_mixed_predictions() {
    let Some(raw) = data_raw() else { return };
    let dir = tmpdir("eval", "musique");
    let data = raw.join(SHARED[3].1);
    let loaded = load_file(Benchmark::Musique, &data, None);
    // Mutate an alias now and then, so the maximum over aliases matters.
    let gold: Vec<(String, String)> = loaded
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), r.answers[i % r.answers.len()].clone()))
        .collect();
    let preds = dir.join("musique.pred.jsonl");
    write_predictions(&preds, &mixed_predictions(&gold, 13));
    dump("musique.pred.jsonl", &preds);
    let e = eval_json("musique", &data, &preds, &dir);
    let got = [
        e["overall"]["em"]["mean"].as_f64().unwrap(),
        e["overall"]["f1"]["mean"].as_f64().unwrap(),
    ];
    for (g, x) in got.iter().zip(OFFICIAL_MUSIQUE) {
        assert!(
            (g - x).abs() < 1e-9,
            "{got:?} differs from the official {OFFICIAL_MUSIQUE:?}"
        );
    }
}

#[test]
fn mutated_benchmark_and_prediction_files_never_panic() {
    let sources: Vec<(Benchmark, Vec<u8>)> = [
        (Benchmark::HotpotQa, "hotpotqa.json"),
        (Benchmark::HotpotQa, "hotpotqa_bad.json"),
        (Benchmark::TwoWiki, "2wiki.jsonl"),
        (Benchmark::Musique, "musique.jsonl"),
        (Benchmark::Cofca, "cofca.json"),
    ]
    .iter()
    .map(|(b, f)| (*b, std::fs::read(fixture(f)).unwrap()))
    .collect();
    let tokens: &[&[u8]] = &[
        b"[", b"]", b"{", b"}", b"\"", b"\\", b",", b"\n", b"null", b"42", b"\xff", b"\"hop\"",
    ];
    let mut rng = Rng(99);
    let mut diagnosed = 0;
    for round in 0..3000 {
        let (bench, bytes) = &sources[round % sources.len()];
        let mut m = bytes.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(m.len() + 1);
            match rng.below(3) {
                0 if !m.is_empty() => {
                    let end = (at + 1 + rng.below(20)).min(m.len());
                    m.drain(at.min(end)..end);
                }
                _ => {
                    let t = tokens[rng.below(tokens.len())];
                    m.splice(at..at, t.iter().copied());
                }
            }
        }
        // Every benchmark reads every mutant: wrong layouts must be diagnosed too.
        for b in Benchmark::ALL
            .iter()
            .filter(|b| **b != Benchmark::Synthetic)
        {
            let l = synthpipe::eval::bench::load_bytes(*b, "m.json", &m, None);
            if b == bench && !l.errors.is_empty() {
                diagnosed += 1;
            }
            for e in &l.errors {
                assert!(!e.message.is_empty());
            }
            let _ = synthpipe::eval::score::render_errors(&l.errors, false);
        }
        let _ = synthpipe::eval::parse_predictions("m.json", &m);
    }
    assert!(diagnosed > 1000, "only {diagnosed} mutants were diagnosed");
}

#[test]
fn a_baseline_run_gives_the_paired_difference_and_the_table_shows_it() {
    let dir = tmpdir("eval", "baseline");
    let data = fixture("musique.jsonl");
    let base = dir.join("base.jsonl");
    write_predictions(
        &base,
        &[
            ("2hop__101_202".into(), "1900".into()),
            ("3hop1__1_2_3".into(), "Norland".into()),
        ],
    );
    let trained = dir.join("trained.jsonl");
    write_predictions(
        &trained,
        &[
            ("2hop__101_202".into(), "the year 1894".into()),
            ("3hop1__1_2_3".into(), "Osterby".into()),
        ],
    );
    let baseline = ["--baseline", base.to_str().unwrap()];
    let with_json = [baseline[0], baseline[1], "--json"];
    let o = eval_cmd("musique", &data, &trained, &with_json, &dir);
    assert!(o.status.success(), "{}", describe(&o));
    let e: Json = serde_json::from_slice(&o.stdout).unwrap();
    let v = &e["versus_baseline"]["f1"];
    assert_eq!(v["a"], 0.0);
    assert_eq!(v["b"], 1.0);
    assert_eq!(v["mean"], 1.0);
    assert_eq!(v["sem"], 0.0);
    let o = eval_cmd("musique", &data, &trained, &baseline, &dir);
    assert!(o.status.success(), "{}", describe(&o));
    insta::assert_snapshot!(
        "eval_table_with_baseline",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn the_evaluate_stage_answers_a_benchmark_and_scores_it_officially() {
    let dir = tmpdir("eval", "stage");
    let model = root().join("tests/fixtures/models/tiny-qwen3");
    let yaml = format!(
        "name: e\nstages:\n  musique:\n    kind: evaluate\n    model: {}\n    benchmark: musique\n    data: {}\n    examples: 2\n    chat: false\n    max_completion_tokens: 12\n    temperature: 0\n    backend: flex\n    out: results\n",
        model.display(),
        fixture("musique.jsonl").display()
    );
    std::fs::write(dir.join("p.yaml"), yaml).unwrap();
    let o = synthpipe(&["run", "p.yaml", "--store", "store"], &dir);
    assert!(o.status.success(), "{}", describe(&o));
    let preds = std::fs::read_to_string(dir.join("results/results/predictions.jsonl")).unwrap();
    let rows: Vec<Json> = preds
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        for key in ["id", "prompt_hash", "generation", "prediction", "f1", "em"] {
            assert!(!r[key].is_null(), "{key} missing: {r}");
        }
    }
    let m: Json = serde_json::from_str(
        &std::fs::read_to_string(dir.join("results/results/metrics.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["benchmark"], "musique");
    assert_eq!(m["overall"]["questions"], 2);
    assert!(m["strata"]["hops"]["3"].is_object(), "{m}");
    assert_eq!(m["probe"].as_array().unwrap().len(), 5);

    // A benchmark stage needs `data`, not `dataset`.
    let bad = "name: e\nstages:\n  x:\n    kind: evaluate\n    model: m.gguf\n    benchmark: hotpotqa\n    dataset: d\n";
    std::fs::write(dir.join("bad.yaml"), bad).unwrap();
    let o = synthpipe(&["run", "bad.yaml", "--store", "store"], &dir);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("needs `data` and no `dataset`"), "{err}");
}
