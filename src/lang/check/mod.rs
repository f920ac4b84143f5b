//! The checker: spanned AST → typed IR, reporting every problem it finds (never only the first).
//!
//! Phases run in dependency order (params, pools, entities, relation heads, relations and
//! rules, stratification, banks, articles, questions); each keeps going after an error with a
//! best-effort value, so one mistake yields one diagnostic rather than a cascade. The IR is
//! returned only when no error was found; warnings never block it.
//!
//! This file holds the context (`Cx`), the symbol tables and the phase order (`run`); each
//! phase is a file of its own: `tables`, `params`, `pools`, `entities`, `relations`,
//! `rules`, `banks`, `articles`, `questions`, and `builtins` (answer expressions).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::ast::{self, *};
use super::diag::{Code, Diagnostic, did_you_mean};
use super::ir::*;
use super::syntax;

mod tables;

use builtins::ExprEnv;
use rules::{DepEdge, describe_literal, literal_negative};
mod articles;
mod banks;
mod builtins;
mod entities;
mod params;
mod pools;
mod questions;
mod relations;
mod rules;

/// The outcome of checking one rule file.
#[derive(Debug)]
pub struct Checked {
    /// Present exactly when no diagnostic is an error.
    pub ir: Option<Ir>,
    /// Errors and warnings, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Checks a rule file on disk; pool files resolve relative to its directory.
pub fn check_file(path: &Path) -> std::io::Result<(String, Checked)> {
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let base = path.parent().unwrap_or(Path::new("."));
    let checked = check_source(&text, Some(base));
    Ok((text, checked))
}

/// The load step before checking: every pool file the rules name, read relative to
/// `base_dir` (without one — rules from standard input — none can be).
fn read_pool_files(
    file: &RuleFile,
    base_dir: Option<&Path>,
) -> BTreeMap<String, Result<String, String>> {
    let mut out = BTreeMap::new();
    for item in &file.items {
        if let Item::Pool(p) = item
            && let PoolSource::File(path) = &p.source
        {
            out.entry(path.value.clone())
                .or_insert_with(|| match base_dir {
                    Some(b) => std::fs::read_to_string(b.join(&path.value))
                        .map_err(|e| format!("cannot read it: {e}")),
                    None => Err(
                        "no directory to resolve it against (the rules came from standard input)"
                            .into(),
                    ),
                });
        }
    }
    out
}

/// Checks rule text. Without `base_dir`, pool files cannot be read and are reported missing.
pub fn check_source(src: &str, base_dir: Option<&Path>) -> Checked {
    let file = match syntax::parse(src) {
        Ok(f) => f,
        Err(_) => {
            return Checked {
                ir: None,
                diagnostics: syntax::syntax_errors(src),
            };
        }
    };
    let pool_files = read_pool_files(&file, base_dir);
    let mut cx = Cx {
        src,
        pool_files,
        diags: Vec::new(),
        param_types: BTreeMap::new(),
        dep_edges: Vec::new(),
        cycle_seen: false,
    };
    let mut ir = cx.run(&file);
    let unlinked = ir.link();
    if !cx.diags.iter().any(Diagnostic::is_error) {
        // The checker reports every unknown name; one reaching here is a checker bug, said
        // as plainly as a rule-file error so the IR is never used half-linked.
        for (what, name) in unlinked {
            let code = match what {
                "relation" => Code::UnknownRelation,
                "attribute" => Code::UnknownAttribute,
                "bank" => Code::UnknownBank,
                "pool" => Code::UnknownPool,
                _ => Code::UnknownType,
            };
            cx.push(
                Diagnostic::new(
                    code,
                    Span::default(),
                    format!("{what} `{name}` does not resolve after checking"),
                )
                .label("internal error")
                .help("this is a bug in synthpipe's checker: please report it with the rule file"),
            );
        }
    }
    let mut diags = cx.diags;
    diags.sort_by(|a, b| {
        (a.span.start, a.span.end, a.code).cmp(&(b.span.start, b.span.end, b.code))
    });
    diags.dedup();
    let ir = if diags.iter().any(Diagnostic::is_error) {
        None
    } else {
        Some(ir)
    };
    Checked {
        ir,
        diagnostics: diags,
    }
}

/// Names that answer expressions use as built-in functions.
const BUILTINS: [&str; 6] = ["count", "count_each", "argmin", "argmax", "same", "related"];

struct Cx<'s> {
    src: &'s str,
    /// The pool files the rules name, read before checking (the checker does no I/O):
    /// path as written → its text, or why it cannot be read.
    pool_files: BTreeMap<String, Result<String, String>>,
    diags: Vec<Diagnostic>,
    /// Types of the well-formed parameters, for checking `$name` uses.
    param_types: BTreeMap<String, ParamType>,
    /// Dependencies between relations found in rule bodies, for stratification.
    dep_edges: Vec<DepEdge>,
    /// Set while expanding a nested bank that leads back to the bank being expanded.
    cycle_seen: bool,
}

