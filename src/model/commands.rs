//! The `synthpipe lm` commands: `info`, `generate`, `logprobs` and `convert`. MODEL is a
//! Hugging Face folder or a `.gguf` file. Exit codes: 0 success, 2 a model that cannot be
//! loaded (a coded diagnostic) or bad usage.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use burn::prelude::*;
use serde_json::json;

use super::chat::{self, ChatOptions, Message};
use super::config::Config;
use super::error::LoadError;
use super::generate::GenOptions;
use super::gguf::Gguf;
use super::load::Model;

/// Which burn backend runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// A GPU through wgpu when one is present, else `flex` (today: `flex`).
    Auto,
    /// wgpu (on a machine without a GPU: a software Vulkan driver, much slower than flex).
    Wgpu,
    /// burn's pure-Rust CPU backend.
    Flex,
}

pub fn device(b: Backend) -> Device {
    match b {
        Backend::Wgpu => Device::wgpu(Default::default()),
        Backend::Auto | Backend::Flex => Device::flex(),
    }
}

fn report(e: &LoadError) -> ExitCode {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    let mut out = String::new();
    if handler.render_report(&mut out, e).is_err() {
        out = format!("{e}\n  help: {}\n", e.help);
    }
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
    ExitCode::from(2)
}

fn config_of(path: &Path) -> Result<(Config, String), LoadError> {
    if path.is_dir() {
        let cfg = Config::from_hf(&path.join("config.json"))?;
        let ck = super::safetensors::Checkpoint::open(path)?;
        let mut dtypes: Vec<String> = ck.tensors.values().map(|e| e.dtype.clone()).collect();
        dtypes.sort();
        dtypes.dedup();
        Ok((cfg, dtypes.join(", ")))
    } else {
        let g = Gguf::open(path)?;
        let cfg = Config::from_gguf(&g)?;
        let mut types: Vec<String> = g
            .tensors
            .iter()
            .map(|t| super::quant::Encoding::ggml_name(t.ggml_type))
            .collect();
        types.sort();
        types.dedup();
        Ok((cfg, types.join(", ")))
    }
}

pub fn info(path: &Path, as_json: bool) -> ExitCode {
    let (cfg, dtypes) = match config_of(path) {
        Ok(x) => x,
        Err(e) => return report(&e),
    };
    let params = cfg.parameter_count();
    let kv_per_token = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * 4;
    let j = json!({
        "architecture": cfg.arch.name(),
        "parameters": params,
        "layers": cfg.num_layers,
        "hidden_size": cfg.hidden_size,
        "heads": cfg.num_heads,
        "kv_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "intermediate_size": cfg.intermediate_size,
        "vocab_size": cfg.vocab_size,
        "context_length": cfg.max_position_embeddings,
        "tied_embeddings": cfg.tie_word_embeddings,
        "stored_dtypes": dtypes,
        "f32_weights_bytes": params * 4,
        "kv_cache_bytes_per_token": kv_per_token,
    });
    let text = if as_json {
        serde_json::to_string_pretty(&j).unwrap_or_default() + "\n"
    } else {
        format!(
            "architecture  {}\nparameters    {:.1} M\nlayers        {}  (hidden {}, {} heads / {} KV heads of {}, MLP {})\nvocabulary    {}\ncontext       {}\nstored as     {}\nmemory (f32)  {:.2} GiB weights + {:.1} MiB KV cache per 1,000 tokens\n",
            cfg.arch.name(),
            params as f64 / 1e6,
            cfg.num_layers,
            cfg.hidden_size,
            cfg.num_heads,
            cfg.num_kv_heads,
            cfg.head_dim,
            cfg.intermediate_size,
            cfg.vocab_size,
            cfg.max_position_embeddings,
            dtypes,
            (params * 4) as f64 / (1u64 << 30) as f64,
            (kv_per_token * 1000) as f64 / (1u64 << 20) as f64,
        )
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

/// What to feed the model.
pub enum Input {
    /// Raw text, no template.
    Prompt(String),
    /// Messages (JSON list of `{role, content}`) through the model's chat template.
    Chat(Vec<Message>),
}

pub struct GenerateArgs {
    pub input: Input,
    pub opts: GenOptions,
    pub no_think: bool,
    pub backend: Backend,
    pub json: bool,
}

pub fn generate(path: &Path, a: &GenerateArgs) -> ExitCode {
    let m = match Model::load(path, &device(a.backend)) {
        Ok(m) => m,
        Err(e) => return report(&e),
    };
    let text = match &a.input {
        Input::Prompt(p) => p.clone(),
        Input::Chat(messages) => {
            let Some(t) = &m.tokenizer.chat_template else {
                eprintln!(
                    "error[synthpipe::lm::no_chat_template]: `{}` has no chat template\n  help: use --prompt with raw text",
                    path.display()
                );
                return ExitCode::from(2);
            };
            let opts = ChatOptions {
                add_generation_prompt: true,
                enable_thinking: a.no_think.then_some(false),
                bos_token: m.tokenizer.bos_token.clone(),
                eos_token: m.tokenizer.eos_token.clone(),
            };
            match chat::render(t, messages, &opts) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!(
                        "error[synthpipe::lm::chat_template]: {e}\n  help: use --prompt with raw text, or fix the model's chat template"
                    );
                    return ExitCode::from(2);
                }
            }
        }
    };
    let ids = match m.tokenizer.encode(&text) {
        Ok(i) => i,
        Err(e) => {
            eprintln!(
                "error[synthpipe::lm::tokenize]: {e}\n  help: the model's tokenizer cannot encode this text"
            );
            return ExitCode::from(2);
        }
    };
    let (gens, t) = m.generate(&[ids], &a.opts);
    let g = &gens[0];
    let prefill_tps = t.prompt_tokens as f64 / t.prefill_seconds.max(1e-9);
    let decode_tps = t.new_tokens as f64 / t.decode_seconds.max(1e-9);
    if a.json {
        let j = json!({
            "text": g.text,
            "tokens": g.tokens,
            "finish": format!("{:?}", g.finish).to_lowercase(),
            "prompt_tokens": t.prompt_tokens,
            "new_tokens": t.new_tokens,
            "prefill_seconds": t.prefill_seconds,
            "decode_seconds": t.decode_seconds,
            "prefill_tokens_per_s": prefill_tps,
            "decode_tokens_per_s": decode_tps,
        });
        println!("{j}");
    } else {
        println!("{}", g.text);
        eprintln!(
            "{} prompt tokens at {prefill_tps:.1} tokens/s, {} new tokens at {decode_tps:.1} tokens/s ({:?})",
            t.prompt_tokens, t.new_tokens, g.finish
        );
    }
    ExitCode::SUCCESS
}

