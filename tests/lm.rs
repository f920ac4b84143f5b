//! The transformer on burn (CPU `flex` backend): parity with Hugging Face transformers on tiny
//! random checkpoints of each architecture (tests/fixtures/models/, made by make_tiny.py),
//! the KV cache against full recomputation, batching, seeded sampling, save/reload, and the
//! real Qwen2.5 GGUF answering a question.

mod common;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use common::{Scratch, qwen_gguf, root, tmpdir};
use serde_json::Value as Json;
use synthpipe::model::chat::{self, ChatOptions, Message};
use synthpipe::model::generate::{Finish, GenOptions, Sampling};
use synthpipe::model::load::Model;

const ARCHS: [&str; 3] = ["qwen3", "qwen2", "llama"];

fn tiny(arch: &str) -> PathBuf {
    root().join(format!("tests/fixtures/models/tiny-{arch}"))
}

fn reference(arch: &str) -> Json {
    serde_json::from_slice(&std::fs::read(tiny(arch).join("reference.json")).unwrap()).unwrap()
}

fn ids(j: &Json) -> Vec<u32> {
    j.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

fn load(path: &Path) -> Model {
    Model::load(path, &Device::flex()).unwrap_or_else(|e| panic!("{e}: {}", e.help))
}

/// The largest difference between our logits and a reference's (rows of JSON numbers).
fn max_abs_diff(got: &[Vec<f32>], want: &Json) -> f64 {
    let mut worst = 0f64;
    for (g, w) in got.iter().zip(want.as_array().unwrap()) {
        for (a, b) in g.iter().zip(w.as_array().unwrap()) {
            worst = worst.max((f64::from(*a) - b.as_f64().unwrap()).abs());
        }
    }
    worst
}

fn argmax(row: &[f32]) -> u32 {
    row.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
        .0 as u32
}

/// Greedy, ignoring EOS as transformers' reference generation did.
fn greedy(n: usize) -> GenOptions {
    GenOptions {
        max_new_tokens: n,
        ignore_eos: true,
        ..GenOptions::default()
    }
}

#[test]
fn logits_and_greedy_tokens_match_transformers() {
    for arch in ARCHS {
        let m = load(&tiny(arch));
        let r = reference(arch);
        let input = ids(&r["ids"]);
        let got = m.logits(&input).unwrap();
        let worst = max_abs_diff(&got, &r["logits"]);
        assert!(worst <= 1e-4, "{arch}: max |Δlogit| = {worst}");
        let (gens, _) = m
            .generate(std::slice::from_ref(&input), &greedy(8))
            .unwrap();
        assert_eq!(
            gens[0].tokens,
            ids(&r["greedy"]),
            "{arch}: greedy continuation"
        );
    }
}

#[test]
fn cached_generation_equals_full_recomputation() {
    for arch in ARCHS {
        let m = load(&tiny(arch));
        let prompt = ids(&reference(arch)["ids"]);
        let (gens, _) = m
            .generate(std::slice::from_ref(&prompt), &greedy(10))
            .unwrap();
        let mut seq = prompt.clone();
        for _ in 0..10 {
            let logits = m.logits(&seq).unwrap();
            seq.push(argmax(logits.last().unwrap()));
        }
        assert_eq!(gens[0].tokens, seq[prompt.len()..], "{arch}");
    }
}

#[test]
fn batched_generation_agrees_with_one_prompt_at_a_time() {
    let m = load(&tiny("qwen2"));
    let full = ids(&reference("qwen2")["ids"]);
    let prompts = vec![full.clone(), full[..5].to_vec(), full[3..12].to_vec()];
    let (batch, _) = m.generate(&prompts, &greedy(6)).unwrap();
    for (p, b) in prompts.iter().zip(&batch) {
        let (one, _) = m.generate(std::slice::from_ref(p), &greedy(6)).unwrap();
        assert_eq!(one[0].tokens, b.tokens);
    }
    // Chunked prefill gives the same as one pass.
    let mut chunked = greedy(6);
    chunked.prefill_chunk = 4;
    assert_eq!(
        m.generate(&prompts, &chunked).unwrap().0[0].tokens,
        batch[0].tokens
    );
}

#[test]
fn overlapped_chunks_compute_what_chunks_in_turn_compute() {
    // The CPU's prefill runs chunk c's layer l beside chunk c − 1's layer l + 1: the hidden
    // states and every layer's keys and values must be those of running the chunks in turn,
    // bit for bit, with a padded row.
    use burn::tensor::{Int, TensorData};
    use synthpipe::model::net::Cache;
    for arch in ARCHS {
        let m = load(&tiny(arch));
        let full = ids(&reference(arch)["ids"]);
        let device = Device::flex();
        let rows = [full.clone(), full[2..].to_vec()];
        let width = rows[0].len();
        let run = |overlap: bool| {
            let mut cache = Cache::new(m.cfg.num_layers, 2);
            let chunks = (0..width)
                .step_by(3)
                .map(|at| {
                    let end = (at + 3).min(width);
                    let mut flat = Vec::new();
                    let mut valid = Vec::new();
                    for r in &rows {
                        let pad = width - r.len();
                        let ok: Vec<bool> = (at..end).map(|i| i >= pad).collect();
                        flat.extend(
                            (at..end).map(|i| i64::from(if i >= pad { r[i - pad] } else { 0 })),
                        );
                        valid.push(ok);
                    }
                    let ids = Tensor::<1, Int>::from_data(
                        TensorData::new(flat, [2 * (end - at)]),
                        &device,
                    )
                    .reshape([2, end - at]);
                    (ids, valid)
                })
                .collect::<Vec<_>>();
            assert!(chunks.len() >= 3, "{arch}: too few chunks to overlap");
            let h = m
                .net
                .hidden_chunks(&m.cfg, chunks, &mut cache, overlap)
                .unwrap();
            let kv: Vec<Vec<f32>> = cache
                .layers
                .iter()
                .flat_map(|l| {
                    let (k, v) = l.clone().unwrap();
                    [
                        k.into_data().try_to_vec::<f32>().unwrap(),
                        v.into_data().try_to_vec::<f32>().unwrap(),
                    ]
                })
                .collect();
            (
                h.into_data().try_to_vec::<f32>().unwrap(),
                kv,
                cache.valid,
                cache.next_pos,
            )
        };
        assert_eq!(run(true), run(false), "{arch}");
    }
}

#[test]
fn rows_of_very_different_lengths_decode_together_as_alone() {
    // Long rows are prefilled apart (two at a time on the CPU) and short ones together, then
    // joined into one cache with masked gaps; with and without a shared prefix, each row
    // must decode as it does alone.
    let m = load(&tiny("qwen2"));
    let full = ids(&reference("qwen2")["ids"]);
    let long = |n: usize, shift: usize| -> Vec<u32> {
        full.iter().cycle().skip(shift).take(n).copied().collect()
    };
    let suffixes = [
        long(300, 1),
        long(5, 2),
        long(620, 3),
        long(40, 4),
        long(280, 5),
    ];
    let head = long(24, 0);
    for prefix in [Vec::new(), head] {
        let prompts: Vec<Vec<u32>> = suffixes
            .iter()
            .map(|s| prefix.iter().chain(s).copied().collect())
            .collect();
        let (batch, _) = m.generate(&prompts, &greedy(5)).unwrap();
        let mut kept = None;
        let (reused, _) = m
            .generate_reusing(&prompts, &greedy(5), Some(&mut kept))
            .unwrap();
        for (i, p) in prompts.iter().enumerate() {
            let (one, _) = m.generate(std::slice::from_ref(p), &greedy(5)).unwrap();
            assert_eq!(
                one[0].tokens,
                batch[i].tokens,
                "row {i}, prefix {}",
                prefix.len()
            );
            assert_eq!(one[0].tokens, reused[i].tokens, "row {i}, kept prefix");
        }
    }
}

#[test]
fn rows_that_finish_early_leave_the_batch_without_changing_the_others() {
    let m = load(&tiny("qwen2"));
    let full = ids(&reference("qwen2")["ids"]);
    let prompts = vec![full.clone(), full[..5].to_vec(), full[3..12].to_vec()];
    let (free, _) = m.generate(&prompts, &greedy(12)).unwrap();
    let text = |t: &[u32]| m.tokenizer.decode(t, false).unwrap();
    // A stop string that ends a later row after its first tokens but never occurs in the
    // first row's answer, so that rows finish at different steps.
    let first = text(&free[0].tokens);
    let stop = free[1..]
        .iter()
        .flat_map(|g| g.tokens[..4].iter())
        .map(|&t| text(&[t]))
        .find(|s| !s.trim().is_empty() && !first.contains(s.as_str()))
        .expect("no token of the later rows is missing from the first row's answer");
    let mut opts = greedy(12);
    opts.stop = vec![stop.clone()];
    let (batch, _) = m.generate(&prompts, &opts).unwrap();
    assert_eq!(batch[0].finish, Finish::Length, "{stop:?}");
    assert!(
        batch[1..].iter().any(|g| g.finish == Finish::Stop),
        "{stop:?} stopped no row"
    );
    for (p, b) in prompts.iter().zip(&batch) {
        let (one, _) = m.generate(std::slice::from_ref(p), &opts).unwrap();
        assert_eq!((&one[0].tokens, &one[0].finish), (&b.tokens, &b.finish));
    }
}

#[test]
fn seeded_sampling_is_reproducible() {
    let m = load(&tiny("qwen3"));
    let prompt = ids(&reference("qwen3")["ids"]);
    let opts = |seed| GenOptions {
        max_new_tokens: 12,
        ignore_eos: true,
        sampling: Sampling {
            temperature: 1.0,
            top_k: 50,
            top_p: 0.95,
            min_p: 0.01,
            seed,
        },
        ..GenOptions::default()
    };
    let a = m
        .generate(std::slice::from_ref(&prompt), &opts(1))
        .unwrap()
        .0;
    let b = m
        .generate(std::slice::from_ref(&prompt), &opts(1))
        .unwrap()
        .0;
    let c = m
        .generate(std::slice::from_ref(&prompt), &opts(2))
        .unwrap()
        .0;
    assert_eq!(a[0].tokens, b[0].tokens);
    assert_ne!(
        a[0].tokens, c[0].tokens,
        "two seeds gave the same 12 tokens"
    );
}

#[test]
fn logprobs_are_the_log_softmax_of_the_logits() {
    let m = load(&tiny("llama"));
    let seq = ids(&reference("llama")["ids"]);
    let (prompt, completion) = (seq[..6].to_vec(), seq[6..].to_vec());
    let lp = m
        .logprobs(&[
            (prompt.clone(), completion.clone()),
            (seq[..3].to_vec(), seq[3..5].to_vec()),
        ])
        .unwrap();
    let logits = m.logits(&seq).unwrap();
    for (k, &tok) in completion.iter().enumerate() {
        let row = &logits[prompt.len() - 1 + k];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        assert!(
            (lp[0][k] - (row[tok as usize] - lse)).abs() < 1e-4,
            "token {k}"
        );
    }
    assert_eq!(lp[1].len(), 2);
}

#[test]
fn saved_models_reload_with_identical_logits() {
    for arch in ARCHS {
        let m = load(&tiny(arch));
        let out = tmpdir("lm", &format!("save-{arch}"));
        m.save_hf(&out, false).unwrap();
        let back = load(&out);
        let seq = ids(&reference(arch)["ids"]);
        assert_eq!(
            m.logits(&seq).unwrap(),
            back.logits(&seq).unwrap(),
            "{arch}"
        );
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
        ] {
            assert!(out.join(f).is_file(), "{arch}: {f}");
        }
    }
}

