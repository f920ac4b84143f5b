//! Generate-and-score: a model answers a synthpipe dataset's questions (the training
//! prompts, scored with PhantomWiki's set metrics) or a real benchmark's (reading
//! comprehension with worked examples, its official metric), sampled as the settings say;
//! predictions.jsonl and metrics.json (an [`super::Evaluation`]: strata, the probe).

use std::path::Path;

use serde::Serialize;
use serde_json::json;

use super::answer;
use super::bench::{self, Benchmark};
use crate::dataset::Dataset;
use crate::model::device::{Backend, Dtype, device_with};
use crate::model::generate::{Finish, GenOptions, Generation, Sampling};
use crate::model::load::Model;
use crate::model::lora;
use crate::prompt::{OnOverflow, PromptOptions, Prompter, encode_all};
use crate::util::rng::Rng;

/// How completions are sampled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SampleParams {
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: usize,
}

impl SampleParams {
    /// Generation options: this sampling with `seed`, up to `max_new_tokens`.
    pub fn gen_options(&self, max_new_tokens: usize, seed: u64) -> GenOptions {
        GenOptions {
            max_new_tokens,
            stop: Vec::new(),
            sampling: Sampling {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: 0.0,
                seed,
            },
            prefill_chunk: 512,
            ignore_eos: false,
        }
    }
}

/// Every setting of an evaluation run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    /// Layout of the prompts; its seed also seeds the sampling.
    pub prompt: PromptOptions,
    pub max_prompt_tokens: usize,
    pub max_completion_tokens: usize,
    pub overflow: OnOverflow,
    pub sampling: SampleParams,
    /// Questions generated together.
    pub batch: usize,
    pub backend: Backend,
    pub dtype: Dtype,
}

impl Settings {
    fn prompter<'a>(&self, tokenizer: &'a crate::model::tokenizer::Tokenizer) -> Prompter<'a> {
        Prompter {
            tokenizer,
            opts: self.prompt.clone(),
            max_prompt_tokens: self.max_prompt_tokens,
            max_completion_tokens: self.max_completion_tokens,
        }
    }
}

/// A model served over the OpenAI-compatible API, answering in place of a local one.
pub struct Served<'a> {
    pub endpoint: &'a super::remote::Endpoint,
    /// The id the server lists for the model (`served_model`).
    pub model: String,
    pub api: super::remote::Api,
    pub concurrency: usize,
    /// Where answers are cached per request (the stage's scratch folder).
    pub cache: &'a Path,
}

/// An evaluation run: settings, the model (a local one, or a served one), where worked
/// examples come from (synthetic questions; default: the dataset itself), and the output
/// folder.
pub struct Run<'a> {
    pub settings: Settings,
    /// The local model; `None` when `served` answers.
    pub model: Option<&'a Path>,
    pub served: Option<Served<'a>>,
    /// A LoRA adapter on `model`.
    pub adapter: Option<&'a Path>,
    pub examples: Option<&'a Path>,
    pub out: &'a Path,
    pub progress: bool,
}

/// Generates an answer to every prompt, `batch` at a time, with the evaluation's sampling
/// (a seeded stream per batch), under a progress bar with the running F1. `score(i, g)`
/// scores prompt `i`'s generation (handed over, so its text can be kept without a copy)
/// and returns its F1 and its predictions.jsonl line; the lines come back joined, in
/// prompt order.
fn answer_all(
    run: &Run,
    model: &Model,
    prompts: &[Vec<u32>],
    mut score: impl FnMut(usize, Generation) -> (f64, serde_json::Value),
) -> Result<String, String> {
    let p = &run.settings;
    let batch = p.batch.max(1);
    let pb = crate::util::progress::steps(run.progress, prompts.len() as u64, "evaluate");
    let mut lines: Vec<String> = vec![String::new(); prompts.len()];
    let mut f1_sum = 0.0;
    // Prompts are answered in the order of their tokens, so that those sharing a prefix
    // (a universe's evidence and worked examples; a benchmark's instruction) fall in the
    // same batch or the next one: the batch prefills what its prompts share once, and
    // keeps it for the next batch. predictions.jsonl keeps the dataset's order.
    let mut kept = None;
    let mut done = 0;
    for (b, chunk) in batches(prompts, batch).iter().enumerate() {
        let seed = Rng::stream(p.prompt.seed, &format!("evaluate/{b}")).next_u64();
        let opts = p.sampling.gen_options(p.max_completion_tokens, seed);
        let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
        let (gens, _) = model.generate_reusing(&rows, &opts, Some(&mut kept))?;
        for (&i, g) in chunk.iter().zip(gens) {
            let (f1, line) = score(i, g);
            f1_sum += f1;
            lines[i] = line.to_string() + "\n";
        }
        pb.inc(chunk.len() as u64);
        done += chunk.len();
        pb.set_message(format!("F1 {:.3}", f1_sum / done as f64));
    }
    pb.finish_and_clear();
    Ok(lines.concat())
}

