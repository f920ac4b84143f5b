//! Front-end speed: parse + check of a 1 MiB rule file and of the shipped domains.
//! Run with `cargo bench --bench check`; results go in BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use synthpipe::lang;

fn time<T>(label: &str, reps: usize, mut f: impl FnMut() -> T) {
    let mut best = f64::INFINITY;
    let mut total = 0.0;
    for _ in 0..reps {
        let t = Instant::now();
        std::hint::black_box(f());
        let s = t.elapsed().as_secs_f64();
        best = best.min(s);
        total += s;
    }
    println!(
        "{label:<44} best {:>9.3} ms   mean {:>9.3} ms   ({reps} runs)",
        best * 1e3,
        total / reps as f64 * 1e3
    );
}

fn main() {
    let big = common::large_rules(1 << 20);
    println!(
        "large rule file: {} bytes, {} lines",
        big.len(),
        big.lines().count()
    );
    time("parse 1 MiB", 5, || {
        lang::syntax::parse(&big).map(|f| f.items.len())
    });
    time("check 1 MiB (parse + check + IR)", 5, || {
        let c = lang::check_source(&big, None);
        assert!(!c.has_errors());
        c.ir.map(|ir| ir.relations.len())
    });
    let ast = lang::syntax::parse(&big).unwrap();
    time("print 1 MiB (printer only)", 5, || {
        lang::fmt::format(&ast, &big).len()
    });
    time("fmt 1 MiB (parse, print, re-parse, compare)", 5, || {
        lang::format_source(&big).map(|s| s.len())
    });
    for f in [
        "rules/family.rules",
        "rules/wiki.rules",
        "rules/academia.rules",
    ] {
        let path = common::root().join(f);
        time(&format!("check {f} (with pool files)"), 20, || {
            lang::check_file(&path).map(|(_, c)| c.has_errors())
        });
    }
}
