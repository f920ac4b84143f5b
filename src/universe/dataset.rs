//! Generating a dataset into a directory: `entities.jsonl`, `facts.jsonl` (base facts, derived
//! ones on request), `articles.jsonl`, `questions.jsonl` and `manifest.json` with parameters,
//! counts, histograms and content digests. This is the library call behind
//! `synthpipe generate` and the pipeline's `generate` stage.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use super::GenError;
use super::articles;
use super::compose::Composer;
use super::params::Params;
use super::solve::Solver;
use super::world::{self, World, render, render_value};
use crate::dataset::{Arg, Attribute, Counts, Entity, FILES, Fact, Histograms, Manifest, Question};
use crate::lang::ir::{Ir, RelationDef};
use crate::util::progress::Progress;

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Also write derived facts to `facts.jsonl`.
    pub derived: bool,
    /// Show a progress bar (only ever drawn on a terminal).
    pub progress: bool,
}

/// The id of the universe that `ir` with `params` and `seed` generates: records from datasets
/// of different domains or settings can then be mixed and still be joined (a question to its
/// universe's articles) without ambiguity.
pub fn universe_id(ir: &Ir, params: &Params, seed: u64) -> String {
    let mut h = blake3::Hasher::new();
    h.update(ir.digest().as_bytes());
    h.update(params_json(params).to_string().as_bytes());
    h.update(&seed.to_le_bytes());
    format!("u{}", &h.finalize().to_hex()[..16])
}

/// A finished run: its manifest, and how long each stage took (not part of the dataset: the
/// bytes must not depend on timing).
#[derive(Debug)]
pub struct Generated {
    pub manifest: Manifest,
    pub seconds: Vec<(&'static str, f64)>,
}

struct Stopwatch {
    last: std::time::Instant,
    laps: Vec<(&'static str, f64)>,
}

impl Default for Stopwatch {
    fn default() -> Self {
        Stopwatch {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }
}

impl Stopwatch {
    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((name, (now - self.last).as_secs_f64()));
        self.last = now;
    }
}

/// Writes one output file under a temporary name, hashing as it goes.
struct Out {
    tmp: PathBuf,
    path: PathBuf,
    file: BufWriter<std::fs::File>,
    hash: blake3::Hasher,
}

impl Out {
    fn create(dir: &Path, name: &str) -> Result<Out, GenError> {
        let tmp = dir.join(format!(".{name}.tmp"));
        let file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        Ok(Out {
            path: dir.join(name),
            file: BufWriter::with_capacity(1 << 20, file),
            hash: blake3::Hasher::new(),
            tmp,
        })
    }

    fn write(&mut self, s: &str) -> Result<(), GenError> {
        self.hash.update(s.as_bytes());
        self.file
            .write_all(s.as_bytes())
            .map_err(|e| io(&self.tmp, e))
    }

    /// Flushes to disk; returns the digest and the (temporary, final) paths.
    fn finish(self) -> Result<(String, PathBuf, PathBuf), GenError> {
        let f = self
            .file
            .into_inner()
            .map_err(|e| io(&self.tmp, e.into_error()))?;
        f.sync_all().map_err(|e| io(&self.tmp, e))?;
        Ok((
            format!("b3:{}", self.hash.finalize().to_hex()),
            self.tmp,
            self.path,
        ))
    }
}

fn io(path: &Path, e: std::io::Error) -> GenError {
    GenError::Io(format!("cannot write `{}`: {e}", path.display()))
}

/// Renders items `0..n` to text in parallel, in batches, and writes them in order, so the
/// bytes do not depend on the thread count and memory stays bounded.
fn write_par(
    out: &mut Out,
    n: usize,
    f: impl Fn(usize, &mut String) + Sync,
) -> Result<(), GenError> {
    const CHUNK: usize = 2048;
    const BATCH: usize = 64 * CHUNK;
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let chunks: Vec<String> = (start..end)
            .step_by(CHUNK)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|c| {
                let mut s = String::new();
                for i in c..(c + CHUNK).min(end) {
                    f(i, &mut s);
                }
                s
            })
            .collect();
        for c in chunks {
            out.write(&c)?;
        }
        start = end;
    }
    Ok(())
}

fn name_of(ir: &Ir, w: &World, t: usize, e: u32) -> String {
    let td = &w.types[t];
    render(ir, &ir.entities[t], td.key, &td.columns[td.key][e as usize])
}

fn line(s: &mut String, v: &impl Serialize) {
    s.push_str(&serde_json::to_string(v).expect("records are plain data"));
    s.push('\n');
}

