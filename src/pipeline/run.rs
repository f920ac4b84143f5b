//! Planning and running a validated pipeline against the store: cache keys, the scheduler
//! (independent stages side by side while their cores fit), builds committed atomically
//! under a per-key lock, `status` with the reason for every rebuild, and the run log.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use serde_json::{Value as Json, json};

use super::load::{Executor, Input, Pipeline, Stage};
use super::slurm;
use super::store::{self, OutputRecord, Record, StageState, Store};
use crate::stages::Io;
use crate::stages::spec::OutputKind;

/// Bumped when the key's encoding changes: every cached output is then rebuilt, on purpose.
pub const KEY_SCHEME: u32 = 1;

/// The key's inputs: everything that can change a stage's outputs, and nothing else (no
/// paths, clocks, thread counts or versions).
pub fn preimage(stage: &Stage, upstream: &BTreeMap<String, String>) -> Option<Json> {
    preimage_on(stage, upstream, crate::model::machine::Machine::detect())
}

/// [`preimage`] as it would be on `machine`.
pub fn preimage_on(
    stage: &Stage,
    upstream: &BTreeMap<String, String>,
    machine: &crate::model::machine::Machine,
) -> Option<Json> {
    let mut inputs = BTreeMap::new();
    for (place, input) in &stage.inputs {
        let digest = match input {
            Input::File { digest, .. } => digest.clone(),
            Input::Stage { stage, output } => upstream.get(&format!("{stage}.{output}"))?.clone(),
        };
        inputs.insert(place.clone(), digest);
    }
    let mut params = stage.params.clone();
    if stage.kind.name == crate::stages::evaluate::KIND.name {
        crate::stages::evaluate::key_params(&mut params);
    }
    Some(json!({
        "scheme": KEY_SCHEME,
        "kind": stage.kind.name,
        "version": stage.kind.version,
        "params": params,
        "inputs": inputs,
        // Facts of the machine that change results; none for the data stages (their output
        // is the same on every machine and thread count). Stages that run a model add the
        // resolved backend, the float type and the device (docs/pipelines.md).
        "env": env(stage, machine),
    }))
}

fn env(stage: &Stage, machine: &crate::model::machine::Machine) -> Json {
    // A served model: what the server says it serves is the model (a server restarted with
    // another model gives another key); the backend and device are the server's business.
    if let Some(url) = stage.params.get("endpoint").and_then(Json::as_str) {
        return json!({ "served_model": served_model_of(stage, url) });
    }
    match stage.params.get("backend").and_then(Json::as_str) {
        Some(backend) => {
            let dtype = stage
                .params
                .get("dtype")
                .and_then(Json::as_str)
                .unwrap_or("f32");
            json!(machine.env(backend, dtype))
        }
        None => json!({}),
    }
}

/// The id the server at `url` reports for the model the stage asks for, asked once per
/// process; where the server cannot say, the reason, so no output is ever stored under a
/// key that does not name the model (the stage then fails with the server's error).
fn served_model_of(stage: &Stage, url: &str) -> String {
    static SEEN: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    let text = |k: &str| stage.params.get(k).and_then(Json::as_str);
    let wanted = text("served_model");
    let key_env = text("api_key_env");
    let api = match text("api") {
        Some("completions") => crate::eval::remote::Api::Completions,
        _ => crate::eval::remote::Api::Chat,
    };
    let memo = format!("{url}\n{wanted:?}\n{key_env:?}\n{api:?}");
    if let Some(id) = SEEN.lock().ok().and_then(|m| m.get(&memo).cloned()) {
        return id;
    }
    let id = crate::eval::remote::Endpoint::new(url, api, key_env, 10.0, 1)
        .and_then(|e| e.served_model(wanted))
        .unwrap_or_else(|e| format!("unknown ({})", e.code.name()));
    if let Ok(mut m) = SEEN.lock() {
        m.insert(memo, id.clone());
    }
    id
}

