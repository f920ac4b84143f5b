//! The `synthpipe lm` commands: `info`, `generate`, `logprobs`, `convert` and `init`. MODEL is a
//! Hugging Face folder or a `.gguf` file. Exit codes: 0 success, 2 a model that cannot be
//! loaded (a coded diagnostic) or bad usage.

use std::io::Write;

use super::error::{CliError, Code};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

use crate::model::chat::{self, ChatOptions, Message};
use crate::model::config::Config;
use crate::model::error::LoadError;
use crate::model::generate::GenOptions;
use crate::model::gguf::Gguf;
use crate::model::load::Model;
use crate::model::lora;

use crate::model::device::{Backend, Dtype, device_with, resolve};

/// The backend failed while running the model (out of device memory, a lost device).
fn backend_failed(e: &str) -> ExitCode {
    CliError::new(Code::LmBackend, e.to_string()).help("use a smaller batch or prompt, another --backend, or a machine with more (device) memory").print();
    ExitCode::from(2)
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
        let ck = crate::model::safetensors::Checkpoint::open(path)?;
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
            .map(|t| crate::model::quant::Encoding::ggml_name(t.ggml_type))
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
    pub adapter: Option<PathBuf>,
    pub input: Input,
    pub opts: GenOptions,
    pub no_think: bool,
    pub backend: Backend,
    pub dtype: Dtype,
    pub json: bool,
}

/// Loads `path` (with `adapter` attached) onto the device for `backend` in `dtype`, or
/// reports why not (exit 2).
fn load_on(
    path: &Path,
    adapter: Option<&Path>,
    backend: Backend,
    dtype: Dtype,
) -> Result<Model, ExitCode> {
    let device = device_with(backend, dtype).map_err(|e| {
        CliError::new(Code::LmDtype, e.to_string())
            .help("use --dtype f32, or another --backend")
            .print();
        ExitCode::from(2)
    })?;
    let mut m = Model::load(path, &device).map_err(|e| report(&e))?;
    if let Some(a) = adapter {
        m.net = lora::adapter_dir(a)
            .and_then(|dir| lora::load_peft(&dir, m.net))
            .map_err(|e| {
                CliError::new(Code::LmAdapter, e)
                    .help("give a folder with adapter_config.json and adapter_model.safetensors (PEFT's layout) made for this model")
                    .print();
                ExitCode::from(2)
            })?;
    }
    Ok(m)
}

pub fn generate(path: &Path, a: &GenerateArgs) -> ExitCode {
    let m = match load_on(path, a.adapter.as_deref(), a.backend, a.dtype) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let text = match &a.input {
        Input::Prompt(p) => p.clone(),
        Input::Chat(messages) => {
            let Some(t) = &m.tokenizer.chat_template else {
                CliError::new(
                    Code::LmNoChatTemplate,
                    format!("`{}` has no chat template", path.display()),
                )
                .help("use --prompt with raw text")
                .print();
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
                    CliError::new(Code::LmChatTemplate, e.to_string())
                        .help("use --prompt with raw text, or fix the model's chat template")
                        .print();
                    return ExitCode::from(2);
                }
            }
        }
    };
    let ids = match m.tokenizer.encode(&text) {
        Ok(i) => i,
        Err(e) => {
            CliError::new(Code::LmTokenize, e.to_string())
                .help("the model's tokenizer cannot encode this text")
                .print();
            return ExitCode::from(2);
        }
    };
    let (gens, t) = match m.generate(&[ids], &a.opts) {
        Ok(x) => x,
        Err(e) => return backend_failed(&e),
    };
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

