//! The stage kinds' executors: thin adapters from resolved parameters and input paths to the
//! library calls (`universe::dataset::generate`, `score::score_files`) and the dataset
//! operations `split` and `mix`, which work record by record on dataset folders, and
//! `report` (`report::write`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::universe::dataset::{FILES, Histograms};
use crate::universe::rng::Rng;

/// What an executor gets: parameters, input paths by place, and a folder per output.
pub struct Ctx<'a> {
    pub params: &'a BTreeMap<String, Json>,
    pub inputs: &'a BTreeMap<String, PathBuf>,
    pub outputs: &'a BTreeMap<String, PathBuf>,
    /// Resumable state that survives a killed run; not part of the output.
    pub scratch: &'a Path,
    pub progress: bool,
}

impl Ctx<'_> {
    fn input(&self, place: &str) -> Result<&Path, String> {
        self.inputs
            .get(place)
            .map(PathBuf::as_path)
            .ok_or_else(|| format!("input `{place}` is not resolved (this is a bug in synthpipe)"))
    }
    fn output(&self, name: &str) -> Result<&Path, String> {
        self.outputs
            .get(name)
            .map(PathBuf::as_path)
            .ok_or_else(|| format!("output `{name}` has no folder (this is a bug in synthpipe)"))
    }

    /// A parameter the loader validated and filled in (defaults included): missing or of
    /// another type is a bug, never read as 0.
    fn param<T>(&self, k: &str, what: &str, get: impl Fn(&Json) -> Option<T>) -> Result<T, String> {
        self.params.get(k).and_then(get).ok_or_else(|| {
            format!(
                "internal error[synthpipe::stage::param]: the validated parameter `{k}` is not {what} (this is a bug in synthpipe)"
            )
        })
    }
    fn u64(&self, k: &str) -> Result<u64, String> {
        self.param(k, "a non-negative integer", Json::as_u64)
    }
    fn i64(&self, k: &str) -> Result<i64, String> {
        self.param(k, "an integer", Json::as_i64)
    }
    fn f64(&self, k: &str) -> Result<f64, String> {
        self.param(k, "a number", Json::as_f64)
    }
    fn flag(&self, k: &str) -> Result<bool, String> {
        self.param(k, "true or false", Json::as_bool)
    }
    fn text(&self, k: &str) -> Result<String, String> {
        self.param(k, "a string", |v| v.as_str().map(str::to_string))
    }
    /// A parameter without a default: `None` when unset.
    fn opt_u64(&self, k: &str) -> Result<Option<u64>, String> {
        match self.params.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(_) => self.u64(k).map(Some),
        }
    }
}

/// Runs the executor of `kind`.
pub fn execute(kind: &str, ctx: &Ctx) -> Result<(), String> {
    match kind {
        "generate" => generate(ctx),
        "split" => split(ctx),
        "mix" => mix(ctx),
        "score" => score(ctx),
        "lm_init" => lm_init(ctx),
        "sft" | "grpo" | "evaluate" => train(kind, ctx),
        "report" => report(ctx),
        other => Err(format!(
            "no executor for stage kind `{other}` (this is a bug in synthpipe)"
        )),
    }
}