/// `b3:` hash of the canonical encoding (serde_json with sorted keys: `Json` objects are
/// B-trees, and the pre-image is built from B-tree maps).
/// A stage's settings as `name=value` pairs in the kind's parameter order (inputs as the
/// file or `stage.output` they read), wrapped to `width` columns under the stage's line.
pub fn settings_lines(s: &Stage, width: usize) -> Vec<String> {
    // Inputs, at any depth, as what they read.
    fn resolve(v: &Json, inputs: &BTreeMap<String, Input>) -> Json {
        match v {
            Json::Object(m) => match (m.len(), m.get("input").and_then(Json::as_str)) {
                (1, Some(name)) if inputs.contains_key(name) => Json::String(match &inputs[name] {
                    Input::File { path, .. } => path.display().to_string(),
                    Input::Stage { stage, output } => format!("{stage}.{output}"),
                }),
                _ => Json::Object(
                    m.iter()
                        .map(|(k, x)| (k.clone(), resolve(x, inputs)))
                        .collect(),
                ),
            },
            Json::Array(xs) => match xs.iter().map(Json::as_u64).collect::<Option<Vec<u64>>>() {
                // Seed lists, as the pipeline file writes them: `1..=3,11..=41`.
                Some(ns) if ns.len() > 2 && ns.windows(2).all(|w| w[0] < w[1]) => {
                    Json::String(ranges(&ns))
                }
                _ => Json::Array(xs.iter().map(|x| resolve(x, inputs)).collect()),
            },
            other => other.clone(),
        }
    }
    fn ranges(ns: &[u64]) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut i = 0;
        while i < ns.len() {
            let mut j = i;
            while j + 1 < ns.len() && ns[j + 1] == ns[j] + 1 {
                j += 1;
            }
            parts.push(if j > i {
                format!("{}..={}", ns[i], ns[j])
            } else {
                ns[i].to_string()
            });
            i = j + 1;
        }
        parts.join(",")
    }
    let pairs = s.kind.params.iter().filter_map(|spec| {
        let v = resolve(s.params.get(spec.name)?, &s.inputs);
        let shown = match v {
            Json::Null => return None,
            Json::String(t) => t,
            other => other.to_string(),
        };
        Some(format!("{}={shown}", spec.name))
    });
    let indent = "      ";
    let mut lines = Vec::new();
    let mut line = String::new();
    for pair in pairs {
        if !line.is_empty() && indent.len() + line.len() + 2 + pair.len() > width {
            lines.push(format!("{indent}{line}"));
            line.clear();
        }
        if !line.is_empty() {
            line.push_str("  ");
        }
        line.push_str(&pair);
    }
    if !line.is_empty() {
        lines.push(format!("{indent}{line}"));
    }
    lines
}

pub fn key_of(pre: &Json) -> String {
    format!("b3:{}", blake3::hash(pre.to_string().as_bytes()).to_hex())
}

/// The differences between two pre-images, one line each: `params.set.trees: 4 → 6`.
pub fn diff(old: &Json, new: &Json) -> Vec<String> {
    let mut a = BTreeMap::new();
    let mut b = BTreeMap::new();
    flatten("", old, &mut a);
    flatten("", new, &mut b);
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => out.push(format!("{k}: {} → {}", short(x), short(y))),
            (None, Some(y)) => out.push(format!("{k}: (none) → {}", short(y))),
            (Some(x), None) => out.push(format!("{k}: {} → (none)", short(x))),
            (None, None) => {}
        }
    }
    out
}

fn short(s: &str) -> String {
    match s.strip_prefix("\"b3:") {
        Some(h) => format!("b3:{}…", &h[..h.len().min(12)]),
        None if s.len() > 60 => format!(
            "{}…",
            &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)]
        ),
        None => s.to_string(),
    }
}

fn flatten(prefix: &str, v: &Json, out: &mut BTreeMap<String, String>) {
    match v {
        Json::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.to_string());
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Run only these stages (and what they read).
    pub stages: Vec<String>,
    /// Rebuild these stages even if their outputs are cached.
    pub force: Vec<String>,
    pub force_all: bool,
    pub dry_run: bool,
    /// Cores to use (0: all).
    pub jobs: usize,
    /// Progress bars inside stages (a terminal).
    pub progress: bool,
    /// `--executor`: where stages without their own `executor:` run.
    pub executor: Option<Executor>,
    /// `--param` values the pipeline was loaded with (a SLURM job loads it the same way).
    pub overrides: Vec<(String, String)>,
}

