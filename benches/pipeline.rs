//! Pipeline overhead: the shipped pipelines run from an empty store, then rerun with
//! everything cached (what a researcher does all day), each as a fresh `synthpipe run`
//! process. Run with `cargo bench --bench pipeline`; results go in BENCHMARKS.md.

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
}