/// A stage's `set` (resolved against its rule file) as `NAME=VALUE` pairs.
fn settings(ctx: &Ctx) -> Vec<(String, String)> {
    ctx.params["set"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn generate(ctx: &Ctx) -> Result<(), String> {
    use crate::universe::{dataset, params::Params};
    let rules = ctx.input("rules")?;
    let (_, checked) = crate::lang::check_file(rules)
        .map_err(|e| format!("cannot read `{}`: {e}", rules.display()))?;
    let ir = checked.ir.ok_or_else(|| {
        format!(
            "`{}` has errors; run `synthpipe check` on it",
            rules.display()
        )
    })?;
    let set = settings(ctx);
    let params = Params::resolve(&ir, &set).map_err(|e| e.to_string())?;
    let seeds: Vec<u64> =
        serde_json::from_value(ctx.params["seeds"].clone()).map_err(|e| e.to_string())?;
    let opts = dataset::Options {
        derived: ctx.flag("derived")?,
        progress: ctx.progress,
    };
    dataset::generate(&ir, &params, &seeds, ctx.output("dataset")?, &opts)
        .map(|_| ())
        .map_err(|e| e.render())
}

/// The fields of a dataset record that split, mix and the summaries read.
#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    id: String,
    #[serde(default)]
    universe: String,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default, rename = "type")]
    ty: String,
    #[serde(default)]
    relation: String,
    #[serde(default)]
    question_type: String,
    #[serde(default)]
    difficulty: i64,
    #[serde(default)]
    hops: usize,
    #[serde(default)]
    template: String,
    #[serde(default)]
    answers: Vec<Json>,
}

