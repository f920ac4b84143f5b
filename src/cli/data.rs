//! The data command: `generate` (a rule file → a dataset folder, one universe per seed).

use std::path::Path;
use std::process::ExitCode;

use super::lang::{print_diags, read_error};
use crate::lang;

/// Exit 0 after writing the files, 2 on a rule file with errors, bad parameters or an
/// unwritable output folder.
pub fn generate(
    rules: &Path,
    out: &Path,
    seeds: &[u64],
    set: &[(String, String)],
    derived: bool,
    threads: Option<u16>,
    stats: bool,
) -> ExitCode {
    let started = std::time::Instant::now();
    use crate::universe::{GenError, dataset, params::Params};
    let (text, checked) = match lang::check_file(rules) {
        Ok(x) => x,
        Err(e) => {
            read_error(rules, &e);
            return ExitCode::from(2);
        }
    };
    print_diags(&checked.diagnostics, rules, &text);
    let Some(ir) = checked.ir else {
        eprintln!(
            "generate: `{}` has errors; nothing written",
            rules.display()
        );
        return ExitCode::from(2);
    };
    let opts = dataset::Options {
        derived,
        progress: true,
    };
    let run = || {
        let params = Params::resolve(&ir, set)?;
        dataset::generate(&ir, &params, seeds, out, &opts)
    };
    let result = match threads {
        None => run(),
        Some(n) => match rayon::ThreadPoolBuilder::new()
            .num_threads(n.into())
            .build()
        {
            Ok(pool) => pool.install(run),
            Err(e) => Err(GenError::Invalid(format!("cannot start {n} threads: {e}"))),
        },
    };
    let generated = match result {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{}", e.render());
            return ExitCode::from(2);
        }
    };
    let c = &generated.manifest.counts;
    for w in c.warnings() {
        eprintln!("{w}");
    }
    eprintln!(
        "wrote {}: {} entities, {} facts, {} articles, {} questions from {} template variants",
        out.display(),
        c.entities.values().sum::<usize>(),
        c.facts.values().sum::<usize>(),
        c.articles,
        c.questions,
        c.template_variants
    );
    if stats {
        let stages: serde_json::Map<String, serde_json::Value> = generated
            .seconds
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        let line = serde_json::json!({
            "seconds": started.elapsed().as_secs_f64(),
            "stages": stages,
            "peak_rss_mib": crate::util::peak_rss_mib(),
            "entities": c.entities.values().sum::<usize>(),
            "questions": c.questions,
        });
        println!("{line}");
    }
    ExitCode::SUCCESS
}