/// How one stage ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Cached,
    Built,
    WouldBuild,
    Failed(String),
    /// Not run because a stage it reads failed.
    Skipped,
}

#[derive(Clone, Debug)]
pub struct StageReport {
    pub stage: String,
    pub key: Option<String>,
    pub outcome: Outcome,
    pub seconds: f64,
    /// In a dry run, the `sbatch` line of a stage that a SLURM job would build.
    pub sbatch: Option<String>,
}

/// Where a run's lines go (stderr for the CLI, a buffer in tests).
pub type Say<'a> = &'a (dyn Fn(&str) + Sync);

/// The stages to run: the selected ones and everything they read, in pipeline order.
pub fn selection(p: &Pipeline, wanted: &[String]) -> Result<Vec<usize>, String> {
    if wanted.is_empty() {
        return Ok((0..p.stages.len()).collect());
    }
    let mut keep = BTreeSet::new();
    let mut todo = Vec::new();
    for w in wanted {
        match p.stage(w) {
            Some(i) => todo.push(i),
            None => {
                let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
                return Err(format!(
                    "no stage is named `{w}`; the stages are: {}",
                    names.join(", ")
                ));
            }
        }
    }
    while let Some(i) = todo.pop() {
        if keep.insert(i) {
            todo.extend(&p.stages[i].deps);
        }
    }
    Ok(keep.into_iter().collect())
}

