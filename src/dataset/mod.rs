//! Datasets as files (docs/dataset.md): the records of `questions.jsonl` and
//! `articles.jsonl` as readers see them, a dataset folder loaded for prompting (`Dataset`),
//! and the datasets derived from others (`derive`: split and mix).

pub mod derive;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The data files of a dataset, in the order writers fill them.
pub const FILES: [&str; 4] = [
    "entities.jsonl",
    "facts.jsonl",
    "articles.jsonl",
    "questions.jsonl",
];

/// One entity, a line of `entities.jsonl` (fields in the order they are written).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub attributes: Vec<Attribute>,
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub universe: String,
}

/// An attribute's value, as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub value: String,
}

/// One fact, a line of `facts.jsonl`: a relation between two entities in their roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub args: [Arg; 2],
    /// The fact's own attributes (a signing's year); absent where the relation has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Attribute>,
    pub derived: bool,
    pub relation: String,
    pub universe: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arg {
    pub entity: String,
    pub role: String,
}

/// One article, a line of `articles.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    /// The universe the article belongs to.
    pub universe: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub name: String,
    pub title: String,
    pub text: String,
    pub facts: Vec<ArticleFact>,
}

/// A fact an article states: an attribute's values, or an entity's partners in one
/// relation under one noun ("mother", "friends").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleFact {
    /// `attribute` or `relation`.
    pub kind: String,
    /// The attribute or relation.
    pub name: String,
    /// For a relation: the role the partners fill (empty for an attribute).
    pub role: String,
    pub noun: String,
    pub values: Vec<String>,
}

/// One question, a line of `questions.jsonl` (docs/dataset.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub id: String,
    /// The universe the question is about.
    pub universe: String,
    pub seed: u64,
    pub template: String,
    pub template_id: String,
    pub question_type: String,
    pub text: String,
    pub answers: Vec<String>,
    pub difficulty: i64,
    pub hops: usize,
    pub program: Program,
    /// `intermediate[i]` is the output of `program.steps[i]`; the last one is `answers`.
    pub intermediate: Vec<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    pub steps: Vec<Step>,
}

/// One step of a question's program. Every step has every field (unused ones are empty
/// strings or lists, never `null`) so all records share one schema from the first line on,
/// as columnar loaders such as Hugging Face `datasets` require.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub op: String,
    /// Indices of the steps whose outputs this one reads.
    pub inputs: Vec<usize>,
    /// Entity type of the output, when it is a set of entities.
    #[serde(rename = "type")]
    pub ty: String,
    pub name: String,
    pub attribute: String,
    pub value: String,
    /// The relations read: one for a hop, every candidate for `related`.
    pub relations: Vec<Reading>,
}

/// A relation read in one direction: from the entity in `from_role` to its partners in
/// `to_role`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    pub relation: String,
    pub from_role: String,
    pub to_role: String,
}

/// The manifest of a generated dataset, `manifest.json`. Nothing in it depends
/// on the synthpipe version or the clock, so that a pipeline's downstream stages see the same
/// bytes for the same data.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub rules_digest: String,
    /// One universe per seed, in this order in every file.
    pub seeds: Vec<u64>,
    /// Universe id of each seed (the `universe` field of every record).
    pub universes: Vec<String>,
    pub params: Json,
    pub derived_facts: bool,
    pub counts: Counts,
    pub histograms: Histograms,
    /// File name → `b3:` digest of its bytes.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Counts {
    pub entities: BTreeMap<String, usize>,
    pub facts: BTreeMap<String, usize>,
    pub articles: usize,
    pub questions: usize,
    pub template_variants: usize,
    /// Template → drawn questions dropped because slots that must denote different entities
    /// ("Who was born first, X or X?") came out the same; every template switched on, 0
    /// included. A template that can never be filled that way has 0 questions and a count here.
    pub degenerate: BTreeMap<String, usize>,
    /// Template → walk filter in force → what it removed over all universes: hops the walk
    /// steered away from (`backtrack`) or drawn questions dropped (the others). Absent when
    /// no filter is in force (PhantomWiki's family).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub removed: BTreeMap<String, BTreeMap<String, usize>>,
    /// Each template switched on, and each `whose` start (`start whose T.a`), that produced no
    /// question in any universe, with why. Absent when everything produced questions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub no_questions: BTreeMap<String, String>,
}

