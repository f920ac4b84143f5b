//! The `evaluate` stage: a model answers a synthpipe dataset's or a real benchmark's
//! questions with the paper's sampling, scored with each benchmark's official metric.

use super::spec::*;
use super::{At, Check, Io, StageError, Trouble};
use crate::eval::bench::Benchmark;
use crate::eval::run::{self, BenchmarkJob, Run, SampleParams, Settings};
use crate::prompt::PromptOptions;

pub const KIND: KindSpec = KindSpec {
    name: "evaluate",
    // 2: metrics.json is an `eval::Evaluation` (F1 / EM ± s.e.m., strata, probe).
    // 3: each scored question carries its strata; 2Wiki is named `2wiki`.
    // 4: answers are read as PhantomWiki's regex reads them (no line break in a span).
    // 5: prompts are batched in token order (shared prefixes together), so the samples
    //    drawn differ; `limit` applies to datasets too.
    // 6: a GGUF's decoding reads its packed blocks (model::packed; sums in another order).
    // 7: the MLP's gate outside autodiff by model::swiglu (a vector exponential), and
    //    prompts that share only the instruction (a benchmark's) batched by length.
    // 8: rows of a batch prefilled in groups of similar length (long rows alone, two at a
    //    time on the CPU) and joined for decoding: other products, other roundings.
    version: 8,
    doc: "Answer a synthpipe dataset's questions (the training prompts) or a real benchmark's (reading comprehension with worked examples) with a model, sampling with the paper's evaluation settings, and score them: predictions.jsonl and metrics.json (EM, F1 ± s.e.m. overall and by stratum; for benchmarks also the composition probe).",
    params: &[
        p(
            "model",
            Ty::Input(InputKind::Model),
            None,
            "the model: a Hugging Face folder, a .gguf file, or `{from: STAGE.model}`; or give `endpoint` for a served one",
        ),
        ADAPTER_IN,
        p(
            "endpoint",
            Ty::Str,
            None,
            "a served model's OpenAI-compatible API base instead of `model` (vLLM, SGLang, llama.cpp's server), e.g. `http://localhost:8000/v1`",
        ),
        p(
            "served_model",
            Ty::Str,
            None,
            "which of the endpoint's models to ask (default: the one it serves); the stage key holds the id the server reports",
        ),
        p(
            "api",
            Ty::Choice(&["chat", "completions"]),
            Some("\"chat\""),
            "`chat`: the prompt as one user message (the server applies the chat template); `completions`: as plain text",
        ),
        p(
            "api_key_env",
            Ty::Str,
            None,
            "the environment variable holding the endpoint's API key (sent as a bearer token; never written to a key, log, record or report)",
        ),
        int(
            "concurrency",
            1,
            "8",
            "requests to the endpoint in flight at once",
        ),
        float(
            "timeout",
            "600",
            "seconds one request to the endpoint may take",
        ),
        int(
            "retries",
            0,
            "3",
            "times a request is tried again after a transient failure (no connection, timeout, HTTP 429 or 5xx), waiting 0.2 s, 0.4 s, …",
        ),
        p(
            "dataset",
            Ty::Input(InputKind::Dataset),
            None,
            "a synthpipe dataset's questions (with their universes' articles); or give `benchmark` and `data`",
        ),
        p(
            "benchmark",
            Ty::Choice(&["synthetic", "hotpotqa", "2wiki", "musique", "cofca"]),
            Some("\"synthetic\""),
            "which questions: `synthetic` reads `dataset`; a real benchmark reads `data`, with its official metric and strata",
        ),
        p(
            "data",
            Ty::Input(InputKind::File),
            None,
            "the benchmark file (its official JSON array or JSON Lines)",
        ),
        p(
            "aliases",
            Ty::Input(InputKind::File),
            None,
            "2WikiMultiHopQA's id_aliases.json (answers also match the answer entity's aliases)",
        ),
        int(
            "limit",
            0,
            "0",
            "score only the first N questions of `data` (0: all)",
        ),
        EXAMPLES_IN,
        int("batch", 1, "8", "questions generated together"),
        float("temperature", "0.6", "sampling temperature (0: greedy)"),
        float("top_p", "0.95", "nucleus sampling (1: off)"),
        int("top_k", 0, "20", "top-k sampling (0: off)"),
        MAX_PROMPT,
        MAX_COMPLETION,
        OVERFLOW,
        PROMPT,
        EXAMPLES,
        EVIDENCE,
        CHAT,
        THINKING,
        BACKEND,
        DTYPE,
        SEED,
    ],
    outputs: &[OutputSpec {
        name: "results",
        kind: OutputKind::Evaluation,
        doc: "predictions.jsonl (id, generation, extracted answer, scores) and metrics.json",
    }],
    cpus: 0,
    exclusive: true,
    check,
    typed: super::reads_as::<Params>,
    run: |io| execute(&io.typed()?, io),
};

