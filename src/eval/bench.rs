//! Benchmark files → one common record: loaders for HotpotQA, 2WikiMultiHopQA,
//! MuSiQue-Ans, CofCA and synthpipe's own questions, with a diagnostic (file, line) for
//! every malformed record while the rest of the file still loads.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::eval::score::{ErrorCode, Located, ScoreError};

/// The benchmarks synthpipe knows how to read, score and stratify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Benchmark {
    HotpotQa,
    #[serde(rename = "2wiki")]
    TwoWiki,
    Musique,
    Cofca,
    Synthetic,
}

impl Benchmark {
    pub const ALL: [Benchmark; 5] = [
        Benchmark::HotpotQa,
        Benchmark::TwoWiki,
        Benchmark::Musique,
        Benchmark::Cofca,
        Benchmark::Synthetic,
    ];

    /// The name users write (`--benchmark`, pipeline files).
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::HotpotQa => "hotpotqa",
            Benchmark::TwoWiki => "2wiki",
            Benchmark::Musique => "musique",
            Benchmark::Cofca => "cofca",
            Benchmark::Synthetic => "synthetic",
        }
    }

    pub fn parse(s: &str) -> Option<Benchmark> {
        let s = s.to_ascii_lowercase();
        Benchmark::ALL.into_iter().find(|b| {
            b.name() == s
                || matches!(
                    (b, s.as_str()),
                    (Benchmark::TwoWiki, "2wikimultihopqa")
                        | (Benchmark::Musique, "musique-ans")
                        | (Benchmark::HotpotQa, "hotpot")
                )
        })
    }

    /// The strata a report breaks this benchmark down by (the paper's).
    pub fn axes(self) -> &'static [&'static str] {
        match self {
            Benchmark::HotpotQa | Benchmark::TwoWiki => &["type"],
            Benchmark::Musique | Benchmark::Cofca => &["hops"],
            Benchmark::Synthetic => &["difficulty", "hops", "type"],
        }
    }

    fn help(self) -> &'static str {
        match self {
            Benchmark::HotpotQa => {
                "a HotpotQA record needs `_id`, `question`, `answer` (strings) and `context` \
                 ([[title, [sentence, …]], …] or {title: […], sentences: […]}); `type`, \
                 `level` and `supporting_facts` are optional"
            }
            Benchmark::TwoWiki => {
                "a 2WikiMultiHopQA record needs `_id`, `question`, `answer`, `type` and \
                 `context` ([[title, [sentence, …]], …]); `evidences`, `answer_id` and \
                 `supporting_facts` are optional"
            }
            Benchmark::Musique => {
                "a MuSiQue record needs `id`, `question`, `answer`, `paragraphs` \
                 ([{title, paragraph_text, is_supporting}, …]) and `question_decomposition` \
                 ([{question, answer}, …]); `answer_aliases` and `answerable` are optional"
            }
            Benchmark::Cofca => {
                "a CofCA record needs `_id`, `question`, `answer` and `context` \
                 ([[title, [sentence, …]], …]); the hop count comes from \
                 `question_decomposition` ([{question, answer}, …]) or `type` (e.g. `3hop`)"
            }
            Benchmark::Synthetic => {
                "a synthpipe question has every field `generate` writes (docs/dataset.md): \
                 `id`, `universe`, `seed`, `template`, `template_id`, `question_type`, `text`, \
                 `answers`, `difficulty`, `hops`, `program` and `intermediate`"
            }
        }
    }
}

/// One evidence paragraph of a question.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Paragraph {
    pub title: String,
    pub text: String,
    /// The text as the paper's prompts show it: sentences on lines of their own where the
    /// dataset splits them (HotpotQA, 2Wiki), else the text.
    #[serde(skip)]
    pub lines: String,
    /// Marked as supporting by the dataset (gold paragraph).
    pub supporting: bool,
}

