//! Datasets derived from datasets: `split` (train / dev / test by universe, never by
//! question) and `mix` (several datasets sampled with weights and filters), record by record
//! with the lines copied as they are, and the manifest of a derived dataset.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{Article, DerivedCounts, DerivedManifest, Entity, FILES, Fact, Histograms, Question};
use crate::util::rng::Rng;

/// What split and mix read of a record (its line is copied as it is): read through the
/// record types of `super`, so a record that is not one is an error at its line.
#[derive(Default)]
struct Meta {
    id: String,
    universe: String,
    seed: Option<u64>,
    ty: String,
    relation: String,
    question_type: String,
    difficulty: i64,
    hops: usize,
    template: String,
    answerable: bool,
}

/// Line `n` (0-based) of `file`, read as the record type of that file.
fn meta(line: &str, file: &Path, n: usize) -> Result<Meta, String> {
    fn read<T: serde::de::DeserializeOwned>(
        line: &str,
        file: &Path,
        n: usize,
    ) -> Result<T, String> {
        serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: not a dataset record: {e}", file.display(), n + 1))
    }
    let name = file
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    Ok(match name {
        "entities.jsonl" => {
            let e: Entity = read(line, file, n)?;
            Meta {
                universe: e.universe,
                ty: e.ty,
                ..Meta::default()
            }
        }
        "facts.jsonl" => {
            let f: Fact = read(line, file, n)?;
            Meta {
                universe: f.universe,
                relation: f.relation,
                ..Meta::default()
            }
        }
        "articles.jsonl" => {
            let a: Article = read(line, file, n)?;
            Meta {
                universe: a.universe,
                ..Meta::default()
            }
        }
        _ => {
            let q: Question = read(line, file, n)?;
            Meta {
                answerable: !q.answers.is_empty(),
                id: q.id,
                universe: q.universe,
                seed: Some(q.seed),
                question_type: q.question_type,
                difficulty: q.difficulty,
                hops: q.hops,
                template: q.template,
                ..Meta::default()
            }
        }
    })
}

/// Reads a dataset's file line by line.
fn each_line(
    dir: &Path,
    file: &str,
    mut f: impl FnMut(&str, Meta) -> Result<(), String>,
) -> Result<(), String> {
    let path = dir.join(file);
    let reader = match File::open(&path) {
        Ok(r) => BufReader::new(r),
        // Questions are required (validation checks them); the other files may be absent
        // in hand-made datasets.
        Err(_) if file != "questions.jsonl" => return Ok(()),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let m = meta(&line, &path, n)?;
        f(&line, m)?;
    }
    Ok(())
}

/// Writes a derived dataset (split part, mix) and its manifest, counting as it goes.
struct DatasetWriter {
    dir: PathBuf,
    files: Vec<(BufWriter<File>, blake3::Hasher)>,
    entities: BTreeMap<String, usize>,
    facts: BTreeMap<String, usize>,
    articles: usize,
    questions: usize,
    histograms: Histograms,
    universes: Vec<(String, Option<u64>)>,
    seen: BTreeSet<String>,
    /// Rules digest and parameters of every dataset the records came from (provenance).
    sources: Vec<Json>,
}

impl DatasetWriter {
    fn create(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        let files = FILES
            .iter()
            .map(|f| {
                let p = dir.join(f);
                File::create(&p)
                    .map(|h| (BufWriter::new(h), blake3::Hasher::new()))
                    .map_err(|e| format!("cannot write `{}`: {e}", p.display()))
            })
            .collect::<Result<_, _>>()?;
        Ok(DatasetWriter {
            dir: dir.to_path_buf(),
            files,
            entities: BTreeMap::new(),
            facts: BTreeMap::new(),
            articles: 0,
            questions: 0,
            histograms: Histograms::default(),
            universes: Vec::new(),
            seen: BTreeSet::new(),
            sources: Vec::new(),
        })
    }

    /// Records where a source dataset came from: its own sources if it is derived, else its
    /// rules digest and parameters.
    fn source(&mut self, dir: &Path) {
        let Ok(text) = std::fs::read(dir.join("manifest.json")) else {
            return;
        };
        let Ok(m) = serde_json::from_slice::<Json>(&text) else {
            return;
        };
        let found = match m["sources"].as_array() {
            Some(s) => s.clone(),
            None => vec![json!({"rules_digest": m["rules_digest"], "params": m["params"]})],
        };
        for f in found {
            if !self.sources.contains(&f) {
                self.sources.push(f);
            }
        }
    }

