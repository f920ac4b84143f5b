//! Models from scratch (`synthpipe lm init`): the architecture a user asks for, a tokenizer
//! taken from another model or trained on a generated dataset's text, and seeded random
//! weights — written in Hugging Face's layout like any other model.

use std::io::BufRead;
use std::path::Path;

use super::config::{Arch, Config};
use super::error::{LoadCode, LoadError};
use super::gguf::Gguf;
use super::tokenizer::Tokenizer;

/// The shape of a new model; `None` fields take the defaults documented on the CLI.
#[derive(Clone, Debug)]
pub struct Shape {
    pub arch: Arch,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// Default: `hidden / heads`.
    pub head_dim: Option<usize>,
    /// Default: `3 × hidden` (Qwen3-0.6B's ratio).
    pub intermediate: Option<usize>,
    pub context: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    pub tie_embeddings: bool,
}

fn bad(what: String, help: &str) -> LoadError {
    LoadError::new(LoadCode::Unsupported, Path::new("(lm init)"), what, help)
}

impl Shape {
    /// The model's configuration for a tokenizer of `vocab` tokens ending turns with `eos`.
    pub fn config(&self, vocab: usize, eos: Vec<u32>) -> Result<Config, LoadError> {
        for (flag, v) in [
            ("--layers", self.layers),
            ("--hidden", self.hidden),
            ("--heads", self.heads),
            ("--kv-heads", self.kv_heads),
            ("--context", self.context),
        ] {
            if v == 0 {
                return Err(bad(format!("`{flag}` must be positive"), "give a size ≥ 1"));
            }
        }
        let head_dim = match self.head_dim {
            Some(d) => d,
            None if self.hidden.is_multiple_of(self.heads) => self.hidden / self.heads,
            None => {
                return Err(bad(
                    format!(
                        "`--hidden {}` is not a multiple of `--heads {}`",
                        self.hidden, self.heads
                    ),
                    "choose sizes that divide, or give --head-dim",
                ));
            }
        };
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(bad(
                format!(
                    "`--heads {}` cannot share `--kv-heads {}` evenly",
                    self.heads, self.kv_heads
                ),
                "grouped-query attention needs heads to be a multiple of kv-heads",
            ));
        }
        Config {
            arch: self.arch,
            vocab_size: vocab,
            hidden_size: self.hidden,
            intermediate_size: self.intermediate.unwrap_or(3 * self.hidden),
            num_layers: self.layers,
            num_heads: self.heads,
            num_kv_heads: self.kv_heads,
            head_dim,
            rope_theta: self.rope_theta,
            rope_scaling: None,
            rms_norm_eps: self.rms_norm_eps,
            tie_word_embeddings: self.tie_embeddings,
            max_position_embeddings: self.context,
            qkv_bias: self.arch == Arch::Qwen2,
            qk_norm: self.arch == Arch::Qwen3,
            bos_token_id: None,
            eos_token_ids: eos,
        }
        .validate(Path::new("(lm init)"))
    }
}

/// The tokenizer of an existing model: a Hugging Face folder or a `.gguf` file.
pub fn tokenizer_of(path: &Path) -> Result<Tokenizer, LoadError> {
    if path.is_dir() {
        Tokenizer::from_hf_dir(path)
    } else {
        Tokenizer::from_gguf(&Gguf::open(path)?)
    }
}

/// The text of a generated dataset (a folder with `articles.jsonl` and/or `questions.jsonl`):
/// every article, and every question with its answers — what the model will read and write.
/// A plain text file gives one text per line.
pub fn dataset_texts(path: &Path) -> Result<Vec<String>, String> {
    let read_lines = |file: &Path| -> Result<Vec<String>, String> {
        let f = std::fs::File::open(file)
            .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
        std::io::BufReader::new(f)
            .lines()
            .map(|l| l.map_err(|e| format!("cannot read `{}`: {e}", file.display())))
            .collect()
    };
    if !path.is_dir() {
        return read_lines(path);
    }
    let mut texts = Vec::new();
    let mut found = false;
    for (name, fields) in [
        ("articles.jsonl", &["text"][..]),
        ("questions.jsonl", &["text", "answers"][..]),
    ] {
        let file = path.join(name);
        if !file.exists() {
            continue;
        }
        found = true;
        for (n, line) in read_lines(&file)?.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let j: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: not JSON: {e}", file.display(), n + 1))?;
            for f in fields {
                match &j[f] {
                    serde_json::Value::String(s) => texts.push(s.clone()),
                    serde_json::Value::Array(a) => {
                        let items: Vec<&str> = a.iter().filter_map(|v| v.as_str()).collect();
                        texts.push(items.join(", "));
                    }
                    _ => {}
                }
            }
        }
    }
    if !found {
        return Err(format!(
            "`{}` has neither articles.jsonl nor questions.jsonl",
            path.display()
        ));
    }
    Ok(texts)
}
