//! The SLURM executor: a stage whose output is missing becomes an `sbatch` job that runs
//! `synthpipe run-stage` against the same store on a shared filesystem. The controller waits
//! with bounded polling, adopts a job a killed controller left running, and never builds a
//! request twice: its lock is a file created exclusively (works on NFS, unlike `flock`),
//! holding the job id and a heartbeat, taken over only when stale.
//!
//! A stage that runs a model has the machine in its key (docs/pipelines.md), and the login
//! node is not the compute node: the controller knows the *request* (the key's inputs with
//! the machine replaced by the resources asked for) and learns the key from the job, which
//! leaves it in `jobs/REQUEST.key`. Data stages' keys do not depend on the machine, so their
//! request is their key.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::load::{Executor, Pipeline, Stage};
use super::run::{self, Say, key_of, preimage};
use super::store::{self, Store};
use crate::util::fsio::write_atomic;

/// Error codes of the executor (docs/cluster.md lists them).
pub const NO_SLURM: &str = "synthpipe::slurm::no_slurm";
pub const SUBMIT: &str = "synthpipe::slurm::submit";
pub const LOST: &str = "synthpipe::slurm::lost";
pub const CHANGED: &str = "synthpipe::slurm::changed";

/// A lock whose heartbeat is older than this belongs to a dead controller (a live one beats
/// at every poll, at most `POLL_MAX` apart).
const STALE: Duration = Duration::from_secs(90);

/// The longest wait between two polls of a job (`SYNTHPIPE_SLURM_POLL`, seconds, lowers it).
fn poll_max() -> Duration {
    let secs = std::env::var("SYNTHPIPE_SLURM_POLL")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(10.0)
        .min(30.0);
    Duration::from_secs_f64(secs)
}

/// Which executor runs `s`: its own `executor:`, else `--executor`, else the file's.
pub fn executor_of(p: &Pipeline, s: &Stage, flag: Option<Executor>) -> Executor {
    s.executor
        .or(flag)
        .or(p.executor)
        .unwrap_or(Executor::Local)
}

/// The resources a stage's job asks for, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ask {
    pub cpus: usize,
    pub gpus: usize,
    pub mem: Option<String>,
    pub time: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub extra_args: Vec<String>,
}

pub fn ask(s: &Stage) -> Ask {
    let r = &s.resources;
    let runs_model = s.params.get("endpoint").is_none_or(Json::is_null)
        && s.params
            .get("backend")
            .and_then(Json::as_str)
            .is_some_and(|b| b != "flex");
    Ask {
        cpus: r.cpus.unwrap_or(if s.cpus > 0 { s.cpus } else { 4 }),
        gpus: r.gpus.unwrap_or(usize::from(runs_model)),
        mem: r.mem.clone(),
        time: r.time.clone(),
        partition: r.partition.clone(),
        account: r.account.clone(),
        extra_args: r.extra_args.clone(),
    }
}

/// The request key of a stage's pre-image, and its key where the key does not depend on the
/// machine that builds it.
pub fn request_of(pre: &Json, s: &Stage) -> (String, Option<String>) {
    let machine_free = pre["env"].get("device").is_none();
    if machine_free {
        let k = key_of(pre);
        return (k.clone(), Some(k));
    }
    let a = ask(s);
    let mut r = pre.clone();
    // What decides the node (and so the machine in the key): where it runs and on what.
    r["env"] = json!({
        "slurm": {
            "partition": a.partition,
            "gpus": a.gpus,
            "extra_args": a.extra_args,
            "backend": pre["env"]["backend"],
            "dtype": pre["env"]["dtype"],
        }
    });
    (key_of(&r), None)
}

fn memo_path(store: &Store, request: &str) -> PathBuf {
    store
        .root
        .join("jobs")
        .join(format!("{}.key", store::hex(request)))
}

/// The key a job built for `request`, as it left it.
fn memo(store: &Store, request: &str) -> Option<String> {
    let k = std::fs::read_to_string(memo_path(store, request)).ok()?;
    let k = k.trim();
    k.starts_with("b3:").then(|| k.to_string())
}

