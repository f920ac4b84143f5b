//! Model files: GGUF reading and dequantisation against llama.cpp's own reference (gguf-py,
//! fixtures in tests/fixtures/gguf/), the real Qwen2.5 GGUF when it has been fetched (also:
//! shared-prompt scoring and decoding on it), and damaged files, which must give coded
//! errors and never panic.

mod common;

use std::path::{Path, PathBuf};

use common::{qwen_gguf, root, tmpdir};
use serde_json::Value as Json;
use synthpipe::model::error::LoadCode;
use synthpipe::model::gguf::{Gguf, Meta};
use synthpipe::model::quant::{self, Encoding};

fn fixture() -> Json {
    serde_json::from_slice(&std::fs::read(root().join("tests/fixtures/gguf/dequant.json")).unwrap())
        .unwrap()
}

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn dequantisation_matches_the_reference_for_every_encoding() {
    let f = fixture();
    let blocks = f["blocks"].as_object().unwrap();
    assert_eq!(blocks.len(), 9);
    for (name, case) in blocks {
        let enc = Encoding::from_ggml(case["ggml_type"].as_u64().unwrap() as u32).unwrap();
        assert_eq!(enc.name(), name);
        let hex = case["hex"].as_str().unwrap();
        let raw: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let want: Vec<f64> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let mut got = vec![0f32; want.len()];
        quant::dequantize(enc, &raw, &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(close(*g, *w), "{name} value {i}: {g} vs reference {w}");
        }
    }
}

#[test]
fn the_real_qwen_gguf_reads_and_dequantises_like_the_reference() {
    let Some(path) = qwen_gguf() else { return };
    let g = Gguf::open(&path).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(
        g.meta("general.architecture").and_then(Meta::as_str),
        Some("qwen2")
    );
    assert_eq!(g.meta("qwen2.block_count").and_then(Meta::as_u64), Some(24));
    assert_eq!(
        g.meta("qwen2.embedding_length").and_then(Meta::as_u64),
        Some(896)
    );
    assert_eq!(
        g.meta("qwen2.attention.head_count_kv")
            .and_then(Meta::as_u64),
        Some(2)
    );
    assert_eq!(
        g.meta("qwen2.rope.freq_base").and_then(Meta::as_f64),
        Some(1_000_000.0)
    );
    let tokens = g
        .meta("tokenizer.ggml.tokens")
        .and_then(Meta::as_array)
        .unwrap();
    assert_eq!(tokens.len(), 151_936);
    assert!(
        g.meta("tokenizer.chat_template")
            .and_then(Meta::as_str)
            .unwrap()
            .contains("<|im_start|>")
    );
    assert_eq!(g.tensors.len(), 291);
    let f = fixture();
    for (name, want) in f["qwen"].as_object().unwrap() {
        let (shape, values) = g.read_f32(name).unwrap();
        let dims: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, dims, "{name}");
        for (i, w) in want["first"].as_array().unwrap().iter().enumerate() {
            assert!(
                close(values[i], w.as_f64().unwrap()),
                "{name}[{i}]: {} vs {w}",
                values[i]
            );
        }
        let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
        let abs: f64 = values.iter().map(|&v| f64::from(v).abs()).sum();
        let (ws, wa) = (
            want["sum"].as_f64().unwrap(),
            want["abs_sum"].as_f64().unwrap(),
        );
        assert!((sum - ws).abs() <= 1e-6 * wa, "{name}: sum {sum} vs {ws}");
        assert!((abs - wa).abs() <= 1e-6 * wa, "{name}: |sum| {abs} vs {wa}");
    }
}