impl Counts {
    /// One warning per template or `whose` start that produced no question, as
    /// `generate` and the pipeline print them.
    pub fn warnings(&self) -> Vec<String> {
        self.no_questions
            .iter()
            .map(|(what, why)| {
                let what = match what.strip_prefix("start whose ") {
                    Some(s) => format!("`start whose {s}`"),
                    None => format!("template `{what}`"),
                };
                format!(
                    "warning[synthpipe::generate::no_questions]: {what} produced no question: {why}\n  \
                     help: the manifest lists it under `counts.no_questions`; see docs/rules.md, \
                     \"When a template produces nothing\""
                )
            })
            .collect()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Histograms {
    pub question_type: BTreeMap<String, usize>,
    pub difficulty: BTreeMap<i64, usize>,
    pub hops: BTreeMap<usize, usize>,
    /// Every template switched on, with how many questions it produced (possibly 0).
    pub template: BTreeMap<String, usize>,
    pub answerable: BTreeMap<String, usize>,
}

impl Histograms {
    /// Counts one question in every histogram.
    pub fn add(
        &mut self,
        question_type: &str,
        difficulty: i64,
        hops: usize,
        template: &str,
        answerable: bool,
    ) {
        *self
            .question_type
            .entry(question_type.to_string())
            .or_default() += 1;
        *self.difficulty.entry(difficulty).or_default() += 1;
        *self.hops.entry(hops).or_default() += 1;
        *self.template.entry(template.to_string()).or_default() += 1;
        let key = if answerable {
            "answerable"
        } else {
            "unanswerable"
        };
        *self.answerable.entry(key.into()).or_default() += 1;
    }
}

/// The manifest of a derived dataset (`split`, `mix`): where its records came from, its
/// universes, counts, histograms and file digests. Fields in the order they are written.
#[derive(Debug, Serialize, Deserialize)]
pub struct DerivedManifest {
    pub counts: DerivedCounts,
    pub derived_by: String,
    pub files: BTreeMap<String, String>,
    /// The histograms with their keys in sorted order, as derived manifests have always
    /// written them.
    pub histograms: serde_json::Value,
    pub seeds: Vec<Option<u64>>,
    /// Rules digest and parameters of every generated dataset the records came from.
    pub sources: Vec<serde_json::Value>,
    pub universes: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DerivedCounts {
    pub articles: usize,
    pub entities: BTreeMap<String, usize>,
    pub facts: BTreeMap<String, usize>,
    pub questions: usize,
}

/// The questions of a dataset folder and the evidence of each universe (its articles'
/// text in file order).
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub questions: Vec<Question>,
    /// synthpipe's evidence: the articles one after another.
    pub evidence: BTreeMap<String, String>,
    /// Each universe's articles, as written (the paper's prompts separate them).
    pub articles: BTreeMap<String, Vec<String>>,
}

/// Every record of a JSON Lines file (blank lines skipped).
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(file: &Path) -> Result<Vec<T>, String> {
    let f =
        std::fs::File::open(file).map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .map_err(|e| format!("{}:{}: not a dataset record: {e}", file.display(), n + 1))?,
        );
    }
    Ok(out)
}

impl Dataset {
    /// Reads `questions.jsonl` and `articles.jsonl` of a dataset folder.
    pub fn load(dir: &Path) -> Result<Dataset, String> {
        let file = dir.join("questions.jsonl");
        let questions: Vec<Question> = read_jsonl(&file)?;
        // Predictions, scores and paired comparisons join by id.
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for (n, q) in questions.iter().enumerate() {
            if let Some(f) = first.insert(q.id.as_str(), n + 1) {
                return Err(format!(
                    "error[synthpipe::dataset::duplicate_id]: `{}`: question {} has the id `{}` of question {f}\n  help: ids must be unique in a dataset; regenerate it (synthpipe's ids hash their universe) or remove the repeat",
                    file.display(),
                    n + 1,
                    q.id
                ));
            }
        }
        let articles: Vec<Article> = read_jsonl(&dir.join("articles.jsonl"))?;
        let mut evidence: BTreeMap<String, String> = BTreeMap::new();
        let mut by_universe: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in articles {
            let e = evidence.entry(a.universe.clone()).or_default();
            if !e.is_empty() {
                e.push('\n');
            }
            e.push_str(a.text.trim_end());
            e.push('\n');
            by_universe.entry(a.universe).or_default().push(a.text);
        }
        Ok(Dataset {
            questions,
            evidence,
            articles: by_universe,
        })
    }
}
