//! The command line: clap's definitions here, then one module per family of commands
//! (`lang`, `data`, `lm`, `pipeline`, `eval`) and one error type (`error`). Nothing below
//! `cli` imports from it.
//!
//! Exit codes: 0 success (warnings allowed), 1 `fmt --check` found files to reformat,
//! 2 errors in the input (diagnostics on stderr) or bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod data;
pub mod error;
pub mod eval;
pub mod lang;
pub mod lm;
pub mod pipeline;

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
        /// The model (a Hugging Face folder or a .gguf file); or give --endpoint.
        #[arg(required_unless_present = "endpoint", conflicts_with = "endpoint")]
        model: Option<PathBuf>,
        /// A served model's OpenAI-compatible API base (vLLM, SGLang, llama.cpp's server),
        /// e.g. http://localhost:8000/v1: --prompt goes to /completions, --user and --chat to
        /// /chat/completions.
        #[arg(long, conflicts_with_all = ["adapter", "ignore_eos", "stop"])]
        endpoint: Option<String>,
        /// With --endpoint: which of its models (default: the one it serves).
        #[arg(long, requires = "endpoint")]
        served_model: Option<String>,
        /// With --endpoint: the environment variable holding its API key.
        #[arg(long, requires = "endpoint")]
        api_key_env: Option<String>,
        /// A LoRA adapter on the model: a PEFT folder, or a LoRA-trained model folder.
        #[arg(long)]
        adapter: Option<PathBuf>,
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
        #[arg(long, default_value = "auto", value_parser = backend_arg())]
        backend: crate::model::device::Backend,
        /// The float type to compute in (bf16/f16 where the backend supports them).
        #[arg(long, default_value = "f32", value_parser = dtype_arg())]
        dtype: crate::model::device::Dtype,
        #[arg(long)]
        json: bool,
    },
    /// Log-probabilities of a completion's tokens after a prompt.
    Logprobs {
        model: PathBuf,
        /// A LoRA adapter on the model: a PEFT folder, or a LoRA-trained model folder.
        #[arg(long)]
        adapter: Option<PathBuf>,
        #[arg(long)]
        prompt: String,
        #[arg(long)]
        completion: String,
        #[arg(long, default_value = "auto", value_parser = backend_arg())]
        backend: crate::model::device::Backend,
        /// The float type to compute in (bf16/f16 where the backend supports them).
        #[arg(long, default_value = "f32", value_parser = dtype_arg())]
        dtype: crate::model::device::Dtype,
        #[arg(long)]
        json: bool,
    },
    /// Time prefill of a prompt and greedy decoding (tokens/s), with peak memory.
    Bench {
        model: PathBuf,
        /// A LoRA adapter on the model: a PEFT folder, or a LoRA-trained model folder.
        #[arg(long)]
        adapter: Option<PathBuf>,
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
        #[arg(long, default_value = "auto", value_parser = backend_arg())]
        backend: crate::model::device::Backend,
        #[arg(long, default_value = "f32", value_parser = dtype_arg())]
        dtype: crate::model::device::Dtype,
        #[arg(long)]
        json: bool,
    },
    /// Write a GGUF model as a Hugging Face folder (config, safetensors, tokenizer).
    Convert {
        model: PathBuf,
        /// A LoRA adapter on the model: a PEFT folder, or a LoRA-trained model folder.
        #[arg(long)]
        adapter: Option<PathBuf>,
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

fn backend_arg() -> impl clap::builder::TypedValueParser<Value = crate::model::device::Backend> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(crate::model::device::Backend::available())
        .try_map(|s| crate::model::device::Backend::parse(&s))
}

fn dtype_arg() -> impl clap::builder::TypedValueParser<Value = crate::model::device::Dtype> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(crate::model::device::Dtype::ALL.map(|d| d.name()))
        .try_map(|s| crate::model::device::Dtype::parse(&s))
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
        /// Where stages without their own `executor:` run: `local` (this process) or `slurm`
        /// (each stage its own job; the store on a shared filesystem; docs/cluster.md).
        #[arg(long, value_parser = ["local", "slurm"])]
        executor: Option<String>,
    },
    /// Build one stage as a SLURM job does (what `run --executor slurm` submits).
    #[command(hide = true)]
    RunStage {
        /// The job file the controller wrote (STORE/jobs/REQUEST.json).
        spec: PathBuf,
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
    use pipeline as pc;
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
            executor,
        } => pc::run(
            &pipeline,
            &param,
            &crate::pipeline::run::Options {
                stages: stage,
                force,
                force_all,
                dry_run,
                jobs: jobs.map_or(0, usize::from),
                progress: crate::util::interactive(),
                executor: executor
                    .as_deref()
                    .and_then(crate::pipeline::load::Executor::parse),
                overrides: param.clone(),
            },
            store.as_deref(),
        ),
        Command::RunStage { spec } => pc::run_stage(&spec),
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
        Command::Lm { command } => lm::dispatch(command),
        Command::Check { files } => lang::check(&files),
        Command::Fmt { check, files } => lang::fmt(&files, check),
        Command::Generate {
            rules,
            out,
            seeds,
            set,
            derived,
            threads,
            stats,
        } => data::generate(&rules, &out, &seeds.0, &set, derived, threads, stats),
        Command::Eval {
            benchmark,
            data,
            predictions,
            baseline,
            aliases,
            json,
        } => eval::eval(
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
        } => eval::score(&gold, &predictions, json),
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

fn parse_benchmark(s: &str) -> Result<crate::eval::bench::Benchmark, String> {
    crate::eval::bench::Benchmark::parse(s).ok_or_else(|| {
        format!("unknown benchmark `{s}`; expected hotpotqa, 2wiki, musique, cofca or synthetic")
    })
}