/// One question of any benchmark, in the shape prompts, metrics and strata need.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// As the file spells it; any string.
    pub id: String,
    pub question: String,
    pub paragraphs: Vec<Paragraph>,
    /// The gold answer first, then its aliases. For synthetic questions: the answer set.
    pub answers: Vec<String>,
    /// The dataset's question type (`bridge`, `compositional`, …).
    pub kind: Option<String>,
    pub hops: Option<u64>,
    /// Synthetic questions only.
    pub difficulty: Option<u64>,
    /// Synthetic questions only: the universe asked about (its articles are the evidence).
    pub universe: Option<String>,
    /// For each hop k (in order), the accepted strings of the k-th gold intermediate
    /// answer; the last hop's is the final answer. Empty when the dataset has none.
    pub intermediate: Vec<Vec<String>>,
    /// 1-based line of the record in its file.
    pub line: usize,
}

/// What loading a file gave: the records that parsed, and a diagnostic for each that did not.
#[derive(Debug, Default)]
pub struct Loaded {
    pub records: Vec<Record>,
    pub errors: Vec<ScoreError>,
}

/// 2WikiMultiHopQA's `id_aliases.json`: answer entity id → aliases and demonyms.
pub type Aliases = BTreeMap<String, Vec<String>>;

/// Reads a benchmark file (or, for `synthetic`, a dataset folder or its questions.jsonl).
pub fn load_file(bench: Benchmark, path: &Path, aliases: Option<&Aliases>) -> Loaded {
    in_eval(load_file_inner(bench, path, aliases))
}

/// Benchmark files are evaluation's input: their problems carry `synthpipe::eval::` codes.
fn in_eval(mut l: Loaded) -> Loaded {
    l.errors = l.errors.into_iter().map(ScoreError::in_eval).collect();
    l
}

fn load_file_inner(bench: Benchmark, path: &Path, aliases: Option<&Aliases>) -> Loaded {
    let shown = path.display().to_string();
    if bench == Benchmark::Synthetic {
        return load_synthetic(path);
    }
    match std::fs::read(path) {
        Ok(bytes) => load_bytes_inner(bench, &shown, &bytes, aliases),
        Err(e) => Loaded {
            records: vec![],
            errors: vec![read_error(&shown, &e)],
        },
    }
}

fn read_error(shown: &str, e: &std::io::Error) -> ScoreError {
    ScoreError::whole(ErrorCode::Read, shown, format!("cannot read: {e}"))
        .with_help("check the path; benchmark files are JSON arrays or JSON Lines")
}

/// Parses benchmark records from bytes: a JSON array (the official releases) or JSON
/// Lines (most copies), told apart by the first non-blank byte.
pub fn load_bytes(bench: Benchmark, file: &str, bytes: &[u8], aliases: Option<&Aliases>) -> Loaded {
    in_eval(load_bytes_inner(bench, file, bytes, aliases))
}

fn load_bytes_inner(
    bench: Benchmark,
    file: &str,
    bytes: &[u8],
    aliases: Option<&Aliases>,
) -> Loaded {
    let mut out = Loaded::default();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for element in elements(file, bytes) {
        let (line, text, m) = match element {
            Ok(e) => e,
            Err(err) => {
                out.errors.push(err);
                continue;
            }
        };
        match record(bench, &m, aliases) {
            Ok(mut r) => {
                r.line = line;
                if let Some(first) = seen.insert(r.id.clone(), line) {
                    out.errors.push(
                        ScoreError::at_line(
                            ErrorCode::DuplicateId,
                            file,
                            line,
                            &text,
                            format!("id `{}` is already used on line {first}", r.id),
                        )
                        .with_help("ids must be unique within a file; this record was skipped"),
                    );
                    continue;
                }
                out.records.push(r);
            }
            Err(msg) => out.errors.push(
                ScoreError::at_line(ErrorCode::BadRecord, file, line, &text, msg)
                    .with_help(bench.help()),
            ),
        }
    }
    out
}