#[test]
fn the_real_qwen_gguf_answers_simple_questions() {
    let Some(path) = qwen_gguf() else { return };
    let m = load(&path);
    let template = m.tokenizer.chat_template.clone().unwrap();
    let questions = [
        (
            "What is the capital of France? Answer with one word.",
            "paris",
        ),
        ("Who wrote Romeo and Juliet?", "shakespeare"),
        ("What is 2+3?", "5"),
    ];
    let prompts: Vec<Vec<u32>> = questions
        .iter()
        .map(|(q, _)| {
            let text = chat::render(
                &template,
                &[Message::new("user", q)],
                &ChatOptions {
                    add_generation_prompt: true,
                    ..ChatOptions::default()
                },
            )
            .unwrap();
            assert!(text.ends_with("<|im_start|>assistant\n"), "{text}");
            m.tokenizer.encode(&text).unwrap()
        })
        .collect();
    let opts = GenOptions {
        max_new_tokens: 12,
        ..GenOptions::default()
    };
    let (gens, timing) = m.generate(&prompts, &opts).unwrap();
    for ((q, want), g) in questions.iter().zip(&gens) {
        assert!(g.text.to_lowercase().contains(want), "{q} → {:?}", g.text);
        assert_eq!(g.finish, Finish::Eos, "{q} → {:?}", g.text);
    }
    eprintln!("{timing:?}");
}

