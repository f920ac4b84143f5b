//! `evaluate` against a model served over the OpenAI-compatible API: a real HTTP server on
//! localhost (a thread of this test) that answers as vLLM or llama.cpp's server would, fails
//! on command, and counts what it was asked.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{describe, root, synthpipe, tmpdir};
use serde_json::{Value as Json, json};

/// What the server does, shared with the test.
#[derive(Default)]
struct Behaviour {
    /// Answer the next N completion requests with HTTP 503.
    fail_next: AtomicUsize,
    /// After this many answers, every completion request gets HTTP 500 (0: never).
    fail_after: AtomicUsize,
    /// Answer completions with text that is not JSON.
    malformed: AtomicBool,
    /// Completion requests received, and answered with 200.
    asked: AtomicUsize,
    answered: AtomicUsize,
    /// Every request's head, for checking what was sent.
    heads: Mutex<Vec<String>>,
    /// The id the server lists.
    model: Mutex<String>,
}

struct Server {
    url: String,
    state: Arc<Behaviour>,
}

/// A server for `model` that answers each question with the gold answer `answers` gives it
/// (matched on the prompt's last `Question:` line), requiring `key` as a bearer token.
fn serve(model: &str, answers: Vec<(String, String)>, key: Option<&str>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let state = Arc::new(Behaviour::default());
    *state.model.lock().unwrap() = model.to_string();
    let (st, key) = (state.clone(), key.map(String::from));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (st, key, answers) = (st.clone(), key.clone(), answers.clone());
            std::thread::spawn(move || handle(conn, &st, key.as_deref(), &answers));
        }
    });
    Server { url, state }
}

