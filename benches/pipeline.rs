//! Pipeline overhead: the shipped pipelines run from an empty store, then rerun with
//! everything cached (what a researcher does all day), each as a fresh `synthpipe run`
//! process; with `-- --million`, also what rehashing a stage's input against its run record
//! costs on the 1,000,000-person dataset (`synthpipe verify`, the same check `run` makes
//! before a stage reads an upstream output). Run with `cargo bench --bench pipeline`;
//! results go in BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn run(bin: &Path, root: &Path, pipeline: &str, params: &[&str], store: &Path) -> f64 {
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["run", pipeline, "--store"])
        .arg(store)
        .args(params.iter().flat_map(|p| ["--param", p]))
        .current_dir(root)
        .output()
        .expect("synthpipe runs");
    assert!(
        out.status.success(),
        "{pipeline}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("target/release/synthpipe");
    assert!(
        bin.is_file(),
        "build the release binary first: cargo build --release"
    );
    println!("| pipeline | stages | first run (empty store) | rerun, all cached (best of 5) |");
    println!("|---|---:|---:|---:|");
    // The quickstart's short variant (CI's): the full one trains for minutes, which is
    // BENCHMARKS.md's training section, not pipeline overhead.
    let short = ["train=4..=40", "test=1..=3", "sft_steps=20", "grpo_steps=4"];
    for (pipeline, params, stages) in [
        ("pipelines/quickstart.yaml", &short[..], 7),
        ("pipelines/phantomwiki-paper.yaml", &[][..], 2),
    ] {
        let store = std::env::temp_dir().join(format!("synthpipe-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&store);
        let first = run(&bin, &root, pipeline, params, &store);
        let rerun = (0..5)
            .map(|_| run(&bin, &root, pipeline, params, &store))
            .fold(f64::INFINITY, f64::min);
        let _ = std::fs::remove_dir_all(&store);
        let params = params
            .iter()
            .map(|p| format!(" --param {p}"))
            .collect::<String>();
        println!("| `{pipeline}`{params} | {stages} | {first:.3} s | {rerun:.3} s |");
    }
    if std::env::args().any(|a| a == "--million") {
        integrity(&bin, &root);
    }
}

/// Generates the million-person dataset through a pipeline, then times `synthpipe verify`
/// (a blake3 rehash of every output file) three times; the best is the cost of the input
/// check a downstream stage pays before reading it.
fn integrity(bin: &Path, root: &Path) {
    let dir = std::env::temp_dir().join(format!("synthpipe-bench-verify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pipeline = dir.join("million.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: million\nstages:\n  people:\n    kind: generate\n    rules: {}\n    set: {{trees: 20000, questions_per_template: 2000}}\n",
            root.join("rules/family.rules").display()
        ),
    )
    .unwrap();
    let store = dir.join("store");
    let p = pipeline.to_str().unwrap();
    let generate = run(bin, root, p, &[], &store);
    let bytes: u64 = walk(&store.join("outputs"));
    let verify = (0..3)
        .map(|_| {
            let t = Instant::now();
            let out = Command::new(bin)
                .args(["verify", p, "--store"])
                .arg(&store)
                .output()
                .expect("synthpipe verify runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    // What a user would otherwise run to check the files: coreutils' sha256sum over the same
    // files (no run records to compare with, only digests to print).
    let files = list(&store.join("outputs"));
    let sha = (0..3)
        .map(|_| {
            let t = Instant::now();
            let out = Command::new("sha256sum")
                .args(&files)
                .output()
                .expect("sha256sum runs");
            assert!(out.status.success());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    let gb = bytes as f64 / 1e9;
    println!();
    println!(
        "| dataset | bytes | generate stage | `synthpipe verify` (best of 3) | `sha256sum` of the same files (best of 3) |"
    );
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| family.rules, 1,000,000 people, 108,000 questions | {gb:.2} GB | {generate:.1} s | {verify:.2} s ({:.2} GB/s) | {sha:.2} s ({:.2} GB/s) |",
        gb / verify,
        gb / sha
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn list(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(list(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        e.metadata().map_or(0, |m| m.len())
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