/// The key a job left for `request`, when its output is in the store.
fn built(store: &Store, request: &str) -> Option<String> {
    memo(store, request).filter(|k| store.record(k).is_some())
}

/// The key of this stage's output in the store and its record, when a job (or a local run,
/// for a data stage) has built it.
pub fn cached(store: &Store, s: &Stage, pre: &Json) -> Option<(String, store::Record)> {
    let (request, known) = request_of(pre, s);
    let key = known.or_else(|| memo(store, &request))?;
    store.record(&key).map(|rec| (key, rec))
}

/// What a job needs to find its stage: written next to its log, read by `run-stage`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobSpec {
    pub store: PathBuf,
    pub pipeline: PathBuf,
    pub params: Vec<(String, String)>,
    pub stage: String,
    /// Keys of the stages it reads, by stage name.
    pub upstream: BTreeMap<String, String>,
    pub request: String,
    pub forced: bool,
    pub cores: usize,
}

/// The controller's side of one stage.
pub struct Controller<'a> {
    pub p: &'a Pipeline,
    pub store: &'a Store,
    pub overrides: &'a [(String, String)],
    pub say: Say<'a>,
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:+,@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The binary jobs run: `SYNTHPIPE_SLURM_BINARY` (its path on the nodes), else this one.
fn binary() -> PathBuf {
    std::env::var_os("SYNTHPIPE_SLURM_BINARY")
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("synthpipe"))
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}