/// The top-level JSON objects of a file, each with its 1-based line and first line of
/// text: the elements of a JSON array, or the non-blank lines of JSON Lines.
fn elements(file: &str, bytes: &[u8]) -> Vec<Result<Located, ScoreError>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = bytes.iter().position(|b| !b.is_ascii_whitespace());
    if first.map(|i| bytes[i]) != Some(b'[') {
        return crate::eval::score::jsonl_objects(file, bytes);
    }
    let start = first.unwrap_or(0);
    let mut out = Vec::new();
    // Elements come in order, so lines are counted once over the file, not per element
    // (official files are tens of MB, often on one line).
    let (mut counted_to, mut lines_before) = (0usize, 0usize);
    let mut line_of = |at: usize| {
        lines_before += bytes[counted_to..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted_to = at;
        1 + lines_before
    };
    // A diagnostic shows the start of the element's line, never the rest of a huge line.
    let text_at = |at: usize| {
        let limit = (at + 512).min(bytes.len());
        let end = bytes[at..limit]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(limit, |e| at + e);
        String::from_utf8_lossy(&bytes[at..end]).into_owned()
    };
    let (spans, tail) = array_spans(bytes, start);
    for (a, b) in spans {
        let line = line_of(a);
        let parsed = std::str::from_utf8(&bytes[a..b])
            .map_err(|_| "record is not valid UTF-8".to_string())
            .and_then(|t| serde_json::from_str::<Value>(t).map_err(|e| e.to_string()));
        out.push(match parsed {
            Ok(Value::Object(m)) => Ok((line, text_at(a), m)),
            Ok(_) => Err(ScoreError::at_line(
                ErrorCode::BadRecord,
                file,
                line,
                &text_at(a),
                "array element is not a JSON object".into(),
            )),
            Err(e) => Err(ScoreError::at_line(
                ErrorCode::BadRecord,
                file,
                line,
                &text_at(a),
                format!("record is not valid JSON: {e}"),
            )),
        });
    }
    if let Some(at) = tail {
        out.push(Err(ScoreError::at_line(
            ErrorCode::BadRecord,
            file,
            line_of(at),
            &text_at(at),
            "the JSON array ends early (truncated file?); the records before this one loaded"
                .into(),
        )
        .with_help("a JSON array file must end with `]`")));
    }
    out
}

/// Byte spans of the elements of the JSON array opening at `start`, found by tracking
/// strings and nesting only, so one bad element never hides the others. The second value
/// is where an unterminated element begins, if the array never closes.
fn array_spans(bytes: &[u8], start: usize) -> (Vec<(usize, usize)>, Option<usize>) {
    let mut spans = Vec::new();
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    let mut elem: Option<usize> = None;
    for (i, &b) in bytes.iter().enumerate().skip(start + 1) {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        if elem.is_none() && !b.is_ascii_whitespace() && b != b',' && b != b']' {
            elem = Some(i);
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' if depth > 0 => depth -= 1,
            b']' => {
                if let Some(a) = elem.take() {
                    spans.push((a, i));
                }
                return (spans, None);
            }
            b',' if depth == 0 => {
                if let Some(a) = elem.take() {
                    spans.push((a, i));
                }
            }
            _ => {}
        }
    }
    // Never closed: report where the unfinished element (or the file's end) is.
    (spans, Some(elem.unwrap_or(bytes.len().saturating_sub(1))))
}

fn string(m: &Map<String, Value>, key: &str) -> Result<String, String> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "`{key}` must be a string, found {}",
            kind_of(other)
        )),
        None => Err(format!("missing `{key}`")),
    }
}

/// An id: a string of any shape; a number is taken as its decimal text.
fn id(m: &Map<String, Value>, key: &str) -> Result<String, String> {
    match m.get(key) {
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => string(m, key),
    }
}

fn opt_string(m: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => string(m, key).map(Some),
    }
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "`{what}` must hold strings, found {}",
                    kind_of(other)
                )),
            })
            .collect(),
        other => Err(format!(
            "`{what}` must be an array of strings, found {}",
            kind_of(other)
        )),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// HotpotQA's context: the official `[[title, [sentences]]]` or Hugging Face's