fn meta(line: &str, file: &Path, n: usize) -> Result<Meta, String> {
    serde_json::from_str(line)
        .map_err(|e| format!("{}:{}: not a dataset record: {e}", file.display(), n + 1))
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
                    !m.answers.is_empty(),
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
        let manifest = json!({
            "derived_by": derived_by,
            "sources": self.sources,
            "seeds": self.universes.iter().map(|(_, s)| s).collect::<Vec<_>>(),
            "universes": self.universes.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            "counts": {
                "entities": self.entities,
                "facts": self.facts,
                "articles": self.articles,
                "questions": self.questions,
            },
            "histograms": self.histograms,
            "files": digests,
        });
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

fn split(ctx: &Ctx) -> Result<(), String> {
    let src = ctx.input("dataset")?;
    let universes = universes_of(src)?;
    let n = universes.len();
    // part index of each universe (None: in no part).
    let mut part: Vec<Option<usize>> = vec![None; n];
    let shares: Vec<Option<f64>> = PARTS
        .iter()
        .map(|p| ctx.params[*p].get("share").and_then(Json::as_f64))
        .collect();
    if shares.iter().all(Option::is_some) {
        let mut order: Vec<usize> = (0..n).collect();
        let seed = ctx.u64("seed")?;
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
            let seeds: Vec<u64> = ctx.params[*p]
                .get("seeds")
                .and_then(|s| serde_json::from_value(s.clone()).ok())
                .unwrap_or_default();
            for s in seeds {
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
    let mut writers = PARTS
        .iter()
        .map(|p| DatasetWriter::create(ctx.output(p)?))
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

fn in_range(range: &Json, x: i64) -> bool {
    let lo = range.get(0).and_then(Json::as_i64);
    let hi = range.get(1).and_then(Json::as_i64);
    lo.is_none_or(|l| x >= l) && hi.is_none_or(|h| x <= h)
}

fn mix(ctx: &Ctx) -> Result<(), String> {
    let sources = ctx.params["sources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // (source, line) of every question that passes its source's filters.
    let mut pools: Vec<Vec<String>> = Vec::new();
    let mut dirs = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let dir = ctx
            .input(&format!("sources.{i}.from"))
            .or_else(|_| ctx.input(&format!("sources.{i}.path")))?;
        dirs.push(dir.to_path_buf());
        let types: Option<Vec<String>> = s["question_type"].as_array().map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        });
        let mut pool = Vec::new();
        each_line(dir, "questions.jsonl", |line, m| {
            let keep = (s["difficulty"].is_null() || in_range(&s["difficulty"], m.difficulty))
                && (s["hops"].is_null() || in_range(&s["hops"], m.hops as i64))
                && types.as_ref().is_none_or(|t| t.contains(&m.question_type));
            if keep {
                pool.push(line.to_string());
            }
            Ok(())
        })?;
        pools.push(pool);
    }
    let seed = ctx.u64("seed")?;
    let mut chosen: Vec<(usize, String)> = Vec::new();
    match ctx.opt_u64("questions")? {
        None => {
            for (i, pool) in pools.into_iter().enumerate() {
                chosen.extend(pool.into_iter().map(|l| (i, l)));
            }
        }
        Some(total) => {
            let weights: Vec<f64> = sources
                .iter()
                .map(|s| {
                    s["weight"].as_f64().ok_or_else(|| {
                        "internal error[synthpipe::stage::param]: a source's validated `weight` is not a number (this is a bug in synthpipe)".to_string()
                    })
                })
                .collect::<Result<_, _>>()?;
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
    let mut w = DatasetWriter::create(ctx.output("dataset")?)?;
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

fn score(ctx: &Ctx) -> Result<(), String> {
    let gold = ctx.input("gold")?;
    let gold = if gold.is_dir() {
        gold.join("questions.jsonl")
    } else {
        gold.to_path_buf()
    };
    let report = crate::score::score_files(&gold, ctx.input("predictions")?)
        .map_err(|errs| crate::score::render_errors(&errs, false))?;
    let out = ctx.output("metrics")?;
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n";
    std::fs::write(out.join("metrics.json"), text).map_err(|e| format!("cannot write metrics: {e}"))
}

/// How a `sft` / `grpo` stage draws questions on the fly, when it has `rules`.
fn draw(ctx: &Ctx) -> Result<Option<crate::rl::train::Draw>, String> {
    let Some(rules) = ctx.inputs.get("rules") else {
        return Ok(None);
    };
    let set = settings(ctx);
    let mut holdout = BTreeSet::new();
    if let Some(h) = ctx.inputs.get("holdout") {
        let data = crate::rl::prompt::Dataset::load(h)?;
        holdout.extend(data.questions.iter().map(|q| q.seed));
    }
    let (low, high) = (ctx.f64("reward_low")?, ctx.f64("reward_high")?);
    Ok(Some(crate::rl::train::Draw {
        rules: rules.clone(),
        set,
        first_seed: ctx.u64("first_seed")?,
        holdout,
        band: (high > 0.0).then_some((low, high)),
        window: ctx.u64("adapt_window")?.max(1) as usize,
        depth_param: ctx.text("depth_param")?,
        depth_min: ctx.i64("depth_min")?,
        depth_max: ctx.i64("depth_max")?,
        bank_param: ctx.text("bank_param")?,
        banks: ctx.param("banks", "a list of strings", |v| {
            v.as_array()?
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })?,
    }))
}

/// The training parameters of a `sft` / `grpo` / `evaluate` stage: its resolved
/// parameters, less the inputs and unset ones.
fn train_params(ctx: &Ctx) -> Result<crate::rl::train::TrainParams, String> {
    let mut m = serde_json::Map::new();
    for (k, v) in ctx.params {
        if v.is_null()
            || ctx.inputs.contains_key(k)
            || crate::rl::train::DRAW_KEYS.contains(&k.as_str())
        {
            continue;
        }
        m.insert(k.clone(), v.clone());
    }
    serde_json::from_value(Json::Object(m))
        .map_err(|e| format!("bad training parameters (this is a bug in synthpipe): {e}"))
}

fn train(kind: &str, ctx: &Ctx) -> Result<(), String> {
    use crate::rl::train::{self, Job};
    let params = train_params(ctx)?;
    let batch = params.batch;
    let (out_model, out_metrics) = match kind {
        "evaluate" => (ctx.output("results")?, ctx.output("results")?),
        _ => (ctx.output("model")?, ctx.output("metrics")?),
    };
    let job = Job {
        params,
        model: ctx.input("model")?,
        dataset: ctx.inputs.get("dataset").map(PathBuf::as_path),
        draw: draw(ctx)?,
        examples: ctx.inputs.get("examples_from").map(PathBuf::as_path),
        out_model,
        out_metrics,
        scratch: ctx.scratch,
        progress: ctx.progress,
    };
    let bench = ctx
        .params
        .get("benchmark")
        .and_then(Json::as_str)
        .and_then(crate::eval::bench::Benchmark::parse)
        .filter(|b| *b != crate::eval::bench::Benchmark::Synthetic);
    match (kind, bench) {
        ("sft", _) => train::sft(&job),
        ("grpo", _) => train::grpo(&job),
        (_, Some(bench)) => train::evaluate_benchmark(
            &job,
            &train::BenchmarkJob {
                bench,
                data: ctx.input("data")?,
                aliases: ctx.inputs.get("aliases").map(PathBuf::as_path),
                limit: ctx.u64("limit")? as usize,
            },
            out_metrics,
        ),
        _ => train::evaluate(&job, batch, out_metrics),
    }
}

fn report(ctx: &Ctx) -> Result<(), String> {
    use crate::report::{EvalInput, Options, TrainInput};
    let items = |key: &str| ctx.params[key].as_array().cloned().unwrap_or_default();
    let text = |v: &Json| v.as_str().map(str::to_string);
    let evals = items("evaluations")
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(EvalInput {
                model: text(&e["model"]).unwrap_or_default(),
                name: text(&e["name"]),
                dir: ctx.input(&format!("evaluations.{i}.from"))?.to_path_buf(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let training = items("training")
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Ok(TrainInput {
                model: text(&t["model"]).unwrap_or_default(),
                dir: ctx.input(&format!("training.{i}.from"))?.to_path_buf(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let opts = Options {
        title: text(&ctx.params["title"]).unwrap_or_else(|| "synthpipe report".into()),
        baseline: text(&ctx.params["baseline"]),
        expect: items("expect")
            .iter()
            .filter_map(|b| crate::eval::bench::Benchmark::parse(b.as_str()?))
            .collect(),
    };
    crate::report::write(&opts, &evals, &training, ctx.output("report")?)
}

fn lm_init(ctx: &Ctx) -> Result<(), String> {
    use crate::model::config::Arch;
    use crate::model::init::{Shape, tokenizer_of};
    use crate::model::load::Model;
    use crate::model::tokenizer::Tokenizer;
    use crate::rl::prompt::tokenizer_texts;
    let int = |k: &str| ctx.u64(k).map(|v| v as usize);
    let float = |k: &str| ctx.f64(k);
    let tokenizer = match (ctx.inputs.get("tokenizer"), ctx.inputs.get("dataset")) {
        (Some(t), _) => tokenizer_of(t).map_err(|e| e.to_string())?,
        (None, Some(d)) => {
            let texts = tokenizer_texts(d)?;
            Tokenizer::train(texts.into_iter(), int("vocab")?)?
        }
        (None, None) => {
            return Err("give `dataset` (to train a tokenizer) or `tokenizer` (a model)".into());
        }
    };
    let arch = match ctx.text("arch")?.as_str() {
        "qwen2" => Arch::Qwen2,
        "llama" => Arch::Llama,
        "qwen3" => Arch::Qwen3,
        other => {
            return Err(format!(
                "internal error[synthpipe::stage::param]: the validated `arch` is `{other}` (this is a bug in synthpipe)"
            ));
        }
    };
    let shape = Shape {
        arch,
        layers: int("layers")?,
        hidden: int("hidden")?,
        heads: int("heads")?,
        kv_heads: int("kv_heads")?,
        head_dim: None,
        intermediate: Some(int("intermediate")?).filter(|&i| i > 0),
        context: int("context")?,
        rope_theta: float("rope_theta")?,
        rms_norm_eps: 1e-6,
        tie_embeddings: ctx.flag("tie_embeddings")?,
    };
    let cfg = shape
        .config(tokenizer.vocab_size(), tokenizer.eos_token_ids.clone())
        .map_err(|e| e.to_string())?;
    let seed = ctx.u64("seed")?;
    let m = Model::init(
        cfg,
        tokenizer,
        seed,
        float("init_std")?,
        &burn::prelude::Device::flex(),
    )
    .map_err(|e| e.to_string())?;
    m.save_hf(ctx.output("model")?, false)
}