/// A small, valid GGUF: a few metadata values of every kind and three tensors.
fn tiny_gguf() -> Vec<u8> {
    fn s(b: &mut Vec<u8>, t: &str) {
        b.extend((t.len() as u64).to_le_bytes());
        b.extend(t.as_bytes());
    }
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(3u64.to_le_bytes()); // tensors
    b.extend(4u64.to_le_bytes()); // metadata
    s(&mut b, "general.architecture");
    b.extend(8u32.to_le_bytes());
    s(&mut b, "llama");
    s(&mut b, "llama.block_count");
    b.extend(4u32.to_le_bytes());
    b.extend(2u32.to_le_bytes());
    s(&mut b, "llama.rope.freq_base");
    b.extend(6u32.to_le_bytes());
    b.extend(10000f32.to_le_bytes());
    s(&mut b, "tokenizer.ggml.tokens");
    b.extend(9u32.to_le_bytes());
    b.extend(8u32.to_le_bytes());
    b.extend(3u64.to_le_bytes());
    for t in ["<s>", "a", "b"] {
        s(&mut b, t);
    }
    // f32 [2, 3], f16 [4], q8_0 [32]
    let infos: [(&str, Vec<u64>, u32, u64); 3] = [
        ("w", vec![3, 2], 0, 0),
        ("h", vec![4], 1, 32),
        ("q", vec![32], 8, 64),
    ];
    for (name, dims, ty, off) in &infos {
        s(&mut b, name);
        b.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend(d.to_le_bytes());
        }
        b.extend(ty.to_le_bytes());
        b.extend(off.to_le_bytes());
    }
    while !b.len().is_multiple_of(32) {
        b.push(0);
    }
    let data = b.len();
    for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
        b.extend(v.to_le_bytes());
    }
    b.resize(data + 32, 0);
    for h in [0x3c00u16, 0xc000, 0x3800, 0x0000] {
        b.extend(h.to_le_bytes());
    }
    b.resize(data + 64, 0);
    b.extend(0x3c00u16.to_le_bytes());
    for j in 0..32 {
        b.push((j as i8 - 16) as u8);
    }
    b
}

