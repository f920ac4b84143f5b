//! The transformer on burn (CPU `flex` backend): parity with Hugging Face transformers on tiny
//! random checkpoints of each architecture (tests/fixtures/models/, made by make_tiny.py),
//! the KV cache against full recomputation, batching, seeded sampling, save/reload, and the
//! real Qwen2.5 GGUF answering a question.

mod common;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use common::{qwen_gguf, root, tmpdir};
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
        let got = m.logits(&input);
        let worst = max_abs_diff(&got, &r["logits"]);
        assert!(worst <= 1e-4, "{arch}: max |Δlogit| = {worst}");
        let (gens, _) = m.generate(std::slice::from_ref(&input), &greedy(8));
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
        let (gens, _) = m.generate(std::slice::from_ref(&prompt), &greedy(10));
        let mut seq = prompt.clone();
        for _ in 0..10 {
            let logits = m.logits(&seq);
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
    let (batch, _) = m.generate(&prompts, &greedy(6));
    for (p, b) in prompts.iter().zip(&batch) {
        let (one, _) = m.generate(std::slice::from_ref(p), &greedy(6));
        assert_eq!(one[0].tokens, b.tokens);
    }
    // Chunked prefill gives the same as one pass.
    let mut chunked = greedy(6);
    chunked.prefill_chunk = 4;
    assert_eq!(m.generate(&prompts, &chunked).0[0].tokens, batch[0].tokens);
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
    let a = m.generate(std::slice::from_ref(&prompt), &opts(1)).0;
    let b = m.generate(std::slice::from_ref(&prompt), &opts(1)).0;
    let c = m.generate(std::slice::from_ref(&prompt), &opts(2)).0;
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
    let lp = m.logprobs(&[
        (prompt.clone(), completion.clone()),
        (seq[..3].to_vec(), seq[3..5].to_vec()),
    ]);
    let logits = m.logits(&seq);
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
        assert_eq!(m.logits(&seq), back.logits(&seq), "{arch}");
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
    let (gens, timing) = m.generate(&prompts, &opts);
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
        let got = m.logits(&input);
        let worst = max_abs_diff(&got, &r["logits"]);
        // llama: the loader undoes llama.cpp's q/k row permutation.
        assert!(worst <= 1e-4, "{arch}.gguf: max |Δlogit| = {worst}");
        let out = tmpdir("lm", &format!("convert-{arch}"));
        m.save_hf(&out, false).unwrap();
        assert_eq!(
            load(&out).logits(&input),
            got,
            "{arch}: GGUF → HF folder → reload"
        );
    }
}
