//! Training stages end to end on a tiny model: `lm_init` → `sft` → `grpo` → `evaluate`
//! through `synthpipe run`; a run killed with SIGKILL during SFT and again during GRPO
//! resumes from its checkpoints to byte-identical weights; the spec's GRPO defaults are the
//! paper's recipe.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Scratch, describe, root, synthpipe, tmpdir};
use serde_json::Value as Json;

/// A small family universe, a tiny model, a short SFT warm start (so that some sampled
/// completions end in an answer and GRPO has rewards to learn from), a few GRPO steps with
/// checkpoints every 2 steps, and an evaluation.
fn pipeline(rules: &Path) -> String {
    format!(
        r#"name: resume
stages:
  family:
    kind: generate
    rules: {rules}
    seeds: "1..=12"
    set:
      max_tree_size: 4
      friend_degree: 1.0
      question_depth: 4
      relations: easy
      aggregation: false
      questions_per_template: 2
  split:
    kind: split
    dataset: {{from: family.dataset}}
    train: "3..=12"
    test: "1..=2"
  tiny:
    kind: lm_init
    dataset: {{from: split.train}}
    vocab: 600
    layers: 2
    hidden: 64
    heads: 4
    kv_heads: 2
    context: 1024
    seed: 5
  sft:
    kind: sft
    model: {{from: tiny.model}}
    dataset: {{from: split.train}}
    examples: 0
    evidence: false
    steps: 150
    batch: 8
    micro_batch: 4
    learning_rate: 0.005
    checkpoint_every: 30
    backend: flex
    out: out/sft
  grpo:
    kind: grpo
    model: {{from: sft.model}}
    dataset: {{from: split.train}}
    examples: 0
    evidence: false
    steps: 6
    batch: 2
    group_size: 4
    micro_batch: 4
    learning_rate: 0.001
    max_completion_tokens: 32
    reward_format: 0.5
    checkpoint_every: 2
    backend: flex
    seed: 3
    out: out/grpo
  test:
    kind: evaluate
    model: {{from: grpo.model}}
    dataset: {{from: split.test}}
    examples: 0
    evidence: false
    max_completion_tokens: 24
    backend: flex
    out: out/test
"#,
        rules = rules.display()
    )
}

fn setup(name: &str) -> Scratch {
    let dir = tmpdir("train", name);
    std::fs::write(
        dir.join("p.yaml"),
        pipeline(&root().join("rules/family.rules")),
    )
    .unwrap();
    dir
}

