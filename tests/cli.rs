//! The `check` and `fmt` commands as a user runs them: exit codes, output, files on disk.

mod common;

use common::{describe, root, synthpipe, tmpdir};

#[test]
fn check_accepts_the_shipped_rules() {
    let o = synthpipe(
        &[
            "check",
            "rules/family.rules",
            "rules/wiki.rules",
            "rules/academia.rules",
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(o.stderr.is_empty(), "{}", describe(&o));
}

#[test]
fn check_reports_all_errors_and_exits_2() {
    let d = tmpdir("cli", "errors");
    let f = d.join("bad.rules");
    std::fs::write(
        &f,
        "entity person count 3 { name: key pool nmes; }\npool names = [\"a\"];\nrelation r(a: person, b: persn) { generate random_graph(mean_degree: 1); }\n",
    )
    .unwrap();
    let o = synthpipe(&["check", f.to_str().unwrap()], &d);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "synthpipe::rules::unknown_pool",
        "did you mean `names`?",
        "synthpipe::rules::unknown_type",
        "did you mean `person`?",
        "bad.rules:1:",
        "2 error(s)",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
}

#[test]
fn check_warnings_do_not_fail() {
    let d = tmpdir("cli", "warn");
    let f = d.join("w.rules");
    std::fs::write(
        &f,
        "pool n = [\"a\", \"b\"];\nentity t count 2 { name: key pool n; }\n\
         relation r(a: t, b: t) { generate random_graph(mean_degree: 1); }\n\
         relation s(a: t, b: t) := r(a: a, b: b), r(a: b, b: lonely);\n",
    )
    .unwrap();
    let o = synthpipe(&["check", "w.rules"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("synthpipe::rules::singleton_variable"));
}

#[test]
fn check_missing_file_is_a_clear_error() {
    let o = synthpipe(&["check", "no/such.rules"], &root());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot read `no/such.rules`"),
        "{}",
        describe(&o)
    );
}

#[test]
fn fmt_rewrites_in_place_keeping_comments() {
    let d = tmpdir("cli", "fmt");
    let f = d.join("f.rules");
    let messy = "// header\npool n=[\"a\",\"b\"];entity t count 2{name:key pool n; // the key\n}\n";
    std::fs::write(&f, messy).unwrap();
    let o = synthpipe(&["fmt", "--check", "f.rules"], &d);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("would reformat f.rules"));
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        messy,
        "--check must not write"
    );
    let o = synthpipe(&["fmt", "f.rules"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let out = std::fs::read_to_string(&f).unwrap();
    assert_eq!(
        out,
        "// header\npool n = [\"a\", \"b\"];\n\nentity t count 2 {\n    name: key pool n; // the key\n}\n"
    );
    let o = synthpipe(&["fmt", "--check", "f.rules"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}

#[test]
fn fmt_refuses_a_file_with_a_syntax_error() {
    let d = tmpdir("cli", "fmt-bad");
    let f = d.join("b.rules");
    std::fs::write(&f, "entity t { name key pool n; }").unwrap();
    let o = synthpipe(&["fmt", "b.rules"], &d);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("synthpipe::rules::syntax"));
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "entity t { name key pool n; }"
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let o = synthpipe(&["check"], &root());
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let o = synthpipe(&["frobnicate"], &root());
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
}
