//! The `score` command as a user runs it: JSON numbers, collected errors, exit codes,
//! and no crash on arbitrary predictions files.

mod common;

use common::{Rng, describe, synthpipe, tmpdir};

const GOLD: &str = concat!(
    r#"{"id":"q1","question":"Who is the mother of Ann?","answers":["Beth"],"hops":1,"difficulty":1,"type":"mother"}"#,
    "\n",
    r#"{"id":"q2","answers":["Carl","Dora"],"hops":2,"difficulty":3,"type":"sibling"}"#,
    "\n\n",
    r#"{"id":"q3","answers":[],"hops":2,"type":"sibling"}"#,
    "\n",
    r#"{"id":"q4","answers":["Eve"],"hops":3}"#,
    "\n"
);

fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("no number at {path:?} in {v:#}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn scores_a_correct_run_as_json() {
    let d = tmpdir("score", "ok");
    std::fs::write(d.join("gold.jsonl"), GOLD).unwrap();
    // q1 exact (case/space differ), q2 half right, q3 empty/empty, q4 missing.
    std::fs::write(
        d.join("pred.jsonl"),
        concat!(
            r#"{"id":"q1","prediction":"  beth "}"#,
            "\n",
            r#"{"id":"q2","prediction":"Carl, Zed, carl"}"#,
            "\n",
            r#"{"id":"q3","answers":[]}"#,
            "\r\n"
        ),
    )
    .unwrap();
    let args = [
        "score",
        "--gold",
        "gold.jsonl",
        "--predictions",
        "pred.jsonl",
    ];
    let o = synthpipe(&[&args[..], &["--json"]].concat(), &d);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["overall"]["questions"], 4, "{v:#}");
    assert_eq!(v["overall"]["missing"], 1, "{v:#}");
    // Per question: em 1,0,1,0; p 1,.5,1,0; r 1,.5,1,0; f1 1,.5,1,0.
    assert!(close(num(&v, &["overall", "em"]), 0.5), "{v:#}");
    assert!(close(num(&v, &["overall", "precision"]), 0.625), "{v:#}");
    assert!(close(num(&v, &["overall", "recall"]), 0.625), "{v:#}");
    assert!(close(num(&v, &["overall", "f1"]), 0.625), "{v:#}");
    // hops=2 holds q2 (0.5) and q3 (1); hops=3 only the missing q4.
    assert_eq!(v["by_hops"]["2"]["questions"], 2, "{v:#}");
    assert!(close(num(&v, &["by_hops", "2", "f1"]), 0.75), "{v:#}");
    assert_eq!(v["by_hops"]["3"]["missing"], 1, "{v:#}");
    assert!(close(num(&v, &["by_hops", "3", "em"]), 0.0), "{v:#}");
    assert!(
        close(num(&v, &["by_difficulty", "3", "recall"]), 0.5),
        "{v:#}"
    );
    assert_eq!(v["by_type"]["sibling"]["questions"], 2, "{v:#}");
    assert!(v["by_type"].get("null").is_none(), "{v:#}");

    let o = synthpipe(&args, &d);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("overall") && table.contains("0.625") && table.contains("hops=3"),
        "{}",
        describe(&o)
    );
    assert!(o.stderr.is_empty(), "{}", describe(&o));
}