    fn universe(&mut self, id: &str, seed: Option<u64>) {
        if self.seen.insert(id.to_string()) {
            self.universes.push((id.to_string(), seed));
        }
    }

    /// Appends a record line to file `i` (an index into `FILES`).
    fn push(&mut self, i: usize, line: &str, m: &Meta) -> Result<(), String> {
        match i {
            0 => *self.entities.entry(m.ty.clone()).or_default() += 1,
            1 => *self.facts.entry(m.relation.clone()).or_default() += 1,
            2 => self.articles += 1,
            _ => {
                self.questions += 1;
                self.histograms.add(
                    &m.question_type,
                    m.difficulty,
                    m.hops,
                    &m.template,
                    m.answerable,
                );
                self.universe(&m.universe, m.seed);
            }
        }
        let (w, h) = &mut self.files[i];
        h.update(line.as_bytes());
        h.update(b"\n");
        writeln!(w, "{line}").map_err(|e| format!("cannot write `{}`: {e}", self.dir.display()))
    }

    fn finish(self, derived_by: &str) -> Result<(), String> {
        let mut digests = BTreeMap::new();
        for ((w, h), name) in self.files.into_iter().zip(FILES) {
            w.into_inner()
                .map_err(|e| format!("cannot write `{}`: {e}", self.dir.display()))?;
            digests.insert(name, format!("b3:{}", h.finalize().to_hex()));
        }
        let manifest = DerivedManifest {
            counts: DerivedCounts {
                articles: self.articles,
                entities: self.entities,
                facts: self.facts,
                questions: self.questions,
            },
            derived_by: derived_by.to_string(),
            files: digests
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            histograms: serde_json::to_value(&self.histograms).map_err(|e| e.to_string())?,
            seeds: self.universes.iter().map(|(_, s)| *s).collect(),
            sources: self.sources,
            universes: self.universes.into_iter().map(|(u, _)| u).collect(),
        };
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())? + "\n";
        std::fs::write(self.dir.join("manifest.json"), text)
            .map_err(|e| format!("cannot write `{}`: {e}", self.dir.display()))
    }
}

/// A dataset's universes in file order, with their seeds, from its manifest.
fn universes_of(dir: &Path) -> Result<Vec<(String, u64)>, String> {
    let path = dir.join("manifest.json");
    let text =
        std::fs::read(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let m: Json = serde_json::from_slice(&text)
        .map_err(|e| format!("`{}` is not JSON: {e}", path.display()))?;
    let (Some(us), Some(ss)) = (m["universes"].as_array(), m["seeds"].as_array()) else {
        return Err(format!(
            "`{}` lists no `universes` and `seeds`; was it written by synthpipe?",
            path.display()
        ));
    };
    us.iter()
        .zip(ss)
        .map(|(u, s)| match (u.as_str(), s.as_u64()) {
            (Some(u), Some(s)) => Ok((u.to_string(), s)),
            _ => Err(format!(
                "`{}` has a malformed universe list",
                path.display()
            )),
        })
        .collect()
}

const PARTS: [&str; 3] = ["train", "dev", "test"];

/// One part of a split: a share of the universes, or their seeds.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Part {
    Share { share: f64 },
    Seeds { seeds: Vec<u64> },
}

impl Part {
    fn share(&self) -> Option<f64> {
        match self {
            Part::Share { share } => Some(*share),
            Part::Seeds { .. } => None,
        }
    }
    fn seeds(&self) -> &[u64] {
        match self {
            Part::Seeds { seeds } => seeds,
            Part::Share { .. } => &[],
        }
    }
}