super::train::model_params!(
    /// The typed parameters (`model`, `dataset`, `data`, `aliases` and `examples_from` are
    /// inputs).
    [sampling, prompt] {
    pub benchmark: Benchmark,
    pub limit: usize,
    pub batch: usize,
    pub endpoint: Option<String>,
    pub served_model: Option<String>,
    pub api: crate::eval::remote::Api,
    pub api_key_env: Option<String>,
    pub concurrency: usize,
    pub timeout: f64,
    pub retries: usize,
});

/// A synthetic evaluation reads `dataset`; a real benchmark reads `data`.
fn check(c: &mut Check) {
    let synthetic = c
        .param("benchmark")
        .is_none_or(|b| b.as_str() == Some("synthetic"));
    let (want, other) = if synthetic {
        ("dataset", "data")
    } else {
        ("data", "dataset")
    };
    if !c.given(want) || c.given(other) {
        c.report(
            At::Stage,
            Trouble::MissingKey,
            format!("this `evaluate` stage needs `{want}` and no `{other}`"),
            "give `dataset: {from: STAGE.OUTPUT}` for synthpipe questions, or `benchmark: hotpotqa|2wiki|musique|cofca` with `data: FILE` for a real benchmark",
        );
    }
    // One model: a local one or a served one.
    if c.given("model") == c.given("endpoint") {
        c.report(
            At::Stage,
            Trouble::MissingKey,
            "this `evaluate` stage needs either `model` or `endpoint`, not both",
            "give `model:` (a folder, a .gguf file or `{from: STAGE.model}`) to run the model here, or `endpoint: http://HOST:PORT/v1` for one a server runs",
        );
    }
    if c.given("endpoint") && c.given("adapter") {
        c.report(
            At::Stage,
            Trouble::MissingKey,
            "an `adapter` applies to a local `model`, not to an `endpoint`",
            "serve the adapter with the model (vLLM: --enable-lora), or evaluate the model here",
        );
    }
}

/// The settings that only a served model reads.
const SERVED_ONLY: [&str; 7] = [
    "endpoint",
    "served_model",
    "api",
    "api_key_env",
    "concurrency",
    "timeout",
    "retries",
];

/// The parameters that make up an `evaluate` stage's key: a local model's key leaves out the
/// settings of a served one (they change nothing it computes, and keys of local evaluations
/// made before they existed stay valid).
pub fn key_params(params: &mut std::collections::BTreeMap<String, serde_json::Value>) {
    if params
        .get("endpoint")
        .is_none_or(serde_json::Value::is_null)
    {
        for k in SERVED_ONLY {
            params.remove(k);
        }
    }
}

/// The model the server at `endpoint` answers with: `served_model` if it lists it, else
/// the one it serves.
pub fn served_model(p: &Params, endpoint: &str) -> Result<String, String> {
    let e = crate::eval::remote::Endpoint::new(
        endpoint,
        p.api,
        p.api_key_env.as_deref(),
        p.timeout.min(30.0),
        p.retries as u32,
    )
    .map_err(|e| e.to_string())?;
    e.served_model(p.served_model.as_deref())
        .map_err(|e| e.to_string())
}

pub fn execute(p: &Params, io: &Io) -> Result<(), StageError> {
    let settings = Settings {
        prompt: PromptOptions {
            style: p.prompt,
            examples: p.examples,
            evidence: p.evidence,
            chat: p.chat,
            enable_thinking: p.enable_thinking,
            seed: p.seed,
        },
        max_prompt_tokens: p.max_prompt_tokens,
        max_completion_tokens: p.max_completion_tokens,
        overflow: p.overflow,
        sampling: SampleParams {
            temperature: p.temperature,
            top_p: p.top_p,
            top_k: p.top_k,
        },
        batch: p.batch,
        backend: p.backend,
        dtype: p.dtype,
    };
    let endpoint = match &p.endpoint {
        Some(url) => Some(
            crate::eval::remote::Endpoint::new(
                url,
                p.api,
                p.api_key_env.as_deref(),
                p.timeout,
                p.retries as u32,
            )
            .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let served = match &endpoint {
        Some(e) => Some(run::Served {
            endpoint: e,
            model: e
                .served_model(p.served_model.as_deref())
                .map_err(|e| e.to_string())?,
            api: p.api,
            concurrency: p.concurrency,
            cache: io.scratch,
        }),
        None => None,
    };
    let r = Run {
        settings,
        model: match served {
            Some(_) => None,
            None => Some(io.input("model")?),
        },
        served,
        adapter: io.opt_input("adapter"),
        examples: io.opt_input("examples_from"),
        out: io.output("results")?,
        progress: io.progress,
    };
    match p.benchmark {
        Benchmark::Synthetic => Ok(run::synthetic(&r, io.input("dataset")?, p.limit)?),
        bench => Ok(run::benchmark(
            &r,
            &BenchmarkJob {
                bench,
                data: io.input("data")?,
                aliases: io.opt_input("aliases"),
                limit: p.limit,
            },
        )?),
    }
}
