//! `evaluate` through a real llama.cpp server (`llama-server`, built by
//! tests/models/llama-server.sh) serving the fetched Qwen2.5 GGUF on 127.0.0.1: answers
//! against the same model in-process, a server killed mid-run, a wrong URL. CI builds the
//! server and fetches the model; without them these tests skip with a note, except in CI.

mod common;

use common::{describe, needed, qwen_gguf, root, tmpdir};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn llama_server() -> Option<PathBuf> {
    let p = std::env::var_os("SYNTHPIPE_LLAMA_SERVER")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/synthpipe-llama/0.3.36/llama-server"))
        })?;
    needed(p, "tests/models/llama-server.sh builds it")
}

/// HotpotQA's shared dev sample (`../shared/data-raw`, or `SYNTHPIPE_DATA_RAW`).
fn hotpotqa() -> Option<PathBuf> {
    let dir = std::env::var_os("SYNTHPIPE_DATA_RAW")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data-raw"));
    needed(
        dir.join("hotpotqa_dev_distractor_subset.jsonl"),
        "the shared dev samples; set SYNTHPIPE_DATA_RAW",
    )
}

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(bin: &Path, gguf: &Path, port: u16, log: PathBuf) -> Server {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(["-m"])
            .arg(gguf)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            // Two slots of 8,192 tokens: HotpotQA's paper prompts are ~1,500 tokens.
            .args(["-c", "16384", "-np", "2", "-t", "2"])
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        let s = Server { child, port, log };
        let started = Instant::now();
        while get(port, "/health").is_none_or(|(code, _)| code != 200) {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "llama-server did not come up: {}",
                std::fs::read_to_string(&s.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        s
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Completions the server finished, from its log (one timing line each).
    fn requests(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("prompt eval time"))
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bare HTTP GET: status code and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text))
}

/// Ten HotpotQA questions asked greedily, through `endpoint` and (with `local`) in-process.
fn pipeline(
    dir: &Path,
    url: &str,
    data: &Path,
    local: Option<&Path>,
    concurrency: usize,
) -> PathBuf {
    let common = format!(
        "    benchmark: hotpotqa\n    data: {}\n    limit: 10\n    prompt: paper\n    examples: 3\n    temperature: 0\n    max_completion_tokens: 96\n",
        data.display()
    );
    let mut text = format!(
        "name: served\nstages:\n  served:\n    kind: evaluate\n    endpoint: {url}\n    concurrency: {concurrency}\n    timeout: 300\n    retries: 2\n{common}"
    );
    if let Some(m) = local {
        text.push_str(&format!(
            "  local:\n    kind: evaluate\n    model: {}\n    backend: flex\n    batch: {concurrency}\n{common}",
            m.display()
        ));
    }
    let file = dir.join("p.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

fn run(file: &Path, store: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synthpipe"))
        .args(["run"])
        .arg(file)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap()
}

fn predictions(file: &Path, store: &Path, stage: &str) -> Vec<serde_json::Value> {
    let o = Command::new(env!("CARGO_BIN_EXE_synthpipe"))
        .args(["show"])
        .arg(file)
        .arg(format!("{stage}.results"))
        .arg("--path")
        .arg("--store")
        .arg(store)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    std::fs::read_to_string(dir.join("predictions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_llama_cpp_server_answers_as_the_model_does_in_process() {
    let (Some(bin), Some(gguf), Some(data)) = (llama_server(), qwen_gguf(), hotpotqa()) else {
        return;
    };
    let dir = tmpdir("served", "agree");
    let server = Server::start(&bin, &gguf, free_port(), dir.join("server.log"));
    let file = pipeline(&dir, &server.url(), &data, Some(&gguf), 2);
    let store = dir.join("store");
    let o = run(&file, &store);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(server.requests(), 10, "one request per question");
    let served = predictions(&file, &store, "served");
    let local = predictions(&file, &store, "local");
    assert_eq!(served.len(), 10);
    assert_eq!(local.len(), 10);
    let same = |field: &str| {
        served
            .iter()
            .zip(&local)
            .filter(|(a, b)| {
                assert_eq!(a["id"], b["id"]);
                a[field] == b[field]
            })
            .count()
    };
    let (texts, answers) = (same("generation"), same("prediction"));
    eprintln!(
        "llama.cpp server vs in-process, greedy, 10 HotpotQA questions: {texts}/10 identical generations, {answers}/10 identical extracted answers"
    );
    // The two engines compute differently (llama.cpp on the Q4_K_M blocks, synthpipe on
    // their f32 dequantisation), so greedy paths may part where two tokens are close; most
    // answers must still agree.
    assert!(answers >= 7, "{answers}/10 answers agree");

    // Asked again: every answer is cached, the server is not asked.
    let again = run(&file, &store);
    assert!(again.status.success(), "{}", describe(&again));
    assert_eq!(server.requests(), 10);
}

#[test]
fn a_killed_server_stops_the_stage_and_the_rerun_asks_only_the_rest() {
    let (Some(bin), Some(gguf), Some(data)) = (llama_server(), qwen_gguf(), hotpotqa()) else {
        return;
    };
    let dir = tmpdir("served", "kill");
    let port = free_port();
    let server = Server::start(&bin, &gguf, port, dir.join("server-1.log"));
    let file = pipeline(&dir, &server.url(), &data, None, 1);
    let store = dir.join("store");
    let mut c = Command::new(env!("CARGO_BIN_EXE_synthpipe"))
        .args(["run"])
        .arg(&file)
        .arg("--store")
        .arg(&store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server once three answers are in the stage's cache.
    let cached = || -> usize {
        glob_answers(&store)
            .map(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .count()
            })
            .unwrap_or(0)
    };
    let started = Instant::now();
    while cached() < 3 {
        assert!(c.try_wait().unwrap().is_none(), "the run ended early");
        assert!(started.elapsed() < Duration::from_secs(600));
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    let out = c.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(text.contains("synthpipe::remote::unreachable"), "{text}");
    assert!(text.contains("question `"), "{text}");
    let had = cached();
    assert!((3..10).contains(&had), "{had}");
    // Nothing half-written: no output for the stage.
    assert_eq!(std::fs::read_dir(store.join("records")).unwrap().count(), 0);

    // Up again on the same port: only the unanswered questions are asked.
    let server = Server::start(&bin, &gguf, port, dir.join("server-2.log"));
    let o = run(&file, &store);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(server.requests(), 10 - had);
    assert_eq!(predictions(&file, &store, "served").len(), 10);

    // A wrong URL: the server's 404, coded, naming what was asked.
    let wrong = pipeline(&dir, &format!("http://127.0.0.1:{port}/v9"), &data, None, 1);
    let o = run(&wrong, &dir.join("store-wrong"));
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(text.contains("synthpipe::remote::status"), "{text}");
    assert!(text.contains("404"), "{text}");
}

fn glob_answers(store: &Path) -> Option<PathBuf> {
    std::fs::read_dir(store.join("scratch"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("answers.jsonl"))
        .find(|p| p.is_file())
}