/// Runs the pipeline. Returns one report per selected stage, in pipeline order.
pub fn run(
    p: &Pipeline,
    store: &Store,
    opts: &Options,
    say: Say,
) -> Result<Vec<StageReport>, String> {
    let selected = selection(p, &opts.stages)?;
    for f in &opts.force {
        if p.stage(f).is_none() {
            return Err(format!("`--force {f}`: no stage is named `{f}`"));
        }
    }
    let _store_lock = store
        .lock_store(false)
        .map_err(|e| format!("cannot lock the store `{}`: {e}", store.root.display()))?;
    store.sweep().map_err(|e| {
        format!(
            "cannot clean up `{}`: {e}",
            store.root.join("tmp").display()
        )
    })?;
    let log = Log::open(store, p)?;
    let jobs = if opts.jobs == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.jobs
    };
    log.event(json!({"event": "run", "pipeline": p.name, "file": p.file.display().to_string(), "stages": selected.iter().map(|&i| &p.stages[i].name).collect::<Vec<_>>(), "dry_run": opts.dry_run, "pid": std::process::id()}));

    let total = selected.len();
    let mut pending: BTreeSet<usize> = selected.iter().copied().collect();
    let mut running: BTreeMap<usize, usize> = BTreeMap::new(); // stage → cores held
    let mut exclusive_running = false;
    let mut digests: BTreeMap<String, String> = BTreeMap::new(); // "stage.output" → digest
    let mut done: BTreeMap<usize, StageReport> = BTreeMap::new();
    let mut counter = 0usize;
    let (tx, rx) = mpsc::channel::<(usize, StageReport, BTreeMap<String, String>)>();
    std::thread::scope(|scope| {
        loop {
            // Stages whose inputs are all done: skip those behind a failure, start the others
            // while cores allow (a stage wanting more cores than exist gets them all, alone).
            let ready: Vec<usize> = pending
                .iter()
                .copied()
                .filter(|&i| {
                    p.stages[i]
                        .deps
                        .iter()
                        .all(|d| done.contains_key(d) || !selected.contains(d))
                })
                .collect();
            for i in ready {
                let s = &p.stages[i];
                let blocked = s.deps.iter().any(|d| {
                    done.get(d)
                        .is_some_and(|r| matches!(r.outcome, Outcome::Failed(_) | Outcome::Skipped))
                });
                if blocked {
                    pending.remove(&i);
                    counter += 1;
                    say(&format!(
                        "[{counter}/{total}] {} ({}): skipped, an input stage failed",
                        s.name, s.kind.name
                    ));
                    done.insert(
                        i,
                        StageReport {
                            stage: s.name.clone(),
                            key: None,
                            outcome: Outcome::Skipped,
                            seconds: 0.0,
                            sbatch: None,
                        },
                    );
                    continue;
                }
                // A SLURM job holds no core here and shares the cluster, not this machine.
                let on_slurm = slurm::executor_of(p, s, opts.executor) == Executor::Slurm;
                let want = match (on_slurm, s.cpus) {
                    (true, _) => 0,
                    (false, 0) => jobs,
                    (false, c) => c.min(jobs),
                };
                let used: usize = running.values().sum();
                let exclusive = s.kind.exclusive && !on_slurm;
                if exclusive_running || (!running.is_empty() && (exclusive || used + want > jobs)) {
                    continue;
                }
                pending.remove(&i);
                running.insert(i, want);
                exclusive_running |= exclusive;
                let tx = tx.clone();
                let upstream = digests.clone();
                let up_keys: BTreeMap<String, String> = done
                    .values()
                    .filter_map(|r| r.key.clone().map(|k| (r.stage.clone(), k)))
                    .collect();
                let forced = opts.force_all || opts.force.contains(&s.name);
                let log = &log;
                scope.spawn(move || {
                    let (report, outs) = if on_slurm {
                        run_stage_slurm(p, s, store, (&upstream, &up_keys), forced, opts, log, say)
                    } else {
                        run_stage(
                            p,
                            s,
                            store,
                            (&upstream, &up_keys),
                            forced,
                            want,
                            opts,
                            log,
                            say,
                        )
                    };
                    let _ = tx.send((i, report, outs));
                });
            }
            if running.is_empty() {
                break;
            }
            let Ok((i, report, outs)) = rx.recv() else {
                break;
            };
            running.remove(&i);
            if p.stages[i].kind.exclusive
                && slurm::executor_of(p, &p.stages[i], opts.executor) == Executor::Local
            {
                exclusive_running = false;
            }
            digests.extend(outs);
            counter += 1;
            let s = &p.stages[i];
            let line = match &report.outcome {
                Outcome::Cached => format!("fresh ({})", short_key(&report.key)),
                Outcome::Built => format!(
                    "built in {:.2} s ({})",
                    report.seconds,
                    short_key(&report.key)
                ),
                Outcome::WouldBuild => "would build".to_string(),
                Outcome::Failed(e) => format!("FAILED after {:.2} s: {e}", report.seconds),
                Outcome::Skipped => "skipped".to_string(),
            };
            say(&format!(
                "[{counter}/{total}] {} ({}): {line}",
                s.name, s.kind.name
            ));
            if let Some(line) = &report.sbatch {
                say(&format!("      {line}"));
            }
            // A dry run is for checking what would run: every setting, defaults included.
            if opts.dry_run {
                for l in settings_lines(s, 96) {
                    say(&l);
                }
            }
            // A report is read in a browser: say where it is.
            if let (Outcome::Cached | Outcome::Built, Some(key)) = (&report.outcome, &report.key) {
                for o in s
                    .kind
                    .outputs
                    .iter()
                    .filter(|o| o.kind == OutputKind::Report)
                {
                    let page = store.output_dir(key).join(o.name).join("report.html");
                    say(&format!("      {}", page.display()));
                }
            }
            done.insert(i, report);
        }
    });
    let reports: Vec<StageReport> = selected.iter().filter_map(|i| done.remove(i)).collect();
    log.event(json!({"event": "end", "built": reports.iter().filter(|r| r.outcome == Outcome::Built).count(), "cached": reports.iter().filter(|r| r.outcome == Outcome::Cached).count(), "failed": reports.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).count()}));
    Ok(reports)
}

fn short_key(k: &Option<String>) -> String {
    k.as_deref()
        .map_or("-".into(), |k| format!("{}…", &k[..k.len().min(15)]))
}

