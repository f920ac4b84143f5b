//! Models served over the OpenAI-compatible HTTP API (vLLM, SGLang, llama.cpp's server):
//! the served model's id, answers to prompts with retries and bounded waits, and a cache of
//! answers per request so an interrupted evaluation never asks twice.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

/// Which endpoint answers: chat messages (the server applies the model's chat template) or
/// raw text completions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    #[default]
    Chat,
    Completions,
}

/// Why a server's answer could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// No connection (refused, unknown host, reset), after every retry.
    Unreachable,
    /// No complete answer within the timeout, after every retry.
    Timeout,
    /// An HTTP error status the retries did not cure.
    Status,
    /// An answer that is not the API's JSON.
    Malformed,
    /// The model asked for is not among those the server serves.
    NoModel,
    /// `api_key_env` names a variable that is not set.
    NoKey,
    /// An `https://` endpoint: this build speaks plain HTTP.
    Tls,
}

impl Code {
    pub fn name(self) -> &'static str {
        match self {
            Code::Unreachable => "synthpipe::remote::unreachable",
            Code::Timeout => "synthpipe::remote::timeout",
            Code::Status => "synthpipe::remote::status",
            Code::Malformed => "synthpipe::remote::malformed",
            Code::NoModel => "synthpipe::remote::no_model",
            Code::NoKey => "synthpipe::remote::no_key",
            Code::Tls => "synthpipe::remote::tls",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Code::Unreachable => {
                "is the server running, and is `endpoint` its API base (e.g. http://localhost:8000/v1)?"
            }
            Code::Timeout => {
                "the server is slow or stuck: raise `timeout`, lower `concurrency`, or check its load"
            }
            Code::Status => "the server refused the request; its answer is quoted above",
            Code::Malformed => {
                "the server's answer is not OpenAI-compatible JSON; is `endpoint` the API base and `api` the right one?"
            }
            Code::NoModel => "set `served_model` to one of the ids the server lists at /models",
            Code::NoKey => "export the variable holding the API key, or leave out `api_key_env`",
            Code::Tls => {
                "reach the server over plain HTTP (on the cluster network, or through an SSH tunnel: ssh -L 8000:node:8000 …)"
            }
        }
    }
}

/// A failed request: its code, which request, what happened.
#[derive(Clone, Debug)]
pub struct RemoteError {
    pub code: Code,
    pub request: String,
    pub message: String,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "error[{}]: {}: {}\n  help: {}",
            self.code.name(),
            self.request,
            self.message,
            self.code.help()
        )
    }
}

/// Sampling sent with every request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sampling {
    pub temperature: f64,
    pub top_p: f64,
    /// 0: off (not sent).
    pub top_k: usize,
    pub max_tokens: usize,
}

/// One answer: its text, and whether it stopped at the token limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub text: String,
    pub truncated: bool,
}

/// A server's OpenAI-compatible API.
pub struct Endpoint {
    base: String,
    api: Api,
    /// Sent as a bearer token; never written anywhere.
    key: Option<String>,
    retries: u32,
    agent: ureq::Agent,
}