/// What a global name (types, relations and banks share one namespace) refers to.
#[derive(Clone, Copy)]
enum Global<'a> {
    Entity(&'a EntityDecl),
    Relation(&'a RelationDecl),
    Bank(&'a BankDecl),
}

impl Global<'_> {
    fn span(&self) -> Span {
        match self {
            Global::Entity(d) => d.name.span,
            Global::Relation(d) => d.name.span,
            Global::Bank(d) => d.name.span,
        }
    }
    fn what(&self) -> &'static str {
        match self {
            Global::Entity(_) => "entity type",
            Global::Relation(_) => "relation",
            Global::Bank(_) => "bank",
        }
    }
}

/// Symbol tables of the declarations, first definition wins.
#[derive(Default)]
struct Tables<'a> {
    params: BTreeMap<&'a str, &'a ParamDecl>,
    pools: BTreeMap<&'a str, (&'a PoolDecl, usize)>,
    globals: BTreeMap<&'a str, Global<'a>>,
    entities: Vec<&'a EntityDecl>,
    relations: Vec<&'a RelationDecl>,
    banks: Vec<&'a BankDecl>,
    articles: Vec<&'a ArticleDecl>,
    questions: Vec<&'a QuestionsDecl>,
    params_in_order: Vec<&'a ParamDecl>,
    pools_in_order: Vec<&'a PoolDecl>,
}

impl<'a> Tables<'a> {
    fn entity(&self, n: &str) -> Option<&'a EntityDecl> {
        match self.globals.get(n) {
            Some(Global::Entity(d)) => Some(d),
            _ => None,
        }
    }
    fn relation(&self, n: &str) -> Option<&'a RelationDecl> {
        match self.globals.get(n) {
            Some(Global::Relation(d)) => Some(d),
            _ => None,
        }
    }
    /// Type `a` and its supertypes, most specific first (a cycle, reported elsewhere, ends
    /// the walk).
    fn lineage(&self, a: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut t = Some(a);
        while let Some(x) = t {
            if out.iter().any(|o| o == x) {
                break;
            }
            out.push(x.to_string());
            t = self
                .entity(x)
                .and_then(|d| d.extends.as_ref())
                .map(|s| s.text.as_str());
        }
        out
    }
    /// Whether type `a` is `b` or extends it.
    fn is_a(&self, a: &str, b: &str) -> bool {
        self.lineage(a).iter().any(|x| x == b)
    }
    /// Whether sets of `a` and of `b` can share entities: one type extends the other.
    fn meets(&self, a: &str, b: &str) -> bool {
        self.is_a(a, b) || self.is_a(b, a)
    }
    /// The most specific type both `a` and `b` are (players and managers: people).
    fn join(&self, a: &str, b: &str) -> Option<String> {
        let up = self.lineage(b);
        self.lineage(a).into_iter().find(|x| up.contains(x))
    }
    fn entity_names(&self) -> Vec<&'a str> {
        self.entities.iter().map(|e| e.name.text.as_str()).collect()
    }
    fn relation_names(&self) -> Vec<&'a str> {
        self.relations
            .iter()
            .map(|e| e.name.text.as_str())
            .collect()
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

impl<'s> Cx<'s> {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn run(&mut self, file: &RuleFile) -> Ir {
        let t = self.collect(file);
        let params = self.params(&t);
        let pools = self.pools(&t);
        let entities = self.entities(&t, &pools);
        let heads = self.heads(&t);
        let mut relations = self.relations(&t, &entities, &heads, &pools);
        self.stratify(&t, &mut relations);
        self.generation_order(&t, &relations);
        self.related_keys(&t, &entities, &relations);
        self.populated(&t, &relations);
        let banks = self.banks(&t);
        let articles = self.articles(&t, &entities, &relations);
        let questions = self.questions(&t, &entities, &relations, &banks);
        Ir {
            params,
            pools,
            entities,
            relations,
            banks,
            articles,
            questions,
        }
    }

    // ------------------------------------------------------------------ collection
}

fn a_an(word: &str) -> String {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {word}")
    } else {
        format!("a {word}")
    }
}

fn example_of(ty: ParamType) -> &'static str {
    match ty {
        ParamType::Int => "an integer such as `10`",
        ParamType::Float => "a number such as `0.5`",
        ParamType::Bool => "`true` or `false`",
        ParamType::String => "a string in double quotes",
        ParamType::Date => "a date such as `2000-01-31`",
        ParamType::Bank => "the name of a bank",
    }
}

fn value_lt(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x < y,
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Date(x), Value::Date(y)) => x < y,
        _ => false,
    }
}

/// `YYYY-MM-DD` naming a real day of the proleptic Gregorian calendar.
pub fn valid_date(d: &str) -> bool {
    let parts: Vec<&str> = d.split('-').collect();
    let [y, m, day] = parts.as_slice() else {
        return false;
    };
    let (Ok(y), Ok(m), Ok(day)) = (y.parse::<i32>(), m.parse::<u32>(), day.parse::<u32>()) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::rules::tarjan;
    use super::*;

    #[test]
    fn dates() {
        assert!(valid_date("2000-02-29"));
        assert!(!valid_date("1900-02-29"));
        assert!(!valid_date("2001-13-01"));
        assert!(!valid_date("2001-04-31"));
    }

    #[test]
    fn tarjan_orders_dependencies_first() {
        // 0 -> 1 -> 2 -> 1
        let adj = vec![vec![(1, false)], vec![(2, false)], vec![(1, false)]];
        let c = tarjan(&adj);
        assert_eq!(c, vec![vec![1, 2], vec![0]]);
    }
}
