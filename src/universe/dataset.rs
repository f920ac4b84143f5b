//! Writing a universe as JSON Lines: `entities.jsonl`, `facts.jsonl` (base facts, derived ones
//! on request) and `manifest.json` with parameters, counts and content digests.

use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value as Json, json};

use super::params::Params;
use super::solve::Solver;
use super::world::{World, render};
use crate::lang::ir::{Ir, RelationDef};

/// The text of each output file, built in memory so its digest goes into the manifest and
/// the files can be written atomically.
pub struct Files {
    pub entities: String,
    pub facts: String,
    pub manifest: String,
}

fn name_of(ir: &Ir, w: &World, t: usize, e: u32) -> String {
    let td = &w.types[t];
    render(ir, &ir.entities[t], td.key, &td.columns[td.key][e as usize])
}

/// Renders the universe. Records come in declaration order (types, then entities by index;
/// relations, then facts by role-0 then role-1 name order), so the bytes depend only on the
/// rules, the parameters and the seed.
pub fn render_files(
    ir: &Ir,
    w: &World,
    solver: &Solver,
    params: &Params,
    seed: u64,
    derived: bool,
) -> Files {
    let mut entities = String::new();
    for (t, ety) in ir.entities.iter().enumerate() {
        let td = &w.types[t];
        for e in 0..td.len {
            let mut attrs = Map::new();
            for (a, attr) in ety.attrs.iter().enumerate() {
                attrs.insert(
                    attr.name.clone(),
                    Json::String(render(ir, ety, a, &td.columns[a][e])),
                );
            }
            let rec = json!({
                "type": ety.name,
                "name": name_of(ir, w, t, e as u32),
                "attributes": attrs,
            });
            entities.push_str(&rec.to_string());
            entities.push('\n');
        }
    }
    let mut facts = String::new();
    let mut fact_counts = Map::new();
    for (ri, r) in ir.relations.iter().enumerate() {
        let is_base = matches!(r.def, RelationDef::Base(_));
        if !is_base && !derived {
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
        let mut lines: Vec<String> = pairs
            .iter()
            .map(|&(a, b)| {
                let mut args = Map::new();
                args.insert(r.roles[0].name.clone(), Json::String(name_of(ir, w, t0, a)));
                args.insert(r.roles[1].name.clone(), Json::String(name_of(ir, w, t1, b)));
                json!({
                    "relation": r.name,
                    "derived": !is_base,
                    "args": args,
                })
                .to_string()
            })
            .collect();
        lines.sort();
        fact_counts.insert(r.name.clone(), json!(lines.len()));
        for l in lines {
            facts.push_str(&l);
            facts.push('\n');
        }
    }
    let digest = |s: &str| format!("b3:{}", blake3::hash(s.as_bytes()).to_hex());
    let counts: Map<String, Json> = ir
        .entities
        .iter()
        .enumerate()
        .map(|(t, e)| (e.name.clone(), json!(w.types[t].len)))
        .collect();
    let manifest = json!({
        "synthpipe_version": env!("CARGO_PKG_VERSION"),
        "rules_digest": ir.digest(),
        "seed": seed,
        "params": params_json(params),
        "derived_facts": derived,
        "counts": { "entities": counts, "facts": fact_counts },
        "files": {
            "entities.jsonl": digest(&entities),
            "facts.jsonl": digest(&facts),
        },
    });
    let mut manifest = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    manifest.push('\n');
    Files {
        entities,
        facts,
        manifest,
    }
}

fn params_json(p: &Params) -> Json {
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

/// Writes the files into `dir` (created if needed). Each file goes to a temporary name first
/// and is renamed into place, so a crash never leaves a half-written file under a final name.
pub fn write(dir: &Path, files: &Files) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in [
        ("entities.jsonl", &files.entities),
        ("facts.jsonl", &files.facts),
        ("manifest.json", &files.manifest),
    ] {
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    Ok(())
}