fn handle(conn: TcpStream, st: &Behaviour, key: Option<&str>, answers: &[(String, String)]) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    st.heads.lock().unwrap().push(head.clone());
    let reply = |status: &str, body: String| {
        let mut c = &conn;
        let _ = write!(
            c,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    if let Some(k) = key
        && !head.contains(&format!("Bearer {k}"))
    {
        return reply("401 Unauthorized", r#"{"error":"no key"}"#.into());
    }
    if head.starts_with("GET /v1/models") {
        let model = st.model.lock().unwrap().clone();
        return reply(
            "200 OK",
            json!({"data": [{"id": model, "object": "model"}]}).to_string(),
        );
    }
    let n = st.asked.fetch_add(1, Ordering::SeqCst);
    if st.fail_next.load(Ordering::SeqCst) > 0 {
        st.fail_next.fetch_sub(1, Ordering::SeqCst);
        return reply("503 Service Unavailable", r#"{"error":"busy"}"#.into());
    }
    let after = st.fail_after.load(Ordering::SeqCst);
    if after > 0 && st.answered.load(Ordering::SeqCst) >= after {
        return reply("500 Internal Server Error", r#"{"error":"crashed"}"#.into());
    }
    if st.malformed.load(Ordering::SeqCst) {
        return reply("200 OK", "<html>proxy error</html>".into());
    }
    let req: Json = serde_json::from_slice(&body).unwrap();
    let completions = head.starts_with("POST /v1/completions");
    let prompt = match completions {
        true => req["prompt"].as_str(),
        false => req["messages"][0]["content"].as_str(),
    }
    .unwrap_or_default();
    let question = prompt.rsplit("Question: ").next().unwrap_or_default();
    let gold = answers
        .iter()
        .find(|(q, _)| question.starts_with(q.as_str()))
        .map_or("nobody", |(_, a)| a.as_str());
    st.answered.fetch_add(1, Ordering::SeqCst);
    let text = format!("Thinking about request {n}. <answer>{gold}</answer>.");
    let choice = match completions {
        true => json!({"index": 0, "text": text, "finish_reason": "length"}),
        false => {
            json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"})
        }
    };
    reply("200 OK", json!({ "choices": [choice] }).to_string())
}

/// The HotpotQA fixture's questions and gold answers.
fn fixture_answers() -> Vec<(String, String)> {
    let d: Json = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/eval/hotpotqa.json")).unwrap(),
    )
    .unwrap();
    d.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["question"].as_str().unwrap().to_string(),
                r["answer"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pipeline(dir: &Path, url: &str, extra: &str) -> std::path::PathBuf {
    let file = dir.join("p.yaml");
    let text = format!(
        "name: served\nstages:\n  hotpotqa:\n    kind: evaluate\n    endpoint: {url}\n    benchmark: hotpotqa\n    data: {}\n    prompt: paper\n    examples: 2\n    concurrency: 2\n    timeout: 5\n    retries: 2\n{extra}",
        root().join("tests/fixtures/eval/hotpotqa.json").display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

fn run(file: &Path, store: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_synthpipe"));
    c.args([
        "run",
        file.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.current_dir(file.parent().unwrap()).output().unwrap()
}

fn metrics(file: &Path, store: &Path, env: &[(&str, &str)]) -> Json {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_synthpipe"));
    c.args([
        "show",
        file.to_str().unwrap(),
        "hotpotqa.results",
        "--path",
        "--store",
        store.to_str().unwrap(),
    ]);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.current_dir(file.parent().unwrap()).output().unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
    serde_json::from_str(&std::fs::read_to_string(Path::new(&dir).join("metrics.json")).unwrap())
        .unwrap()
}

#[test]
fn a_served_model_is_scored_like_a_local_one_and_its_id_is_in_the_key() {
    let dir = tmpdir("remote", "scored");
    let store = dir.join("store");
    let server = serve("mock/served-1", fixture_answers(), None);
    // Two transient failures on the way: retried, never seen in the result.
    server.state.fail_next.store(2, Ordering::SeqCst);
    let file = pipeline(&dir, &server.url, "");
    let o = run(&file, &store, &[]);
    assert!(o.status.success(), "{}", describe(&o));
    let m = metrics(&file, &store, &[]);
    assert_eq!(m["overall"]["questions"], 3);
    assert_eq!(m["overall"]["f1"]["mean"], 1.0, "{m}");
    assert_eq!(server.state.answered.load(Ordering::SeqCst), 3);
    // The paper's prompt went out as one user message, with the sampling of the stage.
    let heads = server.state.heads.lock().unwrap().clone();
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("POST /v1/chat/completions"))
    );
    // Run again: fresh, nothing asked.
    let o = run(&file, &store, &[]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("fresh"),
        "{}",
        describe(&o)
    );
    assert_eq!(server.state.answered.load(Ordering::SeqCst), 3);
    // The server restarted with another model behind the same URL: another key, asked
    // again.
    *server.state.model.lock().unwrap() = "mock/served-2".into();
    let o = run(&file, &store, &[]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("built"),
        "{}",
        describe(&o)
    );
    assert_eq!(server.state.answered.load(Ordering::SeqCst), 6);
    let sent = server.state.heads.lock().unwrap().len();
    assert!(sent >= 8, "{sent} requests");
}

#[test]
fn the_api_key_is_sent_but_written_nowhere() {
    let dir = tmpdir("remote", "key");
    let store = dir.join("store");
    let secret = "sk-test-0123456789-secret";
    let server = serve("mock/keyed", fixture_answers(), Some(secret));
    let file = pipeline(
        &dir,
        &server.url,
        "    api_key_env: SYNTHPIPE_TEST_API_KEY\n",
    );
    // Without the variable: a coded error, nothing built.
    let o = run(&file, &store, &[]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("synthpipe::remote::no_key"),
        "{}",
        describe(&o)
    );
    let o = run(&file, &store, &[("SYNTHPIPE_TEST_API_KEY", secret)]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(
        metrics(&file, &store, &[("SYNTHPIPE_TEST_API_KEY", secret)])["overall"]["f1"]["mean"],
        1.0
    );
    let shown =
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(!shown.contains(secret));
    let mut files = 0;
    let mut stack = vec![store.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(secret),
                    "the API key is in {}",
                    p.display()
                );
            }
        }
    }
    assert!(
        files > 5,
        "the store holds records, logs, outputs and the answer cache"
    );
}

#[test]
fn an_interrupted_evaluation_asks_only_what_it_has_not_been_answered() {
    let dir = tmpdir("remote", "resume");
    let store = dir.join("store");
    let server = serve("mock/flaky", fixture_answers(), None);
    // One answer, then the server breaks: the stage fails, naming a question.
    server.state.fail_after.store(1, Ordering::SeqCst);
    let file = pipeline(&dir, &server.url, "");
    let o = run(&file, &store, &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains("synthpipe::remote::status") && err.contains("question `"),
        "{err}"
    );
    assert!(err.contains("HTTP 500"), "{err}");
    let show = synthpipe(
        &[
            "show",
            file.to_str().unwrap(),
            "hotpotqa.results",
            "--path",
            "--store",
            store.to_str().unwrap(),
        ],
        &dir,
    );
    let out = String::from_utf8_lossy(&show.stdout).trim().to_string();
    assert!(
        out.is_empty() || !Path::new(&out).join("metrics.json").exists(),
        "half-written output at {out}"
    );
    // The server recovers: the rerun asks only for the questions still unanswered.
    server.state.fail_after.store(0, Ordering::SeqCst);
    let o = run(&file, &store, &[]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(
        server.state.answered.load(Ordering::SeqCst),
        3,
        "one answer kept, two asked again"
    );
    assert_eq!(metrics(&file, &store, &[])["overall"]["f1"]["mean"], 1.0);
}

#[test]
fn a_server_that_is_down_or_answers_garbage_gives_a_coded_error_not_a_hang() {
    let dir = tmpdir("remote", "down");
    // Nothing listens on this port once the listener is dropped.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = pipeline(&dir, &format!("http://127.0.0.1:{port}/v1"), "");
    let start = std::time::Instant::now();
    let o = run(&file, &dir.join("store"), &[]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("synthpipe::remote::unreachable"),
        "{}",
        describe(&o)
    );
    assert!(start.elapsed().as_secs() < 60);

    let server = serve("mock/garbage", fixture_answers(), None);
    server.state.malformed.store(true, Ordering::SeqCst);
    let file = pipeline(&dir, &server.url, "");
    let o = run(&file, &dir.join("store2"), &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains("synthpipe::remote::malformed") && err.contains("question `"),
        "{err}"
    );

    // `endpoint` and `model` together are refused before anything runs.
    let both = pipeline(&dir, &server.url, "    model: /nonexistent\n");
    let o = run(&both, &dir.join("store3"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("either `model` or `endpoint`"));
}

#[test]
fn a_served_model_answers_a_generated_dataset_in_its_prompts() {
    let dir = tmpdir("remote", "synthetic");
    let store = dir.join("store");
    let server = serve("mock/family", Vec::new(), None);
    let file = dir.join("p.yaml");
    std::fs::write(
        &file,
        format!(
            "name: served-family\nstages:\n  family:\n    kind: generate\n    rules: {}\n    seeds: \"1..=2\"\n    set: {{max_tree_size: 4, questions_per_template: 1}}\n  hotpotqa:\n    kind: evaluate\n    endpoint: {}\n    dataset: {{from: family.dataset}}\n    prompt: paper\n    examples: 1\n",
            root().join("rules/family.rules").display(),
            server.url
        ),
    )
    .unwrap();
    let o = run(&file, &store, &[]);
    assert!(o.status.success(), "{}", describe(&o));
    let m = metrics(&file, &store, &[]);
    let n = m["overall"]["questions"].as_u64().unwrap();
    assert!(n > 5, "{m}");
    assert_eq!(server.state.answered.load(Ordering::SeqCst) as u64, n);
    assert_eq!(m["benchmark"], "synthetic");
}

#[test]
fn lm_generate_asks_a_served_model() {
    let dir = tmpdir("remote", "generate");
    let server = serve("mock/cli", fixture_answers(), None);
    let user = "Question: Which harbour town is older, Varnel or Osterby?";
    let o = synthpipe(
        &[
            "lm",
            "generate",
            "--endpoint",
            &server.url,
            "--user",
            user,
            "--json",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", describe(&o));
    let j: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        j["text"]
            .as_str()
            .unwrap()
            .contains("<answer>Osterby</answer>"),
        "{j}"
    );
    assert_eq!(j["served_model"], "mock/cli");
    assert_eq!(j["truncated"], false);
    // A raw prompt goes to /completions.
    let o = synthpipe(
        &[
            "lm",
            "generate",
            "--endpoint",
            &server.url,
            "--prompt",
            user,
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("<answer>Osterby</answer>"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cut at --max-tokens"));
    let heads = server.state.heads.lock().unwrap().clone();
    assert!(heads.iter().any(|h| h.starts_with("POST /v1/completions")));
    // Neither a model nor an endpoint: refused.
    let o = synthpipe(&["lm", "generate", "--user", "hi"], &dir);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
}
