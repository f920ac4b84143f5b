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
    let (a, b, c) = (
        tmpdir("generate", "a").join("out"),
        tmpdir("generate", "b").join("out"),
        tmpdir("generate", "c").join("out"),
    );
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
        let dir = tmpdir("generate", &format!("threads{threads}")).join("out");
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
        outs.push(dir);
    }
    for f in FILES {
        assert!(
            read(&outs[0], f) == read(&outs[1], f),
            "{f} differs between 1 and 2 threads"
        );
    }
    let m: serde_json::Value = serde_json::from_str(&read(&outs[0], "manifest.json")).unwrap();
    assert!(m["counts"]["questions"].as_u64().unwrap() > 500, "{m}");
    assert!(
        m["histograms"]["answerable"]["unanswerable"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn bad_parameters_and_rules_exit_2_and_write_nothing() {
    let out = tmpdir("generate", "bad").join("out");
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
