//! The SLURM executor against a real single-node cluster (.ci/slurm.sh starts one; CI runs
//! it): stages as jobs with outputs byte-identical to a local run, two controllers building
//! each stage once, a cancelled job failing only its stage, a killed controller's job adopted.
//! Without a cluster these skip with a note, except in CI, where that is a failure.

mod common;

use common::{describe, root, tmpdir};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use synthpipe::pipeline::store::Store;

/// The cluster has a few cores: one test's jobs at a time.
static CLUSTER: Mutex<()> = Mutex::new(());

const SHORT: &[&str] = &[
    "--param",
    "train=4..=40",
    "--param",
    "test=1..=3",
    "--param",
    "sft_steps=20",
    "--param",
    "grpo_steps=4",
];

/// SFT long enough (~40 s here) to be caught while its job runs.
const LONG_SFT: &[&str] = &[
    "--executor",
    "slurm",
    "--stage",
    "sft",
    "--param",
    "sft_steps=60",
];

fn cluster() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up && std::env::var_os("CI").is_some() {
        panic!("no SLURM cluster answers `sinfo`: .ci/run starts one with .ci/slurm.sh");
    }
    if !up {
        eprintln!("skipping: no SLURM cluster (start one with `sudo .ci/slurm.sh`)");
    }
    up
}

fn command(store: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_synthpipe"));
    c.args(["run", "pipelines/quickstart.yaml", "--store"])
        .arg(store)
        .args(SHORT)
        .args(extra)
        .current_dir(root())
        .env("SYNTHPIPE_SLURM_POLL", "1");
    c
}

fn run(store: &Path, extra: &[&str]) -> Output {
    command(store, extra).output().unwrap()
}

