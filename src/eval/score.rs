//! Answer-set scoring with PhantomWiki's convention: loading gold and prediction JSONL,
//! per-question EM / precision / recall / F1, and means broken down by hops, difficulty, type.
//!
//! Data flow: bytes → `parse_gold` / `parse_predictions` (every bad line becomes a
//! `ScoreError`, none stops the scan) → cross-file id checks → `evaluate` → `Report`.
//! Answers are compared as sets of normalised strings (trimmed, lower-cased); a model's
//! answer string is split on commas, gold answers are not. Error codes are user interface:
//! never rename one, add new ones instead.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Trims and lower-cases one answer.
pub fn normalize(s: &str) -> String {
    s.trim().to_lowercase()
}

/// Splits a model's answer string into its answer set, PhantomWiki style: comma-separated,
/// each piece normalised, empty pieces dropped, duplicates removed. Sorted, so callers
/// never see an order that depends on the model's phrasing.
pub fn split_prediction(s: &str) -> Vec<String> {
    set_of(s.split(','))
}

/// Normalises, drops empties and dedupes; the set shape every metric works on.
fn set_of<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    items
        .into_iter()
        .map(normalize)
        .filter(|a| !a.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Metrics of one question, or their mean over many.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub em: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Scores {
    const PERFECT: Scores = Scores {
        em: 1.0,
        precision: 1.0,
        recall: 1.0,
        f1: 1.0,
    };

    /// The mean of each metric; all zeros for no questions (a report of nothing, not NaN,
    /// which JSON cannot carry).
    pub fn mean<'a>(items: impl IntoIterator<Item = &'a Scores>) -> Scores {
        let mut acc = Accumulator::default();
        for s in items {
            acc.add(s, false);
        }
        acc.group().scores
    }
}

/// Scores one question. Both sides are normalised and treated as sets; `predicted` items
/// are taken as given (already split), so pass `split_prediction`'s output for raw text.
///
/// Convention: empty gold and empty prediction agree perfectly (1 on all four metrics);
/// exactly one of them empty scores 0 on all four.
pub fn score_answers(gold: &[String], predicted: &[String]) -> Scores {
    let gold: BTreeSet<String> = set_of(gold.iter().map(String::as_str))
        .into_iter()
        .collect();
    let pred: BTreeSet<String> = set_of(predicted.iter().map(String::as_str))
        .into_iter()
        .collect();
    if gold.is_empty() && pred.is_empty() {
        return Scores::PERFECT;
    }
    // Also covers one side empty: no overlap and a zero denominator both give 0.
    let hits = gold.intersection(&pred).count() as f64;
    let precision = if pred.is_empty() {
        0.0
    } else {
        hits / pred.len() as f64
    };
    let recall = if gold.is_empty() {
        0.0
    } else {
        hits / gold.len() as f64
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Scores {
        em: f64::from(u8::from(gold == pred)),
        precision,
        recall,
        f1,
    }
}

/// Mean scores of a set of questions, with how many there were and how many had no
/// prediction (scored as empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub questions: usize,
    pub missing: usize,
    #[serde(flatten)]
    pub scores: Scores,
}

/// The result of scoring a predictions file against a gold file. Breakdowns only hold the
/// values that occur in gold; questions without the field are in `overall` only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub overall: Group,
    pub by_hops: BTreeMap<u64, Group>,
    pub by_difficulty: BTreeMap<u64, Group>,
    pub by_type: BTreeMap<String, Group>,
}

impl Report {
    /// A short human-readable table: overall metrics, counts, then one row per hop count.
    pub fn table(&self) -> String {
        let header = format!(
            "{:<10} {:>6} {:>7} {:>6} {:>6} {:>6} {:>6}\n",
            "", "n", "missing", "EM", "P", "R", "F1"
        );
        let row = |name: &str, g: &Group| {
            format!(
                "{:<10} {:>6} {:>7} {:>6.3} {:>6.3} {:>6.3} {:>6.3}\n",
                name,
                g.questions,
                g.missing,
                g.scores.em,
                g.scores.precision,
                g.scores.recall,
                g.scores.f1
            )
        };
        let mut out = header;
        out.push_str(&row("overall", &self.overall));
        for (hops, g) in &self.by_hops {
            out.push_str(&row(&format!("hops={hops}"), g));
        }
        out
    }
}

