//! The command line: argument parsing and the `check`, `fmt`, `generate`, `score` and `eval` commands;
//! the pipeline commands (`run`, `status`, `show`, `gc`, `clean`, `schema`) live in
//! `pipeline::commands`.
//!
//! Exit codes: 0 success (warnings allowed), 1 `fmt --check` found files to reformat,
//! 2 errors in the input (diagnostics on stderr) or bad usage.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::lang::{self, Diagnostic, diag};

#[derive(Parser, Debug)]
#[command(
    name = "synthpipe",
    version,
    about = "Rule-generated multi-hop reasoning data, RL fine-tuning and evaluation"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum LmCommand {
    /// Architecture, parameter count, vocabulary, context, stored dtypes, memory needs.
    Info {
        /// A Hugging Face model folder or a .gguf file.
        model: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Generate text from a prompt or a chat.
    Generate {
        model: PathBuf,
        /// Raw prompt text (no chat template).
        #[arg(long, conflicts_with_all = ["chat", "user"])]
        prompt: Option<String>,
        /// A JSON file with a list of `{role, content}` messages, rendered with the model's chat template.
        #[arg(long, conflicts_with = "user")]
        chat: Option<PathBuf>,
        /// One user message, rendered with the model's chat template.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value_t = 128)]
        max_tokens: usize,
        /// 0 is greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        #[arg(long, default_value_t = 0.0)]
        min_p: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop when the output contains this text (repeatable).
        #[arg(long)]
        stop: Vec<String>,
        /// Keep generating past end-of-sequence tokens (for speed measurements).
        #[arg(long)]
        ignore_eos: bool,
        /// Qwen3: ask for an answer without a thinking block (`enable_thinking=false`).
        #[arg(long)]
        no_think: bool,
        #[arg(long, value_enum, default_value = "auto")]
        backend: crate::model::commands::Backend,
        /// The float type to compute in (bf16/f16 where the backend supports them).
        #[arg(long, value_enum, default_value = "f32")]
        dtype: crate::model::commands::Dtype,
        #[arg(long)]
        json: bool,
    },
    /// Log-probabilities of a completion's tokens after a prompt.
    Logprobs {
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        #[arg(long)]
        completion: String,
        #[arg(long, value_enum, default_value = "auto")]
        backend: crate::model::commands::Backend,
        /// The float type to compute in (bf16/f16 where the backend supports them).
        #[arg(long, value_enum, default_value = "f32")]
        dtype: crate::model::commands::Dtype,
        #[arg(long)]
        json: bool,
    },
    /// Time prefill of a prompt and greedy decoding (tokens/s), with peak memory.
    Bench {
        model: PathBuf,
        #[arg(long, default_value_t = 1000)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 128)]
        new_tokens: usize,
        /// Prompts decoded together.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Timed repetitions (the best is reported).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        #[arg(long, value_enum, default_value = "auto")]
        backend: crate::model::commands::Backend,
        #[arg(long, value_enum, default_value = "f32")]
        dtype: crate::model::commands::Dtype,
        #[arg(long)]
        json: bool,
    },
    /// Write a GGUF model as a Hugging Face folder (config, safetensors, tokenizer).
    Convert {
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Store the weights as bf16 instead of f32.
        #[arg(long)]
        bf16: bool,
        /// Overwrite the model files of a non-empty --out folder.
        #[arg(long)]
        force: bool,
    },
    /// Create a small randomly initialised model (seeded) with a tokenizer taken from another
    /// model or trained on a dataset's text; written in Hugging Face's layout.
    Init {
        #[arg(long, value_parser = parse_arch, default_value = "qwen3")]
        arch: crate::model::config::Arch,
        #[arg(long, default_value_t = 4)]
        layers: usize,
        #[arg(long, default_value_t = 256)]
        hidden: usize,
        #[arg(long, default_value_t = 4)]
        heads: usize,
        #[arg(long, default_value_t = 2)]
        kv_heads: usize,
        /// Default: hidden / heads.
        #[arg(long)]
        head_dim: Option<usize>,
        /// MLP width. Default: 3 × hidden.
        #[arg(long)]
        intermediate: Option<usize>,
        /// Context length (max_position_embeddings).
        #[arg(long, default_value_t = 4096)]
        context: usize,
        #[arg(long, default_value_t = 1_000_000.0)]
        rope_theta: f64,
        #[arg(long, default_value_t = 1e-6)]
        rms_norm_eps: f64,
        /// A separate output projection instead of one tied to the embeddings.
        #[arg(long)]
        untied: bool,
        /// Take the tokenizer of this model (a Hugging Face folder or a .gguf file).
        #[arg(
            long,
            required_unless_present = "train_tokenizer",
            conflicts_with = "train_tokenizer"
        )]
        tokenizer: Option<PathBuf>,
        /// Train a byte-level BPE tokenizer on this dataset folder's articles and questions
        /// (or a text file, one text per line).
        #[arg(long, requires = "vocab")]
        train_tokenizer: Option<PathBuf>,
        /// Vocabulary size of the trained tokenizer, special tokens included (fewer when the
        /// text runs out of pairs to merge).
        #[arg(long)]
        vocab: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Standard deviation of the initial weights (Hugging Face's initializer_range).
        #[arg(long, default_value_t = 0.02)]
        init_std: f64,
        #[arg(long)]
        out: PathBuf,
        /// Store the weights as bf16 instead of f32.
        #[arg(long)]
        bf16: bool,
        /// Overwrite the model files of a non-empty --out folder.
        #[arg(long)]
        force: bool,
    },
}