/// Generates the dataset for `ir` with `params`, one universe per seed, into `dir` (created
/// if needed). Files appear under their final names only once complete; the manifest comes
/// last. Universes are written one after another in `seeds` order, so memory holds one
/// universe at a time.
pub fn generate(
    ir: &Ir,
    params: &Params,
    seeds: &[u64],
    dir: &Path,
    opts: &Options,
) -> Result<Generated, GenError> {
    if seeds.is_empty() {
        return Err(GenError::Invalid("no seeds given".into()));
    }
    let bar = Progress::new(
        opts.progress,
        6 * seeds.len() as u64,
        "building the universe",
    );
    let mut clock = Stopwatch::default();
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut outs = [
        Out::create(dir, "entities.jsonl")?,
        Out::create(dir, "facts.jsonl")?,
        Out::create(dir, "articles.jsonl")?,
        Out::create(dir, "questions.jsonl")?,
    ];
    let mut histograms = Histograms::default();
    let mut counts = Counts::default();
    let mut seen = Seen::default();
    let mut universes = Vec::new();
    for (i, &seed) in seeds.iter().enumerate() {
        if i > 0 {
            bar.step("building the universe");
        }
        let uid = universe_id(ir, params, seed);
        write_universe(
            ir,
            params,
            seed,
            &uid,
            &mut outs,
            opts,
            &bar,
            &mut clock,
            &mut counts,
            &mut histograms,
            &mut seen,
        )?;
        universes.push(uid);
    }
    for (t, tally) in &seen.tallies {
        if !tally.removed.is_empty() {
            counts.removed.insert(
                t.clone(),
                tally
                    .removed
                    .iter()
                    .map(|(f, n)| (f.name().to_string(), *n))
                    .collect(),
            );
        }
        if histograms.template.get(t).copied().unwrap_or(0) == 0 {
            counts
                .no_questions
                .insert(t.clone(), tally.why_none(&seen.max_answers));
        }
    }
    for (start, (used, why)) in &seen.starts {
        if *used == 0 {
            counts.no_questions.insert(start.clone(), why.clone());
        }
    }

    let mut done = Vec::new();
    let mut files = BTreeMap::new();
    for (out, name) in outs.into_iter().zip(FILES) {
        let finished = out.finish()?;
        files.insert(name.to_string(), finished.0.clone());
        done.push(finished);
    }
    let manifest = Manifest {
        rules_digest: ir.digest(),
        seeds: seeds.to_vec(),
        universes,
        params: params_json(params),
        derived_facts: opts.derived,
        counts,
        histograms,
        files,
    };
    let mut out = Out::create(dir, "manifest.json")?;
    out.write(&(serde_json::to_string_pretty(&manifest).expect("plain data") + "\n"))?;
    done.push(out.finish()?);
    for (_, tmp, path) in &done {
        std::fs::rename(tmp, path).map_err(|e| io(path, e))?;
    }
    clock.lap("questions and manifest");
    bar.finish();
    Ok(Generated {
        manifest,
        seconds: clock.laps,
    })
}

/// What the draws of every universe met, summed for the manifest.
#[derive(Default)]
struct Seen {
    tallies: BTreeMap<String, crate::universe::compose::Tally>,
    /// `start whose T.a` → questions that started from it, and why none would.
    starts: BTreeMap<String, (usize, String)>,
    max_answers: String,
}

