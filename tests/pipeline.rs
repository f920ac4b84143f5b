//! The pipeline engine as users meet it: validation diagnostics for every fixture in
//! tests/pipelines/err/, the shipped pipelines and their keys, reruns that do exactly the work
//! that changed, early cut-off, SIGKILL at random points, two runs at once, gc/clean/show,
//! and mutated pipeline files that must never panic.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Rng, describe, root, synthpipe, tmpdir};
use serde_json::Value as Json;
use synthpipe::lang::diag::{self, DiagCode};
use synthpipe::model::machine::Machine;
use synthpipe::pipeline::diag::Code;
use synthpipe::pipeline::load::{self, Pipeline};
use synthpipe::pipeline::run::{self, Standing};
use synthpipe::pipeline::store::{self, Store};

fn err_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("tests/pipelines/err"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_error_fixture_is_rejected_with_a_coded_diagnostic_at_the_offending_yaml() {
    let fixtures = err_fixtures();
    assert!(fixtures.len() >= 15, "only {} fixtures", fixtures.len());
    let mut seen_codes = std::collections::BTreeSet::new();
    for path in fixtures {
        let rel = path.strip_prefix(root()).unwrap().to_path_buf();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| {
                panic!(
                    "{}: first line must be `# expect: CODE — why`",
                    rel.display()
                )
            });
        // Load from the package root with a relative path, as a user would: paths in the
        // rendered messages are then machine-independent.
        assert_eq!(
            std::env::current_dir().unwrap(),
            root(),
            "tests run from the package root"
        );
        let failure = load::load(&rel).expect_err(&format!("{} must be rejected", rel.display()));
        let diags = &failure.diagnostics;
        let hit = diags
            .iter()
            .find(|d| d.code.name() == expect)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no `{expect}` among {:?}",
                    rel.display(),
                    diags.iter().map(|d| d.code.name()).collect::<Vec<_>>()
                )
            });
        assert!(
            hit.span.end <= text.len() && hit.span.start <= hit.span.end,
            "{}: span out of the file",
            rel.display()
        );
        // The span points at the YAML that is wrong: something on a line after the comment.
        assert!(
            hit.span.start > text.find('\n').unwrap(),
            "{}: span {:?} is not in the YAML",
            rel.display(),
            hit.span
        );
        if expect != "yaml_syntax" {
            assert!(!hit.span.is_empty(), "{}: empty span", rel.display());
        }
        for d in diags {
            assert!(d.code.full().starts_with("synthpipe::pipeline::"));
            assert!(
                d.help.is_some(),
                "{}: `{}` has no help",
                rel.display(),
                d.code.name()
            );
        }
        seen_codes.insert(expect.to_string());
        let rendered = diag::render_plain(diags, &rel.display().to_string(), &text, 100);
        insta::with_settings!({snapshot_suffix => rel.file_stem().unwrap().to_string_lossy().to_string(), prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!("pipeline_err", rendered);
        });
    }
    // Every code but `read` (an unreadable file, tested below) has a fixture.
    for c in Code::ALL {
        if *c != Code::Read {
            assert!(
                seen_codes.contains(c.name()),
                "no fixture for `{}`",
                c.name()
            );
        }
    }
}

#[test]
fn an_unreadable_pipeline_file_is_a_diagnostic_not_a_panic() {
    let f = load::load(Path::new("no/such/pipeline.yaml")).unwrap_err();
    assert_eq!(f.diagnostics[0].code, Code::Read);
    let o = synthpipe(&["run", "no/such/pipeline.yaml"], &root());
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("synthpipe::pipeline::read"));
}

/// An AVX-512 machine without a GPU, and the same machine with one.
fn cpu_machine() -> Machine {
    Machine {
        gpu: None,
        nvidia: false,
        cpu: "x86_64-v4 l1/l2/l3 48k/2048k/32768k".into(),
    }
}

fn gpu_machine() -> Machine {
    Machine {
        gpu: Some("NVIDIA H200".into()),
        nvidia: true,
        ..cpu_machine()
    }
}