/// The run's local model, with its adapter.
fn local_model(run: &Run) -> Result<Model, String> {
    let p = &run.settings;
    let path = run
        .model
        .ok_or("an evaluation needs a model or an endpoint")?;
    lora::load_adapted(path, run.adapter, &device_with(p.backend, p.dtype)?)
}

/// Asks the server for an answer to every prompt text, `concurrency` at a time, each with
/// the evaluation's sampling and a seed of its own (from the run's seed and the question's
/// id, so an answer does not depend on the order or the concurrency), under a progress
/// bar; then hands each answer to `score` in order, as [`answer_all`] does. Answers are
/// cached per request in the stage's scratch folder.
fn answer_served(
    run: &Run,
    s: &Served,
    texts: &[String],
    ids: &[String],
    mut score: impl FnMut(usize, Generation) -> (f64, serde_json::Value),
) -> Result<String, String> {
    let p = &run.settings;
    let sampling = super::remote::Sampling {
        temperature: p.sampling.temperature,
        top_p: p.sampling.top_p,
        top_k: p.sampling.top_k,
        max_tokens: p.max_completion_tokens,
    };
    let bodies: Vec<serde_json::Value> = texts
        .iter()
        .zip(ids)
        .map(|(t, id)| {
            let seed = Rng::stream(p.prompt.seed, &format!("evaluate/{id}")).next_u64() >> 1;
            s.endpoint.body(&s.model, t, &sampling, seed)
        })
        .collect();
    let names: Vec<String> = ids.iter().map(|id| format!("question `{id}`")).collect();
    let cache = super::remote::Cache::open(s.cache)?;
    let pb = crate::util::progress::steps(run.progress, texts.len() as u64, "evaluate");
    let answers =
        super::remote::answer_all(s.endpoint, &cache, &bodies, &names, s.concurrency, |_| {
            pb.inc(1)
        })
        .map_err(|e| e.to_string())?;
    pb.finish_and_clear();
    let mut lines = String::new();
    for (i, a) in answers.into_iter().enumerate() {
        let g = Generation {
            tokens: Vec::new(),
            text: a.text,
            finish: if a.truncated {
                Finish::Length
            } else {
                Finish::Stop
            },
        };
        lines.push_str(&score(i, g).1.to_string());
        lines.push('\n');
    }
    Ok(lines)
}

/// The identity of a prompt sent as text: blake3 of its bytes.
fn text_hash(text: &str) -> String {
    format!("b3:{}", blake3::hash(text.as_bytes()).to_hex())
}

/// Extra prompt tokens a batch may prefill rather than end early.
const SPLIT_COST: usize = 256;

