//! Generation speed and memory next to PhantomWiki's measured numbers (DESIGN.md §8): the
//! family domain at the same universe sizes, question depths and question counts, each run
//! as a fresh `synthpipe generate --stats` process so peak memory is that run's own.
//! Run with `cargo bench --bench generate` (`-- --quick` skips the million-person row);
//! results go in BENCHMARKS.md.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

struct Row {
    label: &'static str,
    /// PhantomWiki 1.0.3 on 2 cores: wall time and peak memory, as measured.
    phantomwiki: &'static str,
    set: &'static [&'static str],
    reps: usize,
}

const ROWS: &[Row] = &[
    Row {
        label: "51 people, depth 20, 10/template",
        phantomwiki: "84 s, 670 MiB",
        set: &["trees=1", "max_tree_size=51"],
        reps: 5,
    },
    Row {
        label: "51 people, depth 20, easy, 10/template",
        phantomwiki: "35 s, 412 MiB",
        set: &["trees=1", "max_tree_size=51", "relations=easy"],
        reps: 5,
    },
    Row {
        label: "500 people, depth 15, 10/template",
        phantomwiki: "81 s, 607 MiB (503 people)",
        set: &["trees=10", "question_depth=15"],
        reps: 5,
    },
    Row {
        label: "500 people, depth 20, 10/template",
        phantomwiki: "> 600 s, killed, 2.9 GiB (503 people)",
        set: &["trees=10"],
        reps: 5,
    },
    Row {
        label: "5,000 people, depth 10, 100/template",
        phantomwiki: "65 s, 285 MiB (5,030 people)",
        set: &[
            "trees=100",
            "question_depth=10",
            "questions_per_template=100",
        ],
        reps: 3,
    },
    Row {
        label: "5,000 people, depth 20, 10/template",
        phantomwiki: "—",
        set: &["trees=100"],
        reps: 3,
    },
    Row {
        label: "100,000 people, depth 6, 10/template",
        phantomwiki: "206 s, 680 MiB (100,709 people)",
        set: &["trees=2000", "question_depth=6"],
        reps: 1,
    },
    Row {
        label: "1,000,000 people, depth 20, 2,000/template",
        phantomwiki: "—",
        set: &["trees=20000", "questions_per_template=2000"],
        reps: 1,
    },
];

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let exe = env!("CARGO_BIN_EXE_synthpipe");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("synthpipe-bench-{}", std::process::id()));
    println!(
        "| setting (family.rules, seed 0) | people | questions | synthpipe best wall | mean | peak memory | PhantomWiki |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for row in ROWS {
        if quick && row.label.starts_with("1,000,000") {
            continue;
        }
        let mut best = f64::INFINITY;
        let mut total = 0.0;
        let mut stats = serde_json::Value::Null;
        for _ in 0..row.reps {
            let _ = std::fs::remove_dir_all(&out);
            let mut cmd = Command::new(exe);
            cmd.current_dir(&root)
                .args(["generate", "rules/family.rules", "--out"])
                .arg(&out)
                .arg("--stats");
            for s in row.set {
                cmd.args(["--set", s]);
            }
            let t = Instant::now();
            let o = cmd.output().expect("run synthpipe");
            let s = t.elapsed().as_secs_f64();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            stats = serde_json::from_slice(&o.stdout).expect("--stats prints JSON");
            best = best.min(s);
            total += s;
        }
        println!(
            "| {} | {} | {} | {:.3} s | {:.3} s | {:.0} MiB | {} |",
            row.label,
            stats["entities"],
            stats["questions"],
            best,
            total / row.reps as f64,
            stats["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            row.phantomwiki
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