#[test]
fn a_model_stage_key_holds_the_backend_auto_resolves_to_and_the_device() {
    let p = load::load(Path::new("pipelines/quickstart.yaml")).unwrap();
    let mut sft = p.stages[p.stage("sft").unwrap()].clone();
    sft.params.insert("backend".into(), Json::from("auto"));
    let up: BTreeMap<String, String> = [("tiny.model", "b3:model"), ("split.train", "b3:train")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let on_cpu = run::preimage_on(&sft, &up, &cpu_machine()).unwrap();
    let on_gpu = run::preimage_on(&sft, &up, &gpu_machine()).unwrap();
    let amd = Machine {
        cpu: "x86_64-v4 l1/l2/l3 32k/1024k/16384k".into(),
        ..cpu_machine()
    };
    let on_amd = run::preimage_on(&sft, &up, &amd).unwrap();
    let keys = [&on_cpu, &on_gpu, &on_amd].map(run::key_of);
    assert!(keys[0] != keys[1] && keys[0] != keys[2] && keys[1] != keys[2]);
    let shown = format!(
        "cpu: {}\n     {}\ngpu: {}\n     {}\nstatus after moving the store: {:?}",
        on_cpu["env"],
        keys[0],
        on_gpu["env"],
        keys[1],
        run::diff(&on_cpu, &on_gpu)
    );
    insta::assert_snapshot!("auto_resolved_two_ways", shown);
    // Data stages compute the same bytes everywhere: one key on every machine.
    let family = &p.stages[p.stage("family").unwrap()];
    assert_eq!(
        run::preimage_on(family, &BTreeMap::new(), &cpu_machine()),
        run::preimage_on(family, &BTreeMap::new(), &gpu_machine())
    );
}

/// One line per stage: name, kind, the stages it reads, its cores and its key on a fixed
/// machine (upstream outputs stand in by name), so a change to any stage's meaning shows as
/// a changed key in a short, reviewable snapshot.
fn key_lines(p: &Pipeline) -> String {
    let mut out = String::new();
    for s in &p.stages {
        let deps: Vec<&str> = s.deps.iter().map(|&d| p.stages[d].name.as_str()).collect();
        let pre = preimage_fixed(s);
        out.push_str(&format!(
            "{} ({}) reads {deps:?}, cpus {}: {}\n",
            s.name,
            s.kind.name,
            s.cpus,
            run::key_of(&pre)
        ));
    }
    out
}

/// A stage's key pre-image on the fixed CPU machine, upstream digests standing in by name.
fn preimage_fixed(s: &load::Stage) -> Json {
    let up: BTreeMap<String, String> = s
        .inputs
        .values()
        .filter_map(|i| match i {
            load::Input::Stage { stage, output } => Some((
                format!("{stage}.{output}"),
                format!("<digest of {stage}.{output}>"),
            )),
            load::Input::File { .. } => None,
        })
        .collect();
    run::preimage_on(s, &up, &cpu_machine()).unwrap()
}

/// A stage's resolved parameters, one `name = value` line each.
fn param_lines(s: &load::Stage) -> String {
    s.params
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect()
}

#[test]
fn shipped_pipelines_validate_and_their_meaning_is_snapshotted() {
    for name in ["quickstart", "phantomwiki-paper"] {
        let path = PathBuf::from(format!("pipelines/{name}.yaml"));
        let p = load::load(&path).unwrap_or_else(|f| panic!("{name}: {:?}", f.diagnostics));
        insta::assert_snapshot!(format!("pipeline_{name}_keys"), key_lines(&p));
    }
    // One kind's resolved parameters in full (defaults filled in, inputs by place), and what
    // else its key holds.
    let p = load::load(Path::new("pipelines/quickstart.yaml")).unwrap();
    let grpo = &p.stages[p.stage("grpo").unwrap()];
    insta::assert_snapshot!("quickstart_grpo_params", param_lines(grpo));
    let mut pre = preimage_fixed(grpo);
    pre["params"] = Json::String("<the parameters above>".into());
    insta::assert_snapshot!(
        "quickstart_grpo_key_preimage",
        serde_json::to_string_pretty(&pre).unwrap()
    );
}

#[test]
fn cache_key_of_a_fixed_stage_is_stable() {
    // Guards against accidental key changes, which would silently invalidate every user's
    // cache: change it only together with KEY_SCHEME or a kind's version.
    let p = load::load(Path::new("pipelines/quickstart.yaml")).unwrap();
    let s = &p.stages[p.stage("family").unwrap()];
    let pre = run::preimage(s, &BTreeMap::new()).unwrap();
    insta::assert_snapshot!("quickstart_family_key", run::key_of(&pre));
}

/// Writes a pipeline file into `dir`, with `RULES/` standing for the shipped rules folder.
fn write_pipeline(dir: &Path, file: &str, yaml: &str) -> PathBuf {
    let path = dir.join(file);
    let rules = root().join("rules");
    std::fs::write(
        &path,
        yaml.replace("RULES/", &format!("{}/", rules.display())),
    )
    .unwrap();
    path
}

fn keys(path: &Path) -> Vec<String> {
    let p = load::load(path).unwrap_or_else(|f| panic!("{:?}", f.diagnostics));
    p.stages
        .iter()
        .filter_map(|s| run::preimage(s, &BTreeMap::new()).map(|pre| run::key_of(&pre)))
        .collect()
}

#[test]
fn writing_a_default_explicitly_does_not_change_the_key() {
    let dir = tmpdir("pipeline", "defaults");
    let plain = write_pipeline(
        &dir,
        "a.yaml",
        "name: a\nstages:\n  gen:\n    kind: generate\n    rules: RULES/family.rules\n",
    );
    let explicit = write_pipeline(
        &dir,
        "b.yaml",
        "name: b\nparams:\n  one: 1\nstages:\n  gen:\n    kind: generate\n    rules: RULES/family.rules\n    seeds: [0]\n    derived: false\n    cpus: 1\n    set:\n      trees: ${params.one}\n      relations: all\n      unanswerable: 0.0\n",
    );
    let via_defaults = write_pipeline(
        &dir,
        "c.yaml",
        "name: c\ndefaults:\n  generate:\n    seeds: \"0..1\"\n    set: {max_tree_size: 50}\nstages:\n  gen:\n    kind: generate\n    rules: RULES/family.rules\n",
    );
    let changed = write_pipeline(
        &dir,
        "d.yaml",
        "name: d\nstages:\n  gen:\n    kind: generate\n    rules: RULES/family.rules\n    set: {trees: 2}\n",
    );
    assert_eq!(keys(&plain), keys(&explicit));
    assert_eq!(keys(&plain), keys(&via_defaults));
    assert_ne!(keys(&plain), keys(&changed));
}

fn run_ok(args: &[&str], cwd: &Path) -> String {
    let o = synthpipe(args, cwd);
    assert!(o.status.success(), "{args:?}: {}", describe(&o));
    String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout)
}

/// Stage → outcome word ("built", "fresh", …) from `run`'s per-stage lines.
fn outcomes(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('[')?.split_once("] ")?.1;
            let (stage, tail) = rest.split_once(" (")?;
            let word = tail.split_once("): ")?.1.split_whitespace().next()?;
            Some((stage.to_string(), word.to_string()))
        })
        .collect()
}

const QUICK: &str = "name: q
params:
  depth: 9
  per_template: 5
stages:
  family:
    kind: generate
    rules: RULES/family.rules
    seeds: \"1..=10\"
    set:
      max_tree_size: 20
      question_depth: ${params.depth}
      questions_per_template: ${params.per_template}
  films:
    kind: generate
    rules: RULES/wiki.rules
    seeds: [1, 2]
    set: {people: 40, films: 20}
  split:
    kind: split
    dataset: {from: family.dataset}
    train: \"1..=8\"
    dev: [9]
    test: [10]
  train_mix:
    kind: mix
    sources:
      - from: split.train
      - from: films.dataset
        hops: \"..=2\"
    questions: 500
";

