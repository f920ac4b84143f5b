//! The pipeline commands of the command line: `run`, `status`, `show`, `gc`, `clean`,
//! `verify` and `schema`. Exit codes: 0 success, 1 a stage failed (or `gc`/`clean` could not
//! finish, or `verify` found damage it left in place), 2 an invalid pipeline file or bad
//! usage.

use super::error::{CliError, Code};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::pipeline::load::{self, Pipeline};
use crate::pipeline::run::{self, Options, Outcome, Standing};
use crate::pipeline::store::Store;

fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Prints a coded error with its help line.
fn error(code: Code, message: impl std::fmt::Display, help: &str) {
    CliError::new(code, message.to_string()).help(help).print();
}

/// The store's exclusive lock for `gc` and `clean`; refused while a run holds it.
fn lock_exclusive(
    store: &Store,
    command: Code,
) -> Result<crate::pipeline::store::KeyLock, ExitCode> {
    match store.lock_store(true) {
        Ok(Some(l)) => Ok(l),
        Ok(None) => {
            error(
                command,
                "a run is using the store",
                "try again when it has finished",
            );
            Err(ExitCode::from(1))
        }
        Err(e) => {
            error(
                command,
                format!("cannot lock the store: {e}"),
                "check the store folder's permissions",
            );
            Err(ExitCode::from(1))
        }
    }
}

fn load_or_report(path: &Path) -> Result<Pipeline, ExitCode> {
    load_with_or_report(path, &[])
}

/// Loads `path` with `--param` overrides, or prints its diagnostics.
fn load_with_or_report(path: &Path, params: &[(String, String)]) -> Result<Pipeline, ExitCode> {
    match load::load_with(path, params) {
        Ok(p) => Ok(p),
        Err(f) => {
            super::lang::print_diags(&f.diagnostics, path, &f.text);
            say(&format!(
                "{}: {} error(s); nothing was run",
                path.display(),
                f.diagnostics.len()
            ));
            Err(ExitCode::from(2))
        }
    }
}

fn open_store(flag: Option<&Path>) -> Result<Store, ExitCode> {
    let root = run::store_root(flag);
    Store::open(&root).map_err(|e| {
        CliError::new(
            Code::StoreOpen,
            format!("cannot open the store `{}`: {e}", root.display()),
        )
        .help("check the path and its permissions, or pass --store DIR")
        .print();
        ExitCode::from(2)
    })
}

/// The pipeline, validated, and its store: what `run`, `status` and `show` start from.
fn load_and_open(
    path: &Path,
    params: &[(String, String)],
    store: Option<&Path>,
) -> Result<(Pipeline, Store), ExitCode> {
    let p = load_with_or_report(path, params)?;
    Ok((p, open_store(store)?))
}

