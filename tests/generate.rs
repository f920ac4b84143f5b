//! `synthpipe generate` as a user runs it: files written, byte-identical for a seed, and bad
//! parameters or rules rejected with an explanation and exit code 2.

mod common;

use std::path::Path;
use std::process::Output;

use common::{root, tmpdir};

fn synthpipe(args: &[&str]) -> Output {
    common::synthpipe(args, &root())
}

const FILES: [&str; 5] = [
    "entities.jsonl",
    "facts.jsonl",
    "articles.jsonl",
    "questions.jsonl",
    "manifest.json",
];

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap()
}

#[test]
fn same_seed_same_bytes_other_seed_other_universe() {
    let scratch = [
        tmpdir("generate", "a"),
        tmpdir("generate", "b"),
        tmpdir("generate", "c"),
    ];
    let [a, b, c] = scratch.each_ref().map(|d| d.join("out"));
    for (dir, seed) in [(&a, "7"), (&b, "7"), (&c, "8")] {
        let o = synthpipe(&[
            "generate",
            "rules/family.rules",
            "--out",
            dir.to_str().unwrap(),
            "--seed",
            seed,
            "--set",
            "trees=4",
            "--derived",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for f in FILES {
        assert_eq!(read(&a, f), read(&b, f), "{f} differs for the same seed");
    }
    assert_ne!(read(&a, "entities.jsonl"), read(&c, "entities.jsonl"));
    // Every line is a JSON object, and the manifest's digests match the files.
    let manifest: serde_json::Value = serde_json::from_str(&read(&a, "manifest.json")).unwrap();
    for f in &FILES[..4] {
        let text = read(&a, f);
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object()))
        );
        let want = format!("b3:{}", blake3::hash(text.as_bytes()).to_hex());
        assert_eq!(manifest["files"][f], want.as_str());
    }
    assert_eq!(manifest["params"]["trees"], 4);
    let derived = read(&a, "facts.jsonl")
        .lines()
        .filter(|l| l.contains("\"relation\":\"sibling\""))
        .count();
    assert!(derived > 0, "--derived writes derived relations");
}

#[test]
fn one_thread_and_two_threads_write_identical_bytes() {
    let mut outs = Vec::new();
    for threads in ["1", "2"] {
        let scratch = tmpdir("generate", &format!("threads{threads}"));
        let dir = scratch.join("out");
        let o = synthpipe(&[
            "generate",
            "rules/family.rules",
            "--out",
            dir.to_str().unwrap(),
            "--seed",
            "11",
            "--set",
            "trees=40",
            "--set",
            "questions_per_template=20",
            "--set",
            "unanswerable=0.2",
            "--derived",
            "--threads",
            threads,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        outs.push((scratch, dir));
    }
    let outs: Vec<&Path> = outs.iter().map(|(_, d)| d.as_path()).collect();
    for f in FILES {
        assert!(
            read(outs[0], f) == read(outs[1], f),
            "{f} differs between 1 and 2 threads"
        );
    }
    let m: serde_json::Value = serde_json::from_str(&read(outs[0], "manifest.json")).unwrap();
    assert!(m["counts"]["questions"].as_u64().unwrap() > 500, "{m}");
    assert!(
        m["histograms"]["answerable"]["unanswerable"]
            .as_u64()
            .unwrap()
            > 0
    );
}

/// The shape of a JSON value for columnar loaders: `None` for an empty list, which fits any
/// list. `null` is refused: a loader that sees only nulls in its first block cannot read
/// values that come later.
#[derive(Clone, Debug, PartialEq)]
enum Shape {
    Bool,
    Number,
    Str,
    List(Option<Box<Shape>>),
    Object(Vec<(String, Shape)>),
}

fn shape(v: &serde_json::Value, at: &str) -> Shape {
    use serde_json::Value as J;
    match v {
        J::Null => panic!("null at {at}"),
        J::Bool(_) => Shape::Bool,
        J::Number(_) => Shape::Number,
        J::String(_) => Shape::Str,
        J::Array(items) => {
            let mut acc: Option<Shape> = None;
            for (i, x) in items.iter().enumerate() {
                let s = shape(x, &format!("{at}[{i}]"));
                acc = Some(match acc {
                    None => s,
                    Some(a) => merge(a, s, at),
                });
            }
            Shape::List(acc.map(Box::new))
        }
        J::Object(m) => Shape::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), shape(x, &format!("{at}.{k}"))))
                .collect(),
        ),
    }
}