fn spawn(store: &Path, extra: &[&str]) -> Child {
    command(store, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every stage's outputs, by stage and output: the digest, except for training metrics,
/// whose lines also hold what was measured (seconds, throughput, memory), and reports, whose
/// key follows those metrics: their bytes with the measurements left out.
fn outputs(store: &Path) -> BTreeMap<String, String> {
    let s = Store::open(store).unwrap();
    let mut out = BTreeMap::new();
    for k in s.recorded_keys().unwrap() {
        let rec = s.record(&k).unwrap();
        for (o, r) in &rec.outputs {
            let what = if o == "metrics" {
                let text = std::fs::read_to_string(s.output_dir(&k).join(o).join("metrics.jsonl"))
                    .unwrap();
                let lines: Vec<String> = text
                    .lines()
                    .map(|l| {
                        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                        let m = v.as_object_mut().unwrap();
                        m.retain(|f, _| {
                            !["seconds", "per_second", "rss"]
                                .iter()
                                .any(|t| f.contains(t))
                        });
                        v.to_string()
                    })
                    .collect();
                format!("{} lines: {}", lines.len(), lines.join("\n"))
            } else if rec.stage == "report" {
                let dir = s.output_dir(&k).join(o);
                let mut files = Vec::new();
                for f in ["report.md", "report.html"] {
                    files.push(std::fs::read_to_string(dir.join(f)).unwrap());
                }
                files.join("\n")
            } else {
                format!("{k} {}", r.digest)
            };
            out.insert(format!("{}.{o}", rec.stage), what);
        }
    }
    out
}

/// Job logs (file name → text).
fn job_logs(store: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(store.join("jobs"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().to_string(),
                        std::fs::read_to_string(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How often each stage was built, over every job's log.
fn builds(store: &Path) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for text in job_logs(store).values() {
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("run-stage: building stage `") {
                let stage = rest.split('`').next().unwrap().to_string();
                *n.entry(stage).or_insert(0) += 1;
            }
        }
    }
    n
}

/// Waits until a job log says it is building `stage`; returns the job id.
fn building(store: &Path, stage: &str, child: &mut Child) -> u64 {
    let started = Instant::now();
    loop {
        for (name, text) in job_logs(store) {
            if text.contains(&format!("building stage `{stage}`")) {
                let id = name.trim_end_matches(".log").rsplit('-').next().unwrap();
                return id.parse().unwrap();
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the controller ended ({status}) before `{stage}` started");
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "`{stage}` never started"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn stages_run_as_jobs_once_each_with_a_local_runs_bytes() {
    if !cluster() {
        return;
    }
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let local = tmpdir("slurm", "local");
    let o = run(&local, &[]);
    assert!(o.status.success(), "{}", describe(&o));

    // A lock left by a controller that died before submitting (this host, a dead pid): taken
    // over, not waited on forever.
    let jobs = tmpdir("slurm", "jobs");
    let p = synthpipe::pipeline::load::load_with(
        &root().join("pipelines/quickstart.yaml"),
        &[
            ("train".into(), "4..=40".into()),
            ("test".into(), "1..=3".into()),
        ],
    )
    .unwrap();
    let family = &p.stages[p.stage("family").unwrap()];
    let pre = synthpipe::pipeline::run::preimage(family, &BTreeMap::new()).unwrap();
    let (request, _) = synthpipe::pipeline::slurm::request_of(&pre, family);
    std::fs::create_dir_all(jobs.join("locks")).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        jobs.join("locks")
            .join(format!("{}.slurm", request.trim_start_matches("b3:"))),
        format!(
            r#"{{"host":"{}","pid":4194300,"job":null,"beat":{}}}"#,
            host.trim(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        ),
    )
    .unwrap();

    // Two controllers at once on one store: every stage is built by one job.
    let mut a = spawn(&jobs, &["--executor", "slurm"]);
    std::thread::sleep(Duration::from_millis(300));
    let b = run(&jobs, &["--executor", "slurm"]);
    let a_out = {
        let _ = a.wait();
        a.wait_with_output().unwrap()
    };
    assert!(a_out.status.success(), "{}", describe(&a_out));
    assert!(b.status.success(), "{}", describe(&b));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&a_out.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(said.contains("submitted as job"), "{said}");
    assert!(said.contains("taking over a lock"), "{said}");
    let built = builds(&jobs);
    assert_eq!(built.len(), 8, "{built:?}\n{said}");
    assert!(built.values().all(|&n| n == 1), "built twice: {built:?}");
    // The same keys and the same bytes as the local run.
    let (here, there) = (outputs(&local), outputs(&jobs));
    assert_eq!(here.len(), 12);
    for (out, what) in &here {
        assert!(
            there.get(out) == Some(what),
            "`{out}` differs from the local run's"
        );
    }
    // Nothing half-written, nothing left locked.
    let tmp: Vec<_> = std::fs::read_dir(jobs.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    let left: Vec<_> = std::fs::read_dir(jobs.join("locks"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".slurm"))
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Run again: every stage fresh, no job.
    let again = run(&jobs, &["--executor", "slurm"]);
    assert!(again.status.success(), "{}", describe(&again));
    let text = String::from_utf8_lossy(&again.stderr);
    assert!(text.contains("0 built, 8 fresh"), "{text}");
    assert_eq!(builds(&jobs).values().sum::<usize>(), 8);
}

#[test]
fn a_cancelled_job_fails_its_stage_and_only_it_is_rebuilt() {
    if !cluster() {
        return;
    }
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let store = tmpdir("slurm", "cancel");
    let mut c = spawn(&store, LONG_SFT);
    let job = building(&store, "sft", &mut c);
    let o = Command::new("scancel")
        .arg(job.to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let out = c.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text.contains(&format!(
            "synthpipe::slurm::cancelled: job {job} of stage `sft`"
        )),
        "{text}"
    );
    // Nothing of `sft` in the store: the three stages before it, each complete.
    let s = Store::open(&store).unwrap();
    assert_eq!(s.recorded_keys().unwrap().len(), 3);
    assert_eq!(std::fs::read_dir(store.join("outputs")).unwrap().count(), 3);

    let again = run(&store, LONG_SFT);
    assert!(again.status.success(), "{}", describe(&again));
    let text = String::from_utf8_lossy(&again.stderr);
    assert!(text.contains("1 built, 3 fresh"), "{text}");
    assert!(text.contains("sft (sft): built"), "{text}");
    assert!(
        std::fs::read_dir(store.join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "the cancelled job's folder was not swept"
    );
}

#[test]
fn a_run_after_a_killed_controller_adopts_its_job() {
    if !cluster() {
        return;
    }
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let store = tmpdir("slurm", "adopt");
    let mut c = spawn(&store, LONG_SFT);
    let job = building(&store, "sft", &mut c);
    c.kill().unwrap();
    let _ = c.wait();
    let again = run(&store, LONG_SFT);
    assert!(again.status.success(), "{}", describe(&again));
    let text = String::from_utf8_lossy(&again.stderr);
    assert!(
        text.contains(&format!("job {job} (RUNNING) already builds it")),
        "{text}"
    );
    assert!(text.contains("adopting it"), "{text}");
    assert_eq!(
        builds(&store).get("sft"),
        Some(&1),
        "{:?}",
        job_logs(&store)
    );
    let sft_logs = job_logs(&store)
        .values()
        .filter(|t| t.contains("stage `sft`"))
        .count();
    assert_eq!(sft_logs, 1, "a second job was submitted");
}

#[test]
fn a_dry_run_prints_the_sbatch_lines_with_the_stages_resources() {
    let dir = tmpdir("slurm", "dry");
    let rules = root().join("rules/family.rules");
    let file = dir.join("p.yaml");
    std::fs::write(
        &file,
        format!(
            "name: dry\nexecutor: slurm\nstages:\n  family:\n    kind: generate\n    rules: {}\n    seeds: 1\n    resources: {{cpus: 2, mem: 8G, time: \"1:00:00\", partition: cpu, account: lab, extra_args: [--constraint=avx512]}}\n  tiny:\n    kind: lm_init\n    dataset: {{from: family.dataset}}\n    vocab: 300\n    layers: 1\n    hidden: 32\n    heads: 2\n    kv_heads: 1\n  local:\n    kind: split\n    executor: local\n    dataset: {{from: family.dataset}}\n    train: [1]\n    dev: []\n    test: []\n",
            rules.display()
        ),
    )
    .unwrap();
    let store = dir.join("store");
    let o = Command::new(env!("CARGO_BIN_EXE_synthpipe"))
        .args(["run"])
        .arg(&file)
        .arg("--store")
        .arg(&store)
        .arg("--dry-run")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let text = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("sbatch "))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("--job-name=synthpipe-dry-family")
            && lines[0].contains("--cpus-per-task=2 --mem=8G --time=1:00:00 --partition=cpu --account=lab --constraint=avx512")
            && lines[0].contains(" run-stage ")
            && !lines[0].contains("--gres"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("--job-name=synthpipe-dry-tiny"),
        "{}",
        lines[1]
    );
    assert!(!text.contains("synthpipe-dry-local"), "{text}");
}

#[test]
fn without_slurm_a_stage_fails_with_a_coded_error() {
    let store = tmpdir("slurm", "none");
    let o = command(&store, &["--executor", "slurm", "--stage", "family"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(text.contains("synthpipe::slurm::no_slurm"), "{text}");
    assert!(text.contains("--executor local"), "{text}");
    assert!(
        !store.join("locks").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".slurm"))
    );
}
