//! Tokenizers: a Hugging Face `tokenizer.json` (with `tokenizer_config.json` for the special
//! tokens and chat template) through the `tokenizers` crate, or the byte-level BPE a GGUF
//! file describes in its metadata (`qwen2` and `llama-bpe` pre-tokenizers), rebuilt as the
//! equivalent `tokenizer.json` so both paths share one implementation and a GGUF model can be
//! saved in Hugging Face's layout.

use std::path::Path;
use std::str::FromStr;

use serde_json::{Value as Json, json};

use super::error::{LoadCode, LoadError};
use super::gguf::{Gguf, Meta};

/// Qwen2's pre-tokenizer split (also Qwen2.5's and Qwen3's).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's: numbers in groups of up to three digits.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Hugging Face's byte-level pre-tokenizer/decoder settings, as Qwen and Llama 3 use them.
fn byte_level() -> Json {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false})
}

/// A `tokenizer.json` document for a byte-level BPE: `split` regex then byte-level
/// pre-tokenisation, the given normaliser, added tokens, post-processor and model.
fn bpe_document(
    split: &str,
    normalizer: Json,
    added: Json,
    post: Json,
    ignore_merges: bool,
    vocab: Json,
    merges: Json,
) -> Json {
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": false},
            byte_level(),
        ]},
        "post_processor": post,
        "decoder": byte_level(),
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges,
        },
    })
}

#[derive(Clone)]
pub struct Tokenizer {
    pub inner: tokenizers::Tokenizer,
    /// The token text that starts a sequence, if the model uses one.
    pub bos_token: Option<String>,
    /// Tokens that end generation.
    pub eos_token_ids: Vec<u32>,
    pub eos_token: Option<String>,
    pub chat_template: Option<String>,
    /// Whether encoding a prompt prepends BOS.
    pub add_bos: bool,
}

fn tok_err(file: &Path, e: impl std::fmt::Display) -> LoadError {
    LoadError::new(
        LoadCode::Metadata,
        file,
        format!("cannot build the tokenizer: {e}"),
        "the tokenizer files are damaged or of an unsupported kind",
    )
}

/// A model folder's chat template, found where transformers looks: `chat_template.jinja`
/// (what transformers 5 writes beside the tokenizer), else `chat_template.json` (what
/// processors write: `{"chat_template": …}`), else `tokenizer_config.json`'s
/// `chat_template` — a string, or a list of named templates of which `default` is used.
fn chat_template(dir: &Path, cfg: &Json) -> Result<Option<String>, LoadError> {
    let jinja = dir.join("chat_template.jinja");
    match std::fs::read_to_string(&jinja) {
        Ok(t) => return Ok(Some(t)),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(LoadError::new(
                LoadCode::Config,
                &jinja,
                format!("cannot read it: {e}"),
                "check the file (it must be UTF-8 text)",
            ));
        }
        Err(_) => {}
    }
    let json = dir.join("chat_template.json");
    if let Ok(b) = std::fs::read(&json) {
        let v: Json = serde_json::from_slice(&b).map_err(|e| {
            LoadError::new(
                LoadCode::Config,
                &json,
                format!("not JSON: {e}"),
                "fix or re-download chat_template.json",
            )
        })?;
        return named_template(&v["chat_template"])
            .map(Some)
            .ok_or_else(|| {
                LoadError::new(
                    LoadCode::Config,
                    &json,
                    "has no `chat_template` string".to_string(),
                    "write {\"chat_template\": \"…\"}, or put the template in chat_template.jinja",
                )
            });
    }
    Ok(named_template(&cfg["chat_template"]))
}

/// A `chat_template` value: the template itself, or `[{"name", "template"}, …]` (the one
/// named `default`).
fn named_template(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Array(list) => list
            .iter()
            .find(|t| t["name"] == "default")
            .and_then(|t| t["template"].as_str())
            .map(str::to_string),
        _ => None,
    }
}