/// `lm generate --endpoint`: one answer from a served model, `--prompt` as a completion,
/// a chat as chat messages; errors as the `evaluate` stage reports them.
pub fn generate_served(
    url: &str,
    (served_model, api_key_env): (Option<&str>, Option<&str>),
    input: &Input,
    sampling: &crate::eval::remote::Sampling,
    seed: u64,
    as_json: bool,
) -> ExitCode {
    use crate::eval::remote::{Api, Endpoint};
    let api = match input {
        Input::Prompt(_) => Api::Completions,
        Input::Chat(_) => Api::Chat,
    };
    let asked = Endpoint::new(url, api, api_key_env, 600.0, 3).and_then(|e| {
        let model = e.served_model(served_model)?;
        let body = match input {
            Input::Prompt(p) => e.body(&model, p, sampling, seed),
            Input::Chat(messages) => {
                let m: Vec<serde_json::Value> = messages
                    .iter()
                    .map(|m| json!({"role": m.role, "content": m.content}))
                    .collect();
                e.chat_body(&model, json!(m), sampling, seed)
            }
        };
        e.answer(&body, "the prompt").map(|a| (model, a))
    });
    match asked {
        Ok((model, a)) if as_json => {
            println!(
                "{}",
                json!({"text": a.text, "truncated": a.truncated, "served_model": model})
            );
            ExitCode::SUCCESS
        }
        Ok((model, a)) => {
            println!("{}", a.text);
            eprintln!(
                "answered by `{model}` at {url}{}",
                if a.truncated {
                    " (cut at --max-tokens)"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

pub fn logprobs(
    (path, adapter): (&Path, Option<&Path>),
    prompt: &str,
    completion: &str,
    (backend, dtype): (Backend, Dtype),
    as_json: bool,
) -> ExitCode {
    let m = match load_on(path, adapter, backend, dtype) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let (p, c) = match (m.tokenizer.encode(prompt), m.tokenizer.encode(completion)) {
        (Ok(p), Ok(c)) if !p.is_empty() => (p, c),
        (Ok(_), Ok(_)) => {
            CliError::new(Code::LmEmptyPrompt, "the prompt has no tokens")
                .help("log-probabilities are of the completion given a non-empty prompt")
                .print();
            return ExitCode::from(2);
        }
        (Err(e), _) | (_, Err(e)) => {
            CliError::new(Code::LmTokenize, e.to_string())
                .help("the model's tokenizer cannot encode this text")
                .print();
            return ExitCode::from(2);
        }
    };
    let lp = match m.logprobs(&[(p, c.clone())]) {
        Ok(mut rows) => rows.pop().unwrap_or_default(),
        Err(e) => return backend_failed(&e),
    };
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

/// Writes `path` (merged with `adapter`, when given) as a Hugging Face folder.
pub fn convert(
    path: &Path,
    adapter: Option<&Path>,
    out: &Path,
    bf16: bool,
    force: bool,
) -> ExitCode {
    if let Err(code) = check_out(out, force) {
        return code;
    }
    let m = match load_on(path, adapter, Backend::Flex, Dtype::F32) {
        Ok(m) => m,
        Err(code) => return code,
    };
    // `save_hf` folds an adapter into its weights.
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
            CliError::new(Code::LmWrite, e.to_string())
                .help("check the output folder and the free disk space")
                .print();
            ExitCode::from(2)
        }
    }
}

/// Where `lm init` gets its tokenizer.
pub enum TokenizerSource {
    /// An existing model's (folder or `.gguf`).
    From(std::path::PathBuf),
    /// Trained on a dataset's text (or a text file), with this many tokens.
    Train {
        data: std::path::PathBuf,
        vocab: usize,
    },
}

pub struct InitArgs {
    pub shape: crate::model::init::Shape,
    pub tokenizer: TokenizerSource,
    pub seed: u64,
    pub init_std: f64,
    pub out: std::path::PathBuf,
    pub bf16: bool,
    pub force: bool,
}

/// Refuses to write a model over another unless asked to.
fn check_out(out: &Path, force: bool) -> Result<(), ExitCode> {
    let occupied = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
    if occupied && !force {
        CliError::new(
            Code::LmOutExists,
            format!("`{}` exists and is not empty", out.display()),
        )
        .help("choose another --out, or pass --force to overwrite the model files in it")
        .print();
        return Err(ExitCode::from(2));
    }
    Ok(())
}

pub fn init(a: &InitArgs) -> ExitCode {
    use crate::model::init::tokenizer_of;
    use crate::model::tokenizer::Tokenizer;
    use crate::prompt::tokenizer_texts;
    if let Err(code) = check_out(&a.out, a.force) {
        return code;
    }
    let tokenizer = match &a.tokenizer {
        TokenizerSource::From(p) => match tokenizer_of(p) {
            Ok(t) => t,
            Err(e) => return report(&e),
        },
        TokenizerSource::Train { data, vocab } => {
            let trained =
                tokenizer_texts(data).and_then(|texts| Tokenizer::train(texts.into_iter(), *vocab));
            match trained {
                Ok(t) => t,
                Err(e) => {
                    CliError::new(Code::LmTrainTokenizer, e.to_string()).help("--train-tokenizer takes a dataset folder written by `synthpipe generate` (or a text file), and --vocab at least 259").print();
                    return ExitCode::from(2);
                }
            }
        }
    };
    let cfg = match a
        .shape
        .config(tokenizer.vocab_size(), tokenizer.eos_token_ids.clone())
    {
        Ok(c) => c,
        Err(e) => return report(&e),
    };
    let m = match Model::init(
        cfg,
        tokenizer,
        a.seed,
        a.init_std,
        &crate::model::device::cpu(),
    ) {
        Ok(m) => m,
        Err(e) => return report(&e),
    };
    match m.save_hf(&a.out, a.bf16) {
        Ok(()) => {
            eprintln!(
                "wrote {} ({}, {:.2} M parameters, vocabulary {}, seed {})",
                a.out.display(),
                m.cfg.arch.name(),
                m.cfg.parameter_count() as f64 / 1e6,
                m.cfg.vocab_size,
                a.seed
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            CliError::new(Code::LmWrite, e.to_string())
                .help("check the output folder and the free disk space")
                .print();
            ExitCode::from(2)
        }
    }
}

pub struct BenchArgs {
    pub adapter: Option<PathBuf>,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub batch: usize,
    pub repeat: usize,
    pub backend: Backend,
    pub dtype: Dtype,
    pub json: bool,
}

/// Prose for benchmark prompts: ordinary English, so the tokenizer splits it as it would
/// real input.
const BENCH_TEXT: &str = "The history of the river valley begins with the farmers who settled \
along its banks, built terraces on the hills and traded grain with the towns downstream. Over \
the centuries the valley saw floods, droughts, wars and long years of peace; each left its mark \
on the villages, the churches and the stories people told their children. ";

pub fn bench(path: &Path, a: &BenchArgs) -> ExitCode {
    // Resolved once: `auto` probes the GPUs, and the report names what actually ran.
    let backend = resolve(a.backend);
    let load_start = std::time::Instant::now();
    let m = match load_on(path, a.adapter.as_deref(), backend, a.dtype) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let load_seconds = load_start.elapsed().as_secs_f64();
    let mut ids = Vec::new();
    while ids.len() < a.prompt_tokens {
        match m.tokenizer.encode(&BENCH_TEXT.repeat(8)) {
            Ok(more) if !more.is_empty() => ids.extend(more),
            _ => {
                CliError::new(
                    Code::LmTokenize,
                    "the model's tokenizer cannot encode the benchmark text",
                )
                .help("benchmark a model with a text tokenizer")
                .print();
                return ExitCode::from(2);
            }
        }
    }
    ids.truncate(a.prompt_tokens.max(1));
    // Distinct rows (each rotated by its index): equal prompts would be prefilled once.
    let prompts: Vec<Vec<u32>> = (0..a.batch.max(1))
        .map(|r| {
            let mut row = ids.clone();
            row.rotate_left(r % ids.len());
            row
        })
        .collect();
    let opts = GenOptions {
        max_new_tokens: a.new_tokens,
        ignore_eos: true,
        ..GenOptions::default()
    };
    let (mut best_prefill, mut best_decode) = (0f64, 0f64);
    let mut last = None;
    for _ in 0..a.repeat.max(1) {
        let (_, t) = match m.generate(&prompts, &opts) {
            Ok(x) => x,
            Err(e) => return backend_failed(&e),
        };
        best_prefill = best_prefill.max(t.prompt_tokens as f64 / t.prefill_seconds.max(1e-9));
        best_decode = best_decode.max(t.new_tokens as f64 / t.decode_seconds.max(1e-9));
        last = Some(t);
    }
    let t = last.unwrap_or_default();
    let peak = crate::util::peak_rss_mib();
    let j = json!({
        "model": path.display().to_string(),
        "backend": format!("{:?}", a.backend).to_lowercase(),
        "resolved_backend": format!("{backend:?}").to_lowercase(),
        "dtype": format!("{:?}", a.dtype).to_lowercase(),
        "threads": std::thread::available_parallelism().map_or(1, usize::from),
        "load_seconds": load_seconds,
        "batch": a.batch.max(1),
        "prompt_tokens": t.prompt_tokens,
        "new_tokens": t.new_tokens,
        "prefill_tokens_per_s": best_prefill,
        "decode_tokens_per_s": best_decode,
        "peak_rss_mib": peak,
    });
    if a.json {
        println!("{j}");
    } else {
        println!(
            "prefill {} tokens: {best_prefill:.1} tokens/s\ndecode {} tokens: {best_decode:.1} tokens/s\nload {load_seconds:.1} s, peak memory {}",
            t.prompt_tokens,
            t.new_tokens,
            peak.map_or("unknown".into(), |p| format!("{p:.0} MiB"))
        );
    }
    ExitCode::SUCCESS
}

/// Runs an `lm` subcommand.
pub fn dispatch(command: super::LmCommand) -> ExitCode {
    use self as mc;
    use crate::model::generate::{GenOptions, Sampling};
    match command {
        super::LmCommand::Info { model, json } => mc::info(&model, json),
        super::LmCommand::Generate {
            model,
            endpoint,
            served_model,
            api_key_env,
            prompt,
            chat,
            user,
            max_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            seed,
            stop,
            ignore_eos,
            no_think,
            backend,
            dtype,
            json,
            adapter,
        } => {
            let input = match (prompt, chat, user) {
                (Some(p), _, _) => mc::Input::Prompt(p),
                (_, _, Some(u)) => {
                    mc::Input::Chat(vec![crate::model::chat::Message::new("user", &u)])
                }
                (_, Some(file), _) => {
                    let parsed = std::fs::read(&file)
                        .map_err(|e| e.to_string())
                        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
                    match parsed {
                        Ok(m) => mc::Input::Chat(m),
                        Err(e) => {
                            CliError::new(Code::LmChatFile, format!("cannot read `{}`: {e}", file.display())).help("the file holds a JSON list of {\"role\": ..., \"content\": ...} messages").print();
                            return ExitCode::from(2);
                        }
                    }
                }
                (None, None, None) => {
                    CliError::new(Code::LmNoInput, "nothing to generate from")
                        .help("give --prompt TEXT, --user TEXT or --chat FILE")
                        .print();
                    return ExitCode::from(2);
                }
            };
            if let Some(url) = endpoint {
                return mc::generate_served(
                    &url,
                    (served_model.as_deref(), api_key_env.as_deref()),
                    &input,
                    &crate::eval::remote::Sampling {
                        temperature,
                        top_p,
                        top_k,
                        max_tokens,
                    },
                    seed,
                    json,
                );
            }
            let Some(model) = model else {
                CliError::new(Code::LmNoInput, "no model to generate with")
                    .help("give MODEL (a folder or a .gguf file) or --endpoint URL")
                    .print();
                return ExitCode::from(2);
            };
            let opts = GenOptions {
                max_new_tokens: max_tokens,
                stop,
                sampling: Sampling {
                    temperature,
                    top_k,
                    top_p,
                    min_p,
                    seed,
                },
                ignore_eos,
                ..GenOptions::default()
            };
            mc::generate(
                &model,
                &mc::GenerateArgs {
                    adapter,
                    input,
                    opts,
                    no_think,
                    backend,
                    dtype,
                    json,
                },
            )
        }
        super::LmCommand::Logprobs {
            model,
            adapter,
            prompt,
            completion,
            backend,
            dtype,
            json,
        } => mc::logprobs(
            (&model, adapter.as_deref()),
            &prompt,
            &completion,
            (backend, dtype),
            json,
        ),
        super::LmCommand::Bench {
            model,
            adapter,
            prompt_tokens,
            new_tokens,
            batch,
            repeat,
            backend,
            dtype,
            json,
        } => mc::bench(
            &model,
            &mc::BenchArgs {
                adapter,
                prompt_tokens,
                new_tokens,
                batch,
                repeat,
                backend,
                dtype,
                json,
            },
        ),
        super::LmCommand::Convert {
            model,
            adapter,
            out,
            bf16,
            force,
        } => mc::convert(&model, adapter.as_deref(), &out, bf16, force),
        super::LmCommand::Init {
            arch,
            layers,
            hidden,
            heads,
            kv_heads,
            head_dim,
            intermediate,
            context,
            rope_theta,
            rms_norm_eps,
            untied,
            tokenizer,
            train_tokenizer,
            vocab,
            seed,
            init_std,
            out,
            bf16,
            force,
        } => {
            let tokenizer = match (tokenizer, train_tokenizer, vocab) {
                (Some(p), _, _) => mc::TokenizerSource::From(p),
                (None, Some(data), Some(vocab)) => mc::TokenizerSource::Train { data, vocab },
                _ => {
                    CliError::new(Code::LmNoTokenizer, "no tokenizer")
                        .help("give --tokenizer MODEL, or --train-tokenizer DATASET --vocab N")
                        .print();
                    return ExitCode::from(2);
                }
            };
            mc::init(&mc::InitArgs {
                shape: crate::model::init::Shape {
                    arch,
                    layers,
                    hidden,
                    heads,
                    kv_heads,
                    head_dim,
                    intermediate,
                    context,
                    rope_theta,
                    rms_norm_eps,
                    tie_embeddings: !untied,
                },
                tokenizer,
                seed,
                init_std,
                out,
                bf16,
                force,
            })
        }
    }
}