impl Controller<'_> {
    fn jobs_dir(&self) -> PathBuf {
        absolute(&self.store.root).join("jobs")
    }

    /// `sbatch`'s arguments for a stage; `spec` is the job file (`None` before its inputs
    /// are built, in a dry run).
    pub fn sbatch_args(&self, s: &Stage, request: Option<&str>) -> Vec<String> {
        let a = ask(s);
        let jobs = self.jobs_dir();
        let (log, spec) = match request {
            Some(r) => {
                let h = store::hex(r);
                (
                    jobs.join(format!("{h}-%j.log")),
                    jobs.join(format!("{h}.json")),
                )
            }
            None => (jobs.join("REQUEST-%j.log"), jobs.join("REQUEST.json")),
        };
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name=synthpipe-{}-{}", self.p.name, s.name),
            format!("--output={}", log.display()),
            format!("--cpus-per-task={}", a.cpus),
        ];
        if a.gpus > 0 {
            args.push(format!("--gres=gpu:{}", a.gpus));
        }
        let mut opt = |flag: &str, v: &Option<String>| {
            if let Some(v) = v {
                args.push(format!("--{flag}={v}"));
            }
        };
        opt("mem", &a.mem);
        opt("time", &a.time);
        opt("partition", &a.partition);
        opt("account", &a.account);
        args.extend(a.extra_args.iter().cloned());
        args.push(format!(
            "--wrap=exec {} run-stage {}",
            quote(&binary().display().to_string()),
            quote(&spec.display().to_string())
        ));
        args
    }

    /// The `sbatch` command line, as a shell would take it.
    pub fn sbatch_line(&self, s: &Stage, request: Option<&str>) -> String {
        let mut line = "sbatch".to_string();
        for a in self.sbatch_args(s, request) {
            line.push(' ');
            line.push_str(&quote(&a));
        }
        line
    }

    /// Builds a stage as a SLURM job (or waits for the job already building it); returns the
    /// key its output is stored under.
    pub fn build(
        &self,
        s: &Stage,
        pre: &Json,
        up_keys: &BTreeMap<String, String>,
        forced: bool,
    ) -> Result<String, String> {
        let (request, _) = request_of(pre, s);
        let h = store::hex(&request).to_string();
        let jobs = self.jobs_dir();
        std::fs::create_dir_all(&jobs)
            .map_err(|e| format!("cannot create `{}`: {e}", jobs.display()))?;
        let lock_path = self.store.root.join("locks").join(format!("{h}.slurm"));
        let say = |m: String| (self.say)(&format!("  {}: {m}", s.name));
        let mut waited_on: Option<String> = None;
        loop {
            if !forced && let Some((k, _)) = cached(self.store, s, pre) {
                return Ok(k);
            }
            let held = match Lock::create(&lock_path)? {
                Some(lock) => {
                    return self.submit_and_wait(s, &request, up_keys, forced, lock, &say);
                }
                None => Lock::read(&lock_path),
            };
            // Someone holds the request: wait on its job if it runs, take a dead holder's
            // lock over, else wait for the holder to submit or finish.
            if let Some(info) = &held
                && let Some(job) = info.job
                && let Some(state) = job_state(job)?
                && !terminal(&state)
            {
                say(format!(
                    "job {job} ({state}) already builds it (submitted by {} pid {}): adopting it",
                    info.host, info.pid
                ));
                let end = wait(job, &state, None, &say)?;
                if !forced && let Some(k) = built(self.store, &request) {
                    return Ok(k);
                }
                if end != "COMPLETED" {
                    return Err(job_error(job, &end, s, &log_of(&jobs, &h, job)));
                }
                continue;
            }
            if Lock::stale(&lock_path, held.as_ref()) {
                say("taking over a lock its dead controller left".into());
                Lock::take_over(&lock_path, held.as_ref())?;
                continue;
            }
            let who = held.as_ref().map_or("another controller".into(), |i| {
                format!("{} pid {}", i.host, i.pid)
            });
            if waited_on.as_deref() != Some(&who) {
                say(format!("waiting for {who}, which is submitting it"));
                waited_on = Some(who);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn submit_and_wait(
        &self,
        s: &Stage,
        request: &str,
        up_keys: &BTreeMap<String, String>,
        forced: bool,
        mut lock: Lock,
        say: &dyn Fn(String),
    ) -> Result<String, String> {
        let h = store::hex(request).to_string();
        let jobs = self.jobs_dir();
        let spec = JobSpec {
            store: absolute(&self.store.root),
            pipeline: absolute(&self.p.file),
            params: self.overrides.to_vec(),
            stage: s.name.clone(),
            upstream: s
                .deps
                .iter()
                .filter_map(|&d| {
                    let name = &self.p.stages[d].name;
                    up_keys.get(name).map(|k| (name.clone(), k.clone()))
                })
                .collect(),
            request: request.to_string(),
            forced,
            cores: ask(s).cpus,
        };
        let spec_path = jobs.join(format!("{h}.json"));
        let text = serde_json::to_vec_pretty(&spec).map_err(|e| e.to_string())?;
        write_atomic(&spec_path, &text)
            .map_err(|e| format!("cannot write `{}`: {e}", spec_path.display()))?;
        // A forced build must not be answered by the key an earlier job left.
        if forced {
            let _ = std::fs::remove_file(memo_path(self.store, request));
        }
        let args = self.sbatch_args(s, Some(request));
        let out = Command::new("sbatch").args(&args).output().map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                format!("{NO_SLURM}: `sbatch` is not on PATH; run on a SLURM login node, or use `--executor local`")
            } else {
                format!("{SUBMIT}: cannot run `sbatch`: {e}")
            }
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let job = stdout
            .trim()
            .split(';')
            .next()
            .and_then(|j| j.parse::<u64>().ok());
        let job = match (out.status.success(), job) {
            (true, Some(j)) => j,
            _ => {
                return Err(format!(
                    "{SUBMIT}: `sbatch` refused stage `{}`: {}\n  the command: {}",
                    s.name,
                    String::from_utf8_lossy(&out.stderr).trim(),
                    self.sbatch_line(s, Some(request))
                ));
            }
        };
        lock.set_job(job)?;
        say(format!("submitted as job {job}"));
        let end = wait(job, "PENDING", Some(&mut lock), say);
        drop(lock);
        let end = end?;
        if end == "COMPLETED" || end == "UNKNOWN" {
            if let Some(k) = built(self.store, request) {
                return Ok(k);
            }
            return Err(format!(
                "{LOST}: job {job} of stage `{}` ended {end} but left no output in the store; its log ({}) ends:\n{}",
                s.name,
                log_of(&jobs, &h, job).display(),
                tail(&log_of(&jobs, &h, job), 15)
            ));
        }
        Err(job_error(job, &end, s, &log_of(&jobs, &h, job)))
    }
}

fn log_of(jobs: &Path, h: &str, job: u64) -> PathBuf {
    jobs.join(format!("{h}-{job}.log"))
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The stage's error for a job that ended in `state`.
fn job_error(job: u64, state: &str, s: &Stage, log: &Path) -> String {
    let code = match state {
        "CANCELLED" => "cancelled",
        "TIMEOUT" | "DEADLINE" => "timeout",
        "OUT_OF_MEMORY" => "out_of_memory",
        "NODE_FAIL" | "BOOT_FAIL" => "node_fail",
        "PREEMPTED" => "preempted",
        _ => "failed",
    };
    let help = match code {
        "timeout" => "\n  help: give the stage more time: `resources: {time: …}`",
        "out_of_memory" => "\n  help: give the stage more memory: `resources: {mem: …}`",
        "cancelled" | "node_fail" | "preempted" => {
            "\n  help: run again: only this stage (and what reads it) is built"
        }
        _ => "",
    };
    format!(
        "synthpipe::slurm::{code}: job {job} of stage `{}` ended {state}; its log ({}) ends:\n{}{help}",
        s.name,
        log.display(),
        tail(log, 15)
    )
}

fn terminal(state: &str) -> bool {
    matches!(
        state.split(' ').next().unwrap_or(state),
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "OUT_OF_MEMORY"
            | "NODE_FAIL"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "PREEMPTED"
            | "UNKNOWN"
    )
}

fn run_tool(tool: &str, args: &[&str]) -> Option<Result<String, String>> {
    match Command::new(tool).args(args).output() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(e.to_string())),
        Ok(o) if o.status.success() => Some(Ok(String::from_utf8_lossy(&o.stdout).into())),
        Ok(o) => Some(Err(String::from_utf8_lossy(&o.stderr).into())),
    }
}