/// The prompts' indices in token order (those that share only what all share: by length),
/// cut into batches of at most `batch`. A batch also
/// ends where taking the next prompt would make the prompts already in it prefill more
/// than [`SPLIT_COST`] tokens that they would otherwise share (with each other, or with
/// the batch before, whose prefix is kept): the prompts of one universe stay together,
/// while prompts sharing only the instruction (a benchmark's) still fill whole batches.
fn batches(prompts: &[Vec<u32>], batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by(|&a, &b| prompts[a].cmp(&prompts[b]));
    let lcp = |a: usize, b: usize| {
        let (a, b) = (&prompts[a], &prompts[b]);
        a.iter().zip(b).take_while(|(x, y)| x == y).count()
    };
    // A batch pads its prompts to its longest after what they share. Prompts that share no
    // more with their neighbours than every prompt shares (a benchmark's: the instruction)
    // gain nothing from token order, so they go by length: less padding.
    let next: Vec<usize> = order.windows(2).map(|w| lcp(w[0], w[1])).collect();
    let common = next.iter().copied().min().unwrap_or(0);
    let lone = |k: usize| {
        let before = k.checked_sub(1).map_or(0, |j| next[j]);
        let after = next.get(k).copied().unwrap_or(0);
        before.max(after) <= common + SPLIT_COST
    };
    let mut alone: Vec<usize> = (0..order.len()).filter(|&k| lone(k)).collect();
    // By length, ties in token order (positions `k` in `order`).
    alone.sort_by_key(|&k| (prompts[order[k]].len(), k));
    let grouped = (0..order.len()).filter(|&k| !lone(k));
    let order: Vec<usize> = grouped.chain(alone).map(|k| order[k]).collect();
    let mut out: Vec<Vec<usize>> = Vec::new();
    // What the current batch's prompts share: with each other, or for a lone prompt, with
    // the batch before.
    let mut shared = 0;
    for i in order {
        let joined = out.last().and_then(|cur| {
            let with = lcp(cur[0], i);
            let now = if cur.len() == 1 {
                with
            } else {
                shared.min(with)
            };
            (cur.len() < batch && cur.len() * shared.saturating_sub(now) <= SPLIT_COST)
                .then_some(now)
        });
        match (joined, out.last_mut()) {
            (Some(now), Some(cur)) => {
                shared = now;
                cur.push(i);
            }
            _ => {
                shared = out.last().map_or(0, |prev| lcp(prev[0], i));
                out.push(vec![i]);
            }
        }
    }
    out
}

/// The identity of a prompt in predictions.jsonl: blake3 of its token ids.
fn prompt_hash(tokens: &[u32]) -> String {
    let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
    format!("b3:{}", blake3::hash(&bytes).to_hex())
}