/// `{title: [...], sentences: [[...]]}`. A paragraph's text is its sentences joined as
/// the dataset splits them (they carry their own leading spaces).
fn context(m: &Map<String, Value>, supporting: &[String]) -> Result<Vec<Paragraph>, String> {
    let para = |title: String, sentences: Vec<String>| Paragraph {
        supporting: supporting.contains(&title),
        title,
        text: sentences.concat(),
        lines: sentences.join("\n"),
    };
    match m.get("context") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item.as_array().map(Vec::as_slice) {
                Some([Value::String(t), s]) => Ok(para(t.clone(), strings(s, "context")?)),
                _ => Err("`context` items must be [title, [sentence, …]]".to_string()),
            })
            .collect(),
        Some(Value::Object(c)) => {
            let titles = strings(c.get("title").unwrap_or(&Value::Null), "context.title")?;
            let sentences = match c.get("sentences") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|s| strings(s, "context.sentences"))
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err("`context.sentences` must be an array".into()),
            };
            if titles.len() != sentences.len() {
                return Err("`context.title` and `context.sentences` differ in length".into());
            }
            Ok(titles
                .into_iter()
                .zip(sentences)
                .map(|(t, s)| para(t, s))
                .collect())
        }
        Some(other) => Err(format!(
            "`context` must be an array, found {}",
            kind_of(other)
        )),
        None => Err("missing `context`".into()),
    }
}

/// Titles of the supporting facts, in either HotpotQA layout; absent means none.
fn supporting_titles(m: &Map<String, Value>) -> Result<Vec<String>, String> {
    match m.get("supporting_facts") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(facts)) => facts
            .iter()
            .map(|f| match f.as_array().and_then(|a| a.first()) {
                Some(Value::String(t)) => Ok(t.clone()),
                _ => Err("`supporting_facts` items must be [title, sentence index]".to_string()),
            })
            .collect(),
        Some(Value::Object(o)) => strings(
            o.get("title").unwrap_or(&Value::Null),
            "supporting_facts.title",
        ),
        Some(other) => Err(format!(
            "`supporting_facts` must be an array, found {}",
            kind_of(other)
        )),
    }
}

/// The hop count written in an id or type such as `2hop__…`, `3hop1__…`, `4-hop`.
fn hops_in(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let at = lower.find("hop")?;
    let digits: String = lower[..at]
        .trim_end_matches(['-', '_', ' '])
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok()
}

/// `question_decomposition`: the k-th step's answer is the k-th intermediate answer.
fn decomposition(m: &Map<String, Value>) -> Result<Vec<Vec<String>>, String> {
    match m.get("question_decomposition") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(steps)) => steps
            .iter()
            .map(|s| match s.get("answer") {
                Some(Value::String(a)) => Ok(vec![a.clone()]),
                _ => Err("`question_decomposition` steps need an `answer` string".to_string()),
            })
            .collect(),
        Some(other) => Err(format!(
            "`question_decomposition` must be an array, found {}",
            kind_of(other)
        )),
    }
}