/// A job's state, from whichever of `scontrol`, `sacct` and `squeue` the cluster has and
/// knows it; `None` when none of them knows the job (forgotten after `MinJobAge`, with no
/// accounting), and an error when none of them exists.
fn job_state(job: u64) -> Result<Option<String>, String> {
    let id = job.to_string();
    let mut found_tool = false;
    if let Some(r) = run_tool("scontrol", &["show", "job", "-o", &id]) {
        found_tool = true;
        if let Ok(out) = r
            && let Some(state) = out
                .split_whitespace()
                .find_map(|w| w.strip_prefix("JobState="))
        {
            // Why a job waits is worth showing: `Resources` passes, `PartitionConfig` (it asks
            // for more than a node has) does not.
            let reason = out
                .split_whitespace()
                .find_map(|w| w.strip_prefix("Reason="))
                .filter(|r| *r != "None");
            return Ok(Some(match (state, reason) {
                ("PENDING", Some(r)) => format!("PENDING ({r})"),
                _ => state.to_string(),
            }));
        }
    }
    if let Some(r) = run_tool("sacct", &["-n", "-X", "-P", "-j", &id, "-o", "State"]) {
        found_tool = true;
        // "CANCELLED by 0" → "CANCELLED".
        if let Ok(out) = r
            && let Some(state) = out.split_whitespace().next()
        {
            return Ok(Some(state.to_string()));
        }
    }
    if let Some(r) = run_tool("squeue", &["-h", "-j", &id, "-o", "%T"]) {
        found_tool = true;
        if let Ok(out) = r
            && let Some(state) = out.split_whitespace().next()
        {
            return Ok(Some(state.to_string()));
        }
    }
    if found_tool {
        Ok(None)
    } else {
        Err(format!(
            "{NO_SLURM}: none of `scontrol`, `sacct`, `squeue` is on PATH; run on a SLURM login node"
        ))
    }
}