/// Runs (or finds cached) one stage; returns its report and its outputs' digests.
#[allow(clippy::too_many_arguments)]
fn run_stage(
    p: &Pipeline,
    s: &Stage,
    store: &Store,
    (upstream, up_keys): (&BTreeMap<String, String>, &BTreeMap<String, String>),
    forced: bool,
    cores: usize,
    opts: &Options,
    log: &Log,
    say: Say,
) -> (StageReport, BTreeMap<String, String>) {
    let started = Instant::now();
    let report = |key: Option<String>, outcome: Outcome| StageReport {
        stage: s.name.clone(),
        key,
        outcome,
        seconds: started.elapsed().as_secs_f64(),
        sbatch: None,
    };
    let Some(pre) = preimage(s, upstream) else {
        // Only in a dry run: an input stage would be rebuilt, so this key is not known yet.
        return (report(None, Outcome::WouldBuild), BTreeMap::new());
    };
    let key = key_of(&pre);
    if opts.dry_run {
        return match store.record(&key) {
            Some(rec) if !forced => (report(Some(key), Outcome::Cached), outs_of(s, &rec)),
            _ => (report(Some(key), Outcome::WouldBuild), BTreeMap::new()),
        };
    }
    if !forced && let Some(rec) = store.record(&key) {
        finish_stage(p, s, store, &key, &pre, &rec, say);
        log.event(json!({"event": "stage", "stage": s.name, "key": key, "outcome": "cached"}));
        return (report(Some(key), Outcome::Cached), outs_of(s, &rec));
    }
    let note = format!(
        "pid {} (pipeline `{}`, stage `{}`)",
        std::process::id(),
        p.name,
        s.name
    );
    let lock = store.lock_key(&key, &note, |holder| {
        say(&format!(
            "  {}: waiting for {} to finish building it",
            s.name,
            if holder.is_empty() {
                "another run"
            } else {
                holder
            }
        ));
    });
    let _lock = match lock {
        Ok(l) => l,
        Err(e) => {
            return (
                report(
                    Some(key),
                    Outcome::Failed(format!("cannot lock the store: {e}")),
                ),
                BTreeMap::new(),
            );
        }
    };
    // Someone may have built it while we waited.
    if !forced && let Some(rec) = store.record(&key) {
        finish_stage(p, s, store, &key, &pre, &rec, say);
        log.event(json!({"event": "stage", "stage": s.name, "key": key, "outcome": "cached"}));
        return (report(Some(key), Outcome::Cached), outs_of(s, &rec));
    }
    log.event(json!({"event": "start", "stage": s.name, "key": key}));
    match build(s, store, &key, &pre, up_keys, cores, opts, started).map(|rec| Record {
        pipeline: p.name.clone(),
        ..rec
    }) {
        Ok(rec) => {
            finish_stage(p, s, store, &key, &pre, &rec, say);
            log.event(json!({"event": "stage", "stage": s.name, "key": key, "outcome": "built", "seconds": rec.seconds}));
            (report(Some(key), Outcome::Built), outs_of(s, &rec))
        }
        Err(e) => {
            log.event(json!({"event": "stage", "stage": s.name, "key": key, "outcome": "failed", "error": e}));
            (report(Some(key), Outcome::Failed(e)), BTreeMap::new())
        }
    }
}

/// A stage's outputs' digests by `stage.output`, as downstream keys read them.
fn outs_of(s: &Stage, rec: &Record) -> BTreeMap<String, String> {
    rec.outputs
        .iter()
        .map(|(o, r)| (format!("{}.{o}", s.name), r.digest.clone()))
        .collect()
}