fn parse_arch(s: &str) -> Result<crate::model::config::Arch, String> {
    crate::model::config::Arch::parse(s).ok_or_else(|| {
        format!("`{s}` is not an architecture synthpipe implements (qwen3, qwen2, llama)")
    })
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check rule files and report every problem found.
    Check {
        /// Rule files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Rewrite rule files in the canonical layout (comments are kept).
    Fmt {
        /// Do not write; exit 1 if any file is not already formatted.
        #[arg(long)]
        check: bool,
        /// Rule files to format.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Generate a dataset from a rule file: entities, facts, articles and questions as JSON
    /// Lines, and a manifest with counts, histograms and digests.
    Generate {
        /// The rule file.
        rules: PathBuf,
        /// Output folder (created if needed).
        #[arg(long)]
        out: PathBuf,
        /// Seeds of the universes, one universe per seed: `N`, `A..B`, `A..=B` or a
        /// comma-separated list of these. The same rules, parameters and seeds give the same
        /// bytes.
        #[arg(long = "seed", default_value = "0", value_name = "SEEDS", value_parser = parse_seed_list)]
        seeds: SeedList,
        /// Override a parameter the rule file declares, e.g. `--set trees=10` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_assignment)]
        set: Vec<(String, String)>,
        /// Also write derived facts (every derived relation, materialised) to facts.jsonl.
        #[arg(long)]
        derived: bool,
        /// Worker threads (default: one per core); the output does not depend on it.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Print how long each stage took and the peak memory, as one JSON line on stdout.
        #[arg(long)]
        stats: bool,
    },
    /// Run a pipeline: build the stages whose outputs are not in the store, reuse the others.
    Run {
        /// The pipeline file (YAML).
        pipeline: PathBuf,
        /// Run only this stage and the stages it reads (repeatable).
        #[arg(long, value_name = "NAME")]
        stage: Vec<String>,
        /// Rebuild this stage even if its output is cached (repeatable).
        #[arg(long, value_name = "NAME")]
        force: Vec<String>,
        /// Rebuild every selected stage.
        #[arg(long)]
        force_all: bool,
        /// Say what would be built, build nothing.
        #[arg(long)]
        dry_run: bool,
        /// Cores to use for stages side by side (default: all).
        #[arg(short = 'j', long = "jobs", value_parser = clap::value_parser!(u16).range(1..))]
        jobs: Option<u16>,
        /// The store (default: $SYNTHPIPE_STORE, else .synthpipe in the current folder).
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// Override a value of the pipeline's `params:` (repeatable), e.g. `--param model=../Qwen3-0.6B`.
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_assignment)]
        param: Vec<(String, String)>,
    },
    /// Say for each stage whether its output is fresh, stale or missing, and why.
    Status {
        pipeline: PathBuf,
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// Override a value of the pipeline's `params:` (repeatable), e.g. `--param model=../Qwen3-0.6B`.
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_assignment)]
        param: Vec<(String, String)>,
    },
    /// Show where a stage's outputs are (`STAGE` or `STAGE.OUTPUT`).
    Show {
        pipeline: PathBuf,
        stage: String,
        /// Print only the path (of the stage's folder, or of the named output), for scripts.
        #[arg(long)]
        path: bool,
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// Override a value of the pipeline's `params:` (repeatable), e.g. `--param model=../Qwen3-0.6B`.
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_assignment)]
        param: Vec<(String, String)>,
    },
    /// Remove store entries that none of the given pipelines uses now.
    Gc {
        /// The pipeline files whose current outputs to keep.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
        /// List what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
    },
    /// Remove the whole store, or (with a pipeline) the outputs of its stages.
    Clean {
        pipeline: Option<PathBuf>,
        /// Only these stages of the pipeline (repeatable).
        #[arg(long, value_name = "NAME", requires = "pipeline")]
        stage: Vec<String>,
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
    },
    /// Rehash stored outputs against their run records and report damaged entries (of a
    /// pipeline's stages, or of the whole store); `--repair` removes them.
    Verify {
        pipeline: Option<PathBuf>,
        /// Remove damaged entries, so the next run rebuilds them.
        #[arg(long)]
        repair: bool,
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// Override a value of the pipeline's `params:` (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_assignment, requires = "pipeline")]
        param: Vec<(String, String)>,
    },
    /// Language models: inspect, generate, score completions, convert.
    Lm {
        #[command(subcommand)]
        command: LmCommand,
    },
    /// Print a JSON Schema: `synthpipe schema pipeline`.
    Schema {
        /// What to describe (`pipeline`).
        what: String,
    },
    /// Score predictions on a real benchmark (HotpotQA, 2Wiki, MuSiQue, CofCA) or a
    /// synthpipe dataset with the benchmark's official metric, by stratum, with the
    /// composition probe.
    Eval {
        /// hotpotqa, 2wiki, musique, cofca or synthetic.
        #[arg(long, value_parser = parse_benchmark)]
        benchmark: crate::eval::bench::Benchmark,
        /// The benchmark file (JSON array or JSON Lines; for synthetic, a dataset folder).
        #[arg(long)]
        data: PathBuf,
        /// JSON Lines of {id, prediction} (optional `generation`), or HotpotQA's
        /// {"answer": {id: text}} file.
        #[arg(long)]
        predictions: PathBuf,
        /// Another run's predictions on the same questions: adds the paired difference
        /// (this run − baseline) of F1 and EM with its standard error and significance.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// 2WikiMultiHopQA's id_aliases.json (answers also match the answer entity's aliases).
        #[arg(long)]
        aliases: Option<PathBuf>,
        /// Print the full evaluation as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Score predictions against gold answers (EM, precision, recall, F1).
    Score {
        /// Gold questions, JSONL with `id` and `answers` (optional `hops`, `difficulty`, `type`).
        #[arg(long)]
        gold: PathBuf,
        /// Predictions, JSONL with `id` and `prediction` (comma-separated) or `answers`.
        #[arg(long)]
        predictions: PathBuf,
        /// Print the full report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    use crate::pipeline::commands as pc;
    match cli.command {
        Command::Run {
            pipeline,
            stage,
            force,
            force_all,
            dry_run,
            jobs,
            store,
            param,
        } => pc::run(
            &pipeline,
            &param,
            &crate::pipeline::run::Options {
                stages: stage,
                force,
                force_all,
                dry_run,
                jobs: jobs.map_or(0, usize::from),
                progress: std::io::stderr().is_terminal() && std::env::var_os("CI").is_none(),
            },
            store.as_deref(),
        ),
        Command::Status {
            pipeline,
            store,
            param,
        } => pc::status(&pipeline, &param, store.as_deref()),
        Command::Show {
            pipeline,
            stage,
            path,
            store,
            param,
        } => pc::show(&pipeline, &param, &stage, path, store.as_deref()),
        Command::Gc {
            pipelines,
            dry_run,
            store,
        } => pc::gc(&pipelines, dry_run, store.as_deref()),
        Command::Clean {
            pipeline,
            stage,
            store,
        } => pc::clean(pipeline.as_deref(), &stage, store.as_deref()),
        Command::Schema { what } => pc::schema(&what),
        Command::Verify {
            pipeline,
            repair,
            store,
            param,
        } => pc::verify(pipeline.as_deref(), &param, repair, store.as_deref()),
        Command::Lm { command } => lm(command),
        Command::Check { files } => check(&files),
        Command::Fmt { check, files } => fmt(&files, check),
        Command::Generate {
            rules,
            out,
            seeds,
            set,
            derived,
            threads,
            stats,
        } => generate(&rules, &out, &seeds.0, &set, derived, threads, stats),
        Command::Eval {
            benchmark,
            data,
            predictions,
            baseline,
            aliases,
            json,
        } => eval(
            benchmark,
            &data,
            &predictions,
            baseline.as_deref(),
            aliases.as_deref(),
            json,
        ),
        Command::Score {
            gold,
            predictions,
            json,
        } => score(&gold, &predictions, json),
    }
}

fn lm(command: LmCommand) -> ExitCode {
    use crate::model::commands as mc;
    use crate::model::generate::{GenOptions, Sampling};
    match command {
        LmCommand::Info { model, json } => mc::info(&model, json),
        LmCommand::Generate {
            model,
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
                            eprintln!(
                                "error[synthpipe::lm::chat_file]: cannot read `{}`: {e}\n  help: the file holds a JSON list of {{\"role\": ..., \"content\": ...}} messages",
                                file.display()
                            );
                            return ExitCode::from(2);
                        }
                    }
                }
                (None, None, None) => {
                    eprintln!(
                        "error[synthpipe::lm::no_input]: nothing to generate from\n  help: give --prompt TEXT, --user TEXT or --chat FILE"
                    );
                    return ExitCode::from(2);
                }
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
                    input,
                    opts,
                    no_think,
                    backend,
                    dtype,
                    json,
                },
            )
        }
        LmCommand::Logprobs {
            model,
            prompt,
            completion,
            backend,
            dtype,
            json,
        } => mc::logprobs(&model, &prompt, &completion, (backend, dtype), json),
        LmCommand::Bench {
            model,
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
                prompt_tokens,
                new_tokens,
                batch,
                repeat,
                backend,
                dtype,
                json,
            },
        ),
        LmCommand::Convert {
            model,
            out,
            bf16,
            force,
        } => mc::convert(&model, &out, bf16, force),
        LmCommand::Init {
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
                    eprintln!(
                        "error[synthpipe::lm::no_tokenizer]: no tokenizer\n  help: give --tokenizer MODEL, or --train-tokenizer DATASET --vocab N"
                    );
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

/// Peak resident memory of this process in MiB (Linux `VmHWM`), or `None` elsewhere.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

pub(crate) fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub(crate) fn print_diags<C: diag::DiagCode>(diags: &[Diagnostic<C>], path: &Path, text: &str) {
    if diags.is_empty() {
        return;
    }
    let rendered = diag::render(diags, &path.display().to_string(), text, color());
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(rendered.as_bytes());
}

fn read_error(path: &Path, e: &std::io::Error) {
    eprintln!(
        "error[synthpipe::cli::read]: cannot read `{}`: {e}\n  help: check the path and its permissions",
        path.display()
    );
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    let (mut errors, mut warnings) = (0usize, 0usize);
    for path in files {
        match lang::check_file(path) {
            Err(e) => {
                read_error(path, &e);
                failed = true;
            }
            Ok((text, checked)) => {
                print_diags(&checked.diagnostics, path, &text);
                let e = checked.diagnostics.iter().filter(|d| d.is_error()).count();
                errors += e;
                warnings += checked.diagnostics.len() - e;
                failed |= e > 0;
            }
        }
    }
    if failed {
        eprintln!(
            "check failed: {errors} error(s), {warnings} warning(s) in {} file(s)",
            files.len()
        );
        ExitCode::from(2)
    } else {
        if warnings > 0 {
            eprintln!("{warnings} warning(s)");
        }
        ExitCode::SUCCESS
    }
}

fn fmt(files: &[PathBuf], check_only: bool) -> ExitCode {
    let mut bad_input = false;
    let mut unformatted = false;
    for path in files {
        let text = match std::fs::read(path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                read_error(path, &e);
                bad_input = true;
                continue;
            }
        };
        let formatted = match lang::format_source(&text) {
            Ok(f) => f,
            Err(d) => {
                print_diags(&[d], path, &text);
                bad_input = true;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        if check_only {
            println!("would reformat {}", path.display());
            unformatted = true;
            continue;
        }
        if let Err(e) = write_atomic(path, &formatted) {
            eprintln!(
                "error[synthpipe::cli::write]: cannot write `{}`: {e}",
                path.display()
            );
            bad_input = true;
        }
    }
    if bad_input {
        ExitCode::from(2)
    } else if unformatted {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Replaces a file by writing a sibling and renaming it, so a crash never leaves half a file.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("fmt-tmp-{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Exit 0 with the report on stdout, or 2 with every load error on stderr.
fn score(gold: &Path, predictions: &Path, json: bool) -> ExitCode {
    match crate::score::score_files(gold, predictions) {
        Ok(report) => print_result(&report, json, || report.table()),
        Err(errors) => load_failed("score", &errors),
    }
}

/// Renders load errors on stderr with a count line; exit 2.
fn load_failed(command: &str, errors: &[crate::score::ScoreError]) -> ExitCode {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(crate::score::render_errors(errors, color()).as_bytes());
    let _ = writeln!(err, "{command} failed: {} error(s)", errors.len());
    ExitCode::from(2)
}

/// Prints a result as pretty JSON or as its table: exit 0 (2 if it cannot be serialised).
fn print_result(
    value: &impl serde::Serialize,
    json: bool,
    table: impl FnOnce() -> String,
) -> ExitCode {
    let out = if json {
        match serde_json::to_string_pretty(value) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("error: cannot serialise the result: {e} (this is a bug in synthpipe)");
                return ExitCode::from(2);
            }
        }
    } else {
        table()
    };
    // A closed pipe (`| head`) is not a failure worth a panic; print! would panic on it.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

fn parse_benchmark(s: &str) -> Result<crate::eval::bench::Benchmark, String> {
    crate::eval::bench::Benchmark::parse(s).ok_or_else(|| {
        format!("unknown benchmark `{s}`; expected hotpotqa, 2wiki, musique, cofca or synthetic")
    })
}

/// Exit 0 with the evaluation on stdout; 1 when it was computed but some data records
/// were skipped (their diagnostics on stderr); 2 when nothing could be scored.
fn eval(
    bench: crate::eval::bench::Benchmark,
    data: &Path,
    predictions: &Path,
    baseline: Option<&Path>,
    aliases: Option<&Path>,
    json: bool,
) -> ExitCode {
    let found = crate::eval::eval_files(bench, data, predictions, baseline, aliases);
    let (evaluation, warnings) = match found {
        Ok(r) => r,
        Err(errors) => return load_failed("eval", &errors),
    };
    if !warnings.is_empty() {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(crate::score::render_errors(&warnings, color()).as_bytes());
        let _ = writeln!(
            err,
            "{} record(s) of the data file were skipped; the rest were scored",
            warnings.len()
        );
    }
    let code = print_result(&evaluation, json, || evaluation.table());
    if warnings.is_empty() || code != ExitCode::SUCCESS {
        code
    } else {
        ExitCode::from(1)
    }
}

/// A parsed `--seed` list (a newtype: clap would read a bare `Vec` as a repeated flag).
#[derive(Clone, Debug)]
pub struct SeedList(pub Vec<u64>);

fn parse_seed_list(s: &str) -> Result<SeedList, String> {
    crate::universe::params::parse_seeds(s).map(SeedList)
}

fn parse_assignment(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got `{s}`")),
    }
}

/// Exit 0 after writing the files, 2 on a rule file with errors, bad parameters or an
/// unwritable output folder.
fn generate(
    rules: &Path,
    out: &Path,
    seeds: &[u64],
    set: &[(String, String)],
    derived: bool,
    threads: Option<u16>,
    stats: bool,
) -> ExitCode {
    let started = std::time::Instant::now();
    use crate::universe::{GenError, dataset, params::Params};
    let (text, checked) = match lang::check_file(rules) {
        Ok(x) => x,
        Err(e) => {
            read_error(rules, &e);
            return ExitCode::from(2);
        }
    };
    print_diags(&checked.diagnostics, rules, &text);
    let Some(ir) = checked.ir else {
        eprintln!(
            "generate: `{}` has errors; nothing written",
            rules.display()
        );
        return ExitCode::from(2);
    };
    let opts = dataset::Options {
        derived,
        progress: true,
    };
    let run = || {
        let params = Params::resolve(&ir, set)?;
        dataset::generate(&ir, &params, seeds, out, &opts)
    };
    let result = match threads {
        None => run(),
        Some(n) => match rayon::ThreadPoolBuilder::new()
            .num_threads(n.into())
            .build()
        {
            Ok(pool) => pool.install(run),
            Err(e) => Err(GenError::Invalid(format!("cannot start {n} threads: {e}"))),
        },
    };
    let generated = match result {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{}", e.render());
            return ExitCode::from(2);
        }
    };
    let c = &generated.manifest.counts;
    eprintln!(
        "wrote {}: {} entities, {} facts, {} articles, {} questions from {} template variants",
        out.display(),
        c.entities.values().sum::<usize>(),
        c.facts.values().sum::<usize>(),
        c.articles,
        c.questions,
        c.template_variants
    );
    if stats {
        let stages: serde_json::Map<String, serde_json::Value> = generated
            .seconds
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        let line = serde_json::json!({
            "seconds": started.elapsed().as_secs_f64(),
            "stages": stages,
            "peak_rss_mib": peak_rss_mib(),
            "entities": c.entities.values().sum::<usize>(),
            "questions": c.questions,
        });
        println!("{line}");
    }
    ExitCode::SUCCESS
}