#[test]
fn a_small_gguf_round_trips() {
    let dir = tmpdir("model", "tiny");
    let p = dir.join("tiny.gguf");
    std::fs::write(&p, tiny_gguf()).unwrap();
    let g = Gguf::open(&p).unwrap();
    assert_eq!(g.meta("llama.block_count").and_then(Meta::as_u64), Some(2));
    assert_eq!(
        g.meta("llama.rope.freq_base").and_then(Meta::as_f64),
        Some(10000.0)
    );
    assert_eq!(
        g.meta("tokenizer.ggml.tokens")
            .and_then(Meta::as_array)
            .map(<[Meta]>::len),
        Some(3)
    );
    assert_eq!(
        g.read_f32("w").unwrap(),
        (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    );
    assert_eq!(g.read_f32("h").unwrap().1, vec![1.0, -2.0, 0.5, 0.0]);
    let q = g.read_f32("q").unwrap().1;
    assert_eq!((q[0], q[31]), (-16.0, 15.0));
    assert_eq!(
        g.read_f32("nope").unwrap_err().code,
        LoadCode::MissingTensor
    );
}

fn open_bytes(dir: &Path, bytes: &[u8]) -> Result<Gguf, synthpipe::model::error::LoadError> {
    let p = dir.join("x.gguf");
    std::fs::write(&p, bytes).unwrap();
    Gguf::open(&p)
}

#[test]
fn damaged_ggufs_are_coded_errors_never_panics() {
    let dir = tmpdir("model", "damaged");
    let good = tiny_gguf();
    // Every truncation is refused with `truncated` (or `not_gguf` within the magic).
    for n in 0..good.len() {
        let e = open_bytes(&dir, &good[..n]).expect_err(&format!("{n} bytes"));
        assert!(
            matches!(e.code, LoadCode::Truncated | LoadCode::NotGguf),
            "{n} bytes: {e}"
        );
        assert!(!e.help.is_empty());
    }
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(open_bytes(&dir, &bad).unwrap_err().code, LoadCode::NotGguf);
    let mut bad = good.clone();
    bad[4] = 9;
    assert_eq!(
        open_bytes(&dir, &bad).unwrap_err().code,
        LoadCode::GgufVersion
    );
    // An encoding synthpipe cannot read (Q2_K = 10) in the first tensor's type field.
    let at = find(&good, b"\x01\x00\x00\x00\x00\x00\x00\x00w") + 9 + 4 + 16;
    let mut bad = good.clone();
    bad[at..at + 4].copy_from_slice(&10u32.to_le_bytes());
    let e = open_bytes(&dir, &bad).unwrap_err();
    assert_eq!(e.code, LoadCode::TensorType, "{e}");
    assert!(e.message.contains("Q2_K"), "{e}");
    // A metadata type GGUF does not define.
    let at = find(&good, b"llama.block_count") + 17;
    let mut bad = good.clone();
    bad[at..at + 4].copy_from_slice(&77u32.to_le_bytes());
    assert_eq!(open_bytes(&dir, &bad).unwrap_err().code, LoadCode::Metadata);
    // Random corruption anywhere: an error or a file that still reads, never a panic.
    let mut rng = common::Rng(9);
    for _ in 0..3000 {
        let mut m = good.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(m.len());
            m[i] = rng.next() as u8;
        }
        if let Ok(g) = open_bytes(&dir, &m) {
            for t in g.tensors.clone() {
                let _ = g.read_f32(&t.name);
            }
        }
    }
    assert_eq!(
        Gguf::open(Path::new("no/such.gguf")).unwrap_err().code,
        LoadCode::Read
    );
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

mod config {
    use super::*;
    use synthpipe::model::config::{Arch, Config};

    #[test]
    fn the_qwen_gguf_config_and_its_parameter_count() {
        let Some(path) = qwen_gguf() else { return };
        let g = Gguf::open(&path).unwrap();
        let c = Config::from_gguf(&g).unwrap();
        assert_eq!(c.arch, Arch::Qwen2);
        assert_eq!(
            (c.num_layers, c.hidden_size, c.intermediate_size),
            (24, 896, 4864)
        );
        assert_eq!((c.num_heads, c.num_kv_heads, c.head_dim), (14, 2, 64));
        assert_eq!((c.vocab_size, c.rope_theta), (151_936, 1_000_000.0));
        assert!(c.qkv_bias && !c.qk_norm);
        // The formula counts exactly the values the file stores.
        let stored: u64 = g.tensors.iter().map(|t| t.len()).sum();
        assert_eq!(c.parameter_count(), stored);
    }

    fn qwen3_06b() -> Json {
        serde_json::json!({
            "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
            "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
            "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
            "hidden_act": "silu", "rope_theta": 1000000, "rms_norm_eps": 1e-06,
            "tie_word_embeddings": true, "max_position_embeddings": 40960, "attention_bias": false,
            "rope_scaling": null, "bos_token_id": 151643, "eos_token_id": 151645,
            "torch_dtype": "bfloat16", "use_sliding_window": false
        })
    }

    #[test]
    fn hugging_face_configs_read_and_round_trip() {
        let p = Path::new("config.json");
        let c = Config::from_hf_json(&qwen3_06b(), p).unwrap();
        assert_eq!(c.arch, Arch::Qwen3);
        assert!(c.qk_norm && !c.qkv_bias && c.tie_word_embeddings);
        // Qwen3-0.6B's published size.
        assert_eq!(c.parameter_count(), 596_049_920);
        let again = Config::from_hf_json(&c.to_hf_json("float32"), p).unwrap();
        assert_eq!(again, c);
        let mut llama = qwen3_06b();
        llama["model_type"] = "llama".into();
        llama["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
        let l = Config::from_hf_json(&llama, p).unwrap();
        assert_eq!(l.rope_scaling.unwrap().factor, 32.0);
        assert_eq!(
            Config::from_hf_json(&l.to_hf_json("float32"), p).unwrap(),
            l
        );
    }

    #[test]
    fn unsupported_configs_name_the_field() {
        let p = Path::new("config.json");
        let cases: [(&str, Json, &str); 7] = [
            ("model_type", "mistral".into(), "`model_type`"),
            (
                "rope_scaling",
                serde_json::json!({"rope_type": "yarn", "factor": 4.0}),
                "`rope_scaling.rope_type`",
            ),
            ("hidden_size", Json::Null, "`hidden_size`"),
            ("num_key_value_heads", 5.into(), "`num_key_value_heads`"),
            ("hidden_act", "gelu".into(), "`hidden_act`"),
            ("mlp_bias", true.into(), "`mlp_bias`"),
            (
                "rope_parameters",
                serde_json::json!({"rope_type": "dynamic", "rope_theta": 1e6}),
                "`rope_parameters.rope_type`",
            ),
        ];
        for (field, value, named) in cases {
            let mut j = qwen3_06b();
            j[field] = value;
            let e = Config::from_hf_json(&j, p).unwrap_err();
            assert!(e.message.contains(named), "{field}: {e}");
            assert!(
                matches!(e.code, LoadCode::Unsupported | LoadCode::Config),
                "{field}: {e}"
            );
        }
    }
}

mod safetensors {
    use super::*;
    use synthpipe::model::safetensors::{self as st, Checkpoint};

    fn tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut rng = common::Rng(5);
        let mut v = |n: usize| {
            (0..n)
                .map(|_| (rng.next() % 20001) as f32 / 1000.0 - 10.0)
                .collect::<Vec<f32>>()
        };
        vec![
            ("model.embed_tokens.weight".into(), vec![7, 4], v(28)),
            ("lm_head.weight".into(), vec![7, 4], v(28)),
            ("model.norm.weight".into(), vec![4], v(4)),
        ]
    }

    #[test]
    fn written_checkpoints_read_back() {
        let dir = tmpdir("model", "st");
        let t = tensors();
        st::write(&dir.join("model.safetensors"), &t, false).unwrap();
        let ck = Checkpoint::open(&dir).unwrap();
        for (name, shape, values) in &t {
            assert_eq!(ck.read_f32(name).unwrap(), (shape.clone(), values.clone()));
        }
        // bf16 keeps 8 significant bits, rounded to nearest.
        st::write(&dir.join("model.safetensors"), &t, true).unwrap();
        let ck = Checkpoint::open(&dir).unwrap();
        let (_, back) = ck.read_f32("model.norm.weight").unwrap();
        for (a, b) in t[2].2.iter().zip(&back) {
            assert!((a - b).abs() <= a.abs() / 256.0, "{a} vs {b}");
        }
        assert_eq!(st::f32_to_bf16(1.0), 0x3f80);
        assert_eq!(st::f32_to_bf16(1.0 + 2f32.powi(-8)), 0x3f80); // halfway rounds to even
        assert_eq!(
            ck.read_f32("nope").unwrap_err().code,
            LoadCode::MissingTensor
        );
    }

    #[test]
    fn damaged_checkpoints_are_coded_errors_never_panics() {
        let dir = tmpdir("model", "st-bad");
        let path = dir.join("model.safetensors");
        st::write(&path, &tensors(), false).unwrap();
        let good = std::fs::read(&path).unwrap();
        for n in (0..good.len()).step_by(7) {
            std::fs::write(&path, &good[..n]).unwrap();
            let e = Checkpoint::open(&dir)
                .and_then(|c| c.read_f32("lm_head.weight").map(|_| c))
                .expect_err(&format!("{n} bytes"));
            assert!(
                matches!(
                    e.code,
                    LoadCode::Truncated | LoadCode::Metadata | LoadCode::TensorBounds
                ),
                "{n}: {e}"
            );
        }
        let mut rng = common::Rng(3);
        for _ in 0..2000 {
            let mut m = good.clone();
            let i = rng.below(m.len());
            m[i] = rng.next() as u8;
            std::fs::write(&path, &m).unwrap();
            if let Ok(c) = Checkpoint::open(&dir) {
                for name in c.tensors.keys() {
                    let _ = c.read_f32(name);
                }
            }
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(Checkpoint::open(&dir).unwrap_err().code, LoadCode::Read);
    }
}

mod tokenizer {
    use super::*;
    use synthpipe::model::chat::{self, ChatOptions, Message};
    use synthpipe::model::tokenizer::Tokenizer;

    fn models_dir() -> Option<PathBuf> {
        qwen_gguf().map(|p| p.parent().unwrap().to_path_buf())
    }

    fn ids_fixture() -> Vec<(String, Vec<u32>)> {
        let j: Json = serde_json::from_slice(
            &std::fs::read(root().join("tests/fixtures/tokenizer/qwen3_ids.json")).unwrap(),
        )
        .unwrap();
        j.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let ids = c["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap() as u32)
                    .collect();
                (c["text"].as_str().unwrap().to_string(), ids)
            })
            .collect()
    }

    #[test]
    fn qwen3_tokenizer_matches_the_python_package_and_round_trips() {
        let Some(dir) = models_dir() else { return };
        let t = Tokenizer::from_hf_dir(&dir.join("qwen3-tokenizer")).unwrap();
        assert_eq!(t.vocab_size(), 151_669);
        assert_eq!(t.eos_token.as_deref(), Some("<|im_end|>"));
        let cases = ids_fixture();
        assert!(cases.len() >= 300);
        for (text, ids) in &cases {
            assert_eq!(&t.encode(text).unwrap(), ids, "{text:?}");
            assert_eq!(&t.decode(ids, false).unwrap(), text);
        }
    }

    #[test]
    fn the_gguf_tokenizer_is_qwens_tokenizer() {
        let Some(dir) = models_dir() else { return };
        let g = Gguf::open(&dir.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")).unwrap();
        let t = Tokenizer::from_gguf(&g).unwrap();
        assert!(t.eos_token_ids.contains(&151_645) && t.eos_token_ids.contains(&151_643));
        // Qwen2.5 and Qwen3 share the vocabulary; only Qwen3 makes <think> a single token.
        let mut compared = 0;
        for (text, ids) in ids_fixture().iter().filter(|(s, _)| !s.contains("think>")) {
            assert_eq!(&t.encode(text).unwrap(), ids, "{text:?}");
            assert_eq!(&t.decode(ids, false).unwrap(), text);
            compared += 1;
        }
        assert!(compared >= 300);
        // Saved in Hugging Face's layout, it loads back and encodes the same.
        let out = tmpdir("model", "tok-save");
        t.save(&out).unwrap();
        let back = Tokenizer::from_hf_dir(&out).unwrap();
        assert_eq!(back.chat_template, t.chat_template);
        for (text, ids) in ids_fixture()
            .iter()
            .filter(|(s, _)| !s.contains("think>"))
            .take(50)
        {
            assert_eq!(&back.encode(text).unwrap(), ids, "{text:?}");
        }
    }

    #[test]
    fn chat_templates_render_as_hugging_face_renders_them() {
        let j: Json = serde_json::from_slice(
            &std::fs::read(root().join("tests/fixtures/tokenizer/chat.json")).unwrap(),
        )
        .unwrap();
        let cases = j["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 18);
        for c in cases {
            let template = j["templates"][c["template"].as_str().unwrap()]
                .as_str()
                .unwrap();
            let messages: Vec<Message> = serde_json::from_value(c["messages"].clone()).unwrap();
            let opts = ChatOptions {
                add_generation_prompt: c["add_generation_prompt"].as_bool().unwrap(),
                enable_thinking: c["enable_thinking"].as_bool(),
                ..ChatOptions::default()
            };
            let got = chat::render(template, &messages, &opts).unwrap();
            assert_eq!(
                got,
                c["rendered"].as_str().unwrap(),
                "{}: {:?} {:?}",
                c["template"],
                messages,
                opts
            );
        }
        // A template error is an error, not a panic.
        let e = chat::render(
            "{{ raise_exception('no system role') }}",
            &[Message::new("user", "x")],
            &ChatOptions::default(),
        )
        .unwrap_err();
        assert!(e.contains("no system role"), "{e}");
        assert!(chat::render("{% if %}", &[], &ChatOptions::default()).is_err());
    }
}

#[test]
fn trained_tokenizers_depend_only_on_their_text() {
    use synthpipe::model::tokenizer::{TRAINED_SPECIALS, Tokenizer};
    let texts: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "The mother of Person {i} is Ada Hart. Ada Hart's job is baker number {}. Ünïcode ✓ {i}",
                i * 7
            )
        })
        .collect();
    let train = || Tokenizer::train(texts.clone().into_iter(), 300).unwrap();
    let (a, b) = (train(), train());
    let json = |t: &Tokenizer| t.inner.to_string(false).unwrap();
    assert_eq!(json(&a), json(&b), "two trainings on the same text differ");
    assert_eq!(a.vocab_size(), 300);
    for (id, s) in TRAINED_SPECIALS.iter().enumerate() {
        assert_eq!(a.inner.token_to_id(s), Some(id as u32));
    }
    // Byte-level: any text round-trips, even characters never seen in training.
    for text in [
        "The mother of Person 5 is Ada Hart.",
        "日本語 🙂 \t\n x",
        "<|im_start|>user\nhi<|im_end|>",
    ] {
        let ids = a.encode(text).unwrap();
        assert_eq!(a.decode(&ids, false).unwrap(), text);
    }
    assert_eq!(
        a.encode("<|im_start|>user").unwrap()[0],
        a.inner.token_to_id("<|im_start|>").unwrap()
    );
    assert!(Tokenizer::train(texts.into_iter(), 200).is_err());
}

