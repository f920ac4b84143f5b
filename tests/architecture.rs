//! The module structure docs/architecture.md describes, checked on the sources: no import
//! cycle between top-level modules, burn only in `model/` and `rl/`, pest only in the rule
//! language's syntax module, clap only in `cli/`, and nothing below `cli` importing it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `src/`, as (path relative to `src/`, text without `//` comments).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let code: String = text
                    .lines()
                    .map(|l| match l.find("//") {
                        Some(i) => &l[..i],
                        None => l,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.push((rel, code));
            }
        }
    }
    let mut out = Vec::new();
    let src = root().join("src");
    walk(&src, &src, &mut out);
    assert!(out.len() > 50, "found only {} source files", out.len());
    out
}

/// The top-level module a file belongs to (`cli/lm.rs` → `cli`, `lib.rs` → `lib`).
fn top(rel: &str) -> String {
    rel.split('/')
        .next()
        .unwrap()
        .trim_end_matches(".rs")
        .to_string()
}

/// The top-level modules a file names with `crate::…`, including inside `use crate::{…}`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut rest = code;
    let mut offset = 0;
    while let Some(i) = rest.find("crate::") {
        let at = offset + i + "crate::".len();
        if bytes.get(at) == Some(&b'{') {
            // A group: the first path segment of each item at depth 1.
            let mut depth = 0;
            let mut item = String::new();
            for &c in &bytes[at..] {
                match c {
                    b'{' => {
                        depth += 1;
                        if depth == 1 {
                            continue;
                        }
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => {
                        out.insert(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth >= 1 {
                    item.push(c as char);
                }
            }
            out.insert(first_ident(&item));
        } else {
            out.insert(first_ident(&code[at..]));
        }
        offset = at;
        rest = &code[at..];
    }
    out.remove("");
    out
}

fn first_ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn uses_crate(code: &str, name: &str) -> bool {
    code.contains(&format!("{name}::")) && {
        // A whole path segment, not the tail of another name (`my_burn::`).
        code.match_indices(&format!("{name}::")).any(|(i, _)| {
            i == 0 || {
                let c = code.as_bytes()[i - 1];
                !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
            }
        })
    }
}

#[test]
fn top_level_modules_form_no_import_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, code) in sources() {
        let from = top(&rel);
        for to in crate_refs(&code) {
            if to != from {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    // The library root and the binary only declare or call modules.
    graph.remove("lib");
    graph.remove("main");
    assert!(graph.contains_key("cli") && graph.contains_key("stages"));
    // Depth-first search for a back edge; the cycle is printed when there is one.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let start = path.iter().position(|p| p == m).unwrap();
                    let mut cycle = path[start..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, g, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str())
            && let Some(c) = visit(n, &graph, &mut state, &mut Vec::new())
        {
            panic!("import cycle: {}\nthe graph: {graph:#?}", c.join(" → "));
        }
    }
    // Nothing below the command line imports it.
    for (from, to) in &graph {
        assert!(
            from == "cli" || !to.contains("cli"),
            "`{from}` imports from `cli`"
        );
    }
}

#[test]
fn external_frameworks_stay_in_their_modules() {
    let allowed: [(&str, &[&str]); 3] = [
        ("burn", &["model/", "rl/"]),
        ("pest", &["lang/syntax.rs"]),
        ("clap", &["cli/"]),
    ];
    let files = sources();
    for (name, homes) in allowed {
        let mut found = 0;
        for (rel, code) in &files {
            let uses = uses_crate(code, name) || code.contains(&format!("{name}_derive"));
            if uses {
                found += 1;
                assert!(
                    homes.iter().any(|h| rel.starts_with(h)),
                    "`{rel}` uses `{name}`, which belongs in {homes:?} only"
                );
            }
        }
        assert!(
            found > 0,
            "no file uses `{name}`: is the check still looking?"
        );
    }
}

#[test]
fn the_reference_scanner_sees_grouped_imports() {
    let code = "use crate::{eval::bench, model::{device, load}};\nlet x = crate::util::rng::Rng;";
    let refs: Vec<String> = crate_refs(code).into_iter().collect();
    assert_eq!(refs, ["eval", "model", "util"]);
    assert!(uses_crate("use burn::prelude::*;", "burn"));
    assert!(!uses_crate("use my_burn::x;", "burn"));
}