impl Endpoint {
    /// The API at `base` (e.g. `http://localhost:8000/v1`), its key read from the variable
    /// `api_key_env` names, each request given `timeout_s` seconds and `retries` more tries.
    pub fn new(
        base: &str,
        api: Api,
        api_key_env: Option<&str>,
        timeout_s: f64,
        retries: u32,
    ) -> Result<Endpoint, RemoteError> {
        let base = base.trim_end_matches('/').to_string();
        if base.starts_with("https://") {
            return Err(RemoteError {
                code: Code::Tls,
                request: base,
                message: "this build of synthpipe speaks plain HTTP only".into(),
            });
        }
        let key = match api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| RemoteError {
                code: Code::NoKey,
                request: base.clone(),
                message: format!("`api_key_env` names `{var}`, which is not set"),
            })?),
            None => None,
        };
        let timeout = Duration::from_secs_f64(timeout_s.max(0.001));
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
            .http_status_as_error(false)
            .build();
        Ok(Endpoint {
            base,
            api,
            key,
            retries,
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// The ids of the models the server serves (`GET /models`).
    pub fn models(&self) -> Result<Vec<String>, RemoteError> {
        let url = format!("{}/models", self.base);
        let body = self.call(&format!("GET {url}"), || {
            let mut r = self.agent.get(&url);
            if let Some(k) = &self.key {
                r = r.header("Authorization", &format!("Bearer {k}"));
            }
            r.call()
        })?;
        let ids: Option<Vec<String>> = body["data"].as_array().and_then(|ms| {
            ms.iter()
                .map(|m| m["id"].as_str().map(String::from))
                .collect()
        });
        ids.ok_or_else(|| RemoteError {
            code: Code::Malformed,
            request: format!("GET {url}"),
            message: format!("no `data[].id` list in {}", excerpt(&body.to_string())),
        })
    }

    /// The id of the model to ask: `wanted` if the server lists it, else the one model it
    /// serves.
    pub fn served_model(&self, wanted: Option<&str>) -> Result<String, RemoteError> {
        let ids = self.models()?;
        let request = format!("GET {}/models", self.base);
        match wanted {
            Some(w) if ids.iter().any(|i| i == w) => Ok(w.to_string()),
            Some(w) => Err(RemoteError {
                code: Code::NoModel,
                request,
                message: format!(
                    "the server does not serve `{w}` (it lists: {})",
                    ids.join(", ")
                ),
            }),
            None if ids.len() == 1 => Ok(ids[0].clone()),
            None => Err(RemoteError {
                code: Code::NoModel,
                request,
                message: format!(
                    "the server lists {} models ({}); say which with `served_model`",
                    ids.len(),
                    ids.join(", ")
                ),
            }),
        }
    }

    /// The request body asking `model` to answer `prompt` (one user message for `chat`).
    pub fn body(&self, model: &str, prompt: &str, s: &Sampling, seed: u64) -> Json {
        match self.api {
            Api::Chat => {
                self.chat_body(model, json!([{"role": "user", "content": prompt}]), s, seed)
            }
            Api::Completions => with_sampling(json!({"model": model, "prompt": prompt}), s, seed),
        }
    }

    /// The request body asking `model` to continue `messages` (`[{role, content}, …]`).
    pub fn chat_body(&self, model: &str, messages: Json, s: &Sampling, seed: u64) -> Json {
        with_sampling(json!({"model": model, "messages": messages}), s, seed)
    }

    /// Sends `body`; `request` names it in errors (a question's id).
    pub fn answer(&self, body: &Json, request: &str) -> Result<Answer, RemoteError> {
        let path = match self.api {
            Api::Chat => "chat/completions",
            Api::Completions => "completions",
        };
        let url = format!("{}/{path}", self.base);
        let reply = self.call(request, || {
            let mut r = self.agent.post(&url);
            if let Some(k) = &self.key {
                r = r.header("Authorization", &format!("Bearer {k}"));
            }
            r.send_json(body)
        })?;
        let choice = &reply["choices"][0];
        let text = match self.api {
            Api::Chat => choice["message"]["content"].as_str(),
            Api::Completions => choice["text"].as_str(),
        };
        let text = text.ok_or_else(|| RemoteError {
            code: Code::Malformed,
            request: request.to_string(),
            message: format!("no answer text in {}", excerpt(&reply.to_string())),
        })?;
        Ok(Answer {
            text: text.to_string(),
            truncated: choice["finish_reason"].as_str() == Some("length"),
        })
    }

    /// Runs `send` until it gives a 2xx answer with a JSON body: transient failures
    /// (no connection, timeouts, 429 and 5xx) are tried again after 0.2 s, 0.4 s, … (at
    /// most 5 s), `retries` times.
    fn call(
        &self,
        request: &str,
        send: impl Fn() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Json, RemoteError> {
        let fail = |code, message: String| RemoteError {
            code,
            request: request.to_string(),
            message,
        };
        let mut last = None;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                let wait = 0.2 * f64::from(1u32 << (attempt - 1).min(5));
                std::thread::sleep(Duration::from_secs_f64(wait.min(5.0)));
            }
            let err = match send() {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.body_mut().read_to_string();
                    match (status, text) {
                        (200..=299, Ok(t)) => {
                            return serde_json::from_str(&t).map_err(|e| {
                                fail(Code::Malformed, format!("{e} in {}", excerpt(&t)))
                            });
                        }
                        (200..=299, Err(e)) => {
                            fail(Code::Unreachable, format!("the answer broke off: {e}"))
                        }
                        (s, t) => {
                            let e = fail(
                                Code::Status,
                                format!("HTTP {s}: {}", excerpt(&t.unwrap_or_default())),
                            );
                            if !(s == 429 || s >= 500) {
                                return Err(e);
                            }
                            e
                        }
                    }
                }
                Err(ureq::Error::Timeout(_)) => fail(Code::Timeout, "no answer in time".into()),
                Err(
                    e @ (ureq::Error::Io(_)
                    | ureq::Error::HostNotFound
                    | ureq::Error::ConnectionFailed),
                ) => fail(Code::Unreachable, e.to_string()),
                Err(e) => return Err(fail(Code::Malformed, e.to_string())),
            };
            last = Some(err);
        }
        Err(last.unwrap_or_else(|| fail(Code::Unreachable, "no attempt was made".into())))
    }
}