#[test]
fn reruns_do_exactly_the_work_that_changed_and_status_says_why() {
    let dir = tmpdir("pipeline", "rerun");
    let store = dir.join("store");
    let st = store.to_str().unwrap();
    let file = write_pipeline(&dir, "p.yaml", QUICK);
    let f = file.to_str().unwrap();
    let first = run_ok(&["run", f, "--store", st], &dir);
    assert!(outcomes(&first).values().all(|w| w == "built"), "{first}");
    assert_eq!(outcomes(&first).len(), 4);

    let again = run_ok(&["run", f, "--store", st], &dir);
    assert!(outcomes(&again).values().all(|w| w == "fresh"), "{again}");
    let status = run_ok(&["status", f, "--store", st], &dir);
    assert_eq!(status.matches(" fresh ").count(), 4, "{status}");

    // One parameter of one stage: that stage and what reads it, nothing else.
    write_pipeline(
        &dir,
        "p.yaml",
        &QUICK.replace("max_tree_size: 20", "max_tree_size: 21"),
    );
    let status = run_ok(&["status", f, "--store", st], &dir);
    assert!(
        status.contains("params.set.max_tree_size: 20 → 21"),
        "{status}"
    );
    assert!(
        status.contains("input stage `family` will be rebuilt"),
        "{status}"
    );
    let dry = run_ok(&["run", f, "--store", st, "--dry-run"], &dir);
    assert_eq!(outcomes(&dry)["films"], "fresh", "{dry}");
    assert_eq!(outcomes(&dry)["family"], "would", "{dry}");
    let edited = run_ok(&["run", f, "--store", st], &dir);
    let o = outcomes(&edited);
    assert_eq!(o["films"], "fresh", "{edited}");
    assert_eq!(o["family"], "built");
    assert_eq!(o["split"], "built");
    assert_eq!(o["train_mix"], "built");

    // Early cut-off: the split changes (a dev universe moves to test) but its train output
    // has the same bytes, so the mix that reads only train stays fresh.
    write_pipeline(
        &dir,
        "p.yaml",
        &QUICK
            .replace("max_tree_size: 20", "max_tree_size: 21")
            .replace("dev: [9]", "dev: []")
            .replace("test: [10]", "test: [9, 10]"),
    );
    let status = run_ok(&["status", f, "--store", st], &dir);
    assert!(status.contains("params.dev.seeds: [9] → []"), "{status}");
    let cut = run_ok(&["run", f, "--store", st], &dir);
    let o = outcomes(&cut);
    assert_eq!(o["split"], "built", "{cut}");
    assert_eq!(o["train_mix"], "fresh", "{cut}");

    // --force rebuilds a stage whose output is cached; identical bytes keep dependents fresh.
    let forced = run_ok(&["run", f, "--store", st, "--force", "family"], &dir);
    let o = outcomes(&forced);
    assert_eq!(o["family"], "built", "{forced}");
    assert_eq!(o["split"], "fresh", "{forced}");

    // --stage runs a stage and what it reads only.
    let only = run_ok(
        &["run", f, "--store", st, "--stage", "split", "--force-all"],
        &dir,
    );
    let o = outcomes(&only);
    assert_eq!(
        o.keys().cloned().collect::<Vec<_>>(),
        ["family", "split"],
        "{only}"
    );

    // show --path gives a folder that holds the output.
    let path = run_ok(&["show", f, "split.train", "--path", "--store", st], &dir);
    let path = PathBuf::from(path.trim());
    assert!(path.join("questions.jsonl").is_file(), "{}", path.display());
    let show = run_ok(&["show", f, "split", "--store", st], &dir);
    assert!(show.contains("output test:"), "{show}");

    // A run log per run, JSON Lines.
    let logs = std::fs::read_dir(store.join("logs")).unwrap().count();
    assert!(logs >= 6, "{logs} logs");
}

#[test]
fn gc_keeps_what_a_pipeline_uses_and_clean_removes_outputs() {
    let dir = tmpdir("pipeline", "gc");
    let store = dir.join("store");
    let st = store.to_str().unwrap();
    let file = write_pipeline(&dir, "p.yaml", QUICK);
    let f = file.to_str().unwrap();
    run_ok(&["run", f, "--store", st], &dir);
    write_pipeline(&dir, "p.yaml", &QUICK.replace("people: 40", "people: 41"));
    run_ok(&["run", f, "--store", st], &dir);
    let s = Store::open(&store).unwrap();
    let before = s.keys().unwrap().len();
    let dry = run_ok(&["gc", f, "--dry-run", "--store", st], &dir);
    assert_eq!(s.keys().unwrap().len(), before, "{dry}");
    run_ok(&["gc", f, "--store", st], &dir);
    // The old films and train_mix outputs go; the four current ones stay and are fresh.
    assert_eq!(s.keys().unwrap().len(), 4, "{dry}");
    let again = run_ok(&["run", f, "--store", st], &dir);
    assert!(outcomes(&again).values().all(|w| w == "fresh"), "{again}");
    run_ok(&["clean", f, "--stage", "split", "--store", st], &dir);
    let status = run_ok(&["status", f, "--store", st], &dir);
    assert!(status.contains("its output was removed"), "{status}");
    run_ok(&["clean", "--store", st], &dir);
    assert!(!store.exists());
}