/// Running sums for one group; divided once at the end.
#[derive(Default)]
struct Accumulator {
    sum: Scores,
    questions: usize,
    missing: usize,
}

impl Accumulator {
    fn add(&mut self, s: &Scores, missing: bool) {
        self.sum.em += s.em;
        self.sum.precision += s.precision;
        self.sum.recall += s.recall;
        self.sum.f1 += s.f1;
        self.questions += 1;
        self.missing += usize::from(missing);
    }

    fn group(&self) -> Group {
        let n = self.questions.max(1) as f64;
        Group {
            questions: self.questions,
            missing: self.missing,
            scores: Scores {
                em: self.sum.em / n,
                precision: self.sum.precision / n,
                recall: self.sum.recall / n,
                f1: self.sum.f1 / n,
            },
        }
    }
}

/// One gold question: only the fields scoring needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoldRecord {
    pub id: String,
    pub answers: Vec<String>,
    pub hops: Option<u64>,
    pub difficulty: Option<u64>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// One model answer, already split / normalised into a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prediction {
    pub id: String,
    pub answers: Vec<String>,
    /// 1-based line in the predictions file, for diagnostics.
    pub line: usize,
}

/// Scores every gold question; a question without a prediction scores as an empty
/// prediction and counts as missing. Predictions for ids not in gold are ignored here:
/// rejecting them is the loader's job (`score_bytes`), which knows their line numbers.
pub fn evaluate(gold: &[GoldRecord], predictions: &[Prediction]) -> Report {
    let by_id: BTreeMap<&str, &[String]> = predictions
        .iter()
        .map(|p| (p.id.as_str(), p.answers.as_slice()))
        .collect();
    let mut overall = Accumulator::default();
    let mut hops: BTreeMap<u64, Accumulator> = BTreeMap::new();
    let mut difficulty: BTreeMap<u64, Accumulator> = BTreeMap::new();
    let mut kind: BTreeMap<String, Accumulator> = BTreeMap::new();
    for q in gold {
        let pred = by_id.get(q.id.as_str());
        let s = score_answers(&q.answers, pred.copied().unwrap_or(&[]));
        let missing = pred.is_none();
        overall.add(&s, missing);
        if let Some(h) = q.hops {
            hops.entry(h).or_default().add(&s, missing);
        }
        if let Some(d) = q.difficulty {
            difficulty.entry(d).or_default().add(&s, missing);
        }
        if let Some(t) = &q.kind {
            kind.entry(t.clone()).or_default().add(&s, missing);
        }
    }
    Report {
        overall: overall.group(),
        by_hops: hops.into_iter().map(|(k, a)| (k, a.group())).collect(),
        by_difficulty: difficulty
            .into_iter()
            .map(|(k, a)| (k, a.group()))
            .collect(),
        by_type: kind.into_iter().map(|(k, a)| (k, a.group())).collect(),
    }
}

// ---------------------------------------------------------------------------------------
// Errors

/// Everything loading can reject. The code string is `synthpipe::score::<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorCode {
    /// A file could not be read.
    Read,
    /// A line that is not UTF-8, not a JSON object, or lacks / mistypes a field.
    BadRecord,
    /// A prediction for a question id that gold does not have.
    UnknownId,
    /// The same id twice in one file.
    DuplicateId,
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::Read,
        ErrorCode::BadRecord,
        ErrorCode::UnknownId,
        ErrorCode::DuplicateId,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Read => "read",
            ErrorCode::BadRecord => "bad_record",
            ErrorCode::UnknownId => "unknown_id",
            ErrorCode::DuplicateId => "duplicate_id",
        }
    }

    /// The full, stable code users see and search for.
    pub fn full(self) -> String {
        format!("synthpipe::score::{}", self.name())
    }
}

/// Which command family reports an error: `synthpipe score` (PhantomWiki's set metrics on
/// synthpipe questions) or evaluation (`synthpipe eval`, the `evaluate` stage, benchmark
/// files). The code reads `synthpipe::score::…` or `synthpipe::eval::…`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    #[default]
    Score,
    Eval,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Score => "score",
            Scope::Eval => "eval",
        }
    }
}