impl Tokenizer {
    /// `tokenizer.json` and (if present) `tokenizer_config.json` of a model folder.
    pub fn from_hf_dir(dir: &Path) -> Result<Tokenizer, LoadError> {
        let file = dir.join("tokenizer.json");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            LoadError::new(
                LoadCode::Read,
                &file,
                format!("cannot read: {e}"),
                "a Hugging Face model folder has a tokenizer.json",
            )
        })?;
        let inner = tokenizers::Tokenizer::from_str(&text).map_err(|e| tok_err(&file, e))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: Json = match std::fs::read(&cfg_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                LoadError::new(
                    LoadCode::Config,
                    &cfg_path,
                    format!("not JSON: {e}"),
                    "fix or re-download tokenizer_config.json",
                )
            })?,
            Err(_) => Json::Null,
        };
        // Special tokens are either strings or `{"content": ...}` objects.
        let token = |k: &str| match &cfg[k] {
            Json::String(s) => Some(s.clone()),
            Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_string),
            _ => None,
        };
        let eos_token = token("eos_token");
        let mut eos_token_ids: Vec<u32> = eos_token
            .iter()
            .filter_map(|t| inner.token_to_id(t))
            .collect();
        // generation_config.json may name more stop tokens (Qwen: <|im_end|> and <|endoftext|>).
        if let Ok(b) = std::fs::read(dir.join("generation_config.json"))
            && let Ok(g) = serde_json::from_slice::<Json>(&b)
        {
            for id in super::config::token_ids(&g["eos_token_id"]) {
                if !eos_token_ids.contains(&id) {
                    eos_token_ids.push(id);
                }
            }
        }
        Ok(Tokenizer {
            inner,
            bos_token: token("bos_token"),
            eos_token_ids,
            eos_token,
            chat_template: chat_template(dir, &cfg)?,
            add_bos: cfg["add_bos_token"].as_bool().unwrap_or(false),
        })
    }

    /// The tokenizer a GGUF file describes (`tokenizer.ggml.*`).
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer, LoadError> {
        let model = g
            .require("tokenizer.ggml.model")?
            .as_str()
            .unwrap_or_default();
        if model != "gpt2" {
            return Err(LoadError::new(
                LoadCode::Unsupported,
                &g.path,
                format!(
                    "`tokenizer.ggml.model` is `{model}`; synthpipe reads byte-level BPE (`gpt2`) tokenizers"
                ),
                "use a model with a byte-level BPE tokenizer (Qwen, Llama 3), or a Hugging Face folder",
            ));
        }
        let pre = g
            .meta("tokenizer.ggml.pre")
            .and_then(Meta::as_str)
            .unwrap_or("default");
        let (split, normalizer, ignore_merges) = match pre {
            "qwen2" => (QWEN2_SPLIT, json!({"type": "NFC"}), false),
            "llama-bpe" | "llama3" => (LLAMA3_SPLIT, Json::Null, true),
            other => {
                return Err(LoadError::new(
                    LoadCode::Unsupported,
                    &g.path,
                    format!(
                        "`tokenizer.ggml.pre` is `{other}`; synthpipe implements `qwen2` and `llama-bpe`"
                    ),
                    "use a Qwen or Llama 3 GGUF, or the model's Hugging Face folder",
                ));
            }
        };
        let strings = |key: &str| -> Result<Vec<String>, LoadError> {
            let a = g
                .require(key)?
                .as_array()
                .ok_or_else(|| tok_err(&g.path, format!("`{key}` is not an array")))?;
            a.iter()
                .map(|m| {
                    m.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| tok_err(&g.path, format!("`{key}` holds a non-string")))
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let types: Vec<u64> = g
            .meta("tokenizer.ggml.token_type")
            .and_then(Meta::as_array)
            .map(|a| a.iter().map(|m| m.as_u64().unwrap_or(1)).collect())
            .unwrap_or_default();
        let mut vocab = serde_json::Map::new();
        let mut added = Vec::new();
        for (id, t) in tokens.iter().enumerate() {
            vocab.insert(t.clone(), json!(id));
            // 3: control tokens (special), 4: user-defined; both are matched before BPE.
            match types.get(id) {
                Some(3) | Some(4) => added.push(json!({
                    "id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                    "normalized": false, "special": types.get(id) == Some(&3),
                })),
                _ => {}
            }
        }
        let id = |k: &str| g.meta(k).and_then(Meta::as_u64).map(|v| v as u32);
        let name = |i: Option<u32>| i.and_then(|i| tokens.get(i as usize).cloned());
        let add_bos = g
            .meta("tokenizer.ggml.add_bos_token")
            .and_then(Meta::as_bool)
            .unwrap_or(false);
        let bos_token = name(id("tokenizer.ggml.bos_token_id"));
        let post = match (&bos_token, add_bos) {
            (Some(b), true) => json!({
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {b: {"id": b, "ids": [id("tokenizer.ggml.bos_token_id")], "tokens": [b]}},
            }),
            _ => byte_level(),
        };
        let doc = bpe_document(
            split,
            normalizer,
            Json::Array(added),
            post,
            ignore_merges,
            Json::Object(vocab),
            json!(merges),
        );
        let inner =
            tokenizers::Tokenizer::from_str(&doc.to_string()).map_err(|e| tok_err(&g.path, e))?;
        let eos = id("tokenizer.ggml.eos_token_id");
        let mut eos_token_ids: Vec<u32> = eos.into_iter().collect();
        // ChatML models end a turn with <|im_end|> and a text with <|endoftext|>: stop at both.
        for extra in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            if let Some(i) = inner.token_to_id(extra)
                && !eos_token_ids.contains(&i)
            {
                eos_token_ids.push(i);
            }
        }
        Ok(Tokenizer {
            inner,
            bos_token,
            eos_token: name(eos),
            eos_token_ids,
            chat_template: g
                .meta("tokenizer.chat_template")
                .and_then(Meta::as_str)
                .map(str::to_string),
            add_bos,
        })
    }

    /// Token ids of `text`; special tokens written in the text are recognised.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.inner
            .encode(text, self.add_bos)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| e.to_string())
    }

    /// Token ids of a continuation: like `encode`, but never with a BOS in front.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, String> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| e.to_string())
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| e.to_string())
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        self.inner
            .save(dir.join("tokenizer.json"), false)
            .map_err(|e| e.to_string())?;
        let mut cfg = json!({
            "add_bos_token": self.add_bos,
            "clean_up_tokenization_spaces": false,
            "model_max_length": 131072,
            "tokenizer_class": "PreTrainedTokenizerFast",
        });
        if let Some(t) = &self.bos_token {
            cfg["bos_token"] = json!(t);
        }
        if let Some(t) = &self.eos_token {
            cfg["eos_token"] = json!(t);
        }
        if let Some(t) = &self.chat_template {
            cfg["chat_template"] = json!(t);
        }
        let text = serde_json::to_string_pretty(&cfg).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("tokenizer_config.json"), text + "\n").map_err(|e| e.to_string())
    }
}