/// Runs (or finds cached) one stage as a SLURM job; returns its report and its outputs'
/// digests.
#[allow(clippy::too_many_arguments)]
fn run_stage_slurm(
    p: &Pipeline,
    s: &Stage,
    store: &Store,
    (upstream, up_keys): (&BTreeMap<String, String>, &BTreeMap<String, String>),
    forced: bool,
    opts: &Options,
    log: &Log,
    say: Say,
) -> (StageReport, BTreeMap<String, String>) {
    let started = Instant::now();
    let control = slurm::Controller {
        p,
        store,
        overrides: &opts.overrides,
        say,
    };
    let report = |key: Option<String>, outcome: Outcome, sbatch: Option<String>| StageReport {
        stage: s.name.clone(),
        key,
        outcome,
        seconds: started.elapsed().as_secs_f64(),
        sbatch,
    };
    let Some(pre) = preimage(s, upstream) else {
        let line = control.sbatch_line(s, None);
        return (
            report(None, Outcome::WouldBuild, Some(line)),
            BTreeMap::new(),
        );
    };
    if !forced && let Some((key, rec)) = slurm::cached(store, s, &pre) {
        if !opts.dry_run {
            finish_stage(p, s, store, &key, &rec.preimage, &rec, say);
            log.event(json!({"event": "stage", "stage": s.name, "key": key, "outcome": "cached", "executor": "slurm"}));
        }
        return (report(Some(key), Outcome::Cached, None), outs_of(s, &rec));
    }
    let (request, known) = slurm::request_of(&pre, s);
    if opts.dry_run {
        let line = control.sbatch_line(s, Some(&request));
        return (
            report(known, Outcome::WouldBuild, Some(line)),
            BTreeMap::new(),
        );
    }
    log.event(json!({"event": "start", "stage": s.name, "request": request, "executor": "slurm"}));
    match control.build(s, &pre, up_keys, forced) {
        Ok(key) => {
            let Some(rec) = store.record(&key) else {
                let e = format!(
                    "{}: the output of `{}` ({key}) is not in the store",
                    slurm::LOST,
                    s.name
                );
                return (report(Some(key), Outcome::Failed(e), None), BTreeMap::new());
            };
            finish_stage(p, s, store, &key, &rec.preimage, &rec, say);
            log.event(json!({"event": "stage", "stage": s.name, "key": key, "outcome": "built", "seconds": started.elapsed().as_secs_f64(), "executor": "slurm"}));
            (report(Some(key), Outcome::Built, None), outs_of(s, &rec))
        }
        Err(e) => {
            log.event(json!({"event": "stage", "stage": s.name, "request": request, "outcome": "failed", "error": e, "executor": "slurm"}));
            (report(None, Outcome::Failed(e), None), BTreeMap::new())
        }
    }
}

/// Executes a stage into a temporary folder and commits it. The caller holds the key lock.
#[allow(clippy::too_many_arguments)]
pub(super) fn build(
    s: &Stage,
    store: &Store,
    key: &str,
    pre: &Json,
    up_keys: &BTreeMap<String, String>,
    cores: usize,
    opts: &Options,
    started: Instant,
) -> Result<Record, String> {
    let tmp = store
        .tmp_dir(key)
        .map_err(|e| format!("cannot create a temporary folder: {e}"))?;
    let mut inputs = BTreeMap::new();
    for (place, input) in &s.inputs {
        let path = match input {
            Input::File { path, .. } => path.clone(),
            Input::Stage { stage, output } => {
                let k = up_keys.get(stage).ok_or_else(|| {
                    format!("stage `{stage}` has no output (this is a bug in synthpipe)")
                })?;
                check_input(store, k, stage, output)?;
                store.output_dir(k).join(output)
            }
        };
        inputs.insert(place.clone(), path);
    }
    let outputs: BTreeMap<String, PathBuf> = s
        .kind
        .outputs
        .iter()
        .map(|o| (o.name.to_string(), tmp.join(o.name)))
        .collect();
    let scratch = store.scratch_dir(key);
    let io = Io {
        params: &s.params,
        inputs: &inputs,
        outputs: &outputs,
        scratch: &scratch,
        progress: opts.progress,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cores.max(1))
        .build()
        .map_err(|e| format!("cannot start {cores} threads: {e}"))?;
    // A panic in an executor is a bug; it becomes this stage's error instead of taking the
    // scheduler down with it.
    let result = pool.install(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (s.kind.run)(&io).map_err(|e| e.0)
        }))
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!(
                "internal error: {msg} (this is a bug in synthpipe)"
            ))
        })
    });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let mut recs = BTreeMap::new();
    for name in outputs.keys() {
        let dir = tmp.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let files =
            store::tree(&dir).map_err(|e| format!("cannot read the output `{name}`: {e}"))?;
        recs.insert(
            name.clone(),
            OutputRecord {
                digest: store::tree_digest(&files),
                files,
            },
        );
    }
    let rec = Record {
        key: key.to_string(),
        preimage: pre.clone(),
        outputs: recs,
        pipeline: String::new(),
        stage: s.name.clone(),
        synthpipe_version: env!("CARGO_PKG_VERSION").into(),
        seconds: started.elapsed().as_secs_f64(),
        finished_unix: unix_now(),
    };
    store
        .commit(&tmp, &rec)
        .map_err(|e| format!("cannot commit the output: {e}"))?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(rec)
}