pub fn run(
    path: &Path,
    params: &[(String, String)],
    opts: &Options,
    store: Option<&Path>,
) -> ExitCode {
    let (p, store) = match load_and_open(path, params, store) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let started = std::time::Instant::now();
    match run::run(&p, &store, opts, &say) {
        Err(e) => {
            error(Code::Run, e, "see `synthpipe run --help`");
            ExitCode::from(2)
        }
        Ok(reports) => {
            let count =
                |f: &dyn Fn(&Outcome) -> bool| reports.iter().filter(|r| f(&r.outcome)).count();
            let failed = count(&|o| matches!(o, Outcome::Failed(_) | Outcome::Skipped));
            say(&format!(
                "{}: {} built, {} fresh{}{} in {:.2} s",
                p.name,
                count(&|o| *o == Outcome::Built),
                count(&|o| *o == Outcome::Cached),
                if opts.dry_run {
                    format!(", {} would be built", count(&|o| *o == Outcome::WouldBuild))
                } else {
                    String::new()
                },
                if failed > 0 {
                    format!(", {failed} failed or skipped")
                } else {
                    String::new()
                },
                started.elapsed().as_secs_f64()
            ));
            if failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// `run-stage`: one stage on a SLURM compute node. Its lines go to the job's log.
pub fn run_stage(spec: &Path) -> ExitCode {
    match crate::pipeline::slurm::run_job(spec) {
        Ok(said) => {
            say(&format!("run-stage: {said}"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            error(
                Code::Run,
                e,
                "the controller (`synthpipe run --executor slurm`) reports this with the job's log",
            );
            ExitCode::from(1)
        }
    }
}

pub fn status(path: &Path, params: &[(String, String)], store: Option<&Path>) -> ExitCode {
    let (p, store) = match load_and_open(path, params, store) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let lines = run::status(&p, &store);
    let _ = std::io::stdout()
        .lock()
        .write_all(run::render_status(&lines).as_bytes());
    ExitCode::SUCCESS
}

pub fn show(
    path: &Path,
    params: &[(String, String)],
    stage: &str,
    only_path: bool,
    store: Option<&Path>,
) -> ExitCode {
    let (p, store) = match load_and_open(path, params, store) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let (name, output) = match stage.split_once('.') {
        Some((s, o)) => (s, Some(o)),
        None => (stage, None),
    };
    let run::Shown {
        key,
        fresh,
        outputs: outs,
    } = match run::outputs_of(&p, &store, name) {
        Ok(x) => x,
        Err(e) => {
            error(
                Code::Show,
                e,
                "name a stage of the pipeline, or `STAGE.OUTPUT`",
            );
            return ExitCode::from(2);
        }
    };
    if let Some(o) = output
        && !outs.iter().any(|x| x.0 == o)
    {
        let names: Vec<&str> = outs.iter().map(|x| x.0.as_str()).collect();
        error(
            Code::Show,
            format!("stage `{name}` has no output `{o}`"),
            &format!("its outputs are: {}", names.join(", ")),
        );
        return ExitCode::from(2);
    }
    if only_path {
        if !fresh {
            CliError::new(
                Code::Show,
                format!("stage `{name}` is not built with its current inputs"),
            )
            .help(format!(
                "run `synthpipe run {} --stage {name}` first",
                path.display()
            ))
            .print();
            return ExitCode::from(1);
        }
        let key = key.unwrap_or_default();
        let dir = match output {
            Some(o) => store.output_dir(&key).join(o),
            None => store.output_dir(&key),
        };
        println!("{}", dir.display());
        return ExitCode::SUCCESS;
    }
    let mut out = String::new();
    out.push_str(&format!(
        "stage  {name}\nkey    {}\nstate  {}\n",
        key.as_deref()
            .unwrap_or("(not known until its inputs are built)"),
        if fresh {
            "fresh"
        } else {
            "not built with its current inputs"
        }
    ));
    for (o, dir) in &outs {
        if output.is_none_or(|w| w == o) {
            out.push_str(&format!("output {o}: {}\n", dir.display()));
        }
    }
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

pub fn gc(paths: &[std::path::PathBuf], dry_run: bool, store: Option<&Path>) -> ExitCode {
    let mut keep = std::collections::BTreeSet::new();
    let mut pipelines = Vec::new();
    for path in paths {
        match load_or_report(path) {
            Ok(p) => pipelines.push(p),
            Err(c) => return c,
        }
    }
    let store = match open_store(store) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let _lock = match lock_exclusive(&store, Code::Gc) {
        Ok(l) => l,
        Err(c) => return c,
    };
    for p in &pipelines {
        keep.extend(run::live_keys(p, &store));
    }
    let keys = match store.keys() {
        Ok(k) => k,
        Err(e) => {
            error(
                Code::Gc,
                format!("cannot list the store: {e}"),
                "check the store folder's permissions",
            );
            return ExitCode::from(1);
        }
    };
    let (mut n, mut bytes) = (0usize, 0u64);
    for k in keys.iter().filter(|k| !keep.contains(*k)) {
        let size = store.size_of(k);
        if dry_run {
            println!("would remove {k} ({size} bytes)");
        } else if let Err(e) = store.remove(k) {
            error(
                Code::Gc,
                format!("cannot remove {k}: {e}"),
                "check the store folder's permissions",
            );
            return ExitCode::from(1);
        }
        n += 1;
        bytes += size;
    }
    say(&format!(
        "{} {n} store entr{} ({:.1} MiB); kept {}",
        if dry_run { "would remove" } else { "removed" },
        if n == 1 { "y" } else { "ies" },
        bytes as f64 / (1024.0 * 1024.0),
        keep.len()
    ));
    ExitCode::SUCCESS
}

pub fn clean(pipeline: Option<&Path>, stages: &[String], store: Option<&Path>) -> ExitCode {
    let p = match pipeline.map(load_or_report).transpose() {
        Ok(p) => p,
        Err(c) => return c,
    };
    let root = run::store_root(store);
    if p.is_none() && !root.exists() {
        say(&format!(
            "nothing to clean: `{}` does not exist",
            root.display()
        ));
        return ExitCode::SUCCESS;
    }
    let store = match open_store(Some(&root)) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let lock = match lock_exclusive(&store, Code::Clean) {
        Ok(l) => l,
        Err(c) => return c,
    };
    let Some(p) = p else {
        drop(lock);
        return match std::fs::remove_dir_all(&root) {
            Ok(()) => {
                say(&format!("removed the store `{}`", root.display()));
                ExitCode::SUCCESS
            }
            Err(e) => {
                error(
                    Code::Clean,
                    format!("cannot remove `{}`: {e}", root.display()),
                    "check the store folder's permissions",
                );
                ExitCode::from(1)
            }
        };
    };
    let selected = match run::selection(&p, &[]) {
        Ok(s) => s,
        Err(e) => {
            error(Code::Clean, e, "see `synthpipe clean --help`");
            return ExitCode::from(2);
        }
    };
    for s in stages {
        if p.stage(s).is_none() {
            let names: Vec<&str> = p.stages.iter().map(|x| x.name.as_str()).collect();
            error(
                Code::Clean,
                format!("no stage is named `{s}`"),
                &format!("the stages are: {}", names.join(", ")),
            );
            return ExitCode::from(2);
        }
    }
    let lines = run::status(&p, &store);
    let mut n = 0;
    for i in selected {
        let l = &lines[i];
        if !stages.is_empty() && !stages.contains(&l.stage) {
            continue;
        }
        if let (Some(k), Standing::Fresh) = (&l.key, &l.standing) {
            if let Err(e) = store.remove(k) {
                error(
                    Code::Clean,
                    format!("cannot remove {k}: {e}"),
                    "check the store folder's permissions",
                );
                return ExitCode::from(1);
            }
            n += 1;
        }
    }
    say(&format!(
        "removed the outputs of {n} stage(s) of `{}`",
        p.name
    ));
    ExitCode::SUCCESS
}

/// `synthpipe verify [PIPELINE] [--repair]`: rehashes stored outputs against their run
/// records (a pipeline's stages, current and last built, or the whole store) and reports each
/// damaged entry; `--repair` removes them so the next run rebuilds them. Exit 1 when damage
/// is found and left in place.
pub fn verify(
    pipeline: Option<&Path>,
    params: &[(String, String)],
    repair: bool,
    store: Option<&Path>,
) -> ExitCode {
    let p = match pipeline.map(|p| load_with_or_report(p, params)).transpose() {
        Ok(p) => p,
        Err(c) => return c,
    };
    let store = match open_store(store) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let lock = if repair {
        lock_exclusive(&store, Code::Verify).map(Some)
    } else {
        store.lock_store(false).map_err(|e| {
            error(
                Code::Verify,
                format!("cannot lock the store: {e}"),
                "check the store folder's permissions",
            );
            ExitCode::from(1)
        })
    };
    let _lock = match lock {
        Ok(l) => l,
        Err(c) => return c,
    };
    let keys: Vec<String> = match &p {
        Some(p) => {
            let mut keys = run::live_keys(p, &store);
            for s in &p.stages {
                if let Some(st) = store.state(&p.name, &s.name) {
                    keys.insert(st.key);
                }
            }
            keys.into_iter().collect()
        }
        None => match store.recorded_keys() {
            Ok(k) => k,
            Err(e) => {
                error(
                    Code::Verify,
                    format!("cannot list the store: {e}"),
                    "check the store folder's permissions",
                );
                return ExitCode::from(1);
            }
        },
    };
    let started = std::time::Instant::now();
    let (mut entries, mut files, mut bytes, mut damaged) = (0usize, 0usize, 0u64, 0usize);
    for key in &keys {
        let Some((rec, damage)) = store.verify(key) else {
            continue;
        };
        entries += 1;
        if let Some(r) = &rec {
            for o in r.outputs.values() {
                files += o.files.len();
                bytes += o.files.iter().map(|f| f.size).sum::<u64>();
            }
        }
        if damage.is_empty() {
            continue;
        }
        damaged += 1;
        let what = rec.as_ref().map_or_else(
            || "an entry".to_string(),
            |r| format!("stage `{}` of `{}`", r.stage, r.pipeline),
        );
        for d in &damage {
            say(&format!("error[{}]: {what} ({key}): {d}", d.code()));
        }
        if repair {
            match store.remove(key) {
                Ok(()) => say(&format!("  removed {key}; the next run rebuilds it")),
                Err(e) => {
                    error(
                        Code::Verify,
                        format!("cannot remove {key}: {e}"),
                        "check the store folder's permissions",
                    );
                    return ExitCode::from(1);
                }
            }
        } else {
            say("  help: `synthpipe verify --repair` removes it; the next run rebuilds it");
        }
    }
    say(&format!(
        "verified {entries} store entr{} ({files} files, {:.1} MiB) in {:.2} s: {damaged} damaged{}",
        if entries == 1 { "y" } else { "ies" },
        bytes as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64(),
        if repair && damaged > 0 {
            ", removed"
        } else {
            ""
        }
    ));
    if damaged > 0 && !repair {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

pub fn schema(what: &str) -> ExitCode {
    if what != "pipeline" {
        CliError::new(Code::Schema, format!("no schema for `{what}`"))
            .help("try `synthpipe schema pipeline`")
            .print();
        return ExitCode::from(2);
    }
    let text =
        serde_json::to_string_pretty(&crate::stages::spec::json_schema()).unwrap_or_default();
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    ExitCode::SUCCESS
}