/// Polls a job until it ends (every 0.5 s at first, backing off to `poll_max`), saying each
/// new state and beating the lock's heartbeat. Returns the final state.
fn wait(
    job: u64,
    first: &str,
    mut lock: Option<&mut Lock>,
    say: &dyn Fn(String),
) -> Result<String, String> {
    let mut last = first.to_string();
    let mut pause = Duration::from_millis(500);
    let mut since = Instant::now();
    loop {
        let state = job_state(job)?.unwrap_or_else(|| "UNKNOWN".into());
        if state != last {
            say(format!("job {job} {state}"));
            last = state.clone();
            pause = Duration::from_millis(500);
            since = Instant::now();
        }
        if terminal(&state) {
            return Ok(state);
        }
        if let Some(l) = lock.as_deref_mut() {
            l.beat();
        }
        std::thread::sleep(pause);
        if since.elapsed() > Duration::from_secs(5) {
            pause = (pause * 2).min(poll_max());
        }
    }
}

/// The lock of one request: `locks/REQUEST.slurm`, created exclusively by the controller that
/// submits its job; holds who, the job id and a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct LockInfo {
    host: String,
    pid: u32,
    job: Option<u64>,
    beat: u64,
}

struct Lock {
    path: PathBuf,
    info: LockInfo,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Lock {
    /// Takes the lock if nobody holds it.
    fn create(path: &Path) -> Result<Option<Lock>, String> {
        let info = LockInfo {
            host: host(),
            pid: std::process::id(),
            job: None,
            beat: now(),
        };
        let text = serde_json::to_vec(&info).map_err(|e| e.to_string())?;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => {
                f.write_all(&text)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("cannot write the lock `{}`: {e}", path.display()))?;
                Ok(Some(Lock {
                    path: path.to_path_buf(),
                    info,
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(format!("cannot create the lock `{}`: {e}", path.display())),
        }
    }

    fn read(path: &Path) -> Option<LockInfo> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    fn write(&mut self) -> io::Result<()> {
        self.info.beat = now();
        write_atomic(&self.path, &serde_json::to_vec(&self.info)?)
    }

    fn set_job(&mut self, job: u64) -> Result<(), String> {
        self.info.job = Some(job);
        self.write()
            .map_err(|e| format!("cannot write the lock `{}`: {e}", self.path.display()))
    }

    fn beat(&mut self) {
        let _ = self.write();
    }

    /// A holder is dead when its process is gone (same host) or its heartbeat stopped; a
    /// lock too new to hold anything yet is not stale.
    fn stale(path: &Path, info: Option<&LockInfo>) -> bool {
        match info {
            Some(i) if i.host == host() => {
                !Path::new(&format!("/proc/{}", i.pid)).exists()
                    || now().saturating_sub(i.beat) > STALE.as_secs()
            }
            Some(i) => now().saturating_sub(i.beat) > STALE.as_secs(),
            // Unreadable: being written (fresh) or left half-written by a dead holder.
            None => age(path).is_some_and(|a| a > STALE),
        }
    }

    /// Removes a stale lock, one taker at a time (a second file created exclusively), after
    /// checking that it is still the one judged stale.
    fn take_over(path: &Path, seen: Option<&LockInfo>) -> Result<(), String> {
        let mutex = path.with_extension("slurm-takeover");
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&mutex)
        {
            Ok(_) => {
                if Lock::read(path).as_ref() == seen && Lock::stale(path, seen) {
                    let _ = std::fs::remove_file(path);
                }
                let _ = std::fs::remove_file(&mutex);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Another taker; its own mutex is stale only if it died mid-takeover.
                if age(&mutex).is_some_and(|a| a > Duration::from_secs(30)) {
                    let _ = std::fs::remove_file(&mutex);
                }
                std::thread::sleep(Duration::from_millis(200));
                Ok(())
            }
            Err(e) => Err(format!("cannot create `{}`: {e}", mutex.display())),
        }
    }
}

/// How long ago a file was last written.
fn age(path: &Path) -> Option<Duration> {
    std::fs::metadata(path)
        .ok()?
        .modified()
        .ok()?
        .elapsed()
        .ok()
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Only our own lock: a taker may have replaced it after our heartbeat stopped.
        if Lock::read(&self.path)
            .is_some_and(|i| i.host == self.info.host && i.pid == self.info.pid)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `synthpipe run-stage SPEC`: builds one stage on a compute node. Returns what it did.
pub fn run_job(spec_path: &Path) -> Result<String, String> {
    let spec: JobSpec = std::fs::read(spec_path)
        .map_err(|e| format!("cannot read `{}`: {e}", spec_path.display()))
        .and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| format!("`{}` is not a job file: {e}", spec_path.display()))
        })?;
    let store = Store::open(&spec.store)
        .map_err(|e| format!("cannot open the store `{}`: {e}", spec.store.display()))?;
    let p = super::load::load_with(&spec.pipeline, &spec.params).map_err(|f| {
        let lines: Vec<String> = f
            .diagnostics
            .iter()
            .map(|d| {
                format!(
                    "  error[{}]: {}",
                    crate::lang::diag::DiagCode::full(d.code),
                    d.message
                )
            })
            .collect();
        format!(
            "{CHANGED}: the pipeline `{}` no longer loads:\n{}",
            spec.pipeline.display(),
            lines.join("\n")
        )
    })?;
    let s = p
        .stage(&spec.stage)
        .map(|i| &p.stages[i])
        .ok_or_else(|| format!("{CHANGED}: the pipeline has no stage `{}` now", spec.stage))?;
    let mut upstream = BTreeMap::new();
    for (stage, key) in &spec.upstream {
        let rec = store.record(key).ok_or_else(|| {
            format!("{LOST}: the output of `{stage}` ({key}) is not in the store")
        })?;
        for (o, r) in &rec.outputs {
            upstream.insert(format!("{stage}.{o}"), r.digest.clone());
        }
    }
    let pre = preimage(s, &upstream)
        .ok_or_else(|| format!("{LOST}: an input of stage `{}` is not in the store", s.name))?;
    let (request, _) = request_of(&pre, s);
    if request != spec.request {
        return Err(format!(
            "{CHANGED}: stage `{}` of `{}` is not what was submitted (the pipeline, its parameters or its input files changed since)",
            s.name,
            spec.pipeline.display()
        ));
    }
    let key = key_of(&pre);
    let _store_lock = store
        .lock_store(false)
        .map_err(|e| format!("cannot lock the store: {e}"))?;
    let note = format!(
        "job {} on {} pid {} (pipeline `{}`, stage `{}`)",
        std::env::var("SLURM_JOB_ID").unwrap_or_default(),
        host(),
        std::process::id(),
        p.name,
        s.name
    );
    let _lock = store
        .lock_key(&key, &note, |holder| {
            eprintln!("run-stage: waiting for {holder}");
        })
        .map_err(|e| format!("cannot lock the store: {e}"))?;
    let said = if !spec.forced && store.record(&key).is_some() {
        format!("stage `{}` is already built ({key})", s.name)
    } else {
        eprintln!(
            "run-stage: building stage `{}` ({key}) on {}",
            s.name,
            host()
        );
        let started = Instant::now();
        let opts = run::Options::default();
        run::build(
            s,
            &store,
            &key,
            &pre,
            &spec.upstream,
            spec.cores,
            &opts,
            started,
        )?;
        format!(
            "built stage `{}` in {:.2} s ({key})",
            s.name,
            started.elapsed().as_secs_f64()
        )
    };
    let memo = memo_path(&store, &request);
    write_atomic(&memo, key.as_bytes())
        .map_err(|e| format!("cannot write `{}`: {e}", memo.display()))?;
    Ok(said)
}