#[test]
fn reports_every_bad_line_and_exits_2() {
    let d = tmpdir("score", "bad");
    std::fs::write(
        d.join("gold.jsonl"),
        format!("{GOLD}{}\n", r#"{"id":"q1","answers":["x"]}"#),
    )
    .unwrap();
    std::fs::write(
        d.join("pred.jsonl"),
        concat!(
            r#"{"id":"q1","prediction":"beth"}"#,
            "\n",
            "{\"id\": \"q2\", \"prediction\": \n", // line 2: truncated JSON
            r#"{"id":"q9","prediction":"x"}"#,     // line 3: unknown id
            "\n",
            r#"{"id":"q1","answers":["beth"]}"#, // line 4: duplicate
            "\n",
            r#"{"id":"q3"}"#, // line 5: no prediction field
            "\n\n",
            r#"{"id":4,"prediction":"x"}"#, // line 7: id not a string
            "\n",
            "\u{1b}[31m\u{ff}\n", // line 8: not JSON, terminal escape
        ),
    )
    .unwrap();
    let o = synthpipe(
        &[
            "score",
            "--gold",
            "gold.jsonl",
            "--predictions",
            "pred.jsonl",
        ],
        &d,
    );
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(o.stdout.is_empty(), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for line in [2, 3, 4, 5, 7, 8] {
        assert!(
            err.contains(&format!("pred.jsonl:{line}:")),
            "line {line} not reported\n{}",
            describe(&o)
        );
    }
    // The duplicate in gold (its 6th line) is reported too, in the same run.
    assert!(err.contains("gold.jsonl:6:"), "{}", describe(&o));
    for code in [
        "synthpipe::score::bad_record",
        "synthpipe::score::unknown_id",
        "synthpipe::score::duplicate_id",
    ] {
        assert!(err.contains(code), "{code} missing\n{}", describe(&o));
    }
    assert!(err.contains("score failed: 7 error(s)"), "{}", describe(&o));
    assert!(
        !err.contains('\u{1b}'),
        "raw escape echoed\n{}",
        describe(&o)
    );
}

#[test]
fn unreadable_file_exits_2() {
    let d = tmpdir("score", "missing");
    std::fs::write(d.join("gold.jsonl"), GOLD).unwrap();
    let o = synthpipe(
        &[
            "score",
            "--gold",
            "gold.jsonl",
            "--predictions",
            "nope.jsonl",
        ],
        &d,
    );
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("synthpipe::score::read"), "{}", describe(&o));
    assert!(err.contains("nope.jsonl"), "{}", describe(&o));
}

/// Random and mutated predictions files never crash the binary: exit 0 or 2, no panic.
#[test]
fn never_crashes_on_arbitrary_predictions() {
    let d = tmpdir("score", "fuzz");
    std::fs::write(d.join("gold.jsonl"), GOLD).unwrap();
    let valid = concat!(
        r#"{"id":"q1","prediction":"Beth, ü"}"#,
        "\n",
        r#"{"id":"q2","answers":["carl","dora"]}"#,
        "\n",
        r#"{"id":"q3","prediction":""}"#,
        "\n"
    )
    .as_bytes();
    let alphabet = b"{}[]\":,\\ \n\r\tidpredictionanswersq1234-.eE\xC3\xBC\xFF\x00\x1b";
    let mut rng = Rng(0xC0FFEE);
    // Each case starts the binary, so keep the count modest; the library-level fuzz
    // test in src/score.rs covers many more inputs.
    for case in 0..60 {
        let bytes: Vec<u8> = match case % 4 {
            0 => valid[..rng.below(valid.len() + 1)].to_vec(),
            1 => {
                let mut b = valid.to_vec();
                for _ in 0..=rng.below(6) {
                    let i = rng.below(b.len());
                    b[i] = alphabet[rng.below(alphabet.len())];
                }
                b
            }
            2 => (0..rng.below(400)).map(|_| rng.next() as u8).collect(),
            _ => (0..rng.below(400))
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect(),
        };
        std::fs::write(d.join("pred.jsonl"), &bytes).unwrap();
        let o = synthpipe(
            &[
                "score",
                "--gold",
                "gold.jsonl",
                "--predictions",
                "pred.jsonl",
                "--json",
            ],
            &d,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            matches!(o.status.code(), Some(0 | 2)) && !err.contains("panicked"),
            "case {case}, input {bytes:?}\n{}",
            describe(&o)
        );
        if o.status.code() == Some(0) {
            assert!(
                serde_json::from_slice::<serde_json::Value>(&o.stdout).is_ok(),
                "case {case}: stdout is not JSON\n{}",
                describe(&o)
            );
        }
    }
}