/// On the real Qwen2.5-0.5B, a group's completions scored with their prompt run once (the
/// GRPO training pass) get the log-probabilities of scoring each (prompt, completion) alone,
/// and the rollouts' shared prefill decodes the same greedy tokens as prompts alone.
#[test]
fn the_real_model_scores_and_decodes_shared_prompt_groups_as_separate_ones() {
    use burn::prelude::*;
    use synthpipe::model::generate::GenOptions;
    use synthpipe::model::load::Model;
    use synthpipe::rl::objective::completion_logprobs;
    let Some(path) = qwen_gguf() else { return };
    let m = Model::load(&path, &Device::flex()).unwrap();
    let enc = |s: &str| m.tokenizer.encode(s).unwrap();
    let prompt = enc(
        "The mother of Ann Smith is Beth Smith. The father of Beth Smith is Carl Jones. Who is the grandfather of Ann Smith?",
    );
    let completions = vec![
        enc(" The grandfather of Ann Smith is Carl Jones."),
        enc(" Carl"),
        enc(" It is <answer>Carl Jones</answer>."),
    ];
    let pad = m.tokenizer.eos_token_ids[0];
    let prompts = vec![prompt.clone(); 3];
    let shared = completion_logprobs(&m.net, &m.cfg, pad, &prompts, &completions, None);
    let width = shared.dims()[1];
    let shared: Vec<f32> = shared
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    for (r, c) in completions.iter().enumerate() {
        let alone = completion_logprobs(
            &m.net,
            &m.cfg,
            pad,
            std::slice::from_ref(&prompt),
            std::slice::from_ref(c),
            None,
        )
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
        for t in 0..c.len() {
            assert!(
                (alone[t] - shared[r * width + t]).abs() < 2e-3,
                "row {r} token {t}: {} vs {}",
                alone[t],
                shared[r * width + t]
            );
        }
    }
    let opts = GenOptions {
        max_new_tokens: 8,
        ..GenOptions::default()
    };
    let (together, _) = m.generate(&prompts[..2], &opts).unwrap();
    let (alone, _) = m.generate(&prompts[..1], &opts).unwrap();
    assert_eq!(together[0].tokens, alone[0].tokens);
    assert_eq!(together[1].tokens, alone[0].tokens);
}