/// Splits the dataset `src` by universe into train / dev / test (`parts` and `outs` in that
/// order): shares drawn with `seed`, or explicit seed lists.
pub fn split(src: &Path, parts: [&Part; 3], seed: u64, outs: [&Path; 3]) -> Result<(), String> {
    let universes = universes_of(src)?;
    let n = universes.len();
    // part index of each universe (None: in no part).
    let mut part: Vec<Option<usize>> = vec![None; n];
    let shares: Vec<Option<f64>> = parts.iter().map(|p| p.share()).collect();
    if shares.iter().all(Option::is_some) {
        let mut order: Vec<usize> = (0..n).collect();
        Rng::stream(seed, "split").shuffle(&mut order);
        // Largest remainder: part sizes add up to n exactly.
        let exact: Vec<f64> = shares.iter().map(|s| s.unwrap_or(0.0) * n as f64).collect();
        let mut sizes: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
        let mut by_rest: Vec<usize> = (0..3).collect();
        by_rest.sort_by(|&a, &b| {
            (exact[b] - exact[b].floor())
                .total_cmp(&(exact[a] - exact[a].floor()))
                .then(a.cmp(&b))
        });
        let mut left = n - sizes.iter().sum::<usize>();
        for &i in by_rest.iter().cycle() {
            if left == 0 {
                break;
            }
            sizes[i] += 1;
            left -= 1;
        }
        let mut it = order.into_iter();
        for (pi, &size) in sizes.iter().enumerate() {
            for u in it.by_ref().take(size) {
                part[u] = Some(pi);
            }
        }
    } else {
        let present: BTreeSet<u64> = universes.iter().map(|(_, s)| *s).collect();
        for (pi, p) in PARTS.iter().enumerate() {
            for &s in parts[pi].seeds() {
                if !present.contains(&s) {
                    let shown: Vec<String> = present.iter().take(20).map(u64::to_string).collect();
                    return Err(format!(
                        "`{p}` asks for seed {s}, which the dataset does not have (its seeds: {}{})",
                        shown.join(", "),
                        if present.len() > 20 { ", …" } else { "" }
                    ));
                }
                for (u, (_, us)) in universes.iter().enumerate() {
                    if *us == s {
                        part[u] = Some(pi);
                    }
                }
            }
        }
    }
    let of: BTreeMap<&str, usize> = universes
        .iter()
        .enumerate()
        .filter_map(|(u, (id, _))| part[u].map(|p| (id.as_str(), p)))
        .collect();
    let mut writers = outs
        .iter()
        .map(|p| DatasetWriter::create(p))
        .collect::<Result<Vec<_>, _>>()?;
    for w in &mut writers {
        w.source(src);
    }
    // Every part lists its universes in source order, questions or not.
    for (u, (id, seed)) in universes.iter().enumerate() {
        if let Some(p) = part[u] {
            writers[p].universe(id, Some(*seed));
        }
    }
    let mut ids = BTreeSet::new();
    for (i, file) in FILES.iter().enumerate() {
        each_line(src, file, |line, m| {
            if *file == "questions.jsonl" && !ids.insert(m.id.clone()) {
                return Err(format!(
                    "error[synthpipe::split::duplicate_id]: question id `{}` is used twice in `{}`\n  help: ids must be unique in a dataset; regenerate it",
                    m.id,
                    src.join(file).display()
                ));
            }
            match of.get(m.universe.as_str()) {
                Some(&p) => writers[p].push(i, line, &m),
                None => Ok(()),
            }
        })?;
    }
    for w in writers {
        w.finish("split")?;
    }
    Ok(())
}

/// An inclusive range with open ends: `[lo, hi]`.
pub type Range = [Option<i64>; 2];

fn in_range(range: &Option<Range>, x: i64) -> bool {
    let Some([lo, hi]) = range else {
        return true;
    };
    lo.is_none_or(|l| x >= l) && hi.is_none_or(|h| x <= h)
}

/// A dataset to mix, with its weight and filters.
#[derive(Clone, Debug)]
pub struct Source {
    pub dir: PathBuf,
    pub weight: f64,
    pub difficulty: Option<Range>,
    pub hops: Option<Range>,
    pub question_type: Option<Vec<String>>,
}