#[test]
fn score_stage_writes_metrics() {
    let dir = tmpdir("pipeline", "score");
    let first = write_pipeline(
        &dir,
        "g.yaml",
        "name: g\nstages:\n  gen:\n    kind: generate\n    rules: RULES/family.rules\n    set: {max_tree_size: 10, question_depth: 6, questions_per_template: 2}\n",
    );
    let st = dir.join("store");
    run_ok(
        &[
            "run",
            first.to_str().unwrap(),
            "--store",
            st.to_str().unwrap(),
        ],
        &dir,
    );
    let data = run_ok(
        &[
            "show",
            first.to_str().unwrap(),
            "gen.dataset",
            "--path",
            "--store",
            st.to_str().unwrap(),
        ],
        &dir,
    );
    let questions =
        std::fs::read_to_string(Path::new(data.trim()).join("questions.jsonl")).unwrap();
    // Right on every other question, empty on the rest.
    let mut preds = String::new();
    let mut n = 0usize;
    for (i, l) in questions.lines().enumerate() {
        let q: Json = serde_json::from_str(l).unwrap();
        let answers = if i % 2 == 0 {
            q["answers"].clone()
        } else {
            serde_json::json!(["nobody"])
        };
        preds.push_str(&format!(
            "{}\n",
            serde_json::json!({"id": q["id"], "answers": answers})
        ));
        n += 1;
    }
    std::fs::write(dir.join("preds.jsonl"), preds).unwrap();
    let yaml = "name: g\nstages:\n  gen:\n    kind: generate\n    rules: RULES/family.rules\n    set: {max_tree_size: 10, question_depth: 6, questions_per_template: 2}\n  scored:\n    kind: score\n    gold: {from: gen.dataset}\n    predictions: preds.jsonl\n    out: results\n";
    let file = write_pipeline(&dir, "g.yaml", yaml);
    let out = run_ok(
        &[
            "run",
            file.to_str().unwrap(),
            "--store",
            st.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(outcomes(&out)["gen"], "fresh", "{out}");
    let m = run_ok(
        &[
            "show",
            file.to_str().unwrap(),
            "scored.metrics",
            "--path",
            "--store",
            st.to_str().unwrap(),
        ],
        &dir,
    );
    let metrics: Json =
        serde_json::from_slice(&std::fs::read(Path::new(m.trim()).join("metrics.json")).unwrap())
            .unwrap();
    let em = metrics["overall"]["em"].as_f64().unwrap();
    // `out` copies the outputs next to the pipeline file.
    let copied = std::fs::read(dir.join("results/metrics/metrics.json")).unwrap();
    assert_eq!(
        copied,
        std::fs::read(Path::new(m.trim()).join("metrics.json")).unwrap()
    );
    let expected = n.div_ceil(2) as f64 / n as f64;
    assert!(
        (em - expected).abs() < 1e-9,
        "em {em}, expected {expected}: {metrics}"
    );
}

/// Every stage that `status` calls fresh has its complete output: the files its record lists,
/// with those digests.
fn assert_fresh_means_complete(pipeline: &Path, store: &Path) {
    let p = load::load(pipeline).unwrap();
    let s = Store::open(store).unwrap();
    for line in run::status(&p, &s) {
        if line.standing != Standing::Fresh {
            continue;
        }
        let key = line.key.unwrap();
        let rec = s.record(&key).unwrap();
        for (name, out) in &rec.outputs {
            let files = store::tree(&s.output_dir(&key).join(name)).unwrap();
            assert_eq!(
                files, out.files,
                "{} {name}: output differs from its record",
                line.stage
            );
        }
    }
}

/// Output digests of every stage, from the records.
fn output_digests(pipeline: &Path, store: &Path) -> BTreeMap<String, String> {
    let p = load::load(pipeline).unwrap();
    let s = Store::open(store).unwrap();
    let mut out = BTreeMap::new();
    for line in run::status(&p, &s) {
        assert_eq!(line.standing, Standing::Fresh, "{}", line.stage);
        let rec = s.record(line.key.as_ref().unwrap()).unwrap();
        for (name, o) in rec.outputs {
            // Rehash: the bytes themselves, not just what the record claims.
            let files = store::tree(&s.output_dir(line.key.as_ref().unwrap()).join(&name)).unwrap();
            assert_eq!(store::tree_digest(&files), o.digest);
            out.insert(format!("{}.{name}", line.stage), o.digest);
        }
    }
    out
}

const HEAVY: &str = "name: heavy
stages:
  family:
    kind: generate
    rules: RULES/family.rules
    seeds: \"1..=40\"
    set: {max_tree_size: 50, question_depth: 20}
  split:
    kind: split
    dataset: {from: family.dataset}
    seed: 3
  films:
    kind: generate
    rules: RULES/wiki.rules
    seeds: \"1..=6\"
  mix:
    kind: mix
    sources:
      - from: split.train
      - from: films.dataset
    questions: 3000
";

#[test]
fn sigkill_at_random_points_never_counts_a_partial_output_and_reruns_finish_identically() {
    let dir = tmpdir("pipeline", "kill");
    let file = write_pipeline(&dir, "p.yaml", HEAVY);
    let f = file.to_str().unwrap();
    let reference = dir.join("reference");
    let t0 = std::time::Instant::now();
    run_ok(&["run", f, "--store", reference.to_str().unwrap()], &dir);
    let full = t0.elapsed();
    let expected = output_digests(&file, &reference);

    let store = dir.join("killed");
    let mut rng = Rng(0x5eed);
    // The reference run may have shared the cores with other tests, so the kill window
    // shrinks to the fastest run seen: kills then land mid-way however busy the machine is.
    let mut window = full;
    let (mut killed, mut attempts) = (0, 0);
    while killed < 8 && attempts < 30 {
        attempts += 1;
        // --force-all: every killed run does the whole work again, so the kill can land in
        // any stage, also while a forced rebuild replaces a committed output.
        let wait = Duration::from_micros(rng.below(window.as_micros().max(1) as usize) as u64);
        let started = std::time::Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_synthpipe"))
            .args(["run", f, "--store", store.to_str().unwrap(), "--force-all"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut finished = false;
        while started.elapsed() < wait {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                window = window.min(started.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if !finished && child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        assert_fresh_means_complete(&file, &store);
    }
    assert!(
        killed >= 5,
        "only {killed} of {attempts} runs were killed mid-way ({full:?} per run)"
    );
    run_ok(&["run", f, "--store", store.to_str().unwrap()], &dir);
    assert_eq!(output_digests(&file, &store), expected);
    // Leftovers of killed builds are swept when the key is built again.
    let tmp_left = std::fs::read_dir(store.join("tmp")).unwrap().count();
    assert_eq!(tmp_left, 0, "temporary folders left behind");
}

#[test]
fn two_runs_at_once_build_each_stage_once() {
    let dir = tmpdir("pipeline", "concurrent");
    let file = write_pipeline(&dir, "p.yaml", HEAVY);
    let store = dir.join("store");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_synthpipe"))
            .args([
                "run",
                file.to_str().unwrap(),
                "--store",
                store.to_str().unwrap(),
            ])
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", describe(&a));
    assert!(b.status.success(), "{}", describe(&b));
    let mut built: BTreeMap<String, usize> = BTreeMap::new();
    for e in std::fs::read_dir(store.join("logs")).unwrap() {
        for line in std::fs::read_to_string(e.unwrap().path()).unwrap().lines() {
            let ev: Json = serde_json::from_str(line).unwrap();
            if ev["outcome"] == "built" {
                *built
                    .entry(ev["stage"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    assert_eq!(built.len(), 4, "{built:?}");
    assert!(built.values().all(|&n| n == 1), "{built:?}");
    assert_fresh_means_complete(&file, &store);
    output_digests(&file, &store);
}

#[test]
fn the_paper_pipeline_generates_the_papers_data() {
    let dir = tmpdir("pipeline", "paper");
    let store = dir.join("store");
    let f = root().join("pipelines/phantomwiki-paper.yaml");
    let (f, st) = (f.to_str().unwrap(), store.to_str().unwrap());
    run_ok(&["run", f, "--store", st], &dir);
    let manifest = |out: &str| -> Json {
        let d = run_ok(&["show", f, out, "--path", "--store", st], &dir);
        serde_json::from_slice(&std::fs::read(Path::new(d.trim()).join("manifest.json")).unwrap())
            .unwrap()
    };
    let all = manifest("universes.dataset");
    assert_eq!(all["params"]["max_tree_size"], 25);
    assert_eq!(all["params"]["question_depth"], 20);
    assert_eq!(all["params"]["relations"], "easy");
    assert_eq!(all["params"]["aggregation"], false);
    assert_eq!(all["seeds"].as_array().unwrap().len(), 41);
    let train = manifest("split.train");
    let test = manifest("split.test");
    let seeds = |m: &Json| {
        m["seeds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(seeds(&train), (11..=41).collect::<Vec<_>>());
    assert_eq!(seeds(&test), (1..=10).collect::<Vec<_>>());
    assert_eq!(train["sources"][0]["params"]["question_depth"], 20);
    let n = train["counts"]["questions"].as_u64().unwrap();
    assert!((9_000..=12_000).contains(&n), "{n} training questions");
    assert!(train["histograms"]["template"].get("how_many").is_none());
    let max_people = all["counts"]["entities"]["person"].as_u64().unwrap();
    assert!(max_people <= 25 * 41);
}

#[test]
fn schema_covers_every_kind_and_parameter_and_the_docs_do_too() {
    let o = synthpipe(&["schema", "pipeline"], &root());
    assert!(o.status.success(), "{}", describe(&o));
    let mut schema: Json = serde_json::from_slice(&o.stdout).unwrap();
    // Every kind is one alternative of a stage, with every parameter, closed to others;
    // `defaults` takes every kind's parameters.
    let kinds = schema["properties"]["stages"]["additionalProperties"]["oneOf"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(kinds.len(), synthpipe::stages::KINDS.len());
    for (k, alt) in synthpipe::stages::KINDS.iter().zip(&kinds) {
        assert_eq!(alt["title"], k.name);
        assert_eq!(alt["properties"]["kind"]["const"], k.name);
        assert_eq!(alt["additionalProperties"], false, "{}", k.name);
        for key in ["cpus", "out", "executor", "resources"] {
            assert!(alt["properties"].get(key).is_some(), "{}: {key}", k.name);
        }
        for p in k.params {
            assert!(
                alt["properties"].get(p.name).is_some(),
                "{}: {}",
                k.name,
                p.name
            );
            let required = alt["required"]
                .as_array()
                .unwrap()
                .contains(&Json::from(p.name));
            assert_eq!(required, p.required, "{}: {}", k.name, p.name);
            let defaults = &schema["properties"]["defaults"]["properties"][k.name];
            assert!(defaults["properties"].get(p.name).is_some());
        }
    }
    // Reviewable snapshots: the top level, and one kind in full.
    let split = kinds
        .iter()
        .find(|k| k["title"] == "split")
        .unwrap()
        .clone();
    insta::assert_snapshot!(
        "pipeline_schema_split",
        serde_json::to_string_pretty(&split).unwrap()
    );
    let titles: Vec<Json> = kinds.iter().map(|k| k["title"].clone()).collect();
    schema["properties"]["stages"]["additionalProperties"]["oneOf"] = Json::from(titles);
    schema["properties"]["defaults"]["properties"] =
        Json::String("<every kind's parameters>".into());
    insta::assert_snapshot!(
        "pipeline_schema_top",
        serde_json::to_string_pretty(&schema).unwrap()
    );
    let docs = std::fs::read_to_string(root().join("docs/pipelines.md")).unwrap();
    for k in synthpipe::stages::KINDS {
        assert!(
            docs.contains(&format!("### `{}`", k.name)),
            "docs/pipelines.md lacks kind `{}`",
            k.name
        );
        for p in k.params {
            assert!(
                docs.contains(&format!("`{}`", p.name)),
                "docs/pipelines.md lacks `{}` of `{}`",
                p.name,
                k.name
            );
        }
    }
    for c in Code::ALL {
        assert!(
            docs.contains(&c.full()),
            "docs/pipelines.md lacks {}",
            c.full()
        );
    }
}

const TOKENS: &[&str] = &[
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\n",
    "  ",
    "\"",
    "'",
    "${params.",
    "}",
    "from: ",
    "kind: ",
    "&a ",
    "*a",
    "<<: ",
    "!!str ",
    "~",
    "#",
    "..=",
    "-1",
    "1e999",
    "\t",
    "stages:",
    "split.train",
];

#[test]
fn mutated_pipeline_files_never_panic() {
    let sources: Vec<(PathBuf, String)> = [
        "pipelines/quickstart.yaml",
        "pipelines/phantomwiki-paper.yaml",
        "pipelines/paper.yaml",
        "pipelines/real-model-cpu.yaml",
    ]
    .iter()
    .map(|p| {
        (
            root().join(p),
            std::fs::read_to_string(root().join(p)).unwrap(),
        )
    })
    .chain(err_fixtures().into_iter().map(|p| {
        let t = std::fs::read_to_string(&p).unwrap();
        (p, t)
    }))
    .collect();
    let mut rng = Rng(42);
    let mut rejected = 0;
    for round in 0..1500 {
        let (path, text) = &sources[round % sources.len()];
        let mut m: Vec<u8> = text.clone().into_bytes();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(m.len() + 1);
            match rng.below(4) {
                0 if !m.is_empty() => {
                    let end = (at + 1 + rng.below(12)).min(m.len());
                    m.drain(at.min(end)..end);
                }
                1 => {
                    let t = TOKENS[rng.below(TOKENS.len())];
                    m.splice(at..at, t.bytes());
                }
                2 if !m.is_empty() => {
                    let b = rng.below(m.len());
                    let len = rng.below(40).min(m.len() - b);
                    let chunk: Vec<u8> = m[b..b + len].to_vec();
                    m.splice(at..at, chunk);
                }
                _ => {
                    if let Some(x) = m.get_mut(at) {
                        *x = b" :-[]{}x1\n"[rng.below(10)];
                    }
                }
            }
        }
        let Ok(text) = String::from_utf8(m) else {
            continue;
        };
        match load::load_str(&text, path) {
            Ok(_) => {}
            Err(diags) => {
                rejected += 1;
                assert!(!diags.is_empty());
                for d in &diags {
                    assert!(
                        d.span.start <= d.span.end && d.span.end <= text.len(),
                        "span {:?} outside {} bytes:\n{text}",
                        d.span,
                        text.len()
                    );
                }
                let _ = diag::render_plain(&diags, "m.yaml", &text, 100);
            }
        }
    }
    assert!(rejected > 500, "only {rejected} mutants rejected");
}

#[test]
fn independent_stages_run_side_by_side_when_cores_allow() {
    let dir = tmpdir("pipeline", "parallel");
    let yaml = "name: par
stages:
  gen:
    kind: generate
    rules: RULES/family.rules
    seeds: \"1..=120\"
    set: {max_tree_size: 30, question_depth: 12}
  a:
    kind: split
    dataset: {from: gen.dataset}
    seed: 1
  b:
    kind: split
    dataset: {from: gen.dataset}
    seed: 2
";
    let file = write_pipeline(&dir, "p.yaml", yaml);
    let store = dir.join("store");
    run_ok(
        &[
            "run",
            file.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "-j",
            "2",
        ],
        &dir,
    );
    let log = std::fs::read_dir(store.join("logs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut at: BTreeMap<(String, String), f64> = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let e: Json = serde_json::from_str(line).unwrap();
        if let Some(stage) = e["stage"].as_str() {
            at.insert(
                (stage.to_string(), e["event"].as_str().unwrap().to_string()),
                e["t"].as_f64().unwrap(),
            );
        }
    }
    let t = |s: &str, e: &str| at[&(s.to_string(), e.to_string())];
    // Each split wants one core: with two, the second starts before the first ends.
    assert!(
        t("a", "start") <= t("b", "stage") && t("b", "start") <= t("a", "stage"),
        "{at:?}"
    );
    // The generate stage wants every core, so the splits start only after it.
    assert!(t("a", "start") >= t("gen", "stage"), "{at:?}");
}

#[test]
fn param_overrides_replace_declared_values_and_reject_unknown_names() {
    let dir = tmpdir("pipeline", "param");
    let store = dir.join("store");
    let st = store.to_str().unwrap();
    let file = write_pipeline(&dir, "p.yaml", QUICK);
    let f = file.to_str().unwrap();
    let first = run_ok(&["run", f, "--store", st], &dir);
    assert_eq!(outcomes(&first)["family"], "built", "{first}");
    // The same value as declared: everything fresh; another value: the stages using it
    // are stale, and `status` with the same override agrees.
    let same = run_ok(
        &["run", f, "--store", st, "--dry-run", "--param", "depth=9"],
        &dir,
    );
    assert_eq!(outcomes(&same)["family"], "fresh", "{same}");
    let other = run_ok(&["run", f, "--store", st, "--param", "depth=10"], &dir);
    assert_eq!(outcomes(&other)["family"], "built", "{other}");
    let status = run_ok(&["status", f, "--store", st, "--param", "depth=10"], &dir);
    assert!(!status.contains("stale"), "{status}");
    // An undeclared name, and a value of the wrong type, are coded errors.
    let o = synthpipe(&["run", f, "--store", st, "--param", "dpeth=3"], &dir);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("synthpipe::pipeline::unknown_param_ref"),
        "{err}"
    );
    assert!(
        err.contains("`params:` declares: depth, per_template"),
        "{err}"
    );
    let o = synthpipe(&["run", f, "--store", st, "--param", "depth=deep"], &dir);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("question_depth"));
}

#[test]
fn paper_pipeline_is_the_papers_recipe_for_a_given_model() {
    let model = root().join("tests/fixtures/models/tiny-qwen3");
    let path = root().join("pipelines/paper.yaml");
    // Without the model folder the file says so, at the parameter.
    if !root().join("models/Qwen3-0.6B").exists() {
        let f = load::load(&path).unwrap_err();
        assert!(
            f.diagnostics
                .iter()
                .any(|d| d.code == Code::MissingFile && d.message.contains("Qwen3-0.6B")),
            "{:?}",
            f.diagnostics
        );
    }
    // The benchmark files: the fixtures stand in for the shared dev samples.
    let eval = |f: &str| {
        root()
            .join("tests/fixtures/eval")
            .join(f)
            .display()
            .to_string()
    };
    let overrides = [
        ("model".to_string(), model.display().to_string()),
        ("hotpotqa".into(), eval("hotpotqa.json")),
        ("twowiki".into(), eval("2wiki.jsonl")),
        ("musique".into(), eval("musique.jsonl")),
    ];
    let p = load::load_with(&path, &overrides).unwrap_or_else(|f| panic!("{:?}", f.diagnostics));
    let grpo = &p.stages[p.stage("grpo").unwrap()];
    let spec_default = |name: &str| -> Json {
        let d = synthpipe::stages::grpo::KIND
            .param(name)
            .unwrap()
            .default
            .unwrap();
        serde_json::from_str(d).unwrap()
    };
    // Only the step count is set; everything else is the kind's default (the paper's).
    for name in [
        "group_size",
        "batch",
        "learning_rate",
        "beta",
        "epsilon",
        "loss_type",
        "temperature",
        "max_completion_tokens",
        "examples",
    ] {
        assert_eq!(grpo.params[name], spec_default(name), "{name}");
    }
    // One epoch of 10,000 questions at 2 prompts per step.
    assert_eq!(grpo.params["steps"], 5000);
    // Trained and evaluated on PhantomWiki's own kinds of question.
    for stage in ["train", "test"] {
        let s = &p.stages[p.stage(stage).unwrap()];
        assert_eq!(
            s.params["sources"][0]["question_type"],
            serde_json::json!(["entity", "attribute"]),
            "{stage}"
        );
    }
    // Held-out universes at pw_eval_grpo.sh's sampling, benchmarks at wiki_eval_grpo.sh's.
    for (stage, temperature, top_p, top_k) in [
        ("base", 1.0, 0.7, 0),
        ("trained", 1.0, 0.7, 0),
        ("base_hotpotqa", 0.6, 0.95, 20),
        ("trained_hotpotqa", 0.6, 0.95, 20),
        ("base_2wiki", 0.6, 0.95, 20),
        ("trained_2wiki", 0.6, 0.95, 20),
        ("base_musique", 0.6, 0.95, 20),
        ("trained_musique", 0.6, 0.95, 20),
    ] {
        let s = &p.stages[p.stage(stage).unwrap()];
        assert_eq!(s.params["temperature"], temperature, "{stage}");
        assert_eq!(s.params["max_completion_tokens"], 4096, "{stage}");
        assert_eq!(s.params["top_p"], top_p, "{stage}");
        assert_eq!(s.params["top_k"], top_k, "{stage}");
    }
}

#[test]
fn the_gpu_bench_pipeline_is_the_papers_shape() {
    let eval = root().join("tests/fixtures/eval/hotpotqa.json");
    let overrides = [
        (
            "model".to_string(),
            root()
                .join("tests/fixtures/models/tiny-qwen3")
                .display()
                .to_string(),
        ),
        ("hotpotqa".into(), eval.display().to_string()),
    ];
    let p = load::load_with(&root().join("benches/gpu.yaml"), &overrides)
        .unwrap_or_else(|f| panic!("{:?}", f.diagnostics));
    let grpo = &p.stages[p.stage("grpo").unwrap()].params;
    assert_eq!(grpo["group_size"], 16);
    assert_eq!(grpo["max_completion_tokens"], 1024);
    assert_eq!(grpo["prompt"], "paper");
    assert_eq!(grpo["examples"], 11);
    assert_eq!(grpo["backend"], "wgpu");
    let eval = &p.stages[p.stage("hotpotqa").unwrap()].params;
    assert_eq!(eval["limit"], 100);
    assert_eq!(eval["benchmark"], "hotpotqa");
}

/// What `synthpipe run --dry-run` lists under each stage: stage → setting → value as shown.
fn dry_run_settings(out: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut stages: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix('[') {
            // `[5/14] grpo (grpo): would build`
            current = rest
                .split_once("] ")
                .and_then(|(_, r)| r.split_once(' '))
                .map(|(name, _)| name.to_string());
        } else if let (Some(stage), Some(body)) = (&current, line.strip_prefix("      ")) {
            for pair in body.split("  ") {
                let (k, v) = pair.split_once('=').expect("name=value");
                stages
                    .entry(stage.clone())
                    .or_default()
                    .insert(k.to_string(), v.to_string());
            }
        }
    }
    stages
}

#[test]
fn paper_dry_run_shows_every_setting_of_the_table_in_docs_training() {
    let dir = tmpdir("pipeline", "paper-dry");
    let eval = |f: &str| root().join("tests/fixtures/eval").join(f);
    let args = [
        format!(
            "model={}",
            root().join("tests/fixtures/models/tiny-qwen3").display()
        ),
        format!("hotpotqa={}", eval("hotpotqa.json").display()),
        format!("twowiki={}", eval("2wiki.jsonl").display()),
        format!("musique={}", eval("musique.jsonl").display()),
    ];
    let file = root().join("pipelines/paper.yaml");
    let store = dir.join("store");
    let mut cli = vec![
        "run",
        file.to_str().unwrap(),
        "--dry-run",
        "--store",
        store.to_str().unwrap(),
    ];
    for a in &args {
        cli.extend(["--param", a.as_str()]);
    }
    let shown = dry_run_settings(&run_ok(&cli, &dir));
    assert!(shown.contains_key("grpo") && shown.contains_key("base_hotpotqa"));

    let doc = std::fs::read_to_string(root().join("docs/training.md")).unwrap();
    let table: Vec<&str> = doc
        .lines()
        .skip_while(|l| !l.starts_with("| setting | synthpipe"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(table.len() >= 25, "the recipe's table in docs/training.md");
    let mut checked = 0;
    for row in table {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        assert_eq!(cells.len(), 3, "{row}");
        // Every setting names where the paper sets it.
        assert!(cells[2].contains('`'), "no source named: {row}");
        let settings: Vec<&str> = cells[1]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|t| t.contains('='))
            .collect();
        assert!(!settings.is_empty(), "no setting to check: {row}");
        for s in settings {
            let (path, want) = s.split_once('=').unwrap();
            // `name`, `stage.name` or `stage.name.key…` (into a JSON value).
            let parts: Vec<&str> = path.split('.').collect();
            let (stage, rest) = if shown.contains_key(parts[0]) && parts.len() > 1 {
                (parts[0], &parts[1..])
            } else {
                ("grpo", &parts[..])
            };
            let value = shown[stage]
                .get(rest[0])
                .unwrap_or_else(|| panic!("`{path}`: {stage} shows no `{}`", rest[0]));
            let got = if rest.len() == 1 {
                value.clone()
            } else {
                let mut v: Json = serde_json::from_str(value).unwrap();
                for k in &rest[1..] {
                    v = match k.parse::<usize>() {
                        Ok(i) => v[i].clone(),
                        Err(_) => v[*k].clone(),
                    };
                }
                match v {
                    Json::String(t) => t,
                    other => other.to_string(),
                }
            };
            assert_eq!(
                got, want,
                "docs/training.md says `{s}`; --dry-run shows {got}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 45, "{checked} settings checked");
}

const TWO_SETTINGS: &str = "name: ids
stages:
  small:
    kind: generate
    rules: RULES/family.rules
    seeds: \"1..=6\"
    set: {max_tree_size: 12, question_depth: 9}
  large:
    kind: generate
    rules: RULES/family.rules
    seeds: \"1..=6\"
    set: {max_tree_size: 13, question_depth: 9}
  both:
    kind: mix
    sources:
      - from: small.dataset
      - from: large.dataset
";

#[test]
fn a_mix_of_same_seed_datasets_has_unique_ids_and_refuses_a_repeat() {
    let dir = tmpdir("pipeline", "ids");
    let store = dir.join("store");
    let st = store.to_str().unwrap();
    let file = write_pipeline(&dir, "p.yaml", TWO_SETTINGS);
    run_ok(&["run", file.to_str().unwrap(), "--store", st], &dir);
    let read_ids = |stage: &str| -> Vec<String> {
        let out = run_ok(
            &[
                "show",
                file.to_str().unwrap(),
                stage,
                "--path",
                "--store",
                st,
            ],
            &dir,
        );
        let qs =
            std::fs::read_to_string(PathBuf::from(out.trim()).join("questions.jsonl")).unwrap();
        qs.lines()
            .map(|l| {
                serde_json::from_str::<Json>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let (small, large, mixed) = (
        read_ids("small.dataset"),
        read_ids("large.dataset"),
        read_ids("both.dataset"),
    );
    assert_eq!(mixed.len(), small.len() + large.len());
    let unique: std::collections::BTreeSet<&String> = mixed.iter().collect();
    assert_eq!(unique.len(), mixed.len(), "ids collide across universes");

    // A hand-made repeat: the same dataset twice is refused with a coded error.
    let data = run_ok(
        &[
            "show",
            file.to_str().unwrap(),
            "small.dataset",
            "--path",
            "--store",
            st,
        ],
        &dir,
    );
    let twice = write_pipeline(
        &dir,
        "twice.yaml",
        &format!(
            "name: twice\nstages:\n  m:\n    kind: mix\n    sources:\n      - path: {0}\n      - path: {0}\n",
            data.trim()
        ),
    );
    let o = synthpipe(&["run", twice.to_str().unwrap(), "--store", st], &dir);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("synthpipe::mix::duplicate_id"), "{err}");
    assert!(
        err.contains("in source 1") && err.contains("in source 2"),
        "{err}"
    );
}

#[test]
fn verify_finds_damage_and_run_refuses_a_damaged_input() {
    let dir = tmpdir("pipeline", "verify");
    let store = dir.join("store");
    let st = store.to_str().unwrap();
    let file = write_pipeline(&dir, "p.yaml", QUICK);
    let f = file.to_str().unwrap();
    run_ok(&["run", f, "--store", st], &dir);
    let clean = run_ok(&["verify", f, "--store", st], &dir);
    assert!(
        clean.contains("verified 4 store entries") && clean.contains(": 0 damaged"),
        "{clean}"
    );
    let path_of =
        |out: &str| PathBuf::from(run_ok(&["show", f, out, "--path", "--store", st], &dir).trim());
    // A deleted line, a flipped byte (same size) and a missing file.
    let family = path_of("family.dataset").join("questions.jsonl");
    let films = path_of("films.dataset").join("entities.jsonl");
    let train = path_of("split.train").join("articles.jsonl");
    let text = std::fs::read_to_string(&family).unwrap();
    let cut: Vec<&str> = text.lines().skip(1).collect();
    std::fs::write(&family, cut.join("\n") + "\n").unwrap();
    let mut bytes = std::fs::read(&films).unwrap();
    let i = bytes.iter().position(|&b| b == b'a').unwrap();
    bytes[i] = b'b';
    std::fs::write(&films, bytes).unwrap();
    std::fs::remove_file(&train).unwrap();

    let o = synthpipe(&["verify", f, "--store", st], &dir);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for code in [
        "synthpipe::store::size_mismatch",
        "synthpipe::store::digest_mismatch",
        "synthpipe::store::missing_file",
    ] {
        assert!(err.contains(code), "{code} missing from:\n{err}");
    }
    assert!(
        err.contains("dataset/questions.jsonl") && err.contains("stage `films`"),
        "{err}"
    );
    assert!(err.contains(": 3 damaged"), "{err}");
    let status = run_ok(&["status", f, "--store", st], &dir);
    assert!(status.contains("damaged"), "{status}");

    // The flipped byte keeps its size, so `films` still counts as built; the mix that reads
    // it must not use it.
    let o = synthpipe(&["run", f, "--store", st, "--force", "train_mix"], &dir);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("input `films.dataset` is damaged"), "{err}");
    assert!(err.contains("synthpipe::store::digest_mismatch"), "{err}");
    assert!(err.contains("synthpipe verify --repair"), "{err}");

    // That run rebuilt what `run` itself sees as incomplete (the resized and the missing
    // file); the entry with other bytes is left for `verify --repair`.
    let repaired = run_ok(&["verify", f, "--repair", "--store", st], &dir);
    assert_eq!(
        repaired.matches("the next run rebuilds it").count(),
        1,
        "{repaired}"
    );
    let rebuilt = run_ok(&["run", f, "--store", st], &dir);
    assert!(
        outcomes(&rebuilt)
            .values()
            .all(|w| w == "built" || w == "fresh"),
        "{rebuilt}"
    );
    let clean = run_ok(&["verify", "--store", st], &dir);
    assert!(clean.contains(": 0 damaged"), "{clean}");
    // Rebuilt from the same inputs: the same bytes as before the damage.
    assert_eq!(std::fs::read_to_string(&family).unwrap(), text);
}

/// A new stage kind is one module (here: this test's `toy`) plus its line in a registry;
/// the engine loads, keys, runs and caches it without knowing it by name.
mod toy {
    use serde::Deserialize;
    use synthpipe::stages::spec::{KindSpec, OutputKind, OutputSpec, Ty, p};
    use synthpipe::stages::{Io, StageError, no_check, reads_as};

    pub const KIND: KindSpec = KindSpec {
        name: "toy",
        version: 1,
        doc: "Writes a greeting `times` times.",
        params: &[p(
            "times",
            Ty::Int { min: 1, max: 9 },
            Some("2"),
            "how many greetings",
        )],
        outputs: &[OutputSpec {
            name: "text",
            kind: OutputKind::Metrics,
            doc: "greeting.txt",
        }],
        cpus: 1,
        exclusive: false,
        check: no_check,
        typed: reads_as::<Params>,
        run,
    };

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Params {
        pub times: usize,
    }

    fn run(io: &Io) -> Result<(), StageError> {
        let p: Params = io.typed()?;
        let out = io.output("text")?;
        std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
        std::fs::write(out.join("greeting.txt"), "hello\n".repeat(p.times))
            .map_err(|e| StageError(e.to_string()))
    }
}

#[test]
fn a_new_stage_kind_is_one_module_and_one_registry_line() {
    static REGISTRY: &[&synthpipe::stages::KindSpec] = &[&toy::KIND];
    let dir = tmpdir("pipeline", "toy_kind");
    let path = dir.join("toy.yaml");
    let text = "name: toy\nstages:\n  hi:\n    kind: toy\n    times: 3\n";
    let p = load::load_str_in(text, &path, &[], REGISTRY).unwrap_or_else(|d| panic!("{d:?}"));
    let store = Store::open(&dir.join("store")).unwrap();
    let quiet = |_: &str| {};
    let first = run::run(&p, &store, &run::Options::default(), &quiet).unwrap();
    assert_eq!(first[0].outcome, run::Outcome::Built);
    let key = first[0].key.clone().unwrap();
    let out = store.output_dir(&key).join("text/greeting.txt");
    assert_eq!(std::fs::read_to_string(out).unwrap(), "hello\n".repeat(3));
    let again = run::run(&p, &store, &run::Options::default(), &quiet).unwrap();
    assert_eq!(again[0].outcome, run::Outcome::Cached);
    // Its parameters are checked like any kind's: an unknown one is a coded diagnostic.
    let bad = "name: toy\nstages:\n  hi:\n    kind: toy\n    twice: 3\n";
    let diags = load::load_str_in(bad, &path, &[], REGISTRY).unwrap_err();
    assert!(
        diags.iter().any(|d| d.code == Code::UnknownKey),
        "{diags:?}"
    );
    // synthpipe's own registry does not know it.
    assert!(load::load_str(text, &path).is_err());
}

#[test]
fn real_model_cpu_pipeline_scores_enough_questions_before_and_after_lora() {
    let model = root().join("tests/fixtures/models/tiny-qwen3");
    let path = root().join("pipelines/real-model-cpu.yaml");
    let overrides = [("model".to_string(), model.display().to_string())];
    let p = load::load_with(&path, &overrides).unwrap_or_else(|f| panic!("{:?}", f.diagnostics));
    let stage = |name: &str| &p.stages[p.stage(name).unwrap_or_else(|| panic!("no {name}"))];
    assert!(stage("grpo").params["lora"].is_object());
    // Every benchmark twice, the trained side as the base model plus the trained adapter,
    // at least 100 questions each.
    for bench in ["hotpotqa", "2wiki", "musique"] {
        for side in ["base", "trained"] {
            let s = stage(&format!("{side}_{bench}"));
            assert!(s.params["limit"].as_u64().unwrap() >= 100, "{side}_{bench}");
            let adapter = s.params.get("adapter").filter(|a| !a.is_null());
            assert_eq!(
                adapter.is_some(),
                side == "trained",
                "{side}_{bench}: {adapter:?}"
            );
        }
    }
    // At least 200 held-out questions, from universes no training question comes from.
    let dir = tmpdir("pipeline", "real_model_cpu");
    let file = path.display().to_string();
    let m = format!("model={}", model.display());
    let args = |cmd: &str, what: &str| -> Vec<String> {
        [cmd, &file, "--store", "store", "--param", &m]
            .into_iter()
            .map(String::from)
            .chain(match cmd {
                "run" => vec!["--stage".to_string(), what.to_string()],
                _ => vec![what.to_string()],
            })
            .collect()
    };
    let run = |cmd: &str, what: &str| {
        let a = args(cmd, what);
        let o = synthpipe(&a.iter().map(String::as_str).collect::<Vec<_>>(), &dir);
        assert!(o.status.success(), "{}", describe(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let questions = |stage: &str| -> Vec<Json> {
        run("run", stage);
        let shown = run("show", &format!("{stage}.dataset"));
        let folder = shown
            .lines()
            .find_map(|l| l.strip_prefix("output dataset: "))
            .unwrap_or_else(|| panic!("{shown}"));
        std::fs::read_to_string(dir.join(folder).join("questions.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let universes = |qs: &[Json]| -> std::collections::BTreeSet<String> {
        qs.iter().map(|q| q["universe"].to_string()).collect()
    };
    let held_out = questions("test");
    assert!(
        held_out.len() >= 200,
        "{} held-out questions",
        held_out.len()
    );
    assert!(universes(&held_out).is_disjoint(&universes(&questions("train"))));
}