fn record(
    bench: Benchmark,
    m: &Map<String, Value>,
    aliases: Option<&Aliases>,
) -> Result<Record, String> {
    let blank = Record {
        id: String::new(),
        question: String::new(),
        paragraphs: vec![],
        answers: vec![],
        kind: None,
        hops: None,
        difficulty: None,
        universe: None,
        intermediate: vec![],
        line: 0,
    };
    match bench {
        Benchmark::HotpotQa => {
            let support = supporting_titles(m)?;
            Ok(Record {
                id: id(m, "_id")?,
                question: string(m, "question")?,
                answers: vec![string(m, "answer")?],
                paragraphs: context(m, &support)?,
                kind: opt_string(m, "type")?,
                hops: Some(2),
                ..blank
            })
        }
        Benchmark::TwoWiki => {
            let support = supporting_titles(m)?;
            let mut answers = vec![string(m, "answer")?];
            if let Some(extra) = m.get("answer_aliases") {
                answers.extend(strings(extra, "answer_aliases")?);
            }
            if let (Some(table), Some(aid)) = (aliases, opt_string(m, "answer_id")?) {
                answers.extend(table.get(&aid).into_iter().flatten().cloned());
            }
            let hops = match m.get("evidences") {
                Some(Value::Array(e)) => Some(e.len() as u64),
                _ => None,
            };
            Ok(Record {
                id: id(m, "_id")?,
                question: string(m, "question")?,
                answers,
                paragraphs: context(m, &support)?,
                kind: Some(string(m, "type")?),
                hops,
                ..blank
            })
        }
        Benchmark::Musique => {
            let record_id = id(m, "id")?;
            let mut answers = vec![string(m, "answer")?];
            if let Some(extra) = m.get("answer_aliases") {
                answers.extend(strings(extra, "answer_aliases")?);
            }
            let paragraphs = match m.get("paragraphs") {
                Some(Value::Array(ps)) => ps
                    .iter()
                    .map(|p| {
                        let p = p.as_object().ok_or("`paragraphs` items must be objects")?;
                        let text = string(p, "paragraph_text")?;
                        Ok(Paragraph {
                            title: string(p, "title")?,
                            lines: text.clone(),
                            text,
                            supporting: p
                                .get("is_supporting")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?,
                Some(other) => {
                    return Err(format!(
                        "`paragraphs` must be an array, found {}",
                        kind_of(other)
                    ));
                }
                None => return Err("missing `paragraphs`".into()),
            };
            let intermediate = decomposition(m)?;
            let hops = hops_in(&record_id)
                .or((!intermediate.is_empty()).then_some(intermediate.len() as u64));
            Ok(Record {
                question: string(m, "question")?,
                answers,
                paragraphs,
                hops,
                intermediate,
                id: record_id,
                ..blank
            })
        }
        Benchmark::Cofca => {
            let support = supporting_titles(m)?;
            let mut answers = vec![string(m, "answer")?];
            if let Some(extra) = m.get("answer_aliases") {
                answers.extend(strings(extra, "answer_aliases")?);
            }
            let intermediate = decomposition(m)?;
            // `type` may be a string or a list of strings; any of them may name the hops.
            let types: Vec<String> = match m.get("type") {
                Some(Value::String(s)) => vec![s.clone()],
                Some(v @ Value::Array(_)) => strings(v, "type")?,
                _ => vec![],
            };
            let hops = (!intermediate.is_empty())
                .then_some(intermediate.len() as u64)
                .or_else(|| types.iter().find_map(|t| hops_in(t)));
            Ok(Record {
                id: id(m, "_id")?,
                question: string(m, "question")?,
                answers,
                paragraphs: context(m, &support)?,
                kind: types.first().cloned(),
                hops,
                intermediate,
                ..blank
            })
        }
        Benchmark::Synthetic => {
            // The dataset's own record type: what `generate` writes is what is read.
            let q: crate::dataset::Question = serde_json::from_value(Value::Object(m.clone()))
                .map_err(|e| format!("not a synthpipe question: {e}"))?;
            // The intermediate answers per hop: the answer sets of the program's steps,
            // leaving out the steps that only name a start entity (they are in the question).
            let intermediate = q
                .intermediate
                .iter()
                .zip(
                    q.program
                        .steps
                        .iter()
                        .map(|s| Some(s.op.as_str()))
                        .chain(std::iter::repeat(None)),
                )
                .filter(|(_, op)| !matches!(op, Some("name" | "whose")))
                .map(|(s, _)| s.clone())
                .collect();
            Ok(Record {
                id: q.id,
                question: q.text,
                answers: q.answers,
                kind: Some(q.question_type),
                hops: Some(q.hops as u64),
                difficulty: Some(u64::try_from(q.difficulty).map_err(|_| {
                    format!("`difficulty` must not be negative, found {}", q.difficulty)
                })?),
                universe: Some(q.universe),
                intermediate,
                ..blank
            })
        }
    }
}

/// A synthpipe dataset (folder with questions.jsonl and articles.jsonl, or the
/// questions file itself): each question's paragraphs are its universe's articles.
fn load_synthetic(path: &Path) -> Loaded {
    let (questions, articles) = if path.is_dir() {
        (path.join("questions.jsonl"), path.join("articles.jsonl"))
    } else {
        let dir = path.parent().unwrap_or(Path::new("."));
        (path.to_path_buf(), dir.join("articles.jsonl"))
    };
    let shown = questions.display().to_string();
    let bytes = match std::fs::read(&questions) {
        Ok(b) => b,
        Err(e) => {
            return Loaded {
                records: vec![],
                errors: vec![read_error(&shown, &e)],
            };
        }
    };
    let mut out = load_bytes(Benchmark::Synthetic, &shown, &bytes, None);
    // Articles are optional: without them, questions are scored but prompts lack evidence.
    let Ok(text) = std::fs::read_to_string(&articles) else {
        return out;
    };
    let mut by_universe: BTreeMap<String, Vec<Paragraph>> = BTreeMap::new();
    let shown = articles.display().to_string();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<crate::dataset::Article>(line) {
            Ok(a) => by_universe.entry(a.universe).or_default().push(Paragraph {
                title: a.title,
                lines: a.text.clone(),
                text: a.text,
                supporting: false,
            }),
            // A malformed article is reported, never skipped silently; the questions of its
            // universe are still scored.
            Err(e) => out.errors.push(
                ScoreError::at_line(
                    ErrorCode::BadRecord,
                    &shown,
                    i + 1,
                    line,
                    format!("not a synthpipe article: {e}"),
                )
                .with_help("articles.jsonl holds the records `generate` writes (docs/dataset.md)")
                .in_eval(),
            ),
        }
    }
    for r in &mut out.records {
        if let Some(ps) = r.universe.as_ref().and_then(|u| by_universe.get(u)) {
            r.paragraphs = ps.clone();
        }
    }
    out
}

/// Reads 2WikiMultiHopQA's `id_aliases.json` (JSON Lines of `{Q_id, aliases, demonyms}`).
pub fn load_aliases(path: &Path) -> Result<Aliases, Vec<ScoreError>> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| vec![read_error(&shown, &e).in_eval()])?;
    let mut out = Aliases::new();
    let mut errors = Vec::new();
    for element in crate::eval::score::jsonl_objects(&shown, &bytes) {
        match element {
            Ok((line, text, m)) => {
                let parsed = (|| {
                    let q = string(&m, "Q_id")?;
                    let mut names = strings(m.get("aliases").unwrap_or(&Value::Null), "aliases")?;
                    if let Some(d) = m.get("demonyms") {
                        names.extend(strings(d, "demonyms")?);
                    }
                    Ok::<_, String>((q, names))
                })();
                match parsed {
                    Ok((q, names)) => {
                        out.entry(q).or_default().extend(names);
                    }
                    Err(msg) => errors.push(
                        ScoreError::at_line(ErrorCode::BadRecord, &shown, line, &text, msg)
                            .with_help("each line of id_aliases.json is {\"Q_id\": …, \"aliases\": […], \"demonyms\": […]}"),
                    ),
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.into_iter().map(ScoreError::in_eval).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_counts_are_read_from_ids_and_types() {
        assert_eq!(hops_in("2hop__123_456"), Some(2));
        assert_eq!(hops_in("3hop1__1_2_3"), Some(3));
        assert_eq!(hops_in("4-hop"), Some(4));
        assert_eq!(hops_in("bridge"), None);
    }

    #[test]
    fn a_truncated_array_keeps_the_records_before_the_cut() {
        let text = b"[\n {\"_id\": \"a\", \"question\": \"q?\", \"answer\": \"x\", \"context\": []},\n {\"_id\": \"b\", \"question\": \"[\\\"]\", \"answer\": \"y\", \"context\": [[\"T\", [\"s.\"]]]},\n {\"_id\": \"c\", \"quest";
        let l = load_bytes(Benchmark::HotpotQa, "f.json", text, None);
        assert_eq!(
            l.records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(l.records[1].line, 3);
        assert_eq!(l.records[1].question, "[\"]");
        assert_eq!(l.errors.len(), 1);
        assert_eq!(l.errors[0].line, Some(4));
    }
}