/// The chat template of a tokenizer trained here: ChatML, as Qwen writes it.
pub const CHATML_TEMPLATE: &str = "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/// Special tokens of a tokenizer trained here, in id order (ids 0, 1, 2).
pub const TRAINED_SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

impl Tokenizer {
    /// Trains a byte-level BPE tokenizer of `vocab` tokens (specials included) on `texts`,
    /// with Qwen2's pre-tokenizer and ChatML special tokens, so a model trained from scratch
    /// reads prompts the way the Qwen models do. The merges depend only on the texts: ties
    /// between equally frequent pairs are broken by the pair, not by hash order.
    pub fn train<I>(texts: I, vocab: usize) -> Result<Tokenizer, String>
    where
        I: Iterator<Item = String> + Send,
    {
        use tokenizers::models::TrainerWrapper;
        use tokenizers::models::bpe::BpeTrainer;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;

        let floor = 256 + TRAINED_SPECIALS.len();
        if vocab < floor {
            return Err(format!(
                "a vocabulary of {vocab} cannot hold the 256 byte tokens and {} special tokens (at least {floor})",
                TRAINED_SPECIALS.len()
            ));
        }
        // An empty model to train: training replaces it with the learnt vocabulary and merges.
        let doc = bpe_document(
            QWEN2_SPLIT,
            json!({"type": "NFC"}),
            json!([]),
            byte_level(),
            false,
            json!({}),
            json!([]),
        );
        let mut inner =
            tokenizers::Tokenizer::from_str(&doc.to_string()).map_err(|e| e.to_string())?;
        let mut trainer = TrainerWrapper::BpeTrainer(
            BpeTrainer::builder()
                .vocab_size(vocab)
                .show_progress(false)
                .special_tokens(
                    TRAINED_SPECIALS
                        .iter()
                        .map(|s| tokenizers::AddedToken::from(*s, true))
                        .collect(),
                )
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .build(),
        );
        inner
            .train(&mut trainer, texts)
            .map_err(|e| format!("training the tokenizer failed: {e}"))?;
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| format!("the trained tokenizer lacks `{t}`"))
        };
        let eos_token_ids = vec![id("<|im_end|>")?, id("<|endoftext|>")?];
        Ok(Tokenizer {
            inner,
            bos_token: None,
            eos_token_ids,
            eos_token: Some("<|im_end|>".into()),
            chat_template: Some(CHATML_TEMPLATE.into()),
            add_bos: false,
        })
    }
}