/// One problem in one file, at one line when it has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.headline())]
pub struct ScoreError {
    pub code: ErrorCode,
    pub scope: Scope,
    /// The path as the user gave it.
    pub file: String,
    /// 1-based; `None` for whole-file problems such as an unreadable file.
    pub line: Option<usize>,
    pub message: String,
    pub help: String,
    /// The offending line, for rendering; `None` for whole-file problems. Boxed to keep
    /// `Result<_, ScoreError>` small.
    pub snippet: Option<Box<Snippet>>,
}

/// One line of a file, shortened and with control characters replaced, so a diagnostic
/// can show it without dumping a huge or terminal-hostile line. Only this line is kept,
/// so as a miette source it claims to start at its own line of the file; miette then
/// prints the real line number instead of `1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snippet {
    pub file: String,
    pub line: usize,
    pub text: String,
    pub label: String,
}

impl ScoreError {
    fn at(code: ErrorCode, file: &str, line: usize, text: &str, message: String) -> Self {
        ScoreError {
            code,
            scope: Scope::Score,
            file: file.to_owned(),
            line: Some(line),
            message,
            help: String::new(),
            snippet: Some(Box::new(Snippet {
                file: file.to_owned(),
                line,
                text: snippet(text),
                label: "this line".into(),
            })),
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = help.into();
        self
    }

    /// A problem with one line of a file (`text` is that line, for the snippet).
    pub fn at_line(code: ErrorCode, file: &str, line: usize, text: &str, message: String) -> Self {
        Self::at(code, file, line, text, message)
    }

    /// A problem with a whole file (unreadable, empty, …).
    pub fn whole(code: ErrorCode, file: &str, message: String) -> Self {
        ScoreError {
            code,
            scope: Scope::Score,
            file: file.to_owned(),
            line: None,
            message,
            help: String::new(),
            snippet: None,
        }
    }

    pub fn with_help(self, help: impl Into<String>) -> Self {
        self.help(help)
    }

    /// The same problem, reported by evaluation.
    pub fn in_eval(mut self) -> Self {
        self.scope = Scope::Eval;
        self
    }

    /// The full, stable code: `synthpipe::SCOPE::NAME`.
    pub fn full_code(&self) -> String {
        format!("synthpipe::{}::{}", self.scope.name(), self.code.name())
    }

    fn label(mut self, label: impl Into<String>) -> Self {
        if let Some(s) = &mut self.snippet {
            s.label = label.into();
        }
        self
    }

    fn headline(&self) -> String {
        match self.line {
            Some(l) => format!("{}:{l}: {}", self.file, self.message),
            None => format!("{}: {}", self.file, self.message),
        }
    }

    /// The snippet when there is something to show; miette cannot label an empty line.
    fn shown(&self) -> Option<&Snippet> {
        self.snippet.as_deref().filter(|s| !s.text.is_empty())
    }
}

impl miette::Diagnostic for ScoreError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.full_code()))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        (!self.help.is_empty()).then(|| Box::new(&self.help) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.shown().map(|s| s as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let s = self.shown()?;
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(Some(s.label.clone()), (0, s.text.len())),
        )))
    }
}

impl SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        _span: &SourceSpan,
        _before: usize,
        _after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        // Whatever was asked, the one line is all there is, and it covers every label.
        Ok(Box::new(MietteSpanContents::new_named(
            self.file.clone(),
            self.text.as_bytes(),
            (0, self.text.len()).into(),
            self.line.saturating_sub(1),
            0,
            1,
        )))
    }
}

/// Longest snippet shown in a diagnostic, in chars; model answers can be very long lines.
const SNIPPET_CHARS: usize = 120;

