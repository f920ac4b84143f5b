//! Mutation fuzzing of the front end: thousands of corrupted rule files must each be accepted
//! or rejected with coded, well-placed diagnostics — never a panic.

mod common;

use common::{Rng, root, rule_files};
use synthpipe::lang::{self, diag};

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    ";",
    ",",
    ":",
    ":=",
    "|",
    "..",
    ".",
    "=",
    "!=",
    "<",
    "\"",
    "$",
    "//",
    "not ",
    "relation ",
    "entity ",
    "param ",
    "pool ",
    "bank ",
    "say ",
    "when ",
    "each ",
    "generate ",
    "answer ",
    "template ",
    "chain ",
    "x",
    "person",
    "parent",
    "gender",
    "female",
    "1",
    "-1",
    "99999999999999999999",
    "0.5",
    "2020-02-30",
    "{x}",
    "{",
    "}}",
    "é",
    "\u{0}",
    "\n",
];

fn mutate(src: &str, rng: &mut Rng) -> String {
    let mut b: Vec<u8> = src.as_bytes().to_vec();
    for _ in 0..1 + rng.below(3) {
        let pos = rng.below(b.len() + 1);
        match rng.below(5) {
            0 if !b.is_empty() => {
                let len = 1 + rng.below(8);
                let end = (pos + len).min(b.len());
                b.drain(pos.min(end)..end);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                b.splice(pos..pos, t.bytes());
            }
            2 if pos < b.len() => b[pos] = (rng.next() & 0xff) as u8,
            3 => {
                // Replace a whole word with a token.
                let start = pos.min(b.len());
                let end = b[start..]
                    .iter()
                    .position(|c| !c.is_ascii_alphanumeric() && *c != b'_')
                    .map_or(b.len(), |n| start + n);
                let t = TOKENS[rng.below(TOKENS.len())];
                b.splice(start..end, t.bytes());
            }
            _ => {
                // Duplicate a slice (duplicate definitions, repeated roles).
                let len = rng.below(200);
                let end = (pos + len).min(b.len());
                let copy = b[pos.min(end)..end].to_vec();
                b.splice(end..end, copy);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

#[test]
fn thousands_of_mutations_never_panic_and_always_explain() {
    let mut files = rule_files("rules");
    files.extend(rule_files("tests/grammar/ok"));
    let mut rejected = 0;
    let mut total = 0;
    for (fi, path) in files.iter().enumerate() {
        let src = std::fs::read_to_string(path).unwrap();
        let base = path.parent().unwrap();
        let mut rng = Rng(0x5eed + fi as u64);
        for _ in 0..800 {
            let m = mutate(&src, &mut rng);
            let checked = lang::check_source(&m, Some(base));
            total += 1;
            if checked.has_errors() {
                rejected += 1;
                assert!(checked.ir.is_none());
            }
            for d in &checked.diagnostics {
                assert!(
                    d.span.start <= d.span.end && d.span.end <= m.len(),
                    "span out of range for {d:?}"
                );
                assert!(
                    m.is_char_boundary(d.span.start) && m.is_char_boundary(d.span.end),
                    "span splits a character: {d:?}"
                );
                assert!(d.code.full().starts_with("synthpipe::rules::"));
                assert!(d.help.is_some(), "no help for {d:?}");
            }
            // Rendering must not panic either, and shows the code.
            let out = diag::render_plain(&checked.diagnostics, "m.rules", &m, 100);
            if let Some(d) = checked.diagnostics.first() {
                assert!(out.contains(&d.code.full()));
            }
            // Whatever parses must also format and round-trip.
            if lang::syntax::parse(&m).is_ok() {
                let f = lang::format_source(&m)
                    .unwrap_or_else(|d| panic!("fmt failed on a parsable file: {d:?}\n{m}"));
                assert_eq!(lang::format_source(&f).unwrap(), f);
            }
        }
    }
    assert!(total >= 3000, "{total}");
    assert!(
        rejected * 2 > total,
        "most mutations should be rejected ({rejected}/{total})"
    );
}

#[test]
fn the_binary_never_crashes_on_mutated_files() {
    let src = std::fs::read_to_string(root().join("rules/family.rules")).unwrap();
    let dir = std::env::temp_dir().join(format!("synthpipe-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("pools")).unwrap();
    for entry in std::fs::read_dir(root().join("rules/pools")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join("pools").join(p.file_name().unwrap())).unwrap();
        }
    }
    let mut rng = Rng(42);
    for i in 0..40 {
        let m = mutate(&src, &mut rng);
        let f = dir.join(format!("m{i}.rules"));
        std::fs::write(&f, &m).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_synthpipe"))
            .arg("check")
            .arg(&f)
            .output()
            .unwrap();
        let code = out.status.code().expect("killed by a signal");
        assert!(code == 0 || code == 2, "exit {code}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        if code == 2 {
            assert!(
                stderr.contains("synthpipe::rules::"),
                "no code in: {stderr}"
            );
            assert!(
                stderr.contains(&format!("m{i}.rules:")),
                "no location in: {stderr}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