/// Rehashes an upstream output against its run record before a stage reads it: a damaged or
/// tampered cached output must never flow on as if it were what was built.
fn check_input(store: &Store, key: &str, stage: &str, output: &str) -> Result<(), String> {
    let damage = match store.read_record(key) {
        Ok(None) => vec![store::Damage::BadRecord("it is missing".into())],
        Err(d) => vec![d],
        Ok(Some(rec)) => store.verify_output(&rec, output),
    };
    if damage.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = damage
        .iter()
        .map(|d| format!("  error[{}]: {d}", d.code()))
        .collect();
    Err(format!(
        "input `{stage}.{output}` is damaged in the store ({key}):\n{}\n  help: run `synthpipe verify --repair` (with this pipeline) to remove the damaged entries; the next run rebuilds them",
        lines.join("\n")
    ))
}

/// After a hit or a build: remember the key for `status`, and copy to `out` if asked.
fn finish_stage(
    p: &Pipeline,
    s: &Stage,
    store: &Store,
    key: &str,
    pre: &Json,
    _rec: &Record,
    say: Say,
) {
    let st = StageState {
        key: key.to_string(),
        preimage: pre.clone(),
    };
    if let Err(e) = store.set_state(&p.name, &s.name, &st) {
        say(&format!(
            "  warning: cannot record the state of `{}`: {e}",
            s.name
        ));
    }
    if let Some(out) = &s.out
        && let Err(e) = store::copy_tree(&store.output_dir(key), out)
    {
        say(&format!(
            "  warning: cannot copy `{}` to `{}`: {e}",
            s.name,
            out.display()
        ));
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The run log: JSON Lines under `logs/`, one file per run.
struct Log {
    file: Mutex<std::fs::File>,
    started: Instant,
}

impl Log {
    fn open(store: &Store, p: &Pipeline) -> Result<Log, String> {
        let path = store.root.join("logs").join(format!(
            "{}-{}-{}.jsonl",
            unix_now(),
            p.name,
            std::process::id()
        ));
        let file = std::fs::File::create(&path)
            .map_err(|e| format!("cannot create the run log `{}`: {e}", path.display()))?;
        Ok(Log {
            file: Mutex::new(file),
            started: Instant::now(),
        })
    }
    fn event(&self, mut e: Json) {
        e["t"] = json!((self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
        e["unix"] = json!(unix_now());
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{e}");
        }
    }
}

/// A stage's standing for `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    Fresh,
    /// Built before with other key inputs; the lines say what changed.
    Stale(Vec<String>),
    /// Never built here, or its output was removed.
    Missing(String),
}

#[derive(Clone, Debug)]
pub struct StatusLine {
    pub stage: String,
    pub kind: &'static str,
    pub key: Option<String>,
    pub standing: Standing,
}

/// Each stage's standing, and why.
pub fn status(p: &Pipeline, store: &Store) -> Vec<StatusLine> {
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    let mut lines: Vec<StatusLine> = Vec::new();
    for s in &p.stages {
        let last = store.state(&p.name, &s.name);
        let pre = preimage(s, &digests);
        let (key, standing) = match pre {
            Some(pre) => {
                // Built by a SLURM job on another machine: the key the job reported.
                let here = key_of(&pre);
                let (key, rec) = match store.record(&here) {
                    Some(rec) => (here, Some(rec)),
                    None => slurm::cached(store, s, &pre)
                        .map_or((here, None), |(k, rec)| (k, Some(rec))),
                };
                match rec {
                    Some(rec) => {
                        for (o, r) in &rec.outputs {
                            digests.insert(format!("{}.{o}", s.name), r.digest.clone());
                        }
                        (Some(key), Standing::Fresh)
                    }
                    None if matches!(store.read_record(&key), Ok(Some(_))) => (
                        Some(key),
                        Standing::Missing(
                            "its output in the store is damaged (see `synthpipe verify`)".into(),
                        ),
                    ),
                    None => match last {
                        Some(l) if l.key != key => {
                            (Some(key), Standing::Stale(diff(&l.preimage, &pre)))
                        }
                        Some(_) => (
                            Some(key),
                            Standing::Missing("its output was removed from the store".into()),
                        ),
                        None => (Some(key), Standing::Missing("never built".into())),
                    },
                }
            }
            None => {
                let behind: Vec<&str> = s
                    .deps
                    .iter()
                    .map(|&d| p.stages[d].name.as_str())
                    .filter(|d| {
                        lines
                            .iter()
                            .any(|l| l.stage == *d && l.standing != Standing::Fresh)
                    })
                    .collect();
                let why = format!(
                    "input stage {} will be rebuilt",
                    behind
                        .iter()
                        .map(|b| format!("`{b}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                match last {
                    Some(l) => {
                        // Show what else changed too, upstream digests aside.
                        let pre_now = preimage(
                            s,
                            &l.preimage["inputs"]
                                .as_object()
                                .map(|m| {
                                    s.inputs
                                        .iter()
                                        .filter_map(|(place, i)| match i {
                                            Input::Stage { stage, output } => {
                                                m.get(place).and_then(Json::as_str).map(|d| {
                                                    (format!("{stage}.{output}"), d.to_string())
                                                })
                                            }
                                            Input::File { .. } => None,
                                        })
                                        .collect()
                                })
                                .unwrap_or_default(),
                        )
                        .unwrap_or(Json::Null);
                        let mut changes = vec![why];
                        if !pre_now.is_null() {
                            changes.extend(diff(&l.preimage, &pre_now));
                        }
                        (None, Standing::Stale(changes))
                    }
                    None => (None, Standing::Missing(format!("never built; {why}"))),
                }
            }
        };
        lines.push(StatusLine {
            stage: s.name.clone(),
            kind: s.kind.name,
            key,
            standing,
        });
    }
    lines
}

/// `status` as text, one stage per line and one indented line per reason.
pub fn render_status(lines: &[StatusLine]) -> String {
    let width = lines.iter().map(|l| l.stage.len()).max().unwrap_or(0);
    let mut out = String::new();
    for l in lines {
        let (word, why) = match &l.standing {
            Standing::Fresh => ("fresh", Vec::new()),
            Standing::Stale(w) => ("stale", w.clone()),
            Standing::Missing(w) => ("missing", vec![w.clone()]),
        };
        out.push_str(&format!(
            "{:width$}  {:8} {:8} {}\n",
            l.stage,
            l.kind,
            word,
            short_key(&l.key)
        ));
        for w in why {
            out.push_str(&format!("{:width$}    {w}\n", ""));
        }
    }
    out
}

/// Keys the given pipelines' stages have now (as far as they can be known), for `gc`.
pub fn live_keys(p: &Pipeline, store: &Store) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for l in status(p, store) {
        if let Some(k) = l.key {
            keys.insert(k);
        }
    }
    keys
}

/// A stage's key (when known), whether it is fresh, and its output folders.
pub struct Shown {
    pub key: Option<String>,
    pub fresh: bool,
    pub outputs: Vec<(String, PathBuf)>,
}

/// Where a stage's outputs are (if built), for `show`.
pub fn outputs_of(p: &Pipeline, store: &Store, stage: &str) -> Result<Shown, String> {
    let i = p.stage(stage).ok_or_else(|| {
        let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        format!(
            "no stage is named `{stage}`; the stages are: {}",
            names.join(", ")
        )
    })?;
    let line = status(p, store)
        .into_iter()
        .nth(i)
        .expect("one line per stage");
    let s = &p.stages[i];
    let key = line.key.clone();
    let fresh = line.standing == Standing::Fresh;
    let outs = s
        .kind
        .outputs
        .iter()
        .map(|o| {
            let dir = key
                .as_deref()
                .map_or_else(PathBuf::new, |k| store.output_dir(k).join(o.name));
            (o.name.to_string(), dir)
        })
        .collect();
    Ok(Shown {
        key,
        fresh,
        outputs: outs,
    })
}

/// The store folder: `--store`, else `$SYNTHPIPE_STORE`, else `.synthpipe` here.
pub fn store_root(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("SYNTHPIPE_STORE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".synthpipe"))
}