/// Answers every question of a synthpipe dataset (the first `limit`, when not 0) with the
/// model (the training prompts) and scores the answers with PhantomWiki's set metrics:
/// `predictions.jsonl` and `metrics.json` in the run's output.
pub fn synthetic(run: &Run, dir: &Path, limit: usize) -> Result<(), String> {
    let p = &run.settings;
    let out = run.out;
    let mut data = Dataset::load(dir)?;
    let pool = match run.examples {
        Some(path) => Dataset::load(path)?.questions,
        None => data.questions.clone(),
    };
    if limit > 0 {
        data.questions.truncate(limit);
    }
    let model = match run.served {
        Some(_) => None,
        None => Some(local_model(run)?),
    };
    // A server gets the prompt text (and applies its own chat template); a local model
    // gets token ids within the budgets.
    let (items, texts, skipped) = match (&model, &run.served) {
        (Some(m), _) => {
            let (items, skipped) =
                encode_all(&p.prompter(&m.tokenizer), data, &pool, p.overflow, false)?;
            (items, Vec::new(), skipped)
        }
        (None, Some(s)) => {
            let mut opts = p.prompt.clone();
            opts.chat = s.api == super::remote::Api::Chat;
            let (qs, texts): (Vec<_>, Vec<_>) = crate::prompt::texts_all(&opts, data, &pool)?
                .into_iter()
                .unzip();
            let items = qs
                .into_iter()
                .map(|q| crate::prompt::Item {
                    q,
                    enc: crate::prompt::Encoded {
                        prompt: Vec::new(),
                        target: Vec::new(),
                    },
                })
                .collect::<Vec<_>>();
            (items, texts, 0)
        }
        (None, None) => return Err("an evaluation needs a model or an endpoint".into()),
    };
    if items.is_empty() {
        return Err(format!(
            "no question of `{}` fits the token budgets ({skipped} skipped)",
            dir.display()
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create the output: {e}"))?;
    let prompts: Vec<Vec<u32>> = items.iter().map(|it| it.enc.prompt.clone()).collect();
    let mut preds = Vec::with_capacity(items.len());
    let score = |i: usize, g: Generation| {
        let it = &items[i];
        let predicted = answer::predicted(&g.text);
        let s = crate::eval::score::score_answers(&it.q.answers, &predicted);
        let answer = answer::last_answer(&g.text).unwrap_or("").to_string();
        let hash = match texts.get(i) {
            Some(t) => text_hash(t),
            None => prompt_hash(&it.enc.prompt),
        };
        let line = json!({
            "id": it.q.id,
            "prompt_hash": hash,
            "generation": g.text,
            "prediction": answer,
            "answers": predicted,
            "f1": s.f1,
            "em": s.em,
            "format": f64::from(u8::from(answer::well_formed(&g.text))),
            "truncated": g.finish == Finish::Length,
        });
        preds.push(super::Answer {
            id: it.q.id.clone(),
            answer,
            generation: Some(g.text),
            line: 0,
        });
        (s.f1, line)
    };
    let lines = match (&model, &run.served) {
        (Some(m), _) => answer_all(run, m, &prompts, score)?,
        (None, Some(s)) => {
            let ids: Vec<String> = items.iter().map(|it| it.q.id.clone()).collect();
            answer_served(run, s, &texts, &ids, score)?
        }
        (None, None) => return Err("an evaluation needs a model or an endpoint".into()),
    };
    // The same questions as records of the `synthetic` benchmark: F1 ± s.e.m. by
    // difficulty, hops and type, and the composition probe over the program's steps.
    let loaded = bench::load_file(Benchmark::Synthetic, dir, None);
    let asked: std::collections::BTreeSet<&str> = items.iter().map(|it| it.q.id.as_str()).collect();
    let records: Vec<_> = loaded
        .records
        .into_iter()
        .filter(|r| asked.contains(r.id.as_str()))
        .collect();
    let report = super::evaluate(Benchmark::Synthetic, &records, &preds, "predictions.jsonl")
        .map_err(|e| {
            format!(
                "{} prediction(s) do not match the dataset (this is a bug in synthpipe)",
                e.len()
            )
        })?;
    std::fs::write(out.join("predictions.jsonl"), lines)
        .map_err(|e| format!("cannot write predictions: {e}"))?;
    let mut summary = serde_json::to_value(&report).map_err(|e| e.to_string())?;
    summary["skipped_for_budget"] = json!(skipped);
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())? + "\n";
    std::fs::write(out.join("metrics.json"), text)
        .map_err(|e| format!("cannot write metrics.json: {e}"))
}

/// What a benchmark evaluation reads besides the model and the prompt settings.
pub struct BenchmarkJob<'a> {
    pub bench: Benchmark,
    pub data: &'a Path,
    pub aliases: Option<&'a Path>,
    /// Score only the first `limit` records (0: all).
    pub limit: usize,
}

/// Answers a real benchmark's questions (reading-comprehension prompts) and scores them
/// with its official metric: predictions.jsonl and metrics.json (an `eval::Evaluation`
/// with strata and the composition probe, plus what was skipped).
pub fn benchmark(run: &Run, b: &BenchmarkJob) -> Result<(), String> {
    let p = &run.settings;
    let out = run.out;
    let diagnostics = |errors: &[crate::eval::score::ScoreError]| {
        errors
            .iter()
            .map(|e| format!("{}: {e}", e.full_code()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let aliases = b
        .aliases
        .map(bench::load_aliases)
        .transpose()
        .map_err(|e| diagnostics(&e))?;
    let loaded = bench::load_file(b.bench, b.data, aliases.as_ref());
    if !loaded.errors.is_empty() {
        // Malformed records are reported and left out; the rest are evaluated.
        eprintln!("{}", diagnostics(&loaded.errors));
    }
    let mut records = loaded.records;
    if b.limit > 0 {
        records.truncate(b.limit);
    }
    if records.is_empty() {
        return Err(format!(
            "no {} record could be read from `{}`",
            b.bench.name(),
            b.data.display()
        ));
    }
    let model = match run.served {
        Some(_) => None,
        None => Some(local_model(run)?),
    };
    // A server applies its own chat template to the text; a local model gets token ids.
    let chat = match &run.served {
        Some(s) => s.api == super::remote::Api::Chat,
        None => p.prompt.chat,
    };
    let mut items = Vec::with_capacity(records.len());
    let mut texts = Vec::new();
    let mut skipped = 0;
    for r in &records {
        let text = super::prompt::prompt_text(b.bench, r, p.prompt.examples, chat, p.prompt.style);
        let Some(m) = &model else {
            items.push((r, Vec::new()));
            texts.push(text);
            continue;
        };
        let prompt = m.tokenizer.encode(&p.prompter(&m.tokenizer).wrap(text)?)?;
        if prompt.len() > p.max_prompt_tokens {
            if p.overflow == OnOverflow::Skip {
                skipped += 1;
                continue;
            }
            return Err(format!(
                "question `{}`: its prompt has {} tokens, over the budget of {}; raise max_prompt_tokens, use fewer examples, or set `overflow: skip`",
                r.id,
                prompt.len(),
                p.max_prompt_tokens
            ));
        }
        items.push((r, prompt));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create the output: {e}"))?;
    let prompts: Vec<Vec<u32>> = items.iter().map(|(_, t)| t.clone()).collect();
    let mut answers = Vec::with_capacity(items.len());
    let score = |i: usize, g: Generation| {
        let (r, prompt) = &items[i];
        let answer = answer::last_answer(&g.text).unwrap_or("").to_string();
        let s = super::score_one(b.bench, r, &answer);
        let hash = match texts.get(i) {
            Some(t) => text_hash(t),
            None => prompt_hash(prompt),
        };
        let line = json!({
            "id": r.id,
            "prompt_hash": hash,
            "generation": g.text,
            "prediction": answer,
            "f1": s.f1,
            "em": s.em,
            "precision": s.precision,
            "recall": s.recall,
            "format": answer::well_formed(&g.text),
            "truncated": g.finish == Finish::Length,
        });
        answers.push(super::Answer {
            id: r.id.clone(),
            answer,
            generation: Some(g.text),
            line: 0,
        });
        (s.f1, line)
    };
    let lines = match (&model, &run.served) {
        (Some(m), _) => answer_all(run, m, &prompts, score)?,
        (None, Some(s)) => {
            let ids: Vec<String> = items.iter().map(|(r, _)| r.id.clone()).collect();
            answer_served(run, s, &texts, &ids, score)?
        }
        (None, None) => return Err("an evaluation needs a model or an endpoint".into()),
    };
    let scored: Vec<bench::Record> = items.iter().map(|(r, _)| (*r).clone()).collect();
    let evaluation = super::evaluate(b.bench, &scored, &answers, "predictions.jsonl")
        .map_err(|e| diagnostics(&e))?;
    std::fs::write(out.join("predictions.jsonl"), lines)
        .map_err(|e| format!("cannot write predictions: {e}"))?;
    let mut summary = serde_json::to_value(&evaluation).map_err(|e| e.to_string())?;
    summary["skipped_for_budget"] = json!(skipped);
    summary["skipped_records"] = json!(loaded.errors.len());
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())? + "\n";
    std::fs::write(out.join("metrics.json"), text)
        .map_err(|e| format!("cannot write metrics.json: {e}"))
}

#[cfg(test)]
mod tests {
    use super::batches;

    #[test]
    fn batches_keep_shared_prefixes_together_and_fill_up_otherwise() {
        // Two "universes": 5 prompts sharing 400 tokens, then 3 sharing another 400.
        let prompt = |group: u32, q: u32| -> Vec<u32> {
            let mut p = vec![7; 10];
            p.extend(std::iter::repeat_n(100 + group, 400));
            p.extend([q, q]);
            p
        };
        let mut prompts: Vec<Vec<u32>> = (0..3).map(|q| prompt(2, q)).collect();
        prompts.extend((0..5).map(|q| prompt(1, q)));
        let got = batches(&prompts, 4);
        assert_eq!(got, vec![vec![3, 4, 5, 6], vec![7], vec![0, 1, 2]]);
        // Prompts that share only an instruction fill whole batches, in token order.
        let lone: Vec<Vec<u32>> = (0..6u32).rev().map(|q| vec![7, 7, 500 + q, 1, 2]).collect();
        assert_eq!(batches(&lone, 4), vec![vec![5, 4, 3, 2], vec![1, 0]]);
        // A benchmark's prompts (one shared instruction, evidence of any length) go by
        // length, so a batch pads little.
        let lens = [100, 500, 120, 480, 110, 520, 90, 510];
        let bench: Vec<Vec<u32>> = lens
            .iter()
            .enumerate()
            .map(|(q, &n)| {
                let mut p = vec![7; 10];
                p.extend(std::iter::repeat_n(1000 + q as u32, n));
                p
            })
            .collect();
        assert_eq!(batches(&bench, 4), vec![vec![6, 0, 4, 2], vec![3, 1, 7, 5]]);
        // Universes and lone prompts together: the universes' batches as before, then the
        // rest by length.
        let mut mixed: Vec<Vec<u32>> = (0..3).map(|q| prompt(2, q)).collect();
        mixed.extend(bench[..3].iter().cloned());
        assert_eq!(batches(&mixed, 4), vec![vec![0, 1, 2], vec![3, 5, 4]]);
    }
}