#[test]
fn gguf_models_match_transformers_and_convert_to_hugging_face_layout() {
    for arch in ["qwen2", "llama"] {
        let path = root().join(format!("tests/fixtures/models/tiny-{arch}.gguf"));
        let r: Json = serde_json::from_slice(
            &std::fs::read(path.with_extension("gguf.reference.json")).unwrap(),
        )
        .unwrap();
        let m = load(&path);
        let input = ids(&r["ids"]);
        let got = m.logits(&input).unwrap();
        let worst = max_abs_diff(&got, &r["logits"]);
        // llama: the loader undoes llama.cpp's q/k row permutation.
        assert!(worst <= 1e-4, "{arch}.gguf: max |Δlogit| = {worst}");
        let out = tmpdir("lm", &format!("convert-{arch}"));
        m.save_hf(&out, false).unwrap();
        assert_eq!(
            load(&out).logits(&input).unwrap(),
            got,
            "{arch}: GGUF → HF folder → reload"
        );
    }
}

/// llama.cpp's name for a Hugging Face weight (the Llama subset).
fn gguf_name(hf: &str) -> String {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, part) = rest.split_once('.').unwrap();
    let part = match part {
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        other => panic!("unexpected tensor {other}"),
    };
    format!("blk.{layer}.{part}")
}