/// Builds one universe and appends its records to the four files.
#[allow(clippy::too_many_arguments)]
fn write_universe(
    ir: &Ir,
    params: &Params,
    seed: u64,
    uid: &str,
    outs: &mut [Out; 4],
    opts: &Options,
    bar: &Progress,
    clock: &mut Stopwatch,
    counts: &mut Counts,
    histograms: &mut Histograms,
    seen: &mut Seen,
) -> Result<(), GenError> {
    let w = world::build(ir, params, seed)?;
    let solver = Solver::new(ir, &w, params)?;
    solver.check_cardinalities()?;
    clock.lap("universe");
    bar.step("composing questions");
    let questions: Vec<Question> = match &ir.questions {
        Some(q) => {
            let c = Composer::new(ir, &w, &solver, q, params, seed, uid)?;
            counts.template_variants = c.variant_count();
            let sub = bar.sub(counts.template_variants as u64);
            let composed = c.compose(&|| sub.inc());
            for (t, n) in composed.degenerate {
                histograms.template.entry(t.clone()).or_insert(0);
                *counts.degenerate.entry(t).or_default() += n;
            }
            for (t, tally) in &composed.tallies {
                seen.tallies.entry(t.clone()).or_default().add(tally);
            }
            for (start, why) in c.idle_starts(&composed.questions) {
                let e = seen.starts.entry(start).or_default();
                match why {
                    None => e.0 += 1,
                    Some(w) => e.1 = w,
                }
            }
            seen.max_answers = params.int(&q.max_answers).to_string();
            composed.questions
        }
        None => Vec::new(),
    };
    for q in &questions {
        histograms.add(
            &q.question_type,
            q.difficulty,
            q.hops,
            &q.template,
            !q.answers.is_empty(),
        );
    }
    counts.questions += questions.len();

    clock.lap("questions");
    bar.step("writing entities");
    let [ents, facts, arts, qs] = outs;
    for (t, ety) in ir.entities.iter().enumerate() {
        let td = &w.types[t];
        // Each entity once, under its most specific type.
        let first = td.own.start;
        *counts.entities.entry(ety.name.clone()).or_default() += td.own.len();
        write_par(ents, td.own.len(), |e, s| {
            let e = first + e;
            let attributes: Vec<Attribute> = ety
                .attrs
                .iter()
                .enumerate()
                .map(|(a, attr)| Attribute {
                    name: attr.name.clone(),
                    value: render(ir, ety, a, &td.columns[a][e]),
                })
                .collect();
            line(
                s,
                &Entity {
                    attributes,
                    name: name_of(ir, &w, t, e as u32),
                    ty: ety.name.clone(),
                    universe: uid.to_string(),
                },
            );
        })?;
    }

    clock.lap("entities");
    bar.step("writing facts");
    for (ri, r) in ir.relations.iter().enumerate() {
        let is_base = matches!(r.def, RelationDef::Base(_));
        if !is_base && !opts.derived {
            continue;
        }
        let pairs: Vec<(u32, u32)> = match &w.base[ri] {
            Some(f) => f.pairs.clone(),
            None => {
                let mut p = solver.all_pairs(ri);
                // A symmetric relation is listed once per pair, as base facts are.
                if r.symmetric {
                    p.retain(|&(a, b)| a <= b);
                }
                p
            }
        };
        let [t0, t1] = solver.role_types[ri];
        let facts_of = w.base[ri].as_ref();
        let mut lines: Vec<String> = pairs
            .par_iter()
            .map(|&(a, b)| {
                let attributes = r
                    .attrs
                    .iter()
                    .enumerate()
                    .filter_map(|(ai, attr)| {
                        let v = facts_of?.value(ai, a, b)?;
                        Some(Attribute {
                            name: attr.name.clone(),
                            value: render_value(ir, attr, v),
                        })
                    })
                    .collect();
                let arg = |role: usize, ty: usize, e: u32| Arg {
                    entity: name_of(ir, &w, ty, e),
                    role: r.roles[role].name.clone(),
                };
                let fact = Fact {
                    args: [arg(0, t0, a), arg(1, t1, b)],
                    attributes,
                    derived: !is_base,
                    relation: r.name.clone(),
                    universe: uid.to_string(),
                };
                serde_json::to_string(&fact).expect("records are plain data")
            })
            .collect();
        lines.par_sort_unstable();
        *counts.facts.entry(r.name.clone()).or_default() += lines.len();
        write_par(facts, lines.len(), |i, s| {
            s.push_str(&lines[i]);
            s.push('\n');
        })?;
    }

    clock.lap("facts");
    bar.step("writing articles");
    let writer = articles::Writer::new(ir, &w, &solver, uid);
    for art in &ir.articles {
        let t = art.entity.id();
        // An entity gets the article of its most specific type that has one.
        let mine: Vec<u32> = w.types[t]
            .ids()
            .filter(|&e| {
                !ir.articles.iter().any(|o| {
                    let s = o.entity.id();
                    s != t && ir.is_a(s, t) && w.types[s].members.contains(&(e as usize))
                })
            })
            .collect();
        counts.articles += mine.len();
        write_par(arts, mine.len(), |i, s| {
            line(s, &writer.article(art, t, mine[i]));
        })?;
    }

    clock.lap("articles");
    bar.step("writing questions");
    write_par(qs, questions.len(), |i, s| line(s, &questions[i]))?;
    Ok(())
}

pub fn params_json(p: &Params) -> Json {
    use crate::lang::ir::Value;
    let m: Map<String, Json> = p
        .values
        .iter()
        .map(|(k, v)| {
            let j = match v {
                Value::Int(i) => json!(i),
                Value::Float(f) => json!(f),
                Value::Bool(b) => json!(b),
                Value::Str(s) | Value::Date(s) | Value::Bank(s) => json!(s),
            };
            (k.clone(), j)
        })
        .collect();
    Json::Object(m)
}