/// Keys of stages whose scratch folder holds a complete checkpoint.
fn checkpointed(store: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(store.join("scratch")) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.path().join("checkpoint/state.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Starts a run and SIGKILLs it as soon as a stage not in `seen` has a checkpoint; returns
/// that stage's scratch key. `None` if the run finished first.
fn run_until_checkpoint(dir: &Path, seen: &[String]) -> Option<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_synthpipe"))
        .args(["run", "p.yaml", "--store", "store"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(k) = checkpointed(&dir.join("store"))
            .into_iter()
            .find(|k| !seen.contains(k))
        {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            return Some(k);
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Metrics lines without their timings (which differ between runs).
fn metrics(path: &Path) -> Vec<Json> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut j: Json = serde_json::from_str(l).unwrap();
            let m = j.as_object_mut().unwrap();
            m.retain(|k, _| {
                !k.contains("seconds") && !k.contains("per_second") && !k.starts_with("peak_")
            });
            j
        })
        .collect()
}

#[test]
fn killed_training_resumes_to_identical_weights() {
    // Uninterrupted.
    let a = setup("straight");
    let o = synthpipe(&["run", "p.yaml", "--store", "store"], &a);
    assert!(o.status.success(), "{}", describe(&o));

    // Killed once during SFT and once during GRPO, each after a checkpoint, then finished.
    let b = setup("killed");
    let first = run_until_checkpoint(&b, &[]).expect("the run ended before SFT checkpointed");
    let second = run_until_checkpoint(&b, std::slice::from_ref(&first))
        .expect("the run ended before GRPO checkpointed");
    assert_ne!(first, second);
    let o = synthpipe(&["run", "p.yaml", "--store", "store"], &b);
    assert!(o.status.success(), "{}", describe(&o));

    for stage in ["sft", "grpo"] {
        let wa = std::fs::read(a.join("out").join(stage).join("model/model.safetensors")).unwrap();
        let wb = std::fs::read(b.join("out").join(stage).join("model/model.safetensors")).unwrap();
        assert!(
            wa == wb,
            "{stage}: resumed weights differ from the uninterrupted run's"
        );
        let ma = metrics(&a.join("out").join(stage).join("metrics/metrics.jsonl"));
        let mb = metrics(&b.join("out").join(stage).join("metrics/metrics.jsonl"));
        assert_eq!(ma, mb, "{stage}: metrics differ");
        // The model folder says how it was trained, the same whether resumed or not.
        let made = |d: &Path| -> Json {
            let text =
                std::fs::read_to_string(d.join("out").join(stage).join("model/training.json"));
            serde_json::from_str(&text.unwrap()).unwrap()
        };
        let (ta, tb) = (made(&a), made(&b));
        assert_eq!(ta, tb, "{stage}: training.json differs");
        assert_eq!(ta["kind"], stage);
        assert!(
            ta["params"]["optim"]["learning_rate"].as_f64().unwrap() > 0.0,
            "{ta}"
        );
        assert_eq!(ta["params"]["grpo"].is_null(), stage == "sft", "{ta}");
    }
    let sft = metrics(&a.join("out/sft/metrics/metrics.jsonl"));
    assert_eq!(sft.len(), 150);
    let loss = |i: usize| sft[i]["loss"].as_f64().unwrap();
    assert!(
        loss(39) < loss(0),
        "SFT loss did not fall: {} → {}",
        loss(0),
        loss(39)
    );
    // GRPO learned something: some steps had reward differences inside a group, so a
    // non-zero gradient (otherwise the resume check above would be trivial).
    let grpo = metrics(&a.join("out/grpo/metrics/metrics.jsonl"));
    assert_eq!(grpo.len(), 6);
    assert!(
        grpo.iter().any(|m| m["grad_norm"].as_f64().unwrap() > 0.0),
        "no GRPO step had a gradient: {grpo:?}"
    );
    for m in &grpo {
        for key in [
            "reward_mean",
            "reward_std",
            "f1",
            "format_rate",
            "loss",
            "kl",
            "clip_region",
            "grad_norm",
            "learning_rate",
            "completion_length",
        ] {
            assert!(m[key].is_number(), "metrics lack {key}: {m}");
        }
    }
    // The evaluation scored every test question.
    let report: Json = serde_json::from_str(
        &std::fs::read_to_string(a.join("out/test/results/metrics.json")).unwrap(),
    )
    .unwrap();
    let preds = std::fs::read_to_string(a.join("out/test/results/predictions.jsonl")).unwrap();
    assert_eq!(
        report["overall"]["questions"].as_u64().unwrap() as usize,
        preds.lines().count()
    );
}

#[test]
fn grpo_defaults_are_the_papers_recipe() {
    use synthpipe::rl::objective::LossType;
    use synthpipe::rl::params::Schedule;
    use synthpipe::stages::grpo::{KIND, Params};
    // The defaults exist once, in the kind's spec; they read as its typed parameters.
    let mut m = serde_json::Map::new();
    for p in KIND.params {
        if let Some(d) = p.default {
            m.insert(p.name.into(), serde_json::from_str(d).unwrap());
        }
    }
    let params: Params = serde_json::from_value(Json::Object(m)).unwrap();
    // DESIGN.md §5.
    assert_eq!((params.group_size, params.batch), (16, 2));
    assert_eq!(params.learning_rate, 1e-6);
    assert_eq!(params.lr_schedule, Schedule::Linear);
    assert_eq!((params.weight_decay, params.max_grad_norm), (0.0, 1.0));
    assert_eq!(
        (params.beta, params.epsilon, params.iterations),
        (0.0, 0.2, 1)
    );
    assert_eq!(params.loss_type, LossType::Bnpo);
    assert!(params.scale_rewards);
    assert_eq!(params.temperature, 1.0);
    assert_eq!(
        (params.max_completion_tokens, params.max_prompt_tokens),
        (4096, 6000)
    );
    assert_eq!(params.examples, 11);
    assert_eq!(
        (params.reward_f1, params.reward_em, params.reward_format),
        (1.0, 0.0, 0.0)
    );
}

/// A kind whose parameters all have defaults reads them as its typed `Params`, and refuses
/// a parameter it does not have (the loader runs the same check on every stage it loads).
#[test]
fn defaults_read_as_typed_parameters_and_unknown_fields_are_refused() {
    let reads = |kind: &synthpipe::stages::KindSpec, m: &serde_json::Map<String, Json>| {
        let params = m.clone().into_iter().collect();
        let none = Default::default();
        let io = synthpipe::stages::Io {
            params: &params,
            inputs: &none,
            outputs: &none,
            scratch: std::path::Path::new(""),
            progress: false,
        };
        (kind.typed)(&io).map_err(|e| e.0)
    };
    let mut checked = Vec::new();
    for kind in synthpipe::stages::KINDS {
        let mut m = serde_json::Map::new();
        let mut complete = true;
        for p in kind.params {
            match (p.default, p.ty) {
                (_, synthpipe::stages::spec::Ty::Input(_)) => {}
                // Shares and seeds are normalised by the loader; lists have no default.
                (
                    _,
                    synthpipe::stages::spec::Ty::ShareOrSeeds
                    | synthpipe::stages::spec::Ty::List(_),
                ) => complete = false,
                (Some(d), _) => {
                    m.insert(p.name.into(), serde_json::from_str(d).unwrap());
                }
                (None, _) if p.required => complete = false,
                (None, _) => {}
            }
        }
        if !complete || kind.name == "generate" {
            continue;
        }
        reads(kind, &m).unwrap_or_else(|e| panic!("{}: {e}", kind.name));
        m.insert("no_such_parameter".into(), 1.into());
        let err = reads(kind, &m).expect_err(kind.name);
        assert!(err.contains("no_such_parameter"), "{}: {err}", kind.name);
        checked.push(kind.name);
    }
    assert_eq!(checked, ["score", "lm_init", "sft", "grpo", "evaluate"]);
}

/// A generated family dataset of two small universes, in its scratch folder.
fn family_dataset(name: &str) -> (Scratch, PathBuf) {
    let dir = tmpdir("train", name);
    let rules = root().join("rules/family.rules");
    let o = synthpipe(
        &[
            "generate",
            rules.to_str().unwrap(),
            "--out",
            "data",
            "--seed",
            "1..=2",
            "--set",
            "max_tree_size=4",
            "--set",
            "question_depth=5",
            "--set",
            "questions_per_template=1",
            "--set",
            "relations=easy",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", describe(&o));
    let data = dir.join("data");
    (dir, data)
}

#[test]
fn prompts_show_evidence_examples_from_another_universe_and_the_question() {
    use synthpipe::dataset::Dataset;
    use synthpipe::prompt::{Examples, chain_of_thought, prompt_text};
    let (_scratch, data) = family_dataset("prompt");
    let data = Dataset::load(&data).unwrap();
    let q = data
        .questions
        .iter()
        .find(|q| q.hops >= 2)
        .expect("a two-hop question");
    let examples = Examples::choose(&data.questions, 2, 0);
    let ex = examples.for_universe(&q.universe).unwrap();
    assert!(ex.iter().all(|e| e.universe != q.universe));
    let text = prompt_text(
        q,
        data.evidence.get(&q.universe).map(String::as_str),
        ex,
        false,
    );
    insta::assert_snapshot!("family_prompt", text);
    // Every generated question's chain of thought names each intermediate answer and ends
    // with the gold answers.
    for q in &data.questions {
        let cot = chain_of_thought(q);
        assert!(
            cot.ends_with(&format!("<answer>{}</answer>.", q.answers.join(", "))),
            "{cot}"
        );
        assert!(!cot.contains("Step "), "an op without a sentence: {cot}");
        for (step, out) in q.program.steps.iter().zip(&q.intermediate) {
            if step.op == "name" {
                continue;
            }
            for x in out {
                assert!(cot.contains(x.as_str()), "{cot} lacks {x}");
            }
        }
    }
}

#[test]
fn encoded_prompts_use_the_chat_template_and_respect_budgets() {
    use synthpipe::dataset::Dataset;
    use synthpipe::model::tokenizer::Tokenizer;
    use synthpipe::prompt::{PromptOptions, Prompter};
    let (_scratch, dir) = family_dataset("encode");
    let data = Dataset::load(&dir).unwrap();
    let tok = Tokenizer::train(
        synthpipe::prompt::tokenizer_texts(&dir)
            .unwrap()
            .into_iter(),
        400,
    )
    .unwrap();
    let q = &data.questions[0];
    let evidence = data.evidence.get(&q.universe).map(String::as_str);
    let prompter = |chat: bool, max_prompt: usize, max_completion: usize| Prompter {
        tokenizer: &tok,
        opts: PromptOptions {
            examples: 0,
            chat,
            ..PromptOptions::default()
        },
        max_prompt_tokens: max_prompt,
        max_completion_tokens: max_completion,
    };
    let p = prompter(true, 100_000, 100_000);
    let rendered = p.render(q, evidence, &[]).unwrap();
    assert!(rendered.starts_with("<|im_start|>user\n"), "{rendered}");
    assert!(
        rendered.ends_with("<|im_end|>\n<|im_start|>assistant\n"),
        "{rendered}"
    );
    let enc = p.encode(q, evidence, &[], true).unwrap().unwrap();
    let im_end = tok.inner.token_to_id("<|im_end|>").unwrap();
    assert_eq!(enc.target.last(), Some(&im_end), "the target ends the turn");
    assert_eq!(
        tok.decode(&enc.target, true).unwrap(),
        synthpipe::prompt::chain_of_thought(q)
    );
    // Budgets: one token short of the prompt, or of the target, is an overflow.
    let over = prompter(true, enc.prompt.len() - 1, 100_000)
        .encode(q, evidence, &[], true)
        .unwrap()
        .unwrap_err();
    assert_eq!((over.what, over.tokens), ("prompt", enc.prompt.len()));
    let over = prompter(true, 100_000, enc.target.len() - 1)
        .encode(q, evidence, &[], true)
        .unwrap()
        .unwrap_err();
    assert_eq!(over.what, "reference answer");
    // Without a target (evaluation) only the prompt counts.
    assert!(
        prompter(true, 100_000, 1)
            .encode(q, evidence, &[], false)
            .unwrap()
            .is_ok()
    );
    // Plain prompts end in `Answer:`, and the target starts with a space.
    let plain = prompter(false, 100_000, 100_000);
    assert!(
        plain
            .render(q, evidence, &[])
            .unwrap()
            .ends_with("\nAnswer:")
    );
    assert!(plain.target_text(q).starts_with(' '));
}

#[test]
fn grpo_draws_new_universes_on_the_fly_and_never_a_held_out_one() {
    let dir = tmpdir("train", "draw");
    let rules = root().join("rules/family.rules");
    let yaml = format!(
        r#"name: draw
stages:
  held_out:
    kind: generate
    rules: {rules}
    seeds: "2..=3"
    set: {{max_tree_size: 4, question_depth: 4}}
  tiny:
    kind: lm_init
    dataset: {{from: held_out.dataset}}
    vocab: 400
    layers: 1
    hidden: 32
    heads: 2
    kv_heads: 1
  grpo:
    kind: grpo
    model: {{from: tiny.model}}
    rules: {rules}
    set: {{max_tree_size: 4}}
    first_seed: 2
    holdout: {{from: held_out.dataset}}
    reward_low: 0.1
    reward_high: 0.5
    adapt_window: 1
    depth_min: 3
    depth_max: 5
    banks: [easy, all]
    steps: 3
    batch: 1
    group_size: 2
    examples: 0
    max_completion_tokens: 8
    backend: flex
    out: out
  sft_drawn:
    kind: sft
    model: {{from: tiny.model}}
    rules: {rules}
    set: {{max_tree_size: 4}}
    first_seed: 2
    holdout: {{from: held_out.dataset}}
    steps: 2
    batch: 1
    examples: 0
    backend: flex
    out: out_sft
  both:
    kind: sft
    model: {{from: tiny.model}}
    rules: {rules}
    dataset: {{from: held_out.dataset}}
"#,
        rules = rules.display()
    );
    std::fs::write(dir.join("p.yaml"), &yaml).unwrap();
    // `both` has a dataset and rules: refused before anything runs.
    let o = synthpipe(&["run", "p.yaml", "--store", "store"], &dir);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("exactly one of `dataset` and `rules`"),
        "{}",
        describe(&o)
    );
    let fixed = yaml.replace("    rules: {rules}\n    dataset:", "    dataset:");
    let fixed = fixed.replace(
        &format!("    rules: {}\n    dataset:", rules.display()),
        "    dataset:",
    );
    std::fs::write(dir.join("p.yaml"), fixed).unwrap();
    let o = synthpipe(
        &["run", "p.yaml", "--store", "store", "--stage", "grpo"],
        &dir,
    );
    assert!(o.status.success(), "{}", describe(&o));
    let m = metrics(&dir.join("out/metrics/metrics.jsonl"));
    let seeds: Vec<u64> = m
        .iter()
        .map(|l| l["universe_seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, vec![4, 5, 6], "seeds 2 and 3 are held out");
    // A fresh model earns no reward: below the band at the easiest level, it stays there.
    assert!(m.iter().all(|l| l["level"] == 0), "{m:?}");
    // SFT draws the same way (without an adaptive difficulty).
    let o = synthpipe(
        &["run", "p.yaml", "--store", "store", "--stage", "sft_drawn"],
        &dir,
    );
    assert!(o.status.success(), "{}", describe(&o));
    let m = metrics(&dir.join("out_sft/metrics/metrics.jsonl"));
    let seeds: Vec<u64> = m
        .iter()
        .map(|l| l["universe_seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, vec![4, 5], "seeds 2 and 3 are held out");
}

#[test]
fn quickstart_short_variant_trains_and_scores_held_out_universes() {
    // The shipped file with CI's overrides (its header says so): every stage runs, in the
    // order the README describes, and both models are scored on the same held-out questions.
    let dir = tmpdir("train", "quickstart");
    let qs = root().join("pipelines/quickstart.yaml");
    let store = dir.join("store");
    let mut args = vec![
        "run",
        qs.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ];
    for p in ["train=4..=40", "test=1..=3", "sft_steps=20", "grpo_steps=4"] {
        args.extend(["--param", p]);
    }
    let o = synthpipe(&args, &dir);
    assert!(o.status.success(), "{}", describe(&o));
    let log = String::from_utf8_lossy(&o.stderr);
    for stage in [
        "family",
        "split",
        "tiny",
        "sft",
        "grpo",
        "eval_sft",
        "eval_grpo",
        "report",
    ] {
        assert!(
            log.contains(&format!("] {stage} (")),
            "{stage} did not run: {log}"
        );
    }
    let show = |stage: &str| {
        let o = synthpipe(
            &[
                "show",
                qs.to_str().unwrap(),
                stage,
                "--store",
                store.to_str().unwrap(),
            ]
            .iter()
            .copied()
            .chain(args[4..].iter().copied())
            .collect::<Vec<_>>(),
            &dir,
        );
        assert!(o.status.success(), "{}", describe(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let path_of = |stage: &str, output: &str| -> PathBuf {
        let out = show(stage);
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("output {output}: ")))
            .unwrap_or_else(|| panic!("`show {stage}` names no {output}: {out}"));
        dir.join(line)
    };
    let test_questions = std::fs::read_to_string(path_of("split", "test").join("questions.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(test_questions > 0);
    for stage in ["eval_sft", "eval_grpo"] {
        let results = path_of(stage, "results");
        let m: Json =
            serde_json::from_str(&std::fs::read_to_string(results.join("metrics.json")).unwrap())
                .unwrap();
        assert_eq!(
            m["overall"]["questions"].as_u64().unwrap() as usize,
            test_questions,
            "{stage}"
        );
    }
    let sft = metrics(&path_of("sft", "metrics").join("metrics.jsonl"));
    assert_eq!(sft.len(), 20);
    let loss = |i: usize| sft[i]["loss"].as_f64().unwrap();
    assert!(loss(19) < loss(0), "SFT loss did not fall: {sft:?}");
    let grpo = metrics(&path_of("grpo", "metrics").join("metrics.jsonl"));
    assert_eq!(grpo.len(), 4);
    // The report: both models on the held-out questions, paired, with training curves; the
    // run's log says where the page is.
    let report = path_of("report", "report");
    assert!(log.contains("/report/report.html"), "{log}");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    for want in [
        "| held-out universes | ",
        "| GRPO | ",
        "GRPO − baseline",
        "### By difficulty",
        "## Training",
        "| SFT | sft | 20 | loss |",
        "| GRPO | grpo | 4 | reward |",
        "CofCA: not evaluated in this run",
    ] {
        assert!(md.contains(want), "no `{want}` in the report:\n{md}");
    }
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    let figures = md.matches("](plots/").count();
    assert!(figures >= 5, "{md}");
    assert_eq!(html.matches("<svg").count(), figures);
}

/// LoRA through `synthpipe run`: SFT trains rank-4 adapters (with dropout) on a frozen tiny
/// model; killed after a checkpoint, the run resumes to the same adapter and merged weights;
/// the output holds the merged model and the PEFT adapter, whose logits on the base model
/// are the merged model's.
#[test]
fn lora_trains_adapters_resumes_exactly_and_merges() {
    let pipeline = |rules: &Path| {
        format!(
            r#"name: lora
stages:
  family:
    kind: generate
    rules: {rules}
    seeds: "1..=4"
    set: {{max_tree_size: 4, friend_degree: 1.0, question_depth: 3, relations: easy, aggregation: false, questions_per_template: 2}}
  tiny:
    kind: lm_init
    dataset: {{from: family.dataset}}
    vocab: 400
    layers: 2
    hidden: 32
    heads: 4
    kv_heads: 2
    context: 1024
    seed: 5
    out: out/tiny
  sft:
    kind: sft
    model: {{from: tiny.model}}
    dataset: {{from: family.dataset}}
    examples: 0
    evidence: false
    steps: 24
    batch: 4
    micro_batch: 2
    learning_rate: 0.01
    checkpoint_every: 6
    lora: {{rank: 4, alpha: 8, dropout: 0.1, targets: [q, v, up, down]}}
    backend: flex
    out: out/sft
  more:
    kind: sft
    model: {{from: tiny.model}}
    adapter: {{from: sft.model}}
    dataset: {{from: family.dataset}}
    examples: 0
    evidence: false
    steps: 4
    batch: 4
    learning_rate: 0.01
    backend: flex
    out: out/more
  eval_adapter:
    kind: evaluate
    model: {{from: tiny.model}}
    adapter: {{from: sft.model}}
    dataset: {{from: family.dataset}}
    examples: 0
    evidence: false
    temperature: 0
    max_completion_tokens: 12
    backend: flex
    out: out/eval_adapter
  eval_merged:
    kind: evaluate
    model: {{from: sft.model}}
    dataset: {{from: family.dataset}}
    examples: 0
    evidence: false
    temperature: 0
    max_completion_tokens: 12
    backend: flex
    out: out/eval_merged
  eval_first:
    kind: evaluate
    model: {{from: sft.model}}
    dataset: {{from: family.dataset}}
    examples: 0
    evidence: false
    temperature: 0
    max_completion_tokens: 12
    limit: 3
    backend: flex
    out: out/eval_first
"#,
            rules = rules.display()
        )
    };
    let dirs: Vec<Scratch> = ["lora_straight", "lora_killed"]
        .iter()
        .map(|n| {
            let d = tmpdir("train", n);
            std::fs::write(
                d.join("p.yaml"),
                pipeline(&root().join("rules/family.rules")),
            )
            .unwrap();
            d
        })
        .collect();
    let o = synthpipe(&["run", "p.yaml", "--store", "store"], &dirs[0]);
    assert!(o.status.success(), "{}", describe(&o));
    run_until_checkpoint(&dirs[1], &[]).expect("the run ended before SFT checkpointed");
    let o = synthpipe(&["run", "p.yaml", "--store", "store"], &dirs[1]);
    assert!(o.status.success(), "{}", describe(&o));

    let out = |d: &Path, f: &str| std::fs::read(d.join("out/sft/model").join(f)).unwrap();
    for f in [
        "model.safetensors",
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
    ] {
        assert!(
            out(&dirs[0], f) == out(&dirs[1], f),
            "{f}: the resumed run differs"
        );
    }
    let ma = metrics(&dirs[0].join("out/sft/metrics/metrics.jsonl"));
    assert_eq!(ma, metrics(&dirs[1].join("out/sft/metrics/metrics.jsonl")));
    let loss = |i: usize| ma[i]["loss"].as_f64().unwrap();
    assert!(loss(23) < loss(0), "loss {} → {}", loss(0), loss(23));
    let made: Json = serde_json::from_slice(&out(&dirs[0], "training.json")).unwrap();
    assert_eq!(made["params"]["optim"]["lora"]["rank"], 4, "{made}");
    let cfg: Json = serde_json::from_slice(&out(&dirs[0], "adapter/adapter_config.json")).unwrap();
    assert_eq!(
        (
            cfg["r"].as_u64(),
            cfg["lora_alpha"].as_f64(),
            cfg["lora_dropout"].as_f64()
        ),
        (Some(4), Some(8.0), Some(0.1))
    );

    // The merged model's logits are the base model's with the adapter attached.
    use burn::prelude::*;
    use synthpipe::model::load::Model;
    use synthpipe::model::net::Cache;
    let device = Device::flex();
    let merged = Model::load(&dirs[0].join("out/sft/model"), &device).unwrap();
    let mut base = Model::load(&dirs[0].join("out/tiny/model"), &device).unwrap();
    base.net = synthpipe::model::lora::load_peft(&dirs[0].join("out/sft/model/adapter"), base.net)
        .unwrap();
    let logits = |m: &Model| -> Vec<f32> {
        let ids = burn::tensor::Tensor::<1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(vec![3i64, 10, 20, 7, 99, 5], [6]),
            &device,
        )
        .reshape([1, 6]);
        let mut cache = Cache::new(m.cfg.num_layers, 1);
        m.net
            .forward(&m.cfg, ids, &[vec![true; 6]], &mut cache)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let (a, b) = (logits(&merged), logits(&base));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-4, "merged vs base + adapter: {diff}");
    // Continuing the adapter starts where it ended, not from a fresh one.
    let more = metrics(&dirs[0].join("out/more/metrics/metrics.jsonl"));
    assert!(more[0]["loss"].as_f64().unwrap() < loss(0), "{more:?}");
    let cont: Json = serde_json::from_slice(
        &std::fs::read(dirs[0].join("out/more/model/adapter/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cont["r"], 4);
    // The base model with the adapter answers as the merged model does (greedy).
    let preds = |s: &str| {
        std::fs::read_to_string(
            dirs[0]
                .join("out")
                .join(s)
                .join("results/predictions.jsonl"),
        )
        .unwrap()
    };
    assert_eq!(preds("eval_adapter"), preds("eval_merged"));
    // `limit` scores the dataset's first questions only, as it does a benchmark's records.
    let all: Vec<String> = preds("eval_merged").lines().map(String::from).collect();
    assert!(all.len() > 3, "{} questions", all.len());
    assert_eq!(preds("eval_first"), all[..3].join("\n") + "\n");
    // `synthpipe lm` takes the adapter too: log-probabilities on the base with it are the
    // merged model's, and `lm convert --adapter` writes the merged model.
    let lp = |model: &str, adapter: Option<&str>| -> Json {
        let mut args = vec![
            "lm",
            "logprobs",
            model,
            "--prompt",
            "Who is the mother of",
            "--completion",
            " Ann?",
            "--backend",
            "flex",
            "--json",
        ];
        if let Some(a) = adapter {
            args.extend(["--adapter", a]);
        }
        let o = synthpipe(&args, &dirs[0]);
        assert!(o.status.success(), "{}", describe(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (with, merged_lp) = (
        lp("out/tiny/model", Some("out/sft/model")),
        lp("out/sft/model", None),
    );
    assert!(
        (with["total"].as_f64().unwrap() - merged_lp["total"].as_f64().unwrap()).abs() < 1e-3,
        "{with} vs {merged_lp}"
    );
    let o = synthpipe(
        &[
            "lm",
            "convert",
            "out/tiny/model",
            "--adapter",
            "out/sft/model/adapter",
            "--out",
            "converted",
        ],
        &dirs[0],
    );
    assert!(o.status.success(), "{}", describe(&o));
    let converted = Model::load(&dirs[0].join("converted"), &device).unwrap();
    let diff = logits(&converted)
        .iter()
        .zip(&a)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(
        diff < 1e-4,
        "lm convert --adapter vs the merged output: {diff}"
    );
    let o = synthpipe(
        &[
            "lm",
            "logprobs",
            "out/tiny/model",
            "--adapter",
            "out/family",
            "--prompt",
            "a",
            "--completion",
            "b",
        ],
        &dirs[0],
    );
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("synthpipe::lm::adapter"));
    let plain = Model::load(&dirs[0].join("out/tiny/model"), &device).unwrap();
    let moved = logits(&plain)
        .iter()
        .zip(&a)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(moved > 1e-3, "training changed nothing: {moved}");
}