fn snippet(line: &str) -> String {
    let mut out: String = line
        .trim_end()
        .chars()
        .take(SNIPPET_CHARS)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if line.trim_end().chars().nth(SNIPPET_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// A user-supplied value quoted for a message: shortened and with control characters
/// escaped, so an id full of junk cannot break the output.
fn quote(s: &str) -> String {
    const MAX: usize = 60;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    format!("`{out}`")
}

/// Renders diagnostics as miette does for the rule language; colours only when `color`.
pub fn render_errors(errors: &[ScoreError], color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    for e in errors {
        if handler.render_report(&mut out, e).is_err() {
            // Rendering into a String cannot fail short of a bug; keep the essentials anyway.
            out.push_str(&format!("{}: {e}\n", e.full_code()));
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------
// Loading

/// Non-blank lines with their 1-based numbers; bytes, because a line that is not UTF-8
/// is one bad record, not a reason to reject the whole file.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
}

/// One line parsed as a JSON object, or the `bad_record` error saying why not.
fn object(file: &str, no: usize, raw: &[u8]) -> Result<Map<String, Value>, ScoreError> {
    let text = match std::str::from_utf8(raw) {
        Ok(t) => t,
        Err(_) => {
            let lossy = String::from_utf8_lossy(raw);
            return Err(ScoreError::at(
                ErrorCode::BadRecord,
                file,
                no,
                &lossy,
                "line is not valid UTF-8".into(),
            )
            .help("JSONL files must be UTF-8 encoded"));
        }
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad(file, no, text, "line is not a JSON object".into())),
        Err(e) => {
            // serde_json counts lines within this one line; only the column means anything.
            let full = e.to_string();
            let loc = format!(" at line {} column {}", e.line(), e.column());
            let what = full.strip_suffix(&loc).unwrap_or(&full);
            let msg = format!("line is not valid JSON: {what} (column {})", e.column());
            Err(bad(file, no, text, msg))
        }
    }
}

/// One JSON object of a file: its 1-based line, that line's text (for diagnostics), and
/// the object.
pub type Located = (usize, String, Map<String, Value>);

/// Every non-blank line of a JSON Lines file as an object with its line number and text,
/// or the `bad_record` error saying why not.
pub fn jsonl_objects(file: &str, bytes: &[u8]) -> Vec<Result<Located, ScoreError>> {
    lines(bytes)
        .map(|(no, raw)| {
            object(file, no, raw).map(|m| (no, String::from_utf8_lossy(raw).into_owned(), m))
        })
        .collect()
}

fn bad(file: &str, no: usize, text: &str, message: String) -> ScoreError {
    ScoreError::at(ErrorCode::BadRecord, file, no, text, message)
        .help("each non-blank line must be one JSON object, e.g. {\"id\": \"q1\", \"prediction\": \"alice, bob\"}")
}

fn field_error(file: &str, no: usize, text: &str, message: String, example: &str) -> ScoreError {
    ScoreError::at(ErrorCode::BadRecord, file, no, text, message).help(example.to_owned())
}

const GOLD_HELP: &str = "a gold record needs `id` (string) and `answers` (array of strings); \
`hops` and `difficulty` (non-negative integers) and `type` (string) are optional";
const PRED_HELP: &str = "a prediction needs `id` (string) and either `prediction` (string, \
comma-separated answers) or `answers` (array of strings)";

/// The `id` field, or why it is unusable.
fn id_of(m: &Map<String, Value>) -> Result<&str, String> {
    match m.get("id") {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err("field `id` must be a string".into()),
        None => Err("missing field `id`".into()),
    }
}

fn string_array(m: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    let Some(v) = m.get(key) else {
        return Err(format!("missing field `{key}`"));
    };
    let Value::Array(items) = v else {
        return Err(format!("field `{key}` must be an array of strings"));
    };
    items
        .iter()
        .map(|i| match i {
            Value::String(s) => Ok(s.clone()),
            _ => Err(format!("field `{key}` must contain only strings")),
        })
        .collect()
}

/// An optional non-negative integer field; `null` counts as absent.
fn opt_uint(m: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(_) => Err(format!("field `{key}` must be a non-negative integer")),
    }
}

/// `question_type` (synthpipe's field) or `type` as a string. PhantomWiki's own data stores
/// `type` as an integer template index, so integers are accepted and written in decimal;
/// `null` counts as absent.
fn opt_type(m: &Map<String, Value>) -> Result<Option<String>, String> {
    match m.get("question_type").or_else(|| m.get("type")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(_) => Err("field `type` must be a string".into()),
    }
}

/// What parsing a gold file yields even when some lines are bad: the good records, every
/// error, and the ids seen on lines whose `id` was readable (for `unknown_id` checks).
struct GoldParse {
    records: Vec<GoldRecord>,
    errors: Vec<ScoreError>,
    ids: BTreeSet<String>,
    /// False when some line's id could not be read, so "not in gold" cannot be decided.
    ids_complete: bool,
}

fn parse_gold_inner(file: &str, bytes: &[u8]) -> GoldParse {
    let mut out = GoldParse {
        records: Vec::new(),
        errors: Vec::new(),
        ids: BTreeSet::new(),
        ids_complete: true,
    };
    let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
    for (no, raw) in lines(bytes) {
        let m = match object(file, no, raw) {
            Ok(m) => m,
            Err(e) => {
                out.errors.push(e);
                out.ids_complete = false;
                continue;
            }
        };
        let text = String::from_utf8_lossy(raw);
        let id = match id_of(&m) {
            Ok(id) => id,
            Err(msg) => {
                out.errors
                    .push(field_error(file, no, &text, msg, GOLD_HELP));
                out.ids_complete = false;
                continue;
            }
        };
        if let Some(&first) = first_line.get(id) {
            out.errors.push(
                ScoreError::at(
                    ErrorCode::DuplicateId,
                    file,
                    no,
                    &text,
                    format!(
                        "duplicate question id {} (first on line {first})",
                        quote(id)
                    ),
                )
                .label("defined again here")
                .help("every gold question needs a unique `id`"),
            );
            continue;
        }
        first_line.insert(id.to_owned(), no);
        out.ids.insert(id.to_owned());
        let record = (|| {
            Ok::<_, String>(GoldRecord {
                id: id.to_owned(),
                answers: string_array(&m, "answers")?,
                hops: opt_uint(&m, "hops")?,
                difficulty: opt_uint(&m, "difficulty")?,
                kind: opt_type(&m)?,
            })
        })();
        match record {
            Ok(r) => out.records.push(r),
            Err(msg) => out
                .errors
                .push(field_error(file, no, &text, msg, GOLD_HELP)),
        }
    }
    out
}

/// Parses a gold JSONL file (`file` names it in diagnostics). Returns every bad line.
pub fn parse_gold(file: &str, bytes: &[u8]) -> Result<Vec<GoldRecord>, Vec<ScoreError>> {
    let p = parse_gold_inner(file, bytes);
    if p.errors.is_empty() {
        Ok(p.records)
    } else {
        Err(p.errors)
    }
}

fn prediction_answers(m: &Map<String, Value>) -> Result<Vec<String>, String> {
    match (m.get("prediction"), m.contains_key("answers")) {
        (Some(_), true) => Err("give either `prediction` or `answers`, not both".into()),
        (Some(Value::String(s)), false) => Ok(split_prediction(s)),
        (Some(_), false) => Err("field `prediction` must be a string".into()),
        (None, true) => {
            let raw = string_array(m, "answers")?;
            Ok(set_of(raw.iter().map(String::as_str)))
        }
        (None, false) => Err("missing field `prediction` (or `answers`)".into()),
    }
}

/// What parsing a predictions file yields even when some lines are bad: the good,
/// first-seen predictions and every error.
struct PredParse {
    predictions: Vec<Prediction>,
    errors: Vec<ScoreError>,
}

fn parse_predictions_inner(file: &str, bytes: &[u8]) -> PredParse {
    let mut out = PredParse {
        predictions: Vec::new(),
        errors: Vec::new(),
    };
    let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
    for (no, raw) in lines(bytes) {
        let m = match object(file, no, raw) {
            Ok(m) => m,
            Err(e) => {
                out.errors.push(e);
                continue;
            }
        };
        let text = String::from_utf8_lossy(raw);
        let parsed = id_of(&m).and_then(|id| Ok((id, prediction_answers(&m)?)));
        let (id, answers) = match parsed {
            Ok(p) => p,
            Err(msg) => {
                out.errors
                    .push(field_error(file, no, &text, msg, PRED_HELP));
                continue;
            }
        };
        if let Some(&first) = first_line.get(id) {
            out.errors.push(
                ScoreError::at(
                    ErrorCode::DuplicateId,
                    file,
                    no,
                    &text,
                    format!(
                        "duplicate prediction for id {} (first on line {first})",
                        quote(id)
                    ),
                )
                .label("answered again here")
                .help("give one prediction per question; drop or merge the repeated line"),
            );
            continue;
        }
        first_line.insert(id.to_owned(), no);
        out.predictions.push(Prediction {
            id: id.to_owned(),
            answers,
            line: no,
        });
    }
    out
}

/// Parses a predictions JSONL file (`file` names it in diagnostics). Answers come back
/// split and normalised. Returns every bad line, duplicates included; ids are not checked
/// against gold here (`score_bytes` does that).
pub fn parse_predictions(file: &str, bytes: &[u8]) -> Result<Vec<Prediction>, Vec<ScoreError>> {
    let p = parse_predictions_inner(file, bytes);
    if p.errors.is_empty() {
        Ok(p.predictions)
    } else {
        Err(p.errors)
    }
}

/// Scores in-memory JSONL contents; the names only label diagnostics. Reports every
/// problem in both files, gold's first, each file's in line order.
pub fn score_bytes(
    gold_file: &str,
    gold: &[u8],
    predictions_file: &str,
    predictions: &[u8],
) -> Result<Report, Vec<ScoreError>> {
    let g = parse_gold_inner(gold_file, gold);
    let mut p = parse_predictions_inner(predictions_file, predictions);
    // Only judge "not in gold" when every gold id was readable; otherwise a prediction
    // could be blamed for gold's own broken line.
    if g.ids_complete {
        let unknown: Vec<&Prediction> = p
            .predictions
            .iter()
            .filter(|pr| !g.ids.contains(&pr.id))
            .collect();
        let texts = line_texts(predictions, unknown.iter().map(|pr| pr.line).collect());
        for pr in unknown {
            let text = texts.get(&pr.line).map_or("", String::as_str);
            p.errors.push(
                ScoreError::at(
                    ErrorCode::UnknownId,
                    predictions_file,
                    pr.line,
                    text,
                    format!("prediction for unknown question id {}", quote(&pr.id)),
                )
                .label("not in the gold file")
                .help("check that the predictions were made for this gold file"),
            );
        }
        p.errors.sort_by_key(|e| e.line);
    }
    let mut errors = g.errors;
    errors.extend(p.errors);
    if errors.is_empty() {
        Ok(evaluate(&g.records, &p.predictions))
    } else {
        Err(errors)
    }
}

/// The text of some 1-based lines, in one pass (a wrong gold file can make every
/// prediction an unknown id).
fn line_texts(bytes: &[u8], wanted: BTreeSet<usize>) -> BTreeMap<usize, String> {
    if wanted.is_empty() {
        return BTreeMap::new();
    }
    lines(bytes)
        .filter(|(n, _)| wanted.contains(n))
        .map(|(n, l)| (n, String::from_utf8_lossy(l).into_owned()))
        .collect()
}

/// Reads and scores two JSONL files. Unreadable files are reported like bad lines, and
/// the other file is still checked.
pub fn score_files(gold: &Path, predictions: &Path) -> Result<Report, Vec<ScoreError>> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| ScoreError {
            code: ErrorCode::Read,
            scope: Scope::Score,
            file: p.display().to_string(),
            line: None,
            message: format!("cannot read the file: {e}"),
            help: "check the path and its permissions".into(),
            snippet: None,
        })
    };
    let gold_name = gold.display().to_string();
    let pred_name = predictions.display().to_string();
    match (read(gold), read(predictions)) {
        (Ok(g), Ok(p)) => score_bytes(&gold_name, &g, &pred_name, &p),
        (Err(ge), Err(pe)) => Err(vec![ge, pe]),
        (Err(ge), Ok(p)) => {
            let mut errors = vec![ge];
            errors.extend(parse_predictions_inner(&pred_name, &p).errors);
            Err(errors)
        }
        (Ok(g), Err(pe)) => {
            let mut errors = parse_gold_inner(&gold_name, &g).errors;
            errors.push(pe);
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn assert_scores(s: Scores, em: f64, p: f64, r: f64, f1: f64) {
        assert!(
            close(s.em, em) && close(s.precision, p) && close(s.recall, r) && close(s.f1, f1),
            "got {s:?}, want em={em} p={p} r={r} f1={f1}"
        );
    }

    #[test]
    fn exact_match() {
        let s = score_answers(&v(&["alice", "bob"]), &split_prediction("bob, alice"));
        assert_scores(s, 1.0, 1.0, 1.0, 1.0);
    }

    #[test]
    fn partial_overlap() {
        let s = score_answers(&v(&["a", "b"]), &split_prediction("a, c"));
        assert_scores(s, 0.0, 0.5, 0.5, 0.5);
        // Unequal sizes: P = 1/3, R = 1/1, F1 = 2·(1/3)/(4/3) = 0.5.
        let s = score_answers(&v(&["a"]), &split_prediction("a,b,c"));
        assert_scores(s, 0.0, 1.0 / 3.0, 1.0, 0.5);
        let s = score_answers(&v(&["a"]), &split_prediction("b"));
        assert_scores(s, 0.0, 0.0, 0.0, 0.0);
    }

    #[test]
    fn case_and_whitespace_are_normalised() {
        assert_eq!(normalize("  Alice Smith \t"), "alice smith");
        assert_eq!(
            split_prediction(" Alice ,BOB,,  ,bob "),
            v(&["alice", "bob"])
        );
        let s = score_answers(&v(&[" ALICE", "Bob "]), &split_prediction("alice,  bob"));
        assert_scores(s, 1.0, 1.0, 1.0, 1.0);
        // Gold answers are not comma-split: one gold answer, two predicted pieces.
        let s = score_answers(&v(&["a, b"]), &split_prediction("a, b"));
        assert_scores(s, 0.0, 0.0, 0.0, 0.0);
        // Pre-split `answers` predictions are normalised too.
        let s = score_answers(&v(&["a"]), &v(&[" A "]));
        assert_scores(s, 1.0, 1.0, 1.0, 1.0);
    }

    #[test]
    fn empty_sets() {
        assert_scores(score_answers(&[], &[]), 1.0, 1.0, 1.0, 1.0);
        assert_scores(
            score_answers(&[], &split_prediction(" , ")),
            1.0,
            1.0,
            1.0,
            1.0,
        );
        assert_scores(
            score_answers(&[], &split_prediction("a")),
            0.0,
            0.0,
            0.0,
            0.0,
        );
        assert_scores(score_answers(&v(&["a"]), &[]), 0.0, 0.0, 0.0, 0.0);
        assert_scores(
            score_answers(&v(&["a"]), &split_prediction("")),
            0.0,
            0.0,
            0.0,
            0.0,
        );
    }

    #[test]
    fn duplicates_count_once() {
        assert_eq!(split_prediction("a, A, a "), v(&["a"]));
        let s = score_answers(&v(&["a", "b"]), &split_prediction("a, a, a"));
        assert_scores(s, 0.0, 1.0, 0.5, 2.0 / 3.0);
        let s = score_answers(&v(&["a", "a"]), &v(&["a"]));
        assert_scores(s, 1.0, 1.0, 1.0, 1.0);
    }

    #[test]
    fn mean_of_nothing_is_zero_not_nan() {
        assert_eq!(Scores::mean(&[]), Scores::default());
        let m = Scores::mean(&[Scores::PERFECT, Scores::default()]);
        assert_scores(m, 0.5, 0.5, 0.5, 0.5);
    }

    #[test]
    fn report_breakdowns_and_missing() {
        let gold = concat!(
            r#"{"id":"q1","answers":["a"],"hops":1,"difficulty":2,"type":"x","question":"?"}"#,
            "\n\n",
            r#"{"id":"q2","answers":["a","b"],"hops":2,"type":7}"#,
            "\n",
            r#"{"id":"q3","answers":[]}"#,
            "\n"
        );
        let preds = concat!(
            r#"{"id":"q1","prediction":"A"}"#,
            "\n",
            r#"{"id":"q2","answers":["a"," C "]}"#,
            "\n"
        );
        let r = score_bytes("g", gold.as_bytes(), "p", preds.as_bytes()).unwrap();
        assert_eq!(r.overall.questions, 3);
        assert_eq!(r.overall.missing, 1);
        // q1 perfect, q2 P=R=F1=0.5, q3 missing but gold empty → perfect.
        assert_scores(r.overall.scores, 2.0 / 3.0, 2.5 / 3.0, 2.5 / 3.0, 2.5 / 3.0);
        assert_eq!(r.by_hops.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(r.by_difficulty.len(), 1);
        assert_eq!(
            r.by_type.keys().cloned().collect::<Vec<_>>(),
            v(&["7", "x"])
        );
        assert_scores(r.by_hops[&2].scores, 0.0, 0.5, 0.5, 0.5);
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert!(r.table().contains("hops=2"));
    }

    #[test]
    fn all_errors_are_collected() {
        let gold = concat!(
            r#"{"id":"q1","answers":["a"]}"#,
            "\n",
            r#"{"id":"q1","answers":["b"]}"#,
            "\n",
            r#"{"id":"q2","answers":"a"}"#,
            "\n"
        );
        let preds = concat!(
            "not json\n",
            r#"{"id":"q1","prediction":"a"}"#,
            "\n",
            r#"{"id":"q1","prediction":"b"}"#,
            "\n",
            r#"{"id":"zz","prediction":"b"}"#,
            "\n",
            r#"{"id":"q2"}"#,
            "\n",
            r#"[1,2]"#,
            "\n"
        );
        let errs = score_bytes("g", gold.as_bytes(), "p", preds.as_bytes()).unwrap_err();
        let got: Vec<(&str, Option<usize>, ErrorCode)> = errs
            .iter()
            .map(|e| (e.file.as_str(), e.line, e.code))
            .collect();
        assert_eq!(
            got,
            vec![
                ("g", Some(2), ErrorCode::DuplicateId),
                ("g", Some(3), ErrorCode::BadRecord),
                ("p", Some(1), ErrorCode::BadRecord),
                ("p", Some(3), ErrorCode::DuplicateId),
                ("p", Some(4), ErrorCode::UnknownId),
                ("p", Some(5), ErrorCode::BadRecord),
                ("p", Some(6), ErrorCode::BadRecord),
            ]
        );
        let out = render_errors(&errs, false);
        assert!(out.contains("synthpipe::score::unknown_id"), "{out}");
        assert!(out.contains("[p:4:1]"), "{out}");
        assert!(errs[4].to_string().starts_with("p:4: "), "{}", errs[4]);
    }

    #[test]
    fn unknown_ids_are_not_judged_against_a_broken_gold_file() {
        let gold = "{\"id\":\"q1\",\"answers\":[]}\n{oops\n";
        let preds = "{\"id\":\"q9\",\"prediction\":\"\"}\n";
        let errs = score_bytes("g", gold.as_bytes(), "p", preds.as_bytes()).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].code, ErrorCode::BadRecord);
    }

    #[test]
    fn codes_are_unique_and_prefixed() {
        let names: BTreeSet<_> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert_eq!(ErrorCode::UnknownId.full(), "synthpipe::score::unknown_id");
    }

    /// SplitMix64: seeded and portable, so the fuzz cases are the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }
    }

    #[test]
    fn never_panics_on_random_or_truncated_input() {
        let gold = "{\"id\":\"q1\",\"answers\":[\"a\",\"b\"],\"hops\":2}\n\
                    {\"id\":\"q2\",\"answers\":[\"ü\"],\"type\":\"t\"}\n";
        let valid =
            "{\"id\":\"q1\",\"prediction\":\"a, ü\"}\n{\"id\":\"q2\",\"answers\":[\"x\"]}\n";
        let alphabet = b"{}[]\":,\\ \n\r\tidpredictionanswers0123-.eE\xC3\xBC\xFF\x00";
        let mut rng = Rng(0x5EED);
        for round in 0..3000 {
            let mut bytes = valid.as_bytes().to_vec();
            match round % 4 {
                0 => bytes.truncate(rng.below(bytes.len() + 1)),
                1 => {
                    for _ in 0..=rng.below(4) {
                        let i = rng.below(bytes.len());
                        bytes[i] = alphabet[rng.below(alphabet.len())];
                    }
                }
                2 => {
                    bytes = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
                }
                _ => {
                    bytes = (0..rng.below(200))
                        .map(|_| alphabet[rng.below(alphabet.len())])
                        .collect();
                }
            }
            // Both roles: random predictions against good gold, and random gold.
            for (g, p) in [
                (gold.as_bytes(), &bytes[..]),
                (&bytes[..], valid.as_bytes()),
            ] {
                match score_bytes("g", g, "p", p) {
                    Ok(r) => {
                        let _ = r.table();
                        assert!(serde_json::to_string(&r).is_ok());
                    }
                    Err(errs) => {
                        assert!(!errs.is_empty());
                        let _ = render_errors(&errs, round % 2 == 0);
                    }
                }
            }
        }
    }
}