pub fn logprobs(
    path: &Path,
    prompt: &str,
    completion: &str,
    backend: Backend,
    as_json: bool,
) -> ExitCode {
    let m = match Model::load(path, &device(backend)) {
        Ok(m) => m,
        Err(e) => return report(&e),
    };
    let (p, c) = match (m.tokenizer.encode(prompt), m.tokenizer.encode(completion)) {
        (Ok(p), Ok(c)) if !p.is_empty() => (p, c),
        (Ok(_), Ok(_)) => {
            eprintln!(
                "error[synthpipe::lm::empty_prompt]: the prompt has no tokens\n  help: log-probabilities are of the completion given a non-empty prompt"
            );
            return ExitCode::from(2);
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!(
                "error[synthpipe::lm::tokenize]: {e}\n  help: the model's tokenizer cannot encode this text"
            );
            return ExitCode::from(2);
        }
    };
    let lp = m.logprobs(&[(p, c.clone())]).pop().unwrap_or_default();
    let total: f32 = lp.iter().sum();
    let pieces: Vec<String> = c
        .iter()
        .map(|&t| m.tokenizer.decode(&[t], false).unwrap_or_default())
        .collect();
    if as_json {
        println!(
            "{}",
            json!({"tokens": c, "pieces": pieces, "logprobs": lp, "total": total})
        );
    } else {
        for ((t, piece), l) in c.iter().zip(&pieces).zip(&lp) {
            println!("{t:>8} {l:>10.4} {piece:?}");
        }
        println!("total {total:.4}");
    }
    ExitCode::SUCCESS
}

pub fn convert(path: &Path, out: &Path, bf16: bool) -> ExitCode {
    let m = match Model::load(path, &Device::flex()) {
        Ok(m) => m,
        Err(e) => return report(&e),
    };
    match m.save_hf(out, bf16) {
        Ok(()) => {
            eprintln!(
                "wrote {} ({}, {})",
                out.display(),
                m.cfg.arch.name(),
                if bf16 { "bf16" } else { "f32" }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error[synthpipe::lm::write]: {e}\n  help: check the output folder and the free disk space"
            );
            ExitCode::from(2)
        }
    }
}