/// Concatenates and samples `sources` into the dataset `out`: `questions` drawn in all by
/// weight (every question that passes the filters when `None`), with `seed`; the articles,
/// entities and facts of every universe a chosen question is about come along.
pub fn mix(
    sources: &[Source],
    questions: Option<u64>,
    seed: u64,
    out: &Path,
) -> Result<(), String> {
    // (source, line) of every question that passes its source's filters.
    let mut pools: Vec<Vec<String>> = Vec::new();
    let mut dirs = Vec::new();
    for s in sources {
        let dir = s.dir.as_path();
        dirs.push(dir.to_path_buf());
        let mut pool = Vec::new();
        each_line(dir, "questions.jsonl", |line, m| {
            let keep = in_range(&s.difficulty, m.difficulty)
                && in_range(&s.hops, m.hops as i64)
                && s.question_type
                    .as_ref()
                    .is_none_or(|t| t.contains(&m.question_type));
            if keep {
                pool.push(line.to_string());
            }
            Ok(())
        })?;
        pools.push(pool);
    }
    let mut chosen: Vec<(usize, String)> = Vec::new();
    match questions {
        None => {
            for (i, pool) in pools.into_iter().enumerate() {
                chosen.extend(pool.into_iter().map(|l| (i, l)));
            }
        }
        Some(total) => {
            let weights: Vec<f64> = sources.iter().map(|s| s.weight).collect();
            let sum: f64 = weights.iter().sum();
            if sum <= 0.0 {
                return Err("the sources' weights add up to 0".into());
            }
            let exact: Vec<f64> = weights.iter().map(|w| w / sum * total as f64).collect();
            let mut quota: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
            let mut by_rest: Vec<usize> = (0..quota.len()).collect();
            by_rest.sort_by(|&a, &b| {
                (exact[b] - exact[b].floor())
                    .total_cmp(&(exact[a] - exact[a].floor()))
                    .then(a.cmp(&b))
            });
            let mut left = total as usize - quota.iter().sum::<usize>();
            for &i in by_rest.iter().cycle() {
                if left == 0 {
                    break;
                }
                if weights[i] > 0.0 {
                    quota[i] += 1;
                    left -= 1;
                }
            }
            for (i, mut pool) in pools.into_iter().enumerate() {
                if quota[i] > pool.len() {
                    return Err(format!(
                        "source {} has {} questions passing its filters but its weight asks for {}; lower `questions` or its weight, or widen its filters",
                        i + 1,
                        pool.len(),
                        quota[i]
                    ));
                }
                Rng::stream(seed, &format!("mix/{i}")).shuffle(&mut pool);
                pool.truncate(quota[i]);
                chosen.extend(pool.into_iter().map(|l| (i, l)));
            }
            Rng::stream(seed, "mix/order").shuffle(&mut chosen);
        }
    }
    let mut w = DatasetWriter::create(out)?;
    for d in &dirs {
        w.source(d);
    }
    let mut wanted: Vec<BTreeSet<String>> = vec![BTreeSet::new(); dirs.len()];
    let mut taken = BTreeSet::new();
    let mut q_lines = Vec::new();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for (i, line) in &chosen {
        let m = meta(line, &dirs[*i].join("questions.jsonl"), 0)?;
        // Evaluation, scoring and paired comparisons join by id: a repeat is refused, never
        // written or merged.
        if let Some(first) = ids.insert(m.id.clone(), *i) {
            let whence = if first == *i {
                format!("twice in source {} (`{}`)", i + 1, dirs[*i].display())
            } else {
                format!(
                    "in source {} (`{}`) and in source {} (`{}`)",
                    first + 1,
                    dirs[first].display(),
                    i + 1,
                    dirs[*i].display()
                )
            };
            return Err(format!(
                "error[synthpipe::mix::duplicate_id]: question id `{}` is {whence}\n  help: mix datasets whose ids differ (synthpipe's ids hash their universe, so regenerate hand-edited or old datasets), or drop one source",
                m.id
            ));
        }
        // A universe that two sources share is copied once, from the first.
        if !taken.contains(&m.universe) || wanted[*i].contains(&m.universe) {
            taken.insert(m.universe.clone());
            wanted[*i].insert(m.universe.clone());
        }
        q_lines.push((line, m));
    }
    for (fi, file) in FILES.iter().enumerate().take(3) {
        for (i, dir) in dirs.iter().enumerate() {
            each_line(dir, file, |line, m| {
                if wanted[i].contains(&m.universe) {
                    w.push(fi, line, &m)
                } else {
                    Ok(())
                }
            })?;
        }
    }
    for (line, m) in q_lines {
        w.push(3, line, &m)?;
    }
    w.finish("mix")
}