/// Greedy decoding of `steps` tokens after `prompt` with `net` (one row): the logits of the
/// prefill's last position and of every decoded token.
fn greedy_logits(
    net: &synthpipe::model::net::Transformer,
    cfg: &synthpipe::model::config::Config,
    prompt: &[u32],
    steps: usize,
) -> Vec<Vec<f32>> {
    use burn::prelude::*;
    use burn::tensor::{Int, TensorData};
    use synthpipe::model::net::Cache;
    let dev = Device::flex();
    let mut cache = Cache::new(cfg.num_layers, 1);
    let mut ids: Vec<i64> = prompt.iter().map(|&t| i64::from(t)).collect();
    let mut out = Vec::new();
    for _ in 0..=steps {
        let n = ids.len();
        let x = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, n]), &dev);
        let logits = net.forward(cfg, x, &[vec![true; n]], &mut cache);
        let [_, t, v] = logits.dims();
        let last: Vec<f32> = logits
            .slice([0..1, t - 1..t, 0..v])
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        let next = (0..v).max_by(|&a, &b| last[a].total_cmp(&last[b])).unwrap();
        out.push(last);
        ids = vec![next as i64];
    }
    out
}

#[test]
fn the_real_gguf_decodes_from_its_packed_blocks_as_from_its_f32_weights() {
    use burn::prelude::*;
    use std::collections::HashMap;
    use std::sync::Arc;
    use synthpipe::model::generate::GenOptions;
    use synthpipe::model::load::Model;
    let Some(path) = qwen_gguf() else { return };
    let m = Model::load(&path, &Device::flex()).unwrap();
    // Every projection of the 24 layers, and the tied output head.
    assert_eq!(m.net.packed.len(), 24 * 7 + 1);
    let mut plain = m.net.clone();
    plain.packed = Arc::new(HashMap::new());
    let prompt = m
        .tokenizer
        .encode("The mother of Ann Smith is Beth Smith. Who is the mother of Ann Smith?")
        .unwrap();
    let packed = greedy_logits(&m.net, &m.cfg, &prompt, 12);
    let f32s = greedy_logits(&plain, &m.cfg, &prompt, 12);
    let mut differs = false;
    for (step, (a, b)) in packed.iter().zip(&f32s).enumerate() {
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j]));
        assert_eq!(argmax(a), argmax(b), "step {step}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 2e-3, "step {step}: {x} vs {y}");
            differs |= x != y;
        }
    }
    // The prefill is the same product either way; decoding summed in another order shows
    // that the packed blocks were used.
    assert_eq!(packed[0], f32s[0]);
    assert!(differs, "the packed blocks were not used");

    // Batched decoding (3 rows) gives each row its lone tokens, packed or not.
    let opts = GenOptions {
        max_new_tokens: 10,
        ..GenOptions::default()
    };
    let prompts = vec![prompt.clone(); 3];
    let (together, _) = m.generate(&prompts, &opts).unwrap();
    let unpacked = Model {
        cfg: m.cfg.clone(),
        net: plain.clone(),
        tokenizer: m.tokenizer.clone(),
        source: m.source.clone(),
    };
    let (alone, _) = unpacked.generate(&prompts[..1], &opts).unwrap();
    for row in &together {
        assert_eq!(row.tokens, alone[0].tokens);
    }

    // A weight that moved since it was packed (a full fine-tuning step keeps its id) is
    // read from its f32 values again.
    let q0 = m.net.blocks[0].attn.q.id;
    let only_q0 = Arc::new(HashMap::from([(q0, m.net.packed[&q0].clone())]));
    let mut moved = plain.clone();
    moved.blocks[0].attn.q = moved.blocks[0].attn.q.clone().map(|t| t.add_scalar(1e-3));
    assert_eq!(moved.blocks[0].attn.q.id, q0);
    let moved_plain = greedy_logits(&moved, &m.cfg, &prompt, 2);
    moved.packed = only_q0.clone();
    assert_eq!(greedy_logits(&moved, &m.cfg, &prompt, 2), moved_plain);
    // (while the unmoved weight does use it)
    let mut unmoved = plain.clone();
    unmoved.packed = only_q0;
    assert_ne!(greedy_logits(&unmoved, &m.cfg, &prompt, 2)[1], f32s[1]);
}