/// `b` with the sampling settings, the token limit and the seed (top-k only when on).
fn with_sampling(mut b: Json, s: &Sampling, seed: u64) -> Json {
    b["max_tokens"] = json!(s.max_tokens);
    b["temperature"] = json!(s.temperature);
    b["top_p"] = json!(s.top_p);
    if s.top_k > 0 {
        b["top_k"] = json!(s.top_k);
    }
    b["seed"] = json!(seed);
    b["n"] = json!(1);
    b
}

/// The first 300 characters of a server's answer, for messages.
fn excerpt(s: &str) -> String {
    let cut: String = s.chars().take(300).collect();
    if cut.len() < s.len() {
        format!("`{cut}…`")
    } else {
        format!("`{cut}`")
    }
}

/// Answers already had, by request (blake3 of the request body, which holds the model id,
/// the prompt and the sampling, never the key): a JSON Lines file in the stage's scratch
/// folder, one line appended per answer as it arrives.
pub struct Cache {
    known: HashMap<String, Answer>,
    file: Mutex<std::fs::File>,
}

#[derive(Serialize, Deserialize)]
struct CacheLine {
    request: String,
    #[serde(flatten)]
    answer: Answer,
}

impl Cache {
    pub fn open(dir: &Path) -> Result<Cache, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        let path = dir.join("answers.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // A line cut short by a kill is only a request to ask again.
        let known = text
            .lines()
            .filter_map(|l| serde_json::from_str::<CacheLine>(l).ok())
            .map(|c| (c.request, c.answer))
            .collect();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
        Ok(Cache {
            known,
            file: Mutex::new(file),
        })
    }

    pub fn key(body: &Json) -> String {
        format!("b3:{}", blake3::hash(body.to_string().as_bytes()).to_hex())
    }

    pub fn get(&self, key: &str) -> Option<&Answer> {
        self.known.get(key)
    }

    pub fn put(&self, key: &str, answer: &Answer) -> Result<(), String> {
        let line = serde_json::to_string(&CacheLine {
            request: key.to_string(),
            answer: answer.clone(),
        })
        .map_err(|e| e.to_string())?;
        let mut f = self
            .file
            .lock()
            .map_err(|_| "the answer cache is poisoned")?;
        writeln!(f, "{line}").map_err(|e| format!("cannot write the answer cache: {e}"))
    }
}

/// Answers every body, `concurrency` requests at a time, from `cache` where it can; `names`
/// name the requests in errors. The first failure stops the rest (answers had so far stay
/// cached). `done(i)` is called as each answer arrives.
pub fn answer_all(
    endpoint: &Endpoint,
    cache: &Cache,
    bodies: &[Json],
    names: &[String],
    concurrency: usize,
    done: impl Fn(usize) + Sync,
) -> Result<Vec<Answer>, RemoteError> {
    let slots: Vec<Mutex<Option<Answer>>> = bodies.iter().map(|_| Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed: Mutex<Option<RemoteError>> = Mutex::new(None);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..concurrency.max(1).min(bodies.len().max(1)) {
            scope.spawn(|| {
                loop {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= bodies.len() {
                        return;
                    }
                    let key = Cache::key(&bodies[i]);
                    let got = match cache.get(&key) {
                        Some(a) => Ok(a.clone()),
                        None => endpoint.answer(&bodies[i], &names[i]).and_then(|a| {
                            cache
                                .put(&key, &a)
                                .map(|()| a)
                                .map_err(|message| RemoteError {
                                    code: Code::Unreachable,
                                    request: names[i].clone(),
                                    message,
                                })
                        }),
                    };
                    match got {
                        Ok(a) => {
                            if let Ok(mut s) = slots[i].lock() {
                                *s = Some(a);
                            }
                            done(i);
                        }
                        Err(e) => {
                            stop.store(true, std::sync::atomic::Ordering::SeqCst);
                            if let Ok(mut f) = failed.lock() {
                                f.get_or_insert(e);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.into_inner().ok().flatten().ok_or_else(|| RemoteError {
                code: Code::Unreachable,
                request: names[i].clone(),
                message: "no answer was recorded".into(),
            })
        })
        .collect()
}