fn merge(a: Shape, b: Shape, at: &str) -> Shape {
    match (a, b) {
        (Shape::List(None), x @ Shape::List(_)) | (x @ Shape::List(_), Shape::List(None)) => x,
        (Shape::List(Some(x)), Shape::List(Some(y))) => {
            Shape::List(Some(Box::new(merge(*x, *y, at))))
        }
        (Shape::Object(x), Shape::Object(y)) => {
            let keys = |o: &Vec<(String, Shape)>| o.iter().map(|p| p.0.clone()).collect::<Vec<_>>();
            assert_eq!(keys(&x), keys(&y), "records differ in fields at {at}");
            Shape::Object(
                x.into_iter()
                    .zip(y)
                    .map(|((k, p), (_, q))| (k.clone(), merge(p, q, &format!("{at}.{k}"))))
                    .collect(),
            )
        }
        (x, y) => {
            assert_eq!(x, y, "field types differ at {at}");
            x
        }
    }
}

#[test]
fn every_file_has_one_schema_for_columnar_loaders() {
    // What lets Hugging Face `datasets` load the files as they are: one set of fields per
    // file, one type per field, no nulls, relation-specific keys never used as field names.
    let scratch = tmpdir("generate", "schema");
    let dir = scratch.join("out");
    for (rules, extra) in [
        ("rules/family.rules", "unanswerable=0.3"),
        ("rules/wiki.rules", "questions_per_template=20"),
        ("tests/grammar/ok/features.rules", "hop_set=everything"),
    ] {
        let o = synthpipe(&[
            "generate",
            rules,
            "--out",
            dir.to_str().unwrap(),
            "--set",
            extra,
            "--derived",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for f in &FILES[..4] {
            let text = read(&dir, f);
            let mut acc: Option<Shape> = None;
            for (i, l) in text.lines().enumerate() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let s = shape(&v, &format!("{rules} {f}:{}", i + 1));
                acc = Some(match acc {
                    None => s,
                    Some(a) => merge(a, s, &format!("{rules} {f}:{}", i + 1)),
                });
            }
            assert!(acc.is_some(), "{rules}: {f} is empty");
        }
    }
}

#[test]
fn bad_parameters_and_rules_exit_2_and_write_nothing() {
    let scratch = tmpdir("generate", "bad");
    let out = scratch.join("out");
    let o = synthpipe(&[
        "generate",
        "rules/family.rules",
        "--out",
        out.to_str().unwrap(),
        "--set",
        "tress=3",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("did you mean `trees`?"), "{err}");
    assert!(!out.exists(), "nothing is written on bad input");

    let o = synthpipe(&[
        "generate",
        "tests/grammar/err/unknown_type.rules",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("synthpipe::rules::unknown_type"));
    assert!(!out.exists());

    let o = synthpipe(&[
        "generate",
        "rules/family.rules",
        "--out",
        out.to_str().unwrap(),
        "--set",
        "novalue",
    ]);
    assert_eq!(o.status.code(), Some(2), "clap rejects a --set without `=`");
}

#[test]
fn what_users_see_is_snapshotted_and_quiet_off_a_terminal() {
    // The default family dataset: its manifest, the first article, and one question of
    // every template — reviewed by eye when the generator changes.
    let scratch = tmpdir("generate", "snap");
    let dir = scratch.join("out");
    let o = synthpipe(&[
        "generate",
        "rules/family.rules",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.lines().count(),
        1,
        "no progress bar off a terminal: {err}"
    );
    assert!(err.starts_with("wrote "), "{err}");
    insta::assert_snapshot!("family_manifest", read(&dir, "manifest.json"));
    let first: serde_json::Value =
        serde_json::from_str(read(&dir, "articles.jsonl").lines().next().unwrap()).unwrap();
    insta::assert_snapshot!("family_article", first["text"].as_str().unwrap());
    let mut seen = std::collections::BTreeMap::new();
    for l in read(&dir, "questions.jsonl").lines() {
        let q: serde_json::Value = serde_json::from_str(l).unwrap();
        let t = q["template"].as_str().unwrap().to_string();
        seen.entry(t).or_insert_with(|| {
            format!(
                "{} [{}; difficulty {}, hops {}]\n  -> {}",
                q["text"].as_str().unwrap(),
                q["template_id"].as_str().unwrap(),
                q["difficulty"],
                q["hops"],
                q["answers"]
            )
        });
    }
    let text: Vec<String> = seen.into_values().collect();
    insta::assert_snapshot!("family_questions", text.join("\n"));
}

/// The fourth shipped domain (the tutorial's): one question per template as users read it,
/// in the number of its sets, its walk filter counts, and a club's article.
#[test]
fn football_snapshots() {
    let scratch = tmpdir("generate", "football");
    let dir = scratch.join("out");
    let o = synthpipe(&[
        "generate",
        "rules/football.rules",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest: serde_json::Value = serde_json::from_str(&read(&dir, "manifest.json")).unwrap();
    insta::assert_snapshot!(
        "football_removed",
        serde_json::to_string_pretty(&manifest["counts"]["removed"]).unwrap()
    );
    let club = read(&dir, "articles.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|a| a["type"] == "club")
        .unwrap();
    insta::assert_snapshot!("football_article", club["text"].as_str().unwrap());
    // One question per template, the first with several answers where there is one, so the
    // plural wording shows.
    let mut seen = std::collections::BTreeMap::new();
    for l in read(&dir, "questions.jsonl").lines() {
        let q: serde_json::Value = serde_json::from_str(l).unwrap();
        let t = q["template"].as_str().unwrap().to_string();
        let answers = q["answers"].as_array().unwrap();
        let many = answers.len() > 1;
        let shown: Vec<&str> = answers
            .iter()
            .take(3)
            .map(|a| a.as_str().unwrap())
            .collect();
        let line = format!(
            "{} [{}]\n  -> {} of {}: {}",
            q["text"].as_str().unwrap(),
            q["template_id"].as_str().unwrap(),
            shown.len(),
            answers.len(),
            shown.join("; ")
        );
        match seen.get(&t) {
            Some((true, _)) => {}
            Some((false, _)) if !many => {}
            _ => {
                seen.insert(t, (many, line));
            }
        }
    }
    let text: Vec<String> = seen.into_values().map(|(_, l)| l).collect();
    insta::assert_snapshot!("football_questions", text.join("\n"));

    // Supertypes: each person is listed once, as a player or a manager, with the attributes
    // it inherits; a relation on people holds for both kinds, and the managers' articles
    // are their own.
    let entities: Vec<serde_json::Value> = read(&dir, "entities.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |t: &str| entities.iter().filter(|e| e["type"] == t).count();
    assert_eq!((of("player"), of("manager"), of("person")), (300, 24, 0));
    let kind: std::collections::BTreeMap<&str, &str> = entities
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert!(entities.iter().filter(|e| e["type"] == "manager").all(|e| {
        let names: Vec<&str> = e["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        names == ["first", "last", "name", "born"]
    }));
    let mut nationals = std::collections::BTreeSet::new();
    let mut years = 0;
    for l in read(&dir, "facts.jsonl").lines() {
        let f: serde_json::Value = serde_json::from_str(l).unwrap();
        if f["relation"] == "nationality" {
            nationals.insert(kind[f["args"][0]["entity"].as_str().unwrap()]);
        }
        if f["relation"] == "plays_for" {
            let y: i64 = f["attributes"][0]["value"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((2008..=2024).contains(&y), "{f}");
            years += 1;
        }
    }
    assert_eq!(nationals, ["manager", "player"].into());
    assert_eq!(years, 300, "every signing has its year");
    let managers = read(&dir, "articles.jsonl")
        .lines()
        .filter(|l| l.contains(r#""type":"manager""#))
        .count();
    assert_eq!(managers, 24);
}

/// Managers with and without clubs: a line whose relation is empty for some of them.
const MANAGERS: &str = r#"
pool names = ["Ann", "Bob", "Cid", "Dee", "Eve", "Fay", "Gus", "Hal"];
pool club_names = ["Rovers", "United"];

entity manager count 8 {
    name: key pool names;
    gender: enum { female, male };
}

entity club count 2 {
    name: key pool club_names;
}

relation manages(club: club, manager: manager) {
    generate function(from: club);
    say club: "club" / "clubs";
    say manager: "manager" / "managers";
}

article manager {
    line "{name} manages {manages}.";
    line "{name} coaches at {manages}." else "{name} manages no club.";
}
"#;

#[test]
fn an_article_line_with_an_empty_placeholder_is_left_out_or_says_so() {
    let dir = tmpdir("generate", "managers");
    let rules = dir.join("managers.rules");
    std::fs::write(&rules, MANAGERS).unwrap();
    let out = dir.join("out");
    let o = synthpipe(&[
        "generate",
        rules.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (mut with, mut without) = (0, 0);
    for line in read(&out, "articles.jsonl").lines() {
        let a: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = a["text"].as_str().unwrap();
        let name = a["name"].as_str().unwrap();
        assert!(!text.contains("manages ."), "{text}");
        let facts = a["facts"].as_array().unwrap();
        let stated = facts
            .iter()
            .find(|f| f["name"] == "manages")
            .expect("the relation is stated either way");
        if text.contains(&format!("{name} manages no club.")) {
            without += 1;
            assert!(!text.contains("coaches at"), "{text}");
            assert_eq!(stated["values"], serde_json::json!([]), "{text}");
        } else {
            with += 1;
            assert!(text.contains(&format!("{name} manages ")), "{text}");
            assert!(text.contains("coaches at"), "{text}");
            assert!(!stated["values"].as_array().unwrap().is_empty(), "{text}");
        }
    }
    // Two clubs, eight managers: most manage nothing.
    assert!(with >= 1 && without >= 6, "with {with}, without {without}");
}

#[test]
fn no_shipped_article_renders_an_empty_value() {
    for rules in [
        "rules/family.rules",
        "rules/wiki.rules",
        "rules/academia.rules",
        "tests/grammar/ok/features.rules",
        "tests/grammar/ok/school.rules",
    ] {
        let out = tmpdir(
            "generate",
            &format!("empty-{}", common::stem(Path::new(rules))),
        );
        let o = synthpipe(&[
            "generate",
            rules,
            "--out",
            out.to_str().unwrap(),
            "--seed",
            "1..=3",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for line in read(&out, "articles.jsonl").lines() {
            let a: serde_json::Value = serde_json::from_str(line).unwrap();
            for l in a["text"].as_str().unwrap().lines() {
                assert!(
                    !(l.ends_with(" .")
                        || l.contains("  ")
                        || l.contains(" ,")
                        || l.contains("()")),
                    "{rules}: `{l}`"
                );
            }
        }
    }
}

/// `synthpipe score` reads gold files leniently (minimal files and PhantomWiki's own data
/// too); on synthpipe's questions it must see every field the schema wrote, so a field
/// renamed in `dataset::Question` cannot read back empty there.
#[test]
fn the_score_gold_reader_sees_every_scored_field_of_the_schema() {
    let scratch = tmpdir("generate", "gold");
    let dir = scratch.join("out");
    let o = synthpipe(&[
        "generate",
        "rules/family.rules",
        "--out",
        dir.to_str().unwrap(),
        "--set",
        "trees=3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let path = dir.join("questions.jsonl");
    let typed: Vec<synthpipe::dataset::Question> = synthpipe::dataset::read_jsonl(&path).unwrap();
    let gold =
        synthpipe::eval::score::parse_gold("questions.jsonl", &std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{} gold errors", e.len()));
    assert!(typed.len() > 100);
    assert_eq!(gold.len(), typed.len());
    for (g, q) in gold.iter().zip(&typed) {
        assert_eq!(g.id, q.id);
        assert_eq!(g.answers, q.answers);
        assert_eq!(g.hops, Some(q.hops as u64));
        assert_eq!(g.difficulty, Some(q.difficulty as u64));
        assert_eq!(g.kind.as_deref(), Some(q.question_type.as_str()));
    }
}