/// llama.cpp's q/k row order: each head's two rotary halves interleaved.
fn permute(v: &[f32], heads: usize, rows: usize, cols: usize) -> Vec<f32> {
    let hd = rows / heads;
    let mut out = vec![0f32; v.len()];
    for h in 0..heads {
        for two in 0..2 {
            for i in 0..hd / 2 {
                let (src, dst) = (h * hd + two * hd / 2 + i, h * hd + 2 * i + two);
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&v[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[test]
fn llama3_rope_scaling_comes_back_from_a_gguf_rope_freqs_tensor() {
    use synthpipe::model::config::Config;
    use synthpipe::model::gguf::{Gguf, Meta};
    use synthpipe::model::safetensors::Checkpoint;
    // The tiny Llama with llama3 scaling, written as llama.cpp's converter writes it.
    let hf = tiny("llama");
    let cfg = Config::from_hf(&hf.join("config.json")).unwrap();
    let r = cfg.rope_scaling.expect("the tiny llama has llama3 scaling");
    let plain = Gguf::open(&root().join("tests/fixtures/models/tiny-llama.gguf")).unwrap();
    let meta: Vec<(String, Meta)> = plain
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let ck = Checkpoint::open(&hf).unwrap();
    let mut tensors = Vec::new();
    for name in ck.tensors.keys() {
        let (shape, mut values) = ck.read_f32(name).unwrap();
        if name.ends_with("q_proj.weight") {
            values = permute(&values, cfg.num_heads, shape[0], shape[1]);
        } else if name.ends_with("k_proj.weight") {
            values = permute(&values, cfg.num_kv_heads, shape[0], shape[1]);
        }
        tensors.push((gguf_name(name), shape, values));
    }
    // The divisors as llama.cpp's convert_hf_to_gguf.py computes them.
    let (low, high) = (
        r.original_max_position_embeddings / r.low_freq_factor,
        r.original_max_position_embeddings / r.high_freq_factor,
    );
    let divisors: Vec<f32> = (0..cfg.head_dim / 2)
        .map(|i| {
            let freq = 1.0 / cfg.rope_theta.powf((2 * i) as f64 / cfg.head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            let d = if wavelen < high {
                1.0
            } else if wavelen > low {
                r.factor
            } else {
                let smooth = (r.original_max_position_embeddings / wavelen - r.low_freq_factor)
                    / (r.high_freq_factor - r.low_freq_factor);
                1.0 / ((1.0 - smooth) / r.factor + smooth)
            };
            d as f32
        })
        .collect();
    assert!(divisors.iter().any(|&d| d > 1.0));
    tensors.push(("rope_freqs.weight".into(), vec![divisors.len()], divisors));
    let dir = tmpdir("lm", "llama3-gguf");
    let path = dir.join("tiny-llama3.gguf");
    common::write_gguf(&path, &meta, &tensors);

    let back = Config::from_gguf(&Gguf::open(&path).unwrap()).unwrap();
    assert_eq!(back.rope_scaling, Some(r));
    let m = load(&path);
    let rf = reference("llama");
    let worst = max_abs_diff(&m.logits(&ids(&rf["ids"])).unwrap(), &rf["logits"]);
    assert!(worst <= 1e-4, "llama3 GGUF: max |Δlogit| = {worst}");

    // Divisors no llama3 scaling produces are refused with a code, not run wrongly.
    let n = tensors.len() - 1;
    tensors[n].2[0] = 3.0;
    common::write_gguf(&path, &meta, &tensors);
    let e = Config::from_gguf(&Gguf::open(&path).unwrap()).unwrap_err();
    assert_eq!(e.code.name(), "unsupported", "{e}");
}

/// A small family dataset to train tokenizers on, in its scratch folder.
fn family_dataset(name: &str) -> (Scratch, PathBuf) {
    let dir = tmpdir("lm", name);
    let data = dir.join("data");
    let o = common::synthpipe(
        &[
            "generate",
            root().join("rules/family.rules").to_str().unwrap(),
            "--out",
            data.to_str().unwrap(),
            "--seed",
            "1..=2",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", common::describe(&o));
    (dir, data)
}

#[test]
fn lm_init_trains_a_tokenizer_and_writes_a_seeded_model() {
    let (dir, data) = family_dataset("init-data");
    let init = |out: &str, seed: &str, extra: &[&str]| {
        let mut args = vec![
            "lm",
            "init",
            "--arch",
            "qwen3",
            "--layers",
            "2",
            "--hidden",
            "64",
            "--heads",
            "4",
            "--kv-heads",
            "2",
            "--train-tokenizer",
            "data",
            "--vocab",
            "600",
            "--seed",
            seed,
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        common::synthpipe(&args, &dir)
    };
    for (out, seed) in [("a", "1"), ("b", "1"), ("c", "2")] {
        let o = init(out, seed, &[]);
        assert!(o.status.success(), "{}", common::describe(&o));
    }
    let bytes = |out: &str, f: &str| std::fs::read(dir.join(out).join(f)).unwrap();
    assert_eq!(
        bytes("a", "model.safetensors"),
        bytes("b", "model.safetensors")
    );
    assert_eq!(bytes("a", "tokenizer.json"), bytes("b", "tokenizer.json"));
    assert_ne!(
        bytes("a", "model.safetensors"),
        bytes("c", "model.safetensors")
    );
    assert_eq!(bytes("a", "tokenizer.json"), bytes("c", "tokenizer.json"));

    let m = load(&dir.join("a"));
    assert_eq!(
        (m.cfg.vocab_size, m.cfg.num_layers, m.cfg.head_dim),
        (600, 2, 16)
    );
    assert_eq!(m.tokenizer.vocab_size(), 600);
    // Every parameter the config counts is in the file.
    let ck = synthpipe::model::safetensors::Checkpoint::open(&dir.join("a")).unwrap();
    let stored: usize = ck
        .tensors
        .keys()
        .map(|n| ck.read_f32(n).unwrap().1.len())
        .sum();
    assert_eq!(stored as u64, m.cfg.parameter_count());
    // The tokenizer reads the dataset's text losslessly, in fewer tokens than bytes, and keeps
    // the chat tokens whole.
    let article = std::fs::read_to_string(data.join("articles.jsonl")).unwrap();
    let text: Json = serde_json::from_str(article.lines().next().unwrap()).unwrap();
    let text = text["text"].as_str().unwrap();
    let ids = m.tokenizer.encode(text).unwrap();
    assert_eq!(m.tokenizer.decode(&ids, false).unwrap(), text);
    assert!(
        ids.len() * 2 < text.len(),
        "{} tokens for {} bytes",
        ids.len(),
        text.len()
    );
    let rendered = chat::render(
        m.tokenizer.chat_template.as_ref().unwrap(),
        &[Message::new("user", "Who is the mother of Ada?")],
        &ChatOptions {
            add_generation_prompt: true,
            ..ChatOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        rendered,
        "<|im_start|>user\nWho is the mother of Ada?<|im_end|>\n<|im_start|>assistant\n"
    );
    let chat_ids = m.tokenizer.encode(&rendered).unwrap();
    assert_eq!(
        chat_ids[0],
        m.tokenizer.inner.token_to_id("<|im_start|>").unwrap()
    );
    assert!(
        m.tokenizer
            .eos_token_ids
            .contains(&m.tokenizer.inner.token_to_id("<|im_end|>").unwrap())
    );
    // A random model generates (anything) within its budget.
    let (gens, _) = m.generate(&[chat_ids], &greedy(5)).unwrap();
    assert_eq!(gens[0].tokens.len(), 5);

    // Writing over a model needs --force; bad shapes and vocabularies are coded errors.
    let o = init("a", "1", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("synthpipe::lm::out_exists"));
    assert!(init("a", "1", &["--force"]).status.success());
    let o = common::synthpipe(
        &[
            "lm",
            "init",
            "--heads",
            "3",
            "--kv-heads",
            "2",
            "--hidden",
            "48",
            "--tokenizer",
            "a",
            "--out",
            "d",
        ],
        &dir,
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--kv-heads"),
        "{}",
        common::describe(&o)
    );
    let o = common::synthpipe(
        &[
            "lm",
            "init",
            "--train-tokenizer",
            "data",
            "--vocab",
            "100",
            "--out",
            "e",
        ],
        &dir,
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("synthpipe::lm::train_tokenizer"));
    // --tokenizer takes another model's tokenizer.
    let o = common::synthpipe(
        &[
            "lm",
            "init",
            "--tokenizer",
            "a",
            "--out",
            "f",
            "--layers",
            "1",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", common::describe(&o));
    assert_eq!(bytes("a", "tokenizer.json"), bytes("f", "tokenizer.json"));
}

#[test]
fn wgpu_computes_what_flex_computes() {
    // On a machine without a GPU this runs wgpu on the software Vulkan driver: slow to compile
    // its shaders, so one small model and a few tokens.
    if !common::vulkan_available() {
        return;
    }
    let path = tiny("qwen3");
    let m = Model::load(&path, &Device::wgpu(Default::default())).unwrap();
    let r = reference("qwen3");
    let input = ids(&r["ids"]);
    let worst = max_abs_diff(&m.logits(&input).unwrap(), &r["logits"]);
    assert!(worst <= 1e-4, "wgpu: max |Δlogit| = {worst}");
    let (gens, _) = m
        .generate(std::slice::from_ref(&input), &greedy(4))
        .unwrap();
    assert_eq!(gens[0].tokens, ids(&r["greedy"])[..4]);
}

/// Moves a model folder's chat template (folder, template, tokenizer_config.json).
type Layout<'a> = &'a dyn Fn(&Path, &str, &mut Json);

/// A copy of the tiny Qwen3 with its chat template moved where transformers 5 writes it.
fn relaid(name: &str, layout: Layout) -> (Scratch, PathBuf) {
    let src = tiny("qwen3");
    let scratch = tmpdir("lm", name);
    let dir = scratch.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let cfg_path = dir.join("tokenizer_config.json");
    let mut cfg: Json = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    let template = cfg["chat_template"].as_str().unwrap().to_string();
    cfg.as_object_mut().unwrap().remove("chat_template");
    layout(&dir, &template, &mut cfg);
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    (scratch, dir)
}

#[test]
fn chat_templates_are_read_where_transformers_writes_them() {
    let want = load(&tiny("qwen3")).tokenizer.chat_template.unwrap();
    let layouts: [(&str, Layout); 4] = [
        ("jinja", &|d, t, _| {
            std::fs::write(d.join("chat_template.jinja"), t).unwrap()
        }),
        ("processor", &|d, t, _| {
            std::fs::write(
                d.join("chat_template.json"),
                serde_json::to_vec(&serde_json::json!({ "chat_template": t })).unwrap(),
            )
            .unwrap()
        }),
        ("named", &|_, t, cfg| {
            cfg["chat_template"] = serde_json::json!([
                {"name": "tool_use", "template": "unused"},
                {"name": "default", "template": t},
            ]);
        }),
        // The file wins over the config, as in transformers.
        ("both", &|d, t, cfg| {
            std::fs::write(d.join("chat_template.jinja"), t).unwrap();
            cfg["chat_template"] = serde_json::json!("{{ 'stale' }}");
        }),
    ];
    for (name, layout) in layouts {
        let (_scratch, dir) = relaid(&format!("chat-{name}"), layout);
        assert_eq!(
            load(&dir).tokenizer.chat_template.as_deref(),
            Some(want.as_str()),
            "{name}"
        );
        let o = common::synthpipe(
            &[
                "lm",
                "generate",
                dir.to_str().unwrap(),
                "--user",
                "Who is the mother of Ada?",
                "--max-tokens",
                "3",
            ],
            &root(),
        );
        assert!(o.status.success(), "{name}: {}", common::describe(&o));
    }
    // A template file that is not JSON is a coded load error, not a missing template.
    let (_scratch, dir) = relaid("chat-bad", &|d, _, _| {
        std::fs::write(d.join("chat_template.json"), "{not json").unwrap()
    });
    let o = common::synthpipe(
        &["lm", "generate", dir.to_str().unwrap(), "--user", "hi"],
        &root(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("chat_template.json"),
        "{}",
        common::describe(&o)
    );
}
