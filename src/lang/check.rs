//! The checker: spanned AST → typed IR, reporting every problem it finds (never only the first).
//!
//! Phases run in dependency order (params, pools, entities, relation heads, relations and
//! rules, stratification, banks, articles, questions); each keeps going after an error with a
//! best-effort value, so one mistake yields one diagnostic rather than a cascade. The IR is
//! returned only when no error was found; warnings never block it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::ast::{self, *};
use super::diag::{Code, Diagnostic, did_you_mean};
use super::ir::*;
use super::syntax;

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

/// Checks rule text. Without `base_dir`, pool files cannot be read and are reported missing.
pub fn check_source(src: &str, base_dir: Option<&Path>) -> Checked {
    let file = match syntax::parse(src) {
        Ok(f) => f,
        Err(d) => {
            return Checked {
                ir: None,
                diagnostics: vec![d],
            };
        }
    };
    let mut cx = Cx {
        src,
        base_dir,
        diags: Vec::new(),
        param_types: BTreeMap::new(),
        dep_edges: Vec::new(),
        cycle_seen: false,
    };
    let ir = cx.run(&file);
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
    base_dir: Option<&'s Path>,
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

    fn unknown<'c>(
        &mut self,
        code: Code,
        what: &str,
        name: &Name,
        candidates: impl IntoIterator<Item = &'c str>,
        fallback: &str,
    ) {
        let help = did_you_mean(&name.text, candidates).unwrap_or_else(|| fallback.to_string());
        // "attribute of `person`" reads better split around the name.
        let (message, label) = match what.split_once(" of ") {
            Some((kind, owner)) => (
                format!("unknown {kind} `{}` of {owner}", name.text),
                format!("{owner} has no such {kind}"),
            ),
            None => (
                format!("unknown {what} `{}`", name.text),
                format!("no {what} has this name"),
            ),
        };
        self.push(
            Diagnostic::new(code, name.span, message)
                .label(label)
                .help(help),
        );
    }

    fn duplicate(&mut self, what: &str, name: &Name, first: Span) {
        self.push(
            Diagnostic::new(
                Code::DuplicateDefinition,
                name.span,
                format!("{what} `{}` is defined more than once", name.text),
            )
            .label("defined again here")
            .related(first, "first defined here")
            .help(format!(
                "rename one of them or remove the second `{}`",
                name.text
            )),
        );
    }

    fn run(&mut self, file: &RuleFile) -> Ir {
        let t = self.collect(file);
        let params = self.params(&t);
        let pools = self.pools(&t);
        let entities = self.entities(&t, &pools);
        let heads = self.heads(&t);
        let mut relations = self.relations(&t, &entities, &heads);
        self.stratify(&t, &mut relations);
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

    fn collect<'a>(&mut self, file: &'a RuleFile) -> Tables<'a> {
        let mut t = Tables::default();
        for item in &file.items {
            match item {
                Item::Param(p) => {
                    if let Some(first) = t.params.get(p.name.text.as_str()) {
                        let s = first.name.span;
                        self.duplicate("parameter", &p.name, s);
                    } else {
                        t.params.insert(&p.name.text, p);
                        t.params_in_order.push(p);
                    }
                }
                Item::Pool(p) => {
                    if let Some((first, _)) = t.pools.get(p.name.text.as_str()) {
                        let s = first.name.span;
                        self.duplicate("pool", &p.name, s);
                    } else {
                        t.pools.insert(&p.name.text, (p, t.pools_in_order.len()));
                        t.pools_in_order.push(p);
                    }
                }
                Item::Entity(e) => {
                    if self.global(&mut t, &e.name, Global::Entity(e)) {
                        t.entities.push(e);
                    }
                }
                Item::Relation(r) => {
                    if BUILTINS.contains(&r.name.text.as_str()) {
                        self.reserved(&r.name, "relation");
                    }
                    if self.global(&mut t, &r.name, Global::Relation(r)) {
                        t.relations.push(r);
                    }
                }
                Item::Bank(b) => {
                    if self.global(&mut t, &b.name, Global::Bank(b)) {
                        t.banks.push(b);
                    }
                }
                Item::Article(a) => {
                    if let Some(first) = t.articles.iter().find(|f| f.entity.text == a.entity.text)
                    {
                        let s = first.entity.span;
                        self.duplicate("article for", &a.entity, s);
                    } else {
                        t.articles.push(a);
                    }
                }
                Item::Questions(q) => {
                    if let Some(first) = t.questions.first() {
                        self.push(
                            Diagnostic::new(
                                Code::DuplicateDefinition,
                                Span::new(q.span.start, q.span.start + 9),
                                "a rule file has at most one `questions` block",
                            )
                            .label("second block")
                            .related(
                                Span::new(first.span.start, first.span.start + 9),
                                "first block",
                            )
                            .help("merge the templates into the first `questions` block"),
                        );
                    } else {
                        t.questions.push(q);
                    }
                }
            }
        }
        t
    }

    fn reserved(&mut self, name: &Name, what: &str) {
        self.push(
            Diagnostic::new(
                Code::ReservedName,
                name.span,
                format!(
                    "`{}` is a built-in function of question answers and cannot name a {what}",
                    name.text
                ),
            )
            .label("reserved name")
            .help(format!(
                "choose another name; reserved: {}",
                BUILTINS.join(", ")
            )),
        );
    }

    fn global<'a>(&mut self, t: &mut Tables<'a>, name: &'a Name, g: Global<'a>) -> bool {
        if let Some(first) = t.globals.get(name.text.as_str()) {
            let (span, what) = (first.span(), first.what());
            let mut d = Diagnostic::new(
                Code::DuplicateDefinition,
                name.span,
                format!("`{}` is already defined as {}", name.text, a_an(what)),
            )
            .label("defined again here")
            .related(span, "first defined here");
            d = d.help("entity types, relations and banks share one namespace: rename one of them");
            self.push(d);
            false
        } else {
            t.globals.insert(&name.text, g);
            true
        }
    }

    // ------------------------------------------------------------------ params

    fn params(&mut self, t: &Tables) -> Vec<Param> {
        let mut types = BTreeMap::new();
        let mut out = Vec::new();
        for p in &t.params_in_order {
            let Some(ty) = ParamType::ALL
                .iter()
                .find(|(n, _)| *n == p.ty.text)
                .map(|(_, t)| *t)
            else {
                self.unknown(
                    Code::UnknownParamType,
                    "parameter type",
                    &p.ty,
                    ParamType::ALL.iter().map(|(n, _)| *n),
                    "parameter types are int, float, bool, string, date and bank",
                );
                continue;
            };
            types.insert(p.name.text.clone(), ty);
            let default = self.param_value(t, ty, &p.default, &p.name);
            let range = p.range.as_ref().and_then(|(lo, hi)| {
                if !matches!(ty, ParamType::Int | ParamType::Float | ParamType::Date) {
                    self.push(
                        Diagnostic::new(
                            Code::InvalidRange,
                            lo.span.to(hi.span),
                            format!("{} parameter cannot have a range", a_an(ty.name())),
                        )
                        .label("range not allowed")
                        .help("ranges apply to int, float and date parameters"),
                    );
                    return None;
                }
                let lo_v = self.param_value(t, ty, lo, &p.name)?;
                let hi_v = self.param_value(t, ty, hi, &p.name)?;
                if value_lt(&hi_v, &lo_v) {
                    self.push(
                        Diagnostic::new(
                            Code::InvalidRange,
                            lo.span.to(hi.span),
                            "empty range: the lower bound exceeds the upper bound",
                        )
                        .label("empty range")
                        .help("write the range as `in LO..HI` with LO <= HI"),
                    );
                    return None;
                }
                if let Some(d) = &default
                    && (value_lt(d, &lo_v) || value_lt(&hi_v, d))
                {
                    self.push(
                        Diagnostic::new(
                            Code::InvalidRange,
                            p.default.span,
                            format!("the default of `${}` lies outside its range", p.name.text),
                        )
                        .label("outside the range")
                        .related(lo.span.to(hi.span), "the declared range")
                        .help("change the default or widen the range"),
                    );
                }
                Some((lo_v, hi_v))
            });
            if let Some(default) = default {
                out.push(Param {
                    name: p.name.text.clone(),
                    ty,
                    default,
                    range,
                    doc: p.doc.as_ref().map(|d| d.value.clone()),
                });
            }
        }
        // Later phases type-check `$refs` against these.
        self.param_types = types;
        out
    }

    /// A literal as a value of the parameter's type, or a `param_type` diagnostic.
    fn param_value(&mut self, t: &Tables, ty: ParamType, lit: &Lit, param: &Name) -> Option<Value> {
        let v = match (&lit.value, ty) {
            (Literal::Int(i), ParamType::Int) => {
                self.int_fits(lit);
                Some(Value::Int(*i))
            }
            (Literal::Int(i), ParamType::Float) => Some(Value::Float(*i as f64)),
            (Literal::Float(f), ParamType::Float) => Some(Value::Float(*f)),
            (Literal::Bool(b), ParamType::Bool) => Some(Value::Bool(*b)),
            (Literal::Str(s), ParamType::String) => Some(Value::Str(s.clone())),
            (Literal::Date(d), ParamType::Date) => {
                self.date(d, lit.span);
                Some(Value::Date(d.clone()))
            }
            (Literal::Ident(b), ParamType::Bank) => {
                if !matches!(t.globals.get(b.as_str()), Some(Global::Bank(_))) {
                    let name = Name {
                        text: b.clone(),
                        span: lit.span,
                    };
                    self.unknown(
                        Code::UnknownBank,
                        "bank",
                        &name,
                        t.banks.iter().map(|b| b.name.text.as_str()),
                        "declare it with `bank NAME = relation, ...;`",
                    );
                }
                Some(Value::Bank(b.clone()))
            }
            _ => None,
        };
        if v.is_none() {
            self.push(
                Diagnostic::new(
                    Code::ParamType,
                    lit.span,
                    format!(
                        "`${}` is declared `{}` but this value is {}",
                        param.text,
                        ty.name(),
                        describe_literal(&lit.value)
                    ),
                )
                .label(format!("not {}", a_an(ty.name())))
                .related(param.span, "parameter declared here")
                .help(format!("write {}", example_of(ty))),
            );
        }
        v
    }

    /// The parser saturates integers that overflow i64; say so instead of using the bound.
    fn int_fits(&mut self, lit: &Lit) -> bool {
        let text = self.src.get(lit.span.start..lit.span.end).unwrap_or("");
        if text.parse::<i64>().is_ok() {
            return true;
        }
        self.push(
            Diagnostic::new(Code::InvalidRange, lit.span, "integer out of range")
                .label("does not fit in 64 bits")
                .help(format!(
                    "integers lie between {} and {}",
                    i64::MIN,
                    i64::MAX
                )),
        );
        false
    }

    /// An integer setting that must be at least `min` when written literally.
    fn int_at_least(&mut self, lit: &Lit, t: &Tables, min: i64, what: &str) -> Num {
        let n = self.int_num(lit, t);
        if let Num::Int(v) = n
            && v < min
        {
            self.push(
                Diagnostic::new(
                    Code::InvalidRange,
                    lit.span,
                    format!("{what} must be at least {min}, found {v}"),
                )
                .label("too small")
                .help(format!("write a number of at least {min}")),
            );
        }
        n
    }

    fn date(&mut self, d: &str, span: Span) -> bool {
        if valid_date(d) {
            return true;
        }
        self.push(
            Diagnostic::new(
                Code::InvalidDate,
                span,
                format!("`{d}` is not a calendar date"),
            )
            .label("no such day")
            .help("dates are written YYYY-MM-DD with a real month and day"),
        );
        false
    }

    /// Checks a `$param` use against the types a place accepts.
    fn param_use(&mut self, name: &str, span: Span, accepts: &[ParamType], t: &Tables) -> bool {
        let Some(ty) = self.param_types.get(name).copied() else {
            if t.params.contains_key(name) {
                return false; // its declaration already has an error
            }
            let n = Name {
                text: format!("${name}"),
                span,
            };
            let cands: Vec<String> = t.params.keys().map(|k| format!("${k}")).collect();
            self.unknown(
                Code::UnknownParam,
                "parameter",
                &n,
                cands.iter().map(String::as_str),
                "declare it with `param NAME: TYPE = DEFAULT;`",
            );
            return false;
        };
        if accepts.contains(&ty) {
            return true;
        }
        let want: Vec<&str> = accepts.iter().map(|t| t.name()).collect();
        let decl = t.params.get(name).map(|p| p.name.span);
        let mut d = Diagnostic::new(
            Code::ParamType,
            span,
            format!(
                "`${name}` is a {} parameter, but {} is needed here",
                ty.name(),
                want.join(" or ")
            ),
        )
        .label(a_an(ty.name()))
        .help(format!(
            "use {} parameter or a literal",
            a_an(&want.join(" or "))
        ));
        if let Some(s) = decl {
            d = d.related(s, "declared here");
        }
        self.push(d);
        false
    }

    /// An integer setting (counts, bounds, depths), literal or `$param`.
    fn int_num(&mut self, lit: &Lit, t: &Tables) -> Num {
        match &lit.value {
            Literal::Int(i) => {
                self.int_fits(lit);
                Num::Int(*i)
            }
            Literal::Param(p) => {
                self.param_use(p, lit.span, &[ParamType::Int], t);
                Num::Param(p.clone())
            }
            other => {
                self.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        lit.span,
                        format!("expected an integer, found {}", describe_literal(other)),
                    )
                    .label("not an integer")
                    .help("write a whole number or an int `$parameter`"),
                );
                Num::Int(0)
            }
        }
    }

    // ------------------------------------------------------------------ pools

    fn pools(&mut self, t: &Tables) -> Vec<Pool> {
        let mut out = Vec::new();
        for p in &t.pools_in_order {
            let (file, values, span) = match &p.source {
                PoolSource::List(items) => (
                    None,
                    items.iter().map(|s| s.value.clone()).collect::<Vec<_>>(),
                    p.span,
                ),
                PoolSource::File(path) => {
                    let full = self.base_dir.map(|b| b.join(&path.value));
                    let read = full.as_ref().map(std::fs::read_to_string);
                    match read {
                        Some(Ok(text)) => {
                            let values = text
                                .lines()
                                .map(str::trim)
                                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                                .map(str::to_string)
                                .collect();
                            (Some(path.value.clone()), values, path.span)
                        }
                        other => {
                            let why = match other {
                                Some(Err(e)) => format!("cannot read it: {e}"),
                                _ => "no directory to resolve it against (the rules came from standard input)".into(),
                            };
                            self.push(
                                Diagnostic::new(
                                    Code::PoolFileMissing,
                                    path.span,
                                    format!("pool file `{}` cannot be read", path.value),
                                )
                                .label(why)
                                .help("pool file paths are relative to the rule file's directory; one value per line"),
                            );
                            (Some(path.value.clone()), vec!["?".to_string()], path.span)
                        }
                    }
                }
            };
            if values.is_empty() {
                self.push(
                    Diagnostic::new(Code::PoolEmpty, span, format!("pool `{}` has no values", p.name.text))
                        .label("empty pool")
                        .help("a pool needs at least one value (files: one per line; `#` starts a comment line)"),
                );
            }
            let mut h = blake3::Hasher::new();
            for v in &values {
                h.update(v.as_bytes());
                h.update(b"\n");
            }
            out.push(Pool {
                name: p.name.text.clone(),
                file,
                len: values.len(),
                digest: format!("b3:{}", h.finalize().to_hex()),
                values,
            });
        }
        out
    }

    // ------------------------------------------------------------------ entities

    fn entities(&mut self, t: &Tables, pools: &[Pool]) -> Vec<EntityType> {
        let mut out = Vec::new();
        for e in &t.entities {
            let count = e
                .count
                .as_ref()
                .map(|c| self.int_at_least(c, t, 0, "an entity count"));
            let mut attrs: Vec<Attribute> = Vec::new();
            let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
            let mut keys = Vec::new();
            for a in &e.attrs {
                if let Some(first) = seen.get(a.name.text.as_str()) {
                    let f = *first;
                    self.duplicate("attribute", &a.name, f);
                    continue;
                }
                seen.insert(&a.name.text, a.name.span);
                if BUILTINS.contains(&a.name.text.as_str()) {
                    self.reserved(&a.name, "attribute");
                }
                if let Some(k) = a.key {
                    keys.push((a, k));
                }
                let (source, ty) = self.source(t, e, &a.source, pools);
                let whose = a.whose.as_ref().map(|w| {
                    let parts = self.text_parts(w);
                    for (part, span) in &parts {
                        if let TextPart::Hole { name, .. } = part
                            && name != "value"
                        {
                            self.push(
                                Diagnostic::new(
                                    Code::TemplatePlaceholder,
                                    *span,
                                    format!("`{{{name}}}` is not available in a `whose` form"),
                                )
                                .label("unknown placeholder")
                                .help("a `whose` form has one placeholder, `{value}`"),
                            );
                        }
                    }
                    parts.into_iter().map(|(p, _)| p).collect()
                });
                attrs.push(Attribute {
                    name: a.name.text.clone(),
                    ty,
                    source,
                    unique: a.key.is_some() || a.unique.is_some(),
                    say: a.say.as_ref().map(|(s, p)| {
                        (
                            s.value.clone(),
                            p.as_ref()
                                .map_or_else(|| format!("{}s", s.value), |p| p.value.clone()),
                        )
                    }),
                    whose,
                });
            }
            // Text templates and matches may refer to attributes declared later, but not in a cycle.
            self.attr_cycles(e);
            let key = match keys.as_slice() {
                [] => {
                    self.push(
                        Diagnostic::new(Code::KeyAttribute, e.name.span, format!("entity type `{}` has no key attribute", e.name.text))
                            .label("no `key` attribute")
                            .help("mark the attribute that names an entity with `key`, e.g. `name: key pool names;`"),
                    );
                    String::new()
                }
                [(a, _)] => a.name.text.clone(),
                [(first, _), rest @ ..] => {
                    for (_, k) in rest {
                        self.push(
                            Diagnostic::new(Code::KeyAttribute, *k, format!("entity type `{}` has more than one key attribute", e.name.text))
                                .label("second key")
                                .related(first.name.span, "first key")
                                .help("keep one `key`; mark other attributes that must differ with `unique`"),
                        );
                    }
                    first.name.text.clone()
                }
            };
            for a in e
                .attrs
                .iter()
                .filter(|a| a.key.is_some() || a.unique.is_some())
            {
                self.capacity_warning(e, &attrs, a, pools, t);
            }
            out.push(EntityType {
                name: e.name.text.clone(),
                count,
                key,
                attrs,
            });
        }
        out
    }

    fn source(
        &mut self,
        t: &Tables,
        e: &EntityDecl,
        s: &ast::Source,
        pools: &[Pool],
    ) -> (AttrSource, AttrType) {
        match s {
            ast::Source::Enum { variants, .. } => {
                let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
                for v in variants {
                    if let Some(f) = seen.get(v.text.as_str()) {
                        let f = *f;
                        self.duplicate("variant", v, f);
                    }
                    seen.insert(&v.text, v.span);
                }
                let names: Vec<String> = seen.keys().map(|s| s.to_string()).collect();
                let ordered: Vec<String> =
                    variants
                        .iter()
                        .map(|v| v.text.clone())
                        .fold(Vec::new(), |mut acc, v| {
                            if !acc.contains(&v) {
                                acc.push(v);
                            }
                            acc
                        });
                debug_assert_eq!(names.len(), ordered.len());
                (AttrSource::Enum(ordered.clone()), AttrType::Enum(ordered))
            }
            ast::Source::Pool { pool, .. } => {
                if !t.pools.contains_key(pool.text.as_str()) {
                    self.unknown(
                        Code::UnknownPool,
                        "pool",
                        pool,
                        pools.iter().map(|p| p.name.as_str()),
                        "declare it with `pool NAME = file \"path\";` or `pool NAME = [\"a\", \"b\"];`",
                    );
                }
                (AttrSource::Pool(pool.text.clone()), AttrType::Text)
            }
            ast::Source::Int { lo, hi, span } => {
                let l = self.int_num(lo, t);
                let h = self.int_num(hi, t);
                if let (Num::Int(a), Num::Int(b)) = (&l, &h)
                    && a > b
                {
                    self.push(
                        Diagnostic::new(
                            Code::InvalidRange,
                            *span,
                            "empty range: the lower bound exceeds the upper bound",
                        )
                        .label("empty range")
                        .help("write `int LO..HI` with LO <= HI"),
                    );
                }
                (AttrSource::Int(l, h), AttrType::Int)
            }
            ast::Source::Date { lo, hi, span } => {
                let l = self.date_bound(lo, t);
                let h = self.date_bound(hi, t);
                if let (DateBound::Date(a), DateBound::Date(b)) = (&l, &h)
                    && a > b
                {
                    self.push(
                        Diagnostic::new(
                            Code::InvalidRange,
                            *span,
                            "empty range: the first date is after the second",
                        )
                        .label("empty range")
                        .help("write `date FROM..TO` with FROM on or before TO"),
                    );
                }
                (AttrSource::Date(l, h), AttrType::Date)
            }
            ast::Source::Match { on, arms, span } => {
                let target = e.attrs.iter().find(|a| a.name.text == on.text);
                let variants: Option<Vec<String>> = match target.map(|a| &a.source) {
                    Some(ast::Source::Enum { variants, .. }) => {
                        Some(variants.iter().map(|v| v.text.clone()).collect())
                    }
                    Some(_) => {
                        self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                on.span,
                                format!(
                                    "`match` needs an enum attribute, and `{}` is not one",
                                    on.text
                                ),
                            )
                            .label("not an enum")
                            .related(target.map_or(on.span, |a| a.name.span), "declared here")
                            .help("match on an attribute declared with `enum { .. }`"),
                        );
                        None
                    }
                    None => {
                        self.unknown(
                            Code::UnknownAttribute,
                            "attribute",
                            on,
                            e.attrs.iter().map(|a| a.name.text.as_str()),
                            &format!("`match` refers to another attribute of `{}`", e.name.text),
                        );
                        None
                    }
                };
                let mut out_arms = Vec::new();
                let mut ty: Option<AttrType> = None;
                let mut covered = BTreeSet::new();
                for (v, src) in arms {
                    if let Some(vs) = &variants
                        && !vs.contains(&v.text)
                    {
                        self.unknown(
                            Code::UnknownVariant,
                            "variant",
                            v,
                            vs.iter().map(String::as_str),
                            "list only the enum's variants",
                        );
                    }
                    if !covered.insert(v.text.clone()) {
                        self.push(
                            Diagnostic::new(
                                Code::DuplicateDefinition,
                                v.span,
                                format!("variant `{}` is matched twice", v.text),
                            )
                            .label("second arm")
                            .help("remove one of the arms"),
                        );
                    }
                    let (s, aty) = self.source(t, e, src, pools);
                    match &ty {
                        None => ty = Some(aty),
                        Some(prev) if *prev != aty => {
                            self.push(
                                Diagnostic::new(
                                    Code::TypeMismatch,
                                    src.span(),
                                    format!(
                                        "this arm gives {} values but an earlier arm gives {}",
                                        aty.describe(),
                                        prev.describe()
                                    ),
                                )
                                .label("different type")
                                .help("all arms of a `match` produce values of one type"),
                            );
                        }
                        _ => {}
                    }
                    out_arms.push((v.text.clone(), s));
                }
                if let Some(vs) = &variants {
                    let missing: Vec<&str> = vs
                        .iter()
                        .filter(|v| !covered.contains(*v))
                        .map(String::as_str)
                        .collect();
                    if !missing.is_empty() {
                        self.push(
                            Diagnostic::new(
                                Code::NonExhaustiveMatch,
                                *span,
                                format!(
                                    "`match {}` does not cover {}",
                                    on.text,
                                    missing
                                        .iter()
                                        .map(|m| format!("`{m}`"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            )
                            .label("missing arms")
                            .related(target.map_or(on.span, |a| a.source.span()), "the variants")
                            .help("add an arm for every variant"),
                        );
                    }
                }
                (
                    AttrSource::Match {
                        on: on.text.clone(),
                        arms: out_arms,
                    },
                    ty.unwrap_or(AttrType::Text),
                )
            }
            ast::Source::Text { template, .. } => {
                let parts = self.text_parts(template);
                for (p, span) in &parts {
                    if let TextPart::Hole { name, form } = p {
                        if let Some(f) = form
                            .as_ref()
                            .filter(|_| e.attrs.iter().any(|a| &a.name.text == name))
                        {
                            self.push(
                                Diagnostic::new(
                                    Code::TemplatePlaceholder,
                                    *span,
                                    format!(
                                        "`{{{name}.{f}}}`: attribute placeholders have no forms"
                                    ),
                                )
                                .label("unknown form")
                                .help(format!("write `{{{name}}}`")),
                            );
                        } else if form.is_some() || !e.attrs.iter().any(|a| &a.name.text == name) {
                            let n = Name {
                                text: name.clone(),
                                span: *span,
                            };
                            self.push(
                                Diagnostic::new(Code::TemplatePlaceholder, *span, format!("`{{{name}}}` is not an attribute of `{}`", e.name.text))
                                    .label("unknown placeholder")
                                    .help(did_you_mean(&n.text, e.attrs.iter().map(|a| a.name.text.as_str())).unwrap_or_else(|| "a text attribute may use the entity's other attributes as `{name}`".into())),
                            );
                        }
                    }
                }
                (
                    AttrSource::Text(parts.into_iter().map(|(p, _)| p).collect()),
                    AttrType::Text,
                )
            }
        }
    }

    fn date_bound(&mut self, lit: &Lit, t: &Tables) -> DateBound {
        match &lit.value {
            Literal::Date(d) => {
                self.date(d, lit.span);
                DateBound::Date(d.clone())
            }
            Literal::Param(p) => {
                self.param_use(p, lit.span, &[ParamType::Date], t);
                DateBound::Param(p.clone())
            }
            other => {
                self.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        lit.span,
                        format!("expected a date, found {}", describe_literal(other)),
                    )
                    .label("not a date")
                    .help("write YYYY-MM-DD or a date `$parameter`"),
                );
                DateBound::Date("1970-01-01".into())
            }
        }
    }

    /// Attributes computed from others (text templates, `match`) must not depend on themselves.
    fn attr_cycles(&mut self, e: &EntityDecl) {
        fn deps(s: &ast::Source, out: &mut Vec<String>) {
            match s {
                ast::Source::Text { template, .. } => {
                    let mut rest = template.value.as_str();
                    while let Some(i) = rest.find('{') {
                        let after = &rest[i + 1..];
                        if let Some(j) = after.find('}') {
                            out.push(after[..j].to_string());
                            rest = &after[j + 1..];
                        } else {
                            break;
                        }
                    }
                }
                ast::Source::Match { on, arms, .. } => {
                    out.push(on.text.clone());
                    for (_, s) in arms {
                        deps(s, out);
                    }
                }
                _ => {}
            }
        }
        let graph: BTreeMap<&str, Vec<String>> = e
            .attrs
            .iter()
            .map(|a| {
                let mut d = Vec::new();
                deps(&a.source, &mut d);
                (a.name.text.as_str(), d)
            })
            .collect();
        for a in &e.attrs {
            // Depth-first search from `a` looking for a path back to it.
            let mut stack: Vec<&str> = graph[a.name.text.as_str()]
                .iter()
                .map(String::as_str)
                .collect();
            let mut seen = BTreeSet::new();
            while let Some(n) = stack.pop() {
                if n == a.name.text {
                    self.push(
                        Diagnostic::new(Code::AttributeCycle, a.name.span, format!("attribute `{}` depends on itself", a.name.text))
                            .label("computed from itself")
                            .related(a.source.span(), "through this source")
                            .help("a text template or `match` must not refer back to the attribute it defines"),
                    );
                    break;
                }
                if seen.insert(n)
                    && let Some(next) = graph.get(n)
                {
                    stack.extend(next.iter().map(String::as_str));
                }
            }
        }
    }

    /// Warns when a key or `unique` attribute is drawn from fewer values than the declared
    /// entity count, since generation could not give every entity a different value.
    fn capacity_warning(
        &mut self,
        e: &EntityDecl,
        attrs: &[Attribute],
        key: &AttrDecl,
        pools: &[Pool],
        t: &Tables,
    ) {
        let count = match e.count.as_ref().map(|c| &c.value) {
            Some(Literal::Int(n)) => *n,
            Some(Literal::Param(p)) => match t.params.get(p.as_str()).map(|d| &d.default.value) {
                Some(Literal::Int(n)) => *n,
                _ => return,
            },
            _ => return,
        };
        // Negative counts are reported elsewhere; unreadable pools would give a bogus bound.
        let Ok(count) = u128::try_from(count) else {
            return;
        };
        let broken_pool = |p: &Pool| p.file.is_some() && p.values == ["?"];
        if pools.iter().any(broken_pool) {
            return;
        }
        fn cap(s: &AttrSource, attrs: &[Attribute], pools: &[Pool], depth: usize) -> Option<u128> {
            if depth > 16 {
                return None;
            }
            match s {
                AttrSource::Enum(v) => Some(v.len() as u128),
                AttrSource::Pool(p) => pools.iter().find(|x| &x.name == p).map(|x| x.len as u128),
                AttrSource::Int(Num::Int(a), Num::Int(b)) if b >= a => {
                    Some((i128::from(*b) - i128::from(*a) + 1).max(0) as u128)
                }
                AttrSource::Match { arms, .. } => arms
                    .iter()
                    .map(|(_, s)| cap(s, attrs, pools, depth + 1))
                    .sum(),
                AttrSource::Text(parts) => parts.iter().try_fold(1u128, |acc, p| match p {
                    TextPart::Hole { name, .. } => attrs
                        .iter()
                        .find(|a| &a.name == name)
                        .and_then(|a| cap(&a.source, attrs, pools, depth + 1))
                        .map(|c| acc.saturating_mul(c)),
                    TextPart::Lit(_) => Some(acc),
                }),
                _ => None,
            }
        }
        let Some(a) = attrs.iter().find(|a| a.name == key.name.text) else {
            return;
        };
        if let Some(c) = cap(&a.source, attrs, pools, 0)
            && c < count
        {
            self.push(
                Diagnostic::new(
                    Code::UniqueTooSmall,
                    key.source.span(),
                    format!(
                        "{} `{}` can take at most {}, but `{}` has {count} entities by default",
                        if key.key.is_some() {
                            "key"
                        } else {
                            "unique attribute"
                        },
                        key.name.text,
                        plural(c as usize, "distinct value", "distinct values"),
                        e.name.text
                    ),
                )
                .label(format!("at most {}", plural(c as usize, "value", "values")))
                .help(if key.key.is_some() {
                    "add values to the pools, or compose the key from more attributes"
                } else {
                    "widen the attribute's range or pool, or lower the count"
                }),
            );
        }
    }

    /// Splits a string literal into text and `{placeholder}`s, with spans into the source.
    fn text_parts(&mut self, s: &Str) -> Vec<(TextPart, Span)> {
        let raw_start = s.span.start + 1;
        let raw = self
            .src
            .get(raw_start..s.span.end.saturating_sub(1))
            .unwrap_or("");
        let mut out: Vec<(TextPart, Span)> = Vec::new();
        let mut lit = String::new();
        let mut chars = raw.char_indices().peekable();
        let flush = |lit: &mut String, out: &mut Vec<(TextPart, Span)>| {
            if !lit.is_empty() {
                out.push((TextPart::Lit(std::mem::take(lit)), s.span));
            }
        };
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => lit.push('\n'),
                    Some((_, 't')) => lit.push('\t'),
                    Some((_, o)) => lit.push(o),
                    None => {}
                },
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let rest = &raw[i + 1..];
                    let Some(close) = rest.find('}') else {
                        self.push(
                            Diagnostic::new(
                                Code::TemplatePlaceholder,
                                Span::new(raw_start + i, raw_start + i + 1),
                                "unclosed `{` in a template",
                            )
                            .label("opened here")
                            .help(
                                "close the placeholder with `}`, or write `{{` for a literal brace",
                            ),
                        );
                        lit.push_str(&raw[i..]);
                        break;
                    };
                    let inner = &rest[..close];
                    let span = Span::new(raw_start + i, raw_start + i + close + 2);
                    let (name, form) = match inner.split_once('.') {
                        Some((n, f)) => (n, Some(f.to_string())),
                        None => (inner, None),
                    };
                    let ok = |w: &str| {
                        !w.is_empty()
                            && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            && !w.starts_with(|c: char| c.is_ascii_digit())
                    };
                    if !ok(name) || !form.as_deref().is_none_or(ok) {
                        self.push(
                            Diagnostic::new(Code::TemplatePlaceholder, span, format!("`{{{inner}}}` is not a placeholder"))
                                .label("not a name")
                                .help("placeholders are `{name}` or `{name.form}`; write `{{` and `}}` for literal braces"),
                        );
                    } else {
                        flush(&mut lit, &mut out);
                        out.push((
                            TextPart::Hole {
                                name: name.to_string(),
                                form,
                            },
                            span,
                        ));
                    }
                    for _ in 0..inner.chars().count() + 1 {
                        chars.next();
                    }
                }
                '}' => {
                    self.push(
                        Diagnostic::new(
                            Code::TemplatePlaceholder,
                            Span::new(raw_start + i, raw_start + i + 1),
                            "unmatched `}` in a template",
                        )
                        .label("no matching `{`")
                        .help("write `}}` for a literal brace"),
                    );
                }
                c => lit.push(c),
            }
        }
        flush(&mut lit, &mut out);
        out
    }

    // ------------------------------------------------------------------ relations

    /// Role names and types of every relation, needed before any rule body is checked.
    fn heads(&mut self, t: &Tables) -> BTreeMap<String, Vec<Role>> {
        let mut out = BTreeMap::new();
        for r in &t.relations {
            let mut roles = Vec::new();
            let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
            for role in &r.roles {
                if let Some(f) = seen.get(role.name.text.as_str()) {
                    let f = *f;
                    self.duplicate("role", &role.name, f);
                    continue;
                }
                seen.insert(&role.name.text, role.name.span);
                if t.entity(&role.ty.text).is_none() {
                    self.unknown(
                        Code::UnknownType,
                        "entity type",
                        &role.ty,
                        t.entity_names(),
                        "declare it with `entity NAME { .. }`",
                    );
                }
                roles.push(Role {
                    name: role.name.text.clone(),
                    ty: role.ty.text.clone(),
                });
            }
            if r.roles.len() != 2 {
                self.push(
                    Diagnostic::new(
                        Code::RelationArity,
                        r.head_span,
                        format!("relation `{}` has {}; relations have exactly two", r.name.text, plural(r.roles.len(), "role", "roles")),
                    )
                    .label("not two roles")
                    .help("name two roles, e.g. `relation born_in(person: person, city: city)`; model more arguments as an entity type"),
                );
            }
            out.insert(r.name.text.clone(), roles);
        }
        out
    }

    fn relations(
        &mut self,
        t: &Tables,
        entities: &[EntityType],
        heads: &BTreeMap<String, Vec<Role>>,
    ) -> Vec<Relation> {
        let mut out = Vec::new();
        for r in &t.relations {
            let roles = &heads[&r.name.text];
            let role_arr: [Role; 2] = match roles.as_slice() {
                [a, b] => [a.clone(), b.clone()],
                _ => {
                    let fill = |i: usize| {
                        roles.get(i).cloned().unwrap_or(Role {
                            name: format!("_{i}"),
                            ty: String::new(),
                        })
                    };
                    [fill(0), fill(1)]
                }
            };
            if let Some(s) = r.symmetric
                && roles.len() == 2
                && role_arr[0].ty != role_arr[1].ty
            {
                self.push(
                    Diagnostic::new(Code::SymmetricRoles, s, format!("symmetric relation `{}` has roles of different types", r.name.text))
                        .label("symmetric")
                        .related(r.head_span, format!("`{}` and `{}`", role_arr[0].ty, role_arr[1].ty))
                        .help("a symmetric relation relates entities of one type; remove `symmetric` or make both roles the same type"),
                );
            }
            let def = match (r.bodies.is_empty(), r.generate.as_slice()) {
                (true, []) => {
                    self.push(
                        Diagnostic::new(Code::RelationSource, r.head_span, format!("relation `{}` has neither a generator nor a rule", r.name.text))
                            .label("no facts can come from this relation")
                            .help("add `{ generate KIND(..); }` for a base relation, or `:= body` for a derived one"),
                    );
                    RelationDef::Derived(Vec::new())
                }
                (false, [g, ..]) => {
                    self.push(
                        Diagnostic::new(Code::RelationSource, g.span, format!("relation `{}` has both a rule and a generator", r.name.text))
                            .label("generator")
                            .related(r.bodies[0].span, "rule")
                            .help("a relation is either generated (base) or derived by rules, not both; split it in two"),
                    );
                    RelationDef::Derived(Vec::new())
                }
                (true, [g, rest @ ..]) => {
                    for extra in rest {
                        self.push(
                            Diagnostic::new(
                                Code::RelationSource,
                                extra.span,
                                format!("relation `{}` has more than one generator", r.name.text),
                            )
                            .label("second generator")
                            .related(g.span, "first generator")
                            .help("keep one `generate` statement"),
                        );
                    }
                    RelationDef::Base(self.generator(t, r, g, &role_arr, entities))
                }
                (false, []) => RelationDef::Derived(
                    r.bodies
                        .iter()
                        .map(|b| self.rule_body(t, r, b, &role_arr, heads, entities))
                        .collect(),
                ),
            };
            let cards = self.cards(r, &role_arr, &def, t);
            let says = self.says(r, &role_arr, entities);
            let weight = match r.weight {
                Some((w, span)) if w < 1 => {
                    self.push(
                        Diagnostic::new(Code::InvalidRange, span, format!("weight {w} is below 1"))
                            .label("too small")
                            .help("a weight counts reasoning steps: 1 for a direct relation, more for composite ones"),
                    );
                    1
                }
                Some((w, _)) => w,
                None => 1,
            };
            out.push(Relation {
                name: r.name.text.clone(),
                roles: role_arr,
                symmetric: r.symmetric.is_some(),
                irreflexive: r.irreflexive.is_some(),
                cards,
                def,
                says,
                weight,
                stratum: 0,
                recursive: false,
            });
        }
        out
    }

    fn generator(
        &mut self,
        t: &Tables,
        r: &RelationDecl,
        g: &GenerateDecl,
        roles: &[Role; 2],
        entities: &[EntityType],
    ) -> Generator {
        let Some(spec) = GEN_SPECS.iter().find(|s| s.name == g.generator.text) else {
            self.unknown(
                Code::UnknownGenerator,
                "generator",
                &g.generator,
                GEN_SPECS.iter().map(|s| s.name),
                "generators are family_tree, random_graph, function and assign",
            );
            return Generator {
                kind: GenKind::Function,
                args: BTreeMap::new(),
            };
        };
        let mut args = BTreeMap::new();
        for (n, v) in &g.args {
            let Some((_, kind, _)) = spec.args.iter().find(|(a, _, _)| *a == n.text) else {
                let names: Vec<&str> = spec.args.iter().map(|(a, _, _)| *a).collect();
                self.push(
                    Diagnostic::new(
                        Code::GeneratorArgs,
                        n.span,
                        format!("`{}` takes no argument `{}`", spec.name, n.text),
                    )
                    .label("unknown argument")
                    .help(
                        did_you_mean(&n.text, names.iter().copied()).unwrap_or_else(|| {
                            format!("`{}` takes: {}", spec.name, names.join(", "))
                        }),
                    ),
                );
                continue;
            };
            if args.contains_key(&n.text) {
                self.push(
                    Diagnostic::new(
                        Code::GeneratorArgs,
                        n.span,
                        format!("argument `{}` is given twice", n.text),
                    )
                    .label("repeated")
                    .help("give each argument once"),
                );
                continue;
            }
            if let Some(a) = self.gen_arg(t, *kind, n, v, roles, entities) {
                args.insert(n.text.clone(), a);
            }
        }
        let missing: Vec<&str> = spec
            .args
            .iter()
            .filter(|(a, _, req)| *req && !g.args.iter().any(|(n, _)| n.text == *a))
            .map(|(a, _, _)| *a)
            .collect();
        if !missing.is_empty() {
            self.push(
                Diagnostic::new(
                    Code::GeneratorArgs,
                    g.generator.span,
                    format!(
                        "`{}` needs {}",
                        spec.name,
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .label("missing arguments")
                .help(format!(
                    "add {}",
                    missing
                        .iter()
                        .map(|m| format!("`{m}: ..`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
        if spec.kind == GenKind::FamilyTree && roles[0].ty != roles[1].ty {
            self.push(
                Diagnostic::new(Code::GeneratorArgs, g.generator.span, format!("`family_tree` needs both roles of `{}` to have one type", r.name.text))
                    .label("roles differ in type")
                    .related(r.head_span, "roles")
                    .help("family trees relate entities of one type, e.g. `parent(child: person, parent: person)`"),
            );
        }
        Generator {
            kind: spec.kind,
            args,
        }
    }

    fn gen_arg(
        &mut self,
        t: &Tables,
        kind: ArgKind,
        n: &Name,
        v: &Lit,
        roles: &[Role; 2],
        entities: &[EntityType],
    ) -> Option<GenArg> {
        let bad = |cx: &mut Self, want: &str| {
            cx.push(
                Diagnostic::new(
                    Code::GeneratorArgs,
                    v.span,
                    format!(
                        "argument `{}` needs {want}, found {}",
                        n.text,
                        describe_literal(&v.value)
                    ),
                )
                .label(format!("not {want}"))
                .help(format!("give `{}` {want}", n.text)),
            );
            None
        };
        match (kind, &v.value) {
            (ArgKind::Int | ArgKind::Float, Literal::Int(_) | Literal::Float(_))
                if literal_negative(&v.value) =>
            {
                self.push(
                    Diagnostic::new(
                        Code::GeneratorArgs,
                        v.span,
                        format!("argument `{}` cannot be negative", n.text),
                    )
                    .label("negative")
                    .help("sizes, counts, degrees and probabilities are zero or more"),
                );
                None
            }
            (ArgKind::Int, Literal::Int(i)) => {
                self.int_fits(v).then_some(GenArg::Num(Num::Int(*i)))
            }
            (ArgKind::Float, Literal::Int(i)) => Some(GenArg::Num(Num::Float(*i as f64))),
            (ArgKind::Float, Literal::Float(f)) => Some(GenArg::Num(Num::Float(*f))),
            (ArgKind::Int, Literal::Param(p)) => {
                self.param_use(p, v.span, &[ParamType::Int], t);
                Some(GenArg::Num(Num::Param(p.clone())))
            }
            (ArgKind::Float, Literal::Param(p)) => {
                self.param_use(p, v.span, &[ParamType::Float, ParamType::Int], t);
                Some(GenArg::Num(Num::Param(p.clone())))
            }
            (ArgKind::Role, Literal::Ident(x)) => {
                if roles.iter().any(|r| &r.name == x) {
                    Some(GenArg::Name(x.clone()))
                } else {
                    let nm = Name {
                        text: x.clone(),
                        span: v.span,
                    };
                    self.unknown(
                        Code::UnknownRole,
                        "role",
                        &nm,
                        roles.iter().map(|r| r.name.as_str()),
                        "name one of the relation's roles",
                    );
                    None
                }
            }
            (ArgKind::Attr(want), Literal::Ident(x)) => {
                let ety = entities.iter().find(|e| e.name == roles[0].ty)?;
                match ety.attr(x) {
                    None => {
                        let nm = Name {
                            text: x.clone(),
                            span: v.span,
                        };
                        self.unknown(
                            Code::UnknownAttribute,
                            "attribute",
                            &nm,
                            ety.attrs.iter().map(|a| a.name.as_str()),
                            &format!("name an attribute of `{}`", ety.name),
                        );
                        None
                    }
                    Some(a) => {
                        let ok = match want {
                            AttrWant::Enum2 => matches!(&a.ty, AttrType::Enum(v) if v.len() >= 2),
                            AttrWant::Date => a.ty == AttrType::Date,
                            AttrWant::Any => true,
                        };
                        if ok {
                            Some(GenArg::Name(x.clone()))
                        } else {
                            let w = match want {
                                AttrWant::Enum2 => "an enum attribute",
                                AttrWant::Date => "a date attribute",
                                AttrWant::Any => "an attribute",
                            };
                            self.push(
                                Diagnostic::new(
                                    Code::TypeMismatch,
                                    v.span,
                                    format!(
                                        "`{}` needs {w}, but `{x}` is {}",
                                        n.text,
                                        a.ty.describe()
                                    ),
                                )
                                .label(format!("not {w}"))
                                .help(format!("name {w} of `{}`", ety.name)),
                            );
                            None
                        }
                    }
                }
            }
            (ArgKind::Int, _) => bad(self, "an integer"),
            (ArgKind::Float, _) => bad(self, "a number"),
            (ArgKind::Role, _) => bad(self, "a role name"),
            (ArgKind::Attr(_), _) => bad(self, "an attribute name"),
        }
    }

    fn cards(
        &mut self,
        r: &RelationDecl,
        roles: &[Role; 2],
        def: &RelationDef,
        t: &Tables,
    ) -> Vec<Card> {
        // Parameters are checked at their defaults; a run that overrides them is checked
        // again when the universe is generated.
        let int_value = |n: &Num| match n {
            Num::Int(i) => Some(*i),
            Num::Param(p) => match t.params.get(p.as_str()).map(|d| &d.default.value) {
                Some(Literal::Int(i)) => Some(*i),
                _ => None,
            },
            Num::Float(_) => None,
        };
        let mut out: Vec<(Card, Span)> = Vec::new();
        for c in &r.cards {
            let Some(i) = roles.iter().position(|x| x.name == c.role.text) else {
                self.unknown(
                    Code::UnknownRole,
                    "role",
                    &c.role,
                    roles.iter().map(|r| r.name.as_str()),
                    "name one of the relation's roles",
                );
                continue;
            };
            if roles[1 - i].name != c.other.text {
                let msg = if c.other.text == c.role.text {
                    format!(
                        "`each {0} has .. {0}` counts a role against itself",
                        c.role.text
                    )
                } else {
                    format!("unknown role `{}`", c.other.text)
                };
                self.push(
                    Diagnostic::new(Code::UnknownRole, c.other.span, msg)
                        .label("not the other role")
                        .help(format!(
                            "write `each {} has .. {};`",
                            c.role.text,
                            roles[1 - i].name
                        )),
                );
                continue;
            }
            let (lo, hi) = (c.lo.max(0) as u64, c.hi.map(|h| h.max(0) as u64));
            if c.lo < 0 || hi.is_some_and(|h| h < lo) {
                self.push(
                    Diagnostic::new(
                        Code::ContradictoryCardinality,
                        c.range_span,
                        "cardinality range is empty",
                    )
                    .label("no count satisfies this")
                    .help("write `LO..HI` with 0 <= LO <= HI, `N`, or `LO..*`"),
                );
                continue;
            }
            let card = Card { role: i, lo, hi };
            if let Some((prev, pspan)) = out.iter().find(|(p, _)| p.role == i) {
                let code = if *prev == card {
                    Code::DuplicateDefinition
                } else {
                    Code::ContradictoryCardinality
                };
                let pspan = *pspan;
                self.push(
                    Diagnostic::new(
                        code,
                        c.span,
                        format!("cardinality of role `{}` is declared twice", c.role.text),
                    )
                    .label("second declaration")
                    .related(pspan, "first declaration")
                    .help("keep one `each` statement per role"),
                );
                continue;
            }
            out.push((card, c.span));
        }
        if r.symmetric.is_some()
            && let [(a, sa), (b, sb)] = out.as_slice()
            && (a.lo, a.hi) != (b.lo, b.hi)
        {
            self.push(
                Diagnostic::new(
                    Code::ContradictoryCardinality,
                    *sb,
                    "a symmetric relation gives both roles the same cardinality",
                )
                .label("differs")
                .related(*sa, "from this one")
                .help("declare the cardinality once; it applies to both roles"),
            );
        }
        // A generator fixes some counts; a declared range must leave room for them.
        if let (RelationDef::Base(g), [gen_decl, ..]) = (def, r.generate.as_slice()) {
            let implied: Option<(usize, u64, Option<u64>, String)> = match g.kind {
                GenKind::FamilyTree => match g.args.get("parent") {
                    Some(GenArg::Name(p)) => roles
                        .iter()
                        .position(|x| &x.name == p)
                        .map(|pi| (1 - pi, 0, Some(2), "up to two parents".to_string())),
                    _ => None,
                },
                GenKind::Function => match g.args.get("from") {
                    Some(GenArg::Name(f)) => roles
                        .iter()
                        .position(|x| &x.name == f)
                        .map(|fi| (fi, 1, Some(1), "exactly one partner".to_string())),
                    _ => None,
                },
                GenKind::Assign => match (
                    g.args.get("from"),
                    g.args.get("min").and_then(|a| match a {
                        GenArg::Num(n) => int_value(n),
                        _ => None,
                    }),
                    g.args.get("max").and_then(|a| match a {
                        GenArg::Num(n) => int_value(n),
                        _ => None,
                    }),
                ) {
                    (Some(GenArg::Name(f)), Some(lo), Some(hi)) => {
                        let (lo, hi) = (&lo, &hi);
                        if lo > hi || *lo < 0 {
                            self.push(
                                Diagnostic::new(
                                    Code::ContradictoryCardinality,
                                    gen_decl.span,
                                    format!(
                                        "`assign` with min {lo} and max {hi} can assign nothing"
                                    ),
                                )
                                .label("empty range")
                                .help("use 0 <= min <= max"),
                            );
                            None
                        } else {
                            roles.iter().position(|x| &x.name == f).map(|fi| {
                                (
                                    fi,
                                    *lo as u64,
                                    Some(*hi as u64),
                                    format!("between {lo} and {hi} partners"),
                                )
                            })
                        }
                    }
                    _ => None,
                },
                GenKind::RandomGraph => None,
            };
            // The roles whose partner counts the generator does not bound: the side it
            // leaves open (a `function` gives each `from` entity one partner, but any number
            // of `from` entities may pick the same one), every role of a random graph, and
            // both roles of a symmetric relation, whose facts also count the other way.
            let bounded = match (&implied, r.symmetric.is_some()) {
                (Some((role, ..)), false) => Some(*role),
                _ => None,
            };
            for (c, span) in &out {
                if Some(c.role) == bounded || (c.lo == 0 && c.hi.is_none()) {
                    continue;
                }
                let gen_name = GEN_SPECS
                    .iter()
                    .find(|s| s.kind == g.kind)
                    .map_or("the generator", |s| s.name);
                self.push(
                    Diagnostic::new(
                        Code::ContradictoryCardinality,
                        *span,
                        format!(
                            "`{gen_name}` does not bound how many partners each `{}` has, so this cardinality can be broken",
                            roles[c.role].name
                        ),
                    )
                    .label("not guaranteed by the generator")
                    .related(gen_decl.span, "generator")
                    .help(format!(
                        "drop it (or write `0..*`), or generate from this side: `function(from: {})` or `assign(from: {}, ..)`",
                        roles[c.role].name, roles[c.role].name
                    )),
                );
            }
            if let Some((role, lo, hi, what)) = implied
                && let Some((c, span)) = out.iter().find(|(c, _)| c.role == role)
            {
                // The declared range is a promise about every entity, so everything the
                // generator can produce must fall inside it.
                let outside = lo < c.lo || c.hi.is_some_and(|ch| hi.is_none_or(|h| h > ch));
                if outside {
                    self.push(
                        Diagnostic::new(
                            Code::ContradictoryCardinality,
                            *span,
                            format!("the generator gives each `{}` {what}, which this cardinality does not allow", roles[role].name),
                        )
                        .label("contradicts the generator")
                        .related(gen_decl.span, "generator")
                        .help("change the cardinality or the generator"),
                    );
                }
            }
        }
        out.into_iter().map(|(c, _)| c).collect()
    }

    fn says(&mut self, r: &RelationDecl, roles: &[Role; 2], entities: &[EntityType]) -> Vec<Say> {
        let mut out: Vec<Say> = Vec::new();
        let mut spans: Vec<Span> = Vec::new();
        for s in &r.says {
            let Some(i) = roles.iter().position(|x| x.name == s.role.text) else {
                self.unknown(
                    Code::UnknownRole,
                    "role",
                    &s.role,
                    roles.iter().map(|r| r.name.as_str()),
                    "`say ROLE: ..` names the role the noun describes",
                );
                continue;
            };
            if let Some(j) = out.iter().position(|o| o.role == i) {
                let first = spans[j];
                self.push(
                    Diagnostic::new(
                        Code::DuplicateDefinition,
                        s.role.span,
                        format!("role `{}` has two surface forms", s.role.text),
                    )
                    .label("second `say`")
                    .related(first, "first `say`")
                    .help("use `when ATTR = VALUE: ..` for alternative forms"),
                );
                continue;
            }
            let ety = entities.iter().find(|e| e.name == roles[i].ty);
            let mut when = Vec::new();
            for w in &s.when {
                let Some(ety) = ety else { break };
                match ety.attr(&w.attr.text) {
                    None => self.unknown(
                        Code::UnknownAttribute,
                        "attribute",
                        &w.attr,
                        ety.attrs.iter().map(|a| a.name.as_str()),
                        &format!("name an enum attribute of `{}`", ety.name),
                    ),
                    Some(a) => match &a.ty {
                        AttrType::Enum(vs) if vs.contains(&w.value.text) => when.push(SayWhenIr {
                            attr: w.attr.text.clone(),
                            value: w.value.text.clone(),
                            singular: w.singular.value.clone(),
                            plural: w.plural.value.clone(),
                        }),
                        AttrType::Enum(vs) => self.unknown(
                            Code::UnknownVariant,
                            "variant",
                            &w.value,
                            vs.iter().map(String::as_str),
                            &format!("`{}` is one of: {}", a.name, vs.join(", ")),
                        ),
                        other => self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                w.attr.span,
                                format!(
                                    "`when` needs an enum attribute, and `{}` is {}",
                                    a.name,
                                    other.describe()
                                ),
                            )
                            .label("not an enum")
                            .help("choose forms by an enum attribute such as gender"),
                        ),
                    },
                }
            }
            spans.push(s.role.span);
            out.push(Say {
                role: i,
                of: 1 - i,
                singular: s.singular.value.clone(),
                plural: s.plural.value.clone(),
                when,
            });
        }
        out
    }

    fn rule_body(
        &mut self,
        t: &Tables,
        r: &RelationDecl,
        b: &RuleBody,
        roles: &[Role; 2],
        heads: &BTreeMap<String, Vec<Role>>,
        entities: &[EntityType],
    ) -> RuleIr {
        struct Var {
            name: String,
            ty: Option<(String, Span)>,
            uses: Vec<Span>,
            grounded: bool,
        }
        let mut vars: Vec<Var> = roles
            .iter()
            .zip(&r.roles)
            .map(|(role, decl)| Var {
                name: role.name.clone(),
                ty: Some((role.ty.clone(), decl.ty.span)),
                uses: Vec::new(),
                grounded: false,
            })
            .collect();
        let var_index = |vars: &mut Vec<Var>, n: &Name| -> usize {
            if n.text == "_" {
                // Each `_` is its own variable; it is existential, so it needs no binding.
                vars.push(Var {
                    name: "_".into(),
                    ty: None,
                    uses: vec![n.span],
                    grounded: true,
                });
                return vars.len() - 1;
            }
            if let Some(i) = vars.iter().position(|v| v.name == n.text) {
                vars[i].uses.push(n.span);
                i
            } else {
                vars.push(Var {
                    name: n.text.clone(),
                    ty: None,
                    uses: vec![n.span],
                    grounded: false,
                });
                vars.len() - 1
            }
        };
        let mut body: Vec<Option<BodyIr>> = Vec::new();
        // Pass 1: atoms give variables their types and ground them.
        for lit in &b.lits {
            let BodyLit::Atom { atom, negated } = lit else {
                body.push(None);
                continue;
            };
            let Some(target_roles) = heads.get(&atom.relation.text) else {
                let help = match t.globals.get(atom.relation.text.as_str()) {
                    Some(g) => {
                        format!("`{}` is a {}, not a relation", atom.relation.text, g.what())
                    }
                    None => {
                        did_you_mean(&atom.relation.text, t.relation_names()).unwrap_or_else(|| {
                            "declare it with `relation NAME(role: type, role: type) ..`".into()
                        })
                    }
                };
                self.push(
                    Diagnostic::new(
                        Code::UnknownRelation,
                        atom.relation.span,
                        format!("unknown relation `{}`", atom.relation.text),
                    )
                    .label("no relation has this name")
                    .help(help),
                );
                // Its variables count as bound, so one typo is one diagnostic.
                for (_, v) in &atom.args {
                    let vi = var_index(&mut vars, v);
                    vars[vi].grounded = true;
                }
                body.push(None);
                continue;
            };
            let mut args: [Option<usize>; 2] = [None, None];
            let mut ok = true;
            let mut bad_role = false;
            for (role, v) in &atom.args {
                let vi = var_index(&mut vars, v);
                let Some(ri) = target_roles.iter().position(|x| x.name == role.text) else {
                    self.unknown(
                        Code::UnknownRole,
                        &format!("role of `{}`", atom.relation.text),
                        role,
                        target_roles.iter().map(|r| r.name.as_str()),
                        &format!(
                            "`{}` has roles {}",
                            atom.relation.text,
                            target_roles
                                .iter()
                                .map(|r| format!("`{}`", r.name))
                                .collect::<Vec<_>>()
                                .join(" and ")
                        ),
                    );
                    ok = false;
                    bad_role = true;
                    vars[vi].grounded |= negated.is_none();
                    continue;
                };
                if args[ri.min(1)].is_some() && ri < 2 {
                    self.push(
                        Diagnostic::new(
                            Code::AtomArity,
                            role.span,
                            format!("role `{}` is given twice", role.text),
                        )
                        .label("repeated role")
                        .help("give each role exactly once"),
                    );
                    ok = false;
                    bad_role = true;
                    vars[vi].grounded |= negated.is_none();
                    continue;
                }
                if ri < 2 {
                    args[ri] = Some(vi);
                }
                let want = &target_roles[ri].ty;
                match &vars[vi].ty {
                    None => vars[vi].ty = Some((want.clone(), v.span)),
                    Some((have, first))
                        if have != want && t.entity(want).is_some() && t.entity(have).is_some() =>
                    {
                        let first = *first;
                        self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                v.span,
                                format!(
                                    "`{}` is a `{have}` but role `{}` of `{}` takes a `{want}`",
                                    v.text, role.text, atom.relation.text
                                ),
                            )
                            .label(format!("`{want}` expected"))
                            .related(first, format!("`{}` is a `{have}` from here", v.text))
                            .help(
                                "use a different variable, or a relation whose role has this type",
                            ),
                        );
                        ok = false;
                    }
                    _ => {}
                }
                if negated.is_none() {
                    vars[vi].grounded = true;
                }
            }
            let missing: Vec<&str> = target_roles
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    *i < 2
                        && args[*i].is_none()
                        && !atom
                            .args
                            .iter()
                            .any(|(r, _)| r.text == target_roles[*i].name)
                })
                .map(|(_, r)| r.name.as_str())
                .collect();
            if !missing.is_empty() && !bad_role {
                self.push(
                    Diagnostic::new(
                        Code::AtomArity,
                        atom.span,
                        format!(
                            "`{}` is missing {}",
                            atom.relation.text,
                            missing
                                .iter()
                                .map(|m| format!("role `{m}`"))
                                .collect::<Vec<_>>()
                                .join(" and ")
                        ),
                    )
                    .label("incomplete atom")
                    .help(format!(
                        "write every role: `{}({})`",
                        atom.relation.text,
                        target_roles
                            .iter()
                            .map(|r| format!("{}: ..", r.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
                ok = false;
            }
            self.dep_edges.push(DepEdge {
                from: r.name.text.clone(),
                to: atom.relation.text.clone(),
                negated: negated.is_some(),
                span: lit.span(),
                body: b.span,
            });
            body.push(match (ok, args) {
                (true, [Some(a), Some(c)]) => Some(BodyIr::Atom {
                    relation: atom.relation.text.clone(),
                    negated: negated.is_some(),
                    args: [a, c],
                }),
                _ => None,
            });
        }
        // Pass 2: tests, now that variables have types.
        for (k, lit) in b.lits.iter().enumerate() {
            match lit {
                BodyLit::Atom { .. } => {}
                BodyLit::AttrTest {
                    var,
                    attr,
                    op,
                    value,
                    span,
                } => {
                    let vi = var_index(&mut vars, var);
                    let Some((ty, _)) = vars[vi].ty.clone() else {
                        continue;
                    };
                    let Some(ety) = entities.iter().find(|e| e.name == ty) else {
                        continue;
                    };
                    let Some(a) = ety.attr(&attr.text) else {
                        self.unknown(
                            Code::UnknownAttribute,
                            &format!("attribute of `{ty}`"),
                            attr,
                            ety.attrs.iter().map(|a| a.name.as_str()),
                            &format!("`{}` is a `{ty}`", var.text),
                        );
                        continue;
                    };
                    if op.is_order() && !a.ty.is_ordered() {
                        self.push(
                            Diagnostic::new(Code::TypeMismatch, *span, format!("`{}` compares {} values by order", op.as_str(), a.ty.describe()))
                                .label("not ordered")
                                .help("`<`, `<=`, `>`, `>=` apply to int and date attributes; use `=` or `!=`"),
                        );
                        continue;
                    }
                    let tv = match value {
                        TestValue::AttrOf {
                            var: v2,
                            attr: a2,
                            span: s2,
                        } => {
                            let vj = var_index(&mut vars, v2);
                            let Some((ty2, _)) = vars[vj].ty.clone() else {
                                continue;
                            };
                            let Some(a2d) = entities
                                .iter()
                                .find(|e| e.name == ty2)
                                .and_then(|e| e.attr(&a2.text))
                            else {
                                let cands: Vec<&str> = entities
                                    .iter()
                                    .find(|e| e.name == ty2)
                                    .map(|e| e.attrs.iter().map(|a| a.name.as_str()).collect())
                                    .unwrap_or_default();
                                self.unknown(
                                    Code::UnknownAttribute,
                                    &format!("attribute of `{ty2}`"),
                                    a2,
                                    cands,
                                    "name an attribute of the variable's type",
                                );
                                continue;
                            };
                            if a2d.ty != a.ty {
                                self.push(
                                    Diagnostic::new(
                                        Code::TypeMismatch,
                                        *s2,
                                        format!(
                                            "`{}.{}` is {} but `{}.{}` is {}",
                                            v2.text,
                                            a2.text,
                                            a2d.ty.describe(),
                                            var.text,
                                            attr.text,
                                            a.ty.describe()
                                        ),
                                    )
                                    .label("different type")
                                    .help("compare attributes of the same type"),
                                );
                                continue;
                            }
                            TestValueIr::Attr {
                                var: vj,
                                attr: a2.text.clone(),
                            }
                        }
                        TestValue::Lit(l) => match self.test_literal(t, l, &a.ty, &a.name) {
                            Some(v) => v,
                            None => continue,
                        },
                    };
                    body[k] = Some(BodyIr::AttrTest {
                        var: vi,
                        attr: attr.text.clone(),
                        op: op.as_str().into(),
                        value: tv,
                    });
                }
                BodyLit::VarTest {
                    left,
                    op,
                    right,
                    span,
                } => {
                    let a = var_index(&mut vars, left);
                    let c = var_index(&mut vars, right);
                    if op.is_order() {
                        self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                *span,
                                "entities can only be compared with `=` or `!=`",
                            )
                            .label("not ordered")
                            .help("compare an attribute instead, e.g. `x.dob < y.dob`"),
                        );
                        continue;
                    }
                    if let (Some((ta, _)), Some((tc, _))) = (&vars[a].ty, &vars[c].ty)
                        && ta != tc
                    {
                        self.push(
                            Diagnostic::new(Code::TypeMismatch, *span, format!("`{}` is a `{ta}` and `{}` is a `{tc}`; they can never be equal", left.text, right.text))
                                .label("different types")
                                .help("compare variables of the same entity type"),
                        );
                        continue;
                    }
                    body[k] = Some(BodyIr::VarTest {
                        left: a,
                        op: op.as_str().into(),
                        right: c,
                    });
                }
            }
        }
        // Safety: every variable must be bound by a positive atom.
        for (i, v) in vars.iter().enumerate() {
            if v.grounded {
                continue;
            }
            if i < 2 {
                let decl = &r.roles[i.min(r.roles.len().saturating_sub(1))];
                self.push(
                    Diagnostic::new(
                        Code::UngroundedVariable,
                        b.span,
                        format!("head role `{}` is not bound by this rule body", v.name),
                    )
                    .label(format!("nothing here binds `{}`", v.name))
                    .related(decl.name.span, "head role")
                    .help(format!(
                        "use `{}` in a positive relation atom of the body",
                        v.name
                    )),
                );
            } else if let Some(first) = v.uses.first() {
                self.push(
                    Diagnostic::new(Code::UngroundedVariable, *first, format!("variable `{}` is not bound by any positive atom", v.name))
                        .label("ungrounded")
                        .help(format!("bind `{}` in a relation atom that is not negated; tests and `not` only filter", v.name)),
                );
            }
        }
        for v in vars.iter().skip(2) {
            if v.uses.len() == 1 && v.grounded && !v.name.starts_with('_') {
                self.push(
                    Diagnostic::new(
                        Code::SingletonVariable,
                        v.uses[0],
                        format!("variable `{}` is used only once", v.name),
                    )
                    .label("used once")
                    .help(format!(
                        "replace it with `_`, or name it `_{}` if the name helps the reader",
                        v.name
                    )),
                );
            }
        }
        RuleIr {
            vars: vars
                .iter()
                .map(|v| {
                    (
                        v.name.clone(),
                        v.ty.as_ref().map(|t| t.0.clone()).unwrap_or_default(),
                    )
                })
                .collect(),
            body: body.into_iter().flatten().collect(),
        }
    }

    fn test_literal(
        &mut self,
        t: &Tables,
        l: &Lit,
        ty: &AttrType,
        attr: &str,
    ) -> Option<TestValueIr> {
        let v = match (&l.value, ty) {
            (Literal::Ident(x), AttrType::Enum(vs)) => {
                if !vs.contains(x) {
                    let nm = Name {
                        text: x.clone(),
                        span: l.span,
                    };
                    self.unknown(
                        Code::UnknownVariant,
                        "variant",
                        &nm,
                        vs.iter().map(String::as_str),
                        &format!("`{attr}` is one of: {}", vs.join(", ")),
                    );
                    return None;
                }
                Value::Str(x.clone())
            }
            (Literal::Str(s), AttrType::Text) => Value::Str(s.clone()),
            (Literal::Int(i), AttrType::Int) => Value::Int(*i),
            (Literal::Date(d), AttrType::Date) => {
                if !self.date(d, l.span) {
                    return None;
                }
                Value::Date(d.clone())
            }
            (Literal::Param(p), _) => {
                let want = match ty {
                    AttrType::Int => ParamType::Int,
                    AttrType::Date => ParamType::Date,
                    _ => ParamType::String,
                };
                self.param_use(p, l.span, &[want], t);
                return Some(TestValueIr::Param(p.clone()));
            }
            (other, _) => {
                self.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        l.span,
                        format!(
                            "`{attr}` is {} but this is {}",
                            ty.describe(),
                            describe_literal(other)
                        ),
                    )
                    .label("wrong type")
                    .help(match ty {
                        AttrType::Enum(vs) => format!("write one of: {}", vs.join(", ")),
                        AttrType::Text => "write a string in double quotes".into(),
                        AttrType::Int => "write an integer".into(),
                        AttrType::Date => "write a date YYYY-MM-DD".into(),
                    }),
                );
                return None;
            }
        };
        Some(TestValueIr::Value(v))
    }

    /// Stratifies negation, marks recursion and rejects recursion without a base case.
    fn stratify(&mut self, t: &Tables, relations: &mut [Relation]) {
        let idx: BTreeMap<&str, usize> = t
            .relations
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.text.as_str(), i))
            .collect();
        let n = t.relations.len();
        let mut adj: Vec<Vec<(usize, bool)>> = vec![Vec::new(); n];
        for e in &self.dep_edges {
            if let (Some(&a), Some(&b)) = (idx.get(e.from.as_str()), idx.get(e.to.as_str())) {
                adj[a].push((b, e.negated));
            }
        }
        let comps = tarjan(&adj);
        let mut comp_of = vec![0; n];
        for (ci, c) in comps.iter().enumerate() {
            for &v in c {
                comp_of[v] = ci;
            }
        }
        // Tarjan emits components dependencies-first, so strata can be filled in order.
        let mut comp_stratum = vec![0usize; comps.len()];
        let edges = std::mem::take(&mut self.dep_edges);
        for (ci, c) in comps.iter().enumerate() {
            let members: BTreeSet<usize> = c.iter().copied().collect();
            let mut s = 0;
            for &v in c {
                for &(w, neg) in &adj[v] {
                    if comp_of[w] != ci {
                        s = s.max(comp_stratum[comp_of[w]] + usize::from(neg));
                    }
                }
            }
            comp_stratum[ci] = s;
            let recursive = c.len() > 1 || adj[c[0]].iter().any(|&(w, _)| w == c[0]);
            for &v in c {
                relations[v].stratum = s;
                relations[v].recursive = recursive;
            }
            if !recursive {
                continue;
            }
            for e in &edges {
                if e.negated
                    && idx
                        .get(e.from.as_str())
                        .is_some_and(|a| members.contains(a))
                    && idx.get(e.to.as_str()).is_some_and(|b| members.contains(b))
                {
                    self.push(
                        Diagnostic::new(Code::UnstratifiableNegation, e.span, format!("`{}` depends on the negation of `{}`, which depends on `{}`", e.from, e.to, e.from))
                            .label("negation inside a recursive cycle")
                            .help("a relation may only negate relations that do not depend on it; break the cycle"),
                    );
                }
            }
            // Some body in the cycle must not use the cycle, or nothing is ever derived.
            let has_base = c.iter().any(|&v| {
                t.relations[v].bodies.iter().any(|b| {
                    !edges.iter().any(|e| {
                        e.body == b.span
                            && !e.negated
                            && idx.get(e.to.as_str()).is_some_and(|w| members.contains(w))
                    })
                })
            });
            if !has_base {
                let mut sorted: Vec<usize> = c.clone();
                sorted.sort();
                let first = &t.relations[sorted[0]];
                let mut d = Diagnostic::new(Code::NoBaseCase, first.head_span, format!("recursive relation `{}` has no base case", first.name.text))
                    .label("every rule body uses the relation itself")
                    .help("add an alternative body `| ..` that does not refer to the recursion, e.g. `ancestor := parent(..) | parent(..), ancestor(..)`");
                for &o in &sorted[1..] {
                    d = d.related(t.relations[o].head_span, "in the same cycle");
                }
                self.push(d);
            }
        }
    }

    /// Every entity type needs a way to come into being: a `count` or a family-tree generator.
    fn populated(&mut self, t: &Tables, relations: &[Relation]) {
        let by_tree: BTreeSet<&str> = relations
            .iter()
            .filter(|r| matches!(&r.def, RelationDef::Base(g) if g.kind == GenKind::FamilyTree))
            // A tree over two different types is already an error; it populates nothing.
            .filter(|r| r.roles[0].ty == r.roles[1].ty)
            .map(|r| r.roles[0].ty.as_str())
            .collect();
        for e in &t.entities {
            let tree = by_tree.contains(e.name.text.as_str());
            if e.count.is_none() && !tree {
                self.push(
                    Diagnostic::new(Code::UnpopulatedType, e.name.span, format!("nothing creates `{}` entities", e.name.text))
                        .label("no count and no family tree")
                        .help(format!("write `entity {} count N {{ .. }}`, or generate a `family_tree` relation over it", e.name.text)),
                );
            } else if let (Some(c), true) = (&e.count, tree) {
                self.push(
                    Diagnostic::new(
                        Code::UnpopulatedType,
                        c.span,
                        format!(
                            "`{}` entities are created by a family tree, so a count does not apply",
                            e.name.text
                        ),
                    )
                    .label("count given")
                    .help("remove the count and size the trees with the generator's arguments"),
                );
            }
        }
    }

    // ------------------------------------------------------------------ banks

    fn banks(&mut self, t: &Tables) -> Vec<Bank> {
        let mut out = Vec::new();
        for b in &t.banks {
            let mut rels = Vec::new();
            let mut stack = vec![b.name.text.clone()];
            self.expand_bank(t, b, &mut rels, &mut stack);
            out.push(Bank {
                name: b.name.text.clone(),
                relations: rels,
            });
        }
        out
    }

    fn expand_bank(
        &mut self,
        t: &Tables,
        b: &BankDecl,
        rels: &mut Vec<String>,
        stack: &mut Vec<String>,
    ) {
        for m in &b.members {
            match t.globals.get(m.text.as_str()) {
                Some(Global::Relation(_)) => {
                    if !rels.contains(&m.text) {
                        rels.push(m.text.clone());
                    }
                }
                Some(Global::Bank(inner)) => {
                    if stack.contains(&inner.name.text) {
                        // Only the bank whose own member starts the cycle reports it; the
                        // nested expansions run silently (their errors belong to their own
                        // declarations).
                        if stack.len() == 1 {
                            self.push(
                                Diagnostic::new(
                                    Code::BankCycle,
                                    m.span,
                                    format!("bank `{}` includes itself", stack[0]),
                                )
                                .label("cycle")
                                .help("banks may include other banks, but not in a circle"),
                            );
                        } else {
                            self.cycle_seen = true;
                        }
                        continue;
                    }
                    stack.push(inner.name.text.clone());
                    let saved = self.diags.len();
                    let outer_seen = std::mem::replace(&mut self.cycle_seen, false);
                    self.expand_bank(t, inner, rels, stack);
                    self.diags.truncate(saved);
                    stack.pop();
                    if self.cycle_seen && stack.len() == 1 {
                        let path = format!(
                            "`{}` → `{}` → … → `{}`",
                            stack[0], inner.name.text, stack[0]
                        );
                        self.push(
                            Diagnostic::new(
                                Code::BankCycle,
                                m.span,
                                format!("bank `{}` includes itself through {path}", stack[0]),
                            )
                            .label("cycle starts here")
                            .related(inner.name.span, "included bank")
                            .help("banks may include other banks, but not in a circle"),
                        );
                    }
                    self.cycle_seen |= outer_seen;
                    if stack.len() == 1 {
                        self.cycle_seen = false;
                    }
                }
                Some(Global::Entity(_)) => {
                    self.push(
                        Diagnostic::new(
                            Code::UnknownRelation,
                            m.span,
                            format!("`{}` is an entity type, not a relation", m.text),
                        )
                        .label("not a relation")
                        .help("banks list relations and other banks"),
                    );
                }
                None => {
                    let mut cands = t.relation_names();
                    cands.extend(t.banks.iter().map(|b| b.name.text.as_str()));
                    self.unknown(
                        Code::UnknownRelation,
                        "relation",
                        m,
                        cands,
                        "banks list relations and other banks",
                    );
                }
            }
        }
    }

    // ------------------------------------------------------------------ articles

    fn articles(
        &mut self,
        t: &Tables,
        entities: &[EntityType],
        relations: &[Relation],
    ) -> Vec<Article> {
        let mut out = Vec::new();
        for a in &t.articles {
            let Some(ety) = entities.iter().find(|e| e.name == a.entity.text) else {
                self.unknown(
                    Code::UnknownType,
                    "entity type",
                    &a.entity,
                    t.entity_names(),
                    "an article describes one entity type",
                );
                continue;
            };
            let title = match &a.title {
                Some(s) => self.article_text(s, ety, relations, t, false),
                None => vec![TextPart::Hole {
                    name: ety.key.clone(),
                    form: None,
                }],
            };
            let parts = a
                .parts
                .iter()
                .map(|p| self.article_part(p, ety, relations, t))
                .collect();
            out.push(Article {
                entity: ety.name.clone(),
                title,
                parts,
            });
        }
        out
    }

    fn article_part(
        &mut self,
        p: &ast::ArticlePart,
        ety: &EntityType,
        relations: &[Relation],
        t: &Tables,
    ) -> ArticlePartIr {
        match p {
            ast::ArticlePart::Line(s, otherwise) => ArticlePartIr::Line {
                text: self.article_text(s, ety, relations, t, true),
                otherwise: otherwise
                    .as_ref()
                    .map(|o| self.article_text(o, ety, relations, t, true)),
            },
            ast::ArticlePart::Facts { names, .. } => ArticlePartIr::Facts(
                names
                    .iter()
                    .filter_map(|n| self.fact_ref(n, ety, relations, t))
                    .collect(),
            ),
            ast::ArticlePart::Section { heading, parts, .. } => ArticlePartIr::Section {
                heading: heading.value.clone(),
                parts: parts
                    .iter()
                    .map(|p| self.article_part(p, ety, relations, t))
                    .collect(),
            },
        }
    }

    /// An attribute of the article's entity, or a relation readable from it.
    fn fact_ref(
        &mut self,
        n: &Name,
        ety: &EntityType,
        relations: &[Relation],
        t: &Tables,
    ) -> Option<FactRef> {
        if ety.attr(&n.text).is_some() {
            return Some(FactRef::Attr(n.text.clone()));
        }
        if let Some(r) = relations.iter().find(|r| r.name == n.text) {
            if let Some(s) = r.says.iter().find(|s| r.roles[s.of].ty == ety.name) {
                return Some(FactRef::Relation {
                    relation: r.name.clone(),
                    role: s.role,
                    of: s.of,
                });
            }
            let decl = t.relation(&r.name).map(|d| d.head_span).unwrap_or(n.span);
            self.push(
                Diagnostic::new(
                    Code::MissingSurfaceForm,
                    n.span,
                    format!(
                        "relation `{}` has no surface form that reads from a `{}`",
                        n.text, ety.name
                    ),
                )
                .label("cannot be put into words")
                .related(decl, "relation declared here")
                .help(format!(
                    "add `say ROLE: \"noun\" / \"nouns\";` to `{}` for the role seen from a `{}`",
                    n.text, ety.name
                )),
            );
            return None;
        }
        let mut cands: Vec<&str> = ety.attrs.iter().map(|a| a.name.as_str()).collect();
        cands.extend(relations.iter().map(|r| r.name.as_str()));
        self.unknown(
            Code::UnknownAttribute,
            &format!("attribute or relation of `{}`", ety.name),
            n,
            cands,
            "articles state attributes of the entity and relations read from it",
        );
        None
    }

    fn article_text(
        &mut self,
        s: &Str,
        ety: &EntityType,
        relations: &[Relation],
        t: &Tables,
        allow_relations: bool,
    ) -> Vec<TextPart> {
        let parts = self.text_parts(s);
        let mut out = Vec::new();
        for (p, span) in parts {
            if let TextPart::Hole { name, form } = &p {
                let n = Name {
                    text: name.clone(),
                    span,
                };
                let known = ety.attr(name).is_some()
                    || (allow_relations && relations.iter().any(|r| &r.name == name));
                if known && let Some(f) = form {
                    self.push(
                        Diagnostic::new(
                            Code::TemplatePlaceholder,
                            span,
                            format!("`{{{name}.{f}}}`: article placeholders have no forms"),
                        )
                        .label("unknown form")
                        .help(format!("write `{{{name}}}`")),
                    );
                    continue;
                }
                if !known {
                    let mut cands: Vec<&str> = ety.attrs.iter().map(|a| a.name.as_str()).collect();
                    if allow_relations {
                        cands.extend(relations.iter().map(|r| r.name.as_str()));
                    }
                    self.push(
                        Diagnostic::new(Code::TemplatePlaceholder, span, format!("`{{{}}}` is not an attribute{} of `{}`", name, if allow_relations { " or relation" } else { "" }, ety.name))
                            .label("unknown placeholder")
                            .help(did_you_mean(&n.text, cands).unwrap_or_else(|| "use the entity's attributes (and, in lines, its relations) as `{name}`".into())),
                    );
                    continue;
                }
                if !allow_relations || ety.attr(name).is_some() {
                    out.push(p);
                    continue;
                }
                if self.fact_ref(&n, ety, relations, t).is_some() {
                    out.push(p);
                }
                continue;
            }
            out.push(p);
        }
        out
    }

    // ------------------------------------------------------------------ questions

    fn questions(
        &mut self,
        t: &Tables,
        entities: &[EntityType],
        relations: &[Relation],
        banks: &[Bank],
    ) -> Option<Questions> {
        let q = t.questions.first()?;
        let depth = q.depth.as_ref().map_or(Num::Int(9), |d| self.int_num(d, t));
        let max_answers = q.max_answers.as_ref().map_or(Num::Int(50), |d| {
            self.int_at_least(d, t, 1, "the answer-set limit")
        });
        let unanswerable = q
            .unanswerable
            .as_ref()
            .map_or(Num::Float(0.0), |u| self.share(u, t));
        let per_template = q.per_template.as_ref().map_or(Num::Int(10), |d| {
            self.int_at_least(d, t, 1, "questions per template")
        });
        if let (Some(d), Num::Int(v)) = (&q.depth, &depth)
            && *v < 1
        {
            self.push(
                Diagnostic::new(
                    Code::InvalidRange,
                    d.span,
                    "question depth must be at least 1",
                )
                .label("too small")
                .help("depth is a question's grammar depth: 3 allows one hop, each further hop adds 2"),
            );
        }
        let hops = q.hops.as_ref().and_then(|h| match &h.value {
            Literal::Ident(b) => {
                let Some(bank) = banks.iter().find(|x| &x.name == b) else {
                    let nm = Name {
                        text: b.clone(),
                        span: h.span,
                    };
                    let fallback = if t.relation(b).is_some() {
                        format!("`{b}` is a relation; `hops` takes a bank: `bank some = {b}, ...;`")
                    } else {
                        "declare it with `bank NAME = relation, ...;`".to_string()
                    };
                    self.unknown(
                        Code::UnknownBank,
                        "bank",
                        &nm,
                        banks.iter().map(|b| b.name.as_str()),
                        &fallback,
                    );
                    return None;
                };
                self.need_says(t, &bank.relations, relations, h.span);
                Some(HopSet::Bank(b.clone()))
            }
            Literal::Param(p) => {
                if self.param_use(p, h.span, &[ParamType::Bank], t)
                    && let Some(Literal::Ident(b)) =
                        t.params.get(p.as_str()).map(|d| &d.default.value)
                    && let Some(bank) = banks.iter().find(|x| &x.name == b)
                {
                    self.need_says(t, &bank.relations, relations, h.span);
                }
                Some(HopSet::Param(p.clone()))
            }
            other => {
                self.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        h.span,
                        format!("`hops` takes a bank, found {}", describe_literal(other)),
                    )
                    .label("not a bank")
                    .help("write `hops BANK;` or `hops $param;` with a bank parameter"),
                );
                None
            }
        });
        let mut starts = Vec::new();
        for s in &q.starts {
            match s {
                StartDecl::Name { .. } => {
                    if !starts.contains(&Start::Name) {
                        starts.push(Start::Name);
                    }
                }
                StartDecl::Whose { attrs, .. } => {
                    for p in attrs {
                        let Some((ety, a)) = self.attr_path(t, entities, p) else {
                            continue;
                        };
                        if a.whose.is_none() && a.say.is_none() {
                            self.push(
                                Diagnostic::new(Code::MissingSurfaceForm, p.span, format!("attribute `{}.{}` has no surface form for a `whose` start", ety.name, a.name))
                                    .label("cannot be put into words")
                                    .help(format!("give `{}` a `{{ say \"..\"; }}` or `{{ whose \"the {} whose .. is {{value}}\"; }}`", a.name, ety.name)),
                            );
                        }
                        starts.push(Start::Whose {
                            entity: ety.name.clone(),
                            attr: a.name.clone(),
                        });
                    }
                }
            }
        }
        if starts.is_empty() {
            starts.push(Start::Name);
        }
        let hop_rels: Vec<String> = match &hops {
            Some(HopSet::Bank(b)) => banks
                .iter()
                .find(|x| &x.name == b)
                .map(|b| b.relations.clone())
                .unwrap_or_default(),
            Some(HopSet::Param(p)) => match t.params.get(p.as_str()).map(|d| &d.default.value) {
                Some(Literal::Ident(b)) => banks
                    .iter()
                    .find(|x| &x.name == b)
                    .map(|b| b.relations.clone())
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
            None => relations
                .iter()
                .filter(|r| !r.says.is_empty())
                .map(|r| r.name.clone())
                .collect(),
        };
        let mut templates: Vec<Template> = Vec::new();
        let mut seen: BTreeMap<String, Span> = BTreeMap::new();
        for tp in &q.templates {
            if let Some(f) = seen.get(&tp.name.text) {
                let f = *f;
                self.duplicate("template", &tp.name, f);
                continue;
            }
            seen.insert(tp.name.text.clone(), tp.name.span);
            if let Some(tpl) = self.template(t, tp, entities, relations, banks, &hop_rels) {
                templates.push(tpl);
            }
        }
        Some(Questions {
            depth,
            per_template,
            unanswerable,
            max_answers,
            hops,
            starts,
            templates,
        })
    }

    /// A share in `0.0..=1.0`: a float or integer literal, or a float `$param`.
    fn share(&mut self, lit: &Lit, t: &Tables) -> Num {
        let v = match &lit.value {
            Literal::Float(f) => *f,
            Literal::Int(i) => *i as f64,
            Literal::Param(p) => {
                self.param_use(p, lit.span, &[ParamType::Float], t);
                return Num::Param(p.clone());
            }
            other => {
                self.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        lit.span,
                        format!(
                            "expected a share between 0 and 1, found {}",
                            describe_literal(other)
                        ),
                    )
                    .label("not a number")
                    .help("write a number like `0.1` or a float `$parameter`"),
                );
                return Num::Float(0.0);
            }
        };
        if !(0.0..=1.0).contains(&v) {
            self.push(
                Diagnostic::new(
                    Code::InvalidRange,
                    lit.span,
                    format!("a share must lie between 0 and 1, found {v}"),
                )
                .label("out of range")
                .help("`unanswerable 0.1;` asks one question in ten with an empty answer"),
            );
        }
        Num::Float(v)
    }

    fn need_says(&mut self, t: &Tables, rels: &[String], relations: &[Relation], at: Span) {
        for name in rels {
            if let Some(r) = relations.iter().find(|r| &r.name == name)
                && r.says.is_empty()
            {
                let decl = t.relation(name).map_or(at, |d| d.head_span);
                self.push(
                    Diagnostic::new(
                        Code::MissingSurfaceForm,
                        at,
                        format!("relation `{name}` is used in questions but has no surface form"),
                    )
                    .label(format!("includes `{name}`"))
                    .related(decl, "relation declared here")
                    .help(format!("add `say ROLE: \"noun\" / \"nouns\";` to `{name}`")),
                );
            }
        }
    }

    fn attr_path<'e>(
        &mut self,
        t: &Tables,
        entities: &'e [EntityType],
        p: &AttrPath,
    ) -> Option<(&'e EntityType, &'e Attribute)> {
        let Some(ety) = entities.iter().find(|e| e.name == p.entity.text) else {
            self.unknown(
                Code::UnknownType,
                "entity type",
                &p.entity,
                t.entity_names(),
                "write `type.attribute`",
            );
            return None;
        };
        let Some(a) = ety.attr(&p.attr.text) else {
            self.unknown(
                Code::UnknownAttribute,
                &format!("attribute of `{}`", ety.name),
                &p.attr,
                ety.attrs.iter().map(|a| a.name.as_str()),
                "write `type.attribute`",
            );
            return None;
        };
        Some((ety, a))
    }

    fn template(
        &mut self,
        t: &Tables,
        tp: &TemplateDecl,
        entities: &[EntityType],
        relations: &[Relation],
        banks: &[Bank],
        hop_rels: &[String],
    ) -> Option<Template> {
        let before = self.diags.iter().filter(|d| d.is_error()).count();
        let when = tp.when.as_ref().and_then(|w| match &w.value {
            Literal::Param(p) => {
                self.param_use(p, w.span, &[ParamType::Bool], t);
                Some(p.clone())
            }
            _ => None,
        });
        let mut slots: Vec<(Slot, Span)> = Vec::new();
        for s in &tp.slots {
            if let Some((_, f)) = slots.iter().find(|(x, _)| x.name == s.name.text) {
                let f = *f;
                self.duplicate("slot", &s.name, f);
                continue;
            }
            let kind = match &s.kind {
                SlotKind::Chain(ty) | SlotKind::Name(ty) => {
                    if !entities.iter().any(|e| e.name == ty.text) {
                        self.unknown(
                            Code::UnknownType,
                            "entity type",
                            ty,
                            t.entity_names(),
                            "slots name an entity type",
                        );
                    }
                    if matches!(s.kind, SlotKind::Chain(_)) {
                        SlotKindIr::Chain(ty.text.clone())
                    } else {
                        SlotKindIr::Name(ty.text.clone())
                    }
                }
                SlotKind::Attr(paths) => {
                    let mut v = Vec::new();
                    for p in paths {
                        if let Some((e, a)) = self.attr_path(t, entities, p) {
                            if a.say.is_none() {
                                self.push(
                                    Diagnostic::new(Code::MissingSurfaceForm, p.span, format!("attribute `{}.{}` is used in a question but has no surface form", e.name, a.name))
                                        .label("cannot be put into words")
                                        .help(format!("give `{}` a `{{ say \"noun\"; }}`", a.name)),
                                );
                            }
                            v.push((e.name.clone(), a.name.clone()));
                        }
                    }
                    SlotKindIr::Attr(v)
                }
                SlotKind::Relation(names) => {
                    let mut v = Vec::new();
                    for n in names {
                        if let Some(r) = relations.iter().find(|r| r.name == n.text) {
                            v.push(r.name.clone());
                        } else if let Some(b) = banks.iter().find(|b| b.name == n.text) {
                            v.extend(b.relations.iter().cloned());
                        } else {
                            let mut c = t.relation_names();
                            c.extend(banks.iter().map(|b| b.name.as_str()));
                            self.unknown(
                                Code::UnknownRelation,
                                "relation",
                                n,
                                c,
                                "list relations or banks",
                            );
                        }
                    }
                    self.need_says(t, &v, relations, s.span);
                    SlotKindIr::Relation(v)
                }
            };
            slots.push((
                Slot {
                    name: s.name.text.clone(),
                    kind,
                },
                s.name.span,
            ));
        }
        // Text placeholders refer to slots.
        let parts = self.text_parts(&tp.text);
        let mut used = BTreeSet::new();
        let mut text = Vec::new();
        for (p, span) in parts {
            if let TextPart::Hole { name, form } = &p {
                let Some((slot, _)) = slots.iter().find(|(s, _)| &s.name == name) else {
                    let n = Name {
                        text: name.clone(),
                        span,
                    };
                    self.push(
                        Diagnostic::new(Code::TemplatePlaceholder, span, format!("`{{{name}}}` is not a slot of template `{}`", tp.name.text))
                            .label("unbound placeholder")
                            .help(did_you_mean(&n.text, slots.iter().map(|(s, _)| s.name.as_str())).unwrap_or_else(|| format!("declare it in the template body, e.g. `{name}: chain person;`"))),
                    );
                    continue;
                };
                used.insert(name.clone());
                let form_ok = form.is_none()
                    || (matches!(slot.kind, SlotKindIr::Relation(_) | SlotKindIr::Attr(_))
                        && matches!(form.as_deref(), Some("singular" | "plural")));
                if !form_ok {
                    self.push(
                        Diagnostic::new(Code::TemplatePlaceholder, span, format!("`{{{name}.{}}}` is not a form of this slot", form.as_deref().unwrap_or("")))
                            .label("unknown form")
                            .help("relation and attribute slots have `.singular` and `.plural`; chain and name slots have no forms"),
                    );
                }
            }
            text.push(p);
        }
        for (s, span) in &slots {
            if !used.contains(&s.name) {
                self.push(
                    Diagnostic::new(
                        Code::UnusedSlot,
                        *span,
                        format!("slot `{}` does not appear in the question text", s.name),
                    )
                    .label("never shown")
                    .help(format!(
                        "mention it as `{{{}}}` in the text, or remove it",
                        s.name
                    )),
                );
            }
        }
        let slots: Vec<Slot> = slots.into_iter().map(|(s, _)| s).collect();
        let env = ExprEnv {
            t,
            slots: &slots,
            entities,
            relations,
            hop_rels,
        };
        let (answer, answer_type) = self.expr(&env, &tp.answer)?;
        if self.diags.iter().filter(|d| d.is_error()).count() > before {
            return None;
        }
        Some(Template {
            name: tp.name.text.clone(),
            text,
            when,
            slots,
            answer,
            answer_type,
        })
    }

    fn expr(&mut self, env: &ExprEnv, e: &Expr) -> Option<(AnswerExpr, AnswerType)> {
        match e {
            Expr::Ref(n) => {
                let Some(slot) = env.slots.iter().find(|s| s.name == n.text) else {
                    self.unknown(
                        Code::UnknownSlot,
                        "slot",
                        n,
                        env.slots.iter().map(|s| s.name.as_str()),
                        "an answer refers to the template's slots",
                    );
                    return None;
                };
                match &slot.kind {
                    SlotKindIr::Chain(ty) | SlotKindIr::Name(ty) => Some((
                        AnswerExpr::Slot(n.text.clone()),
                        AnswerType::Entities(ty.clone()),
                    )),
                    _ => {
                        self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                n.span,
                                format!(
                                    "slot `{}` is a relation or attribute, not a set of entities",
                                    n.text
                                ),
                            )
                            .label("apply it instead")
                            .help(format!(
                                "write `{}(x)` to follow it from a chain slot `x`",
                                n.text
                            )),
                        );
                        None
                    }
                }
            }
            Expr::Intersect { parts, span } => {
                let mut out = Vec::new();
                let mut ty: Option<String> = None;
                for p in parts {
                    let (x, xt) = self.expr(env, p)?;
                    let AnswerType::Entities(et) = xt else {
                        self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                p.span(),
                                format!(
                                    "`&` intersects sets of entities, but this is {}",
                                    xt.describe()
                                ),
                            )
                            .label("not entities")
                            .help("intersect chains or relation hops"),
                        );
                        return None;
                    };
                    if let Some(prev) = &ty
                        && *prev != et
                    {
                        self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                *span,
                                format!("`&` mixes `{prev}` and `{et}` entities"),
                            )
                            .label("different types")
                            .help("both sides of `&` must denote entities of one type"),
                        );
                        return None;
                    }
                    ty = Some(et);
                    out.push(x);
                }
                Some((
                    AnswerExpr::Intersect(out),
                    AnswerType::Entities(ty.unwrap_or_default()),
                ))
            }
            Expr::Call {
                callee,
                role,
                args,
                span,
            } => self.call(env, callee, role.as_ref(), args, *span),
        }
    }

    fn arity(
        &mut self,
        callee: &Name,
        args: &[Expr],
        want: usize,
        span: Span,
        shape: &str,
    ) -> bool {
        if args.len() == want {
            return true;
        }
        self.push(
            Diagnostic::new(
                Code::AtomArity,
                span,
                format!(
                    "`{}` takes {}, found {}",
                    callee.text,
                    plural(want, "argument", "arguments"),
                    args.len()
                ),
            )
            .label("wrong number of arguments")
            .help(format!("write `{shape}`")),
        );
        false
    }

    fn entities_arg(
        &mut self,
        env: &ExprEnv,
        e: &Expr,
        what: &str,
    ) -> Option<(AnswerExpr, String)> {
        let (x, xt) = self.expr(env, e)?;
        match xt {
            AnswerType::Entities(ty) => Some((x, ty)),
            other => {
                self.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        e.span(),
                        format!("{what} needs entities, but this is {}", other.describe()),
                    )
                    .label("not entities")
                    .help("pass a chain or name slot, or a relation hop"),
                );
                None
            }
        }
    }

    fn call(
        &mut self,
        env: &ExprEnv,
        callee: &Name,
        role: Option<&Name>,
        args: &[Expr],
        span: Span,
    ) -> Option<(AnswerExpr, AnswerType)> {
        let c = callee.text.as_str();
        match c {
            "count" => {
                if !self.arity(callee, args, 1, span, "count(x)") {
                    return None;
                }
                let (x, _) = self.expr(env, &args[0])?;
                return Some((AnswerExpr::Count(Box::new(x)), AnswerType::Count));
            }
            "count_each" => {
                if !self.arity(callee, args, 1, span, "count_each(r(x))") {
                    return None;
                }
                let (x, _) = self.expr(env, &args[0])?;
                // Counting per entity needs the entities to count from: the argument of the
                // relation or attribute read last.
                if !matches!(
                    x,
                    AnswerExpr::Hop { .. }
                        | AnswerExpr::HopSlot { .. }
                        | AnswerExpr::Attr { .. }
                        | AnswerExpr::AttrSlot { .. }
                ) {
                    self.push(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            args[0].span(),
                            "`count_each` counts, for each entity of a set, what one relation or attribute gives it",
                        )
                        .label("not a relation or attribute read")
                        .help("write `count_each(r(x))`; `count(e)` counts a whole set"),
                    );
                    return None;
                }
                return Some((AnswerExpr::CountEach(Box::new(x)), AnswerType::Count));
            }
            "same" | "related" => {
                if !self.arity(callee, args, 2, span, &format!("{c}(a, b)")) {
                    return None;
                }
                let (a, at) = self.expr(env, &args[0])?;
                let (b, bt) = self.expr(env, &args[1])?;
                if at != bt {
                    self.push(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            span,
                            format!("`{c}` compares {} with {}", at.describe(), bt.describe()),
                        )
                        .label("different types")
                        .help("both arguments must have one type"),
                    );
                    return None;
                }
                if c == "same" {
                    return Some((
                        AnswerExpr::Same(Box::new(a), Box::new(b)),
                        AnswerType::YesNo,
                    ));
                }
                if !matches!(at, AnswerType::Entities(_)) {
                    self.push(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            span,
                            "`related` asks how two entities are related",
                        )
                        .label("not entities")
                        .help("pass two name or chain slots"),
                    );
                    return None;
                }
                return Some((
                    AnswerExpr::Related(Box::new(a), Box::new(b)),
                    AnswerType::RelationNames,
                ));
            }
            "argmin" | "argmax" => {
                if args.len() < 3 {
                    self.push(
                        Diagnostic::new(
                            Code::AtomArity,
                            span,
                            format!("`{c}` takes an attribute and at least two candidates"),
                        )
                        .label("too few arguments")
                        .help(format!("write `{c}(dob, x, y)`")),
                    );
                    return None;
                }
                let Expr::Ref(attr) = &args[0] else {
                    self.push(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            args[0].span(),
                            format!("the first argument of `{c}` is an attribute name"),
                        )
                        .label("not an attribute name")
                        .help(format!("write `{c}(dob, x, y)`")),
                    );
                    return None;
                };
                let mut xs = Vec::new();
                let mut ty: Option<String> = None;
                for a in &args[1..] {
                    let (x, et) = self.entities_arg(env, a, &format!("`{c}`"))?;
                    if ty.as_ref().is_some_and(|p| *p != et) {
                        self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                a.span(),
                                format!("`{c}` compares entities of one type"),
                            )
                            .label("different type")
                            .help("pass candidates of one entity type"),
                        );
                        return None;
                    }
                    ty = Some(et);
                    xs.push(x);
                }
                let ty = ty.unwrap_or_default();
                let ety = env.entities.iter().find(|e| e.name == ty)?;
                let Some(a) = ety.attr(&attr.text) else {
                    self.unknown(
                        Code::UnknownAttribute,
                        &format!("attribute of `{ty}`"),
                        attr,
                        ety.attrs.iter().map(|a| a.name.as_str()),
                        "compare by an int or date attribute",
                    );
                    return None;
                };
                if !a.ty.is_ordered() {
                    self.push(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            attr.span,
                            format!("`{c}` orders by `{}`, which is {}", a.name, a.ty.describe()),
                        )
                        .label("not ordered")
                        .help("order by an int or date attribute"),
                    );
                    return None;
                }
                let attr = a.name.clone();
                let e = if c == "argmin" {
                    AnswerExpr::ArgMin { attr, args: xs }
                } else {
                    AnswerExpr::ArgMax { attr, args: xs }
                };
                return Some((e, AnswerType::Entities(ty)));
            }
            _ => {}
        }
        // A slot applied to an argument: a relation or attribute chosen at generation time.
        if let Some(slot) = env.slots.iter().find(|s| s.name == c) {
            if !self.arity(callee, args, 1, span, &format!("{c}(x)")) {
                return None;
            }
            let (x, ty) = self.entities_arg(env, &args[0], &format!("`{c}`"))?;
            return match &slot.kind {
                SlotKindIr::Relation(list) => {
                    let cands: Vec<&String> = if list.is_empty() {
                        env.hop_rels.iter().collect()
                    } else {
                        list.iter().collect()
                    };
                    let mut out_ty: Option<String> = None;
                    for name in cands {
                        let Some(r) = env.relations.iter().find(|r| &r.name == name) else {
                            continue;
                        };
                        for s in r.says.iter().filter(|s| r.roles[s.of].ty == ty) {
                            let to = r.roles[s.role].ty.clone();
                            if out_ty.as_ref().is_some_and(|o| *o != to) {
                                self.push(
                                    Diagnostic::new(Code::TypeMismatch, span, format!("relations of slot `{c}` lead from `{ty}` to different types"))
                                        .label("ambiguous result type")
                                        .help("list relations that all lead to one type"),
                                );
                                return None;
                            }
                            out_ty = Some(to);
                        }
                    }
                    let Some(out_ty) = out_ty else {
                        self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                span,
                                format!("no relation of slot `{c}` can be read from a `{ty}`"),
                            )
                            .label("nothing to follow")
                            .help("list relations with a surface form seen from this type"),
                        );
                        return None;
                    };
                    Some((
                        AnswerExpr::HopSlot {
                            slot: c.into(),
                            arg: Box::new(x),
                        },
                        AnswerType::Entities(out_ty),
                    ))
                }
                SlotKindIr::Attr(list) => {
                    let mut vt: Option<AttrType> = None;
                    for (e, a) in list {
                        if *e != ty {
                            self.push(
                                Diagnostic::new(
                                    Code::TypeMismatch,
                                    span,
                                    format!(
                                        "slot `{c}` lists `{e}.{a}`, but its argument is a `{ty}`"
                                    ),
                                )
                                .label("wrong entity type")
                                .help(format!("list attributes of `{ty}`")),
                            );
                            return None;
                        }
                        let at = env
                            .entities
                            .iter()
                            .find(|x| &x.name == e)
                            .and_then(|x| x.attr(a))
                            .map(|x| x.ty.clone());
                        // Attribute slots mix value types freely; the answer is text either way.
                        vt = vt.or(at);
                    }
                    Some((
                        AnswerExpr::AttrSlot {
                            slot: c.into(),
                            arg: Box::new(x),
                        },
                        AnswerType::Values(vt.unwrap_or(AttrType::Text)),
                    ))
                }
                _ => {
                    self.push(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            callee.span,
                            format!("slot `{c}` denotes entities and cannot be applied"),
                        )
                        .label("not a relation or attribute slot")
                        .help(format!("use `{c}` as an argument instead")),
                    );
                    None
                }
            };
        }
        if let Some(r) = env.relations.iter().find(|r| r.name == c) {
            if !self.arity(callee, args, 1, span, &format!("{c}(x)")) {
                return None;
            }
            let (x, ty) = self.entities_arg(env, &args[0], &format!("`{c}`"))?;
            let to = match role {
                Some(rn) => match r.role_index(&rn.text) {
                    Some(i) => i,
                    None => {
                        self.unknown(
                            Code::UnknownRole,
                            &format!("role of `{c}`"),
                            rn,
                            r.roles.iter().map(|x| x.name.as_str()),
                            "`rel.role(x)` follows `rel` to the named role",
                        );
                        return None;
                    }
                },
                None => match r.says.iter().find(|s| r.roles[s.of].ty == ty) {
                    Some(s) => s.role,
                    None => {
                        let decl = env.t.relation(c).map_or(callee.span, |d| d.head_span);
                        self.push(
                            Diagnostic::new(Code::MissingSurfaceForm, callee.span, format!("`{c}` has no surface form read from a `{ty}`, so its direction is unknown"))
                                .label("which role?")
                                .related(decl, "relation declared here")
                                .help(format!("write `{c}.ROLE(x)`, or add `say ROLE: ..` to `{c}`")),
                        );
                        return None;
                    }
                },
            };
            if r.roles[1 - to].ty != ty {
                self.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        args[0].span(),
                        format!(
                            "`{c}` leads to role `{}` from a `{}`, but this is a `{ty}`",
                            r.roles[to].name,
                            r.roles[1 - to].ty
                        ),
                    )
                    .label(format!("a `{}` is needed", r.roles[1 - to].ty))
                    .help("follow a relation whose other role has this type"),
                );
                return None;
            }
            return Some((
                AnswerExpr::Hop {
                    relation: c.into(),
                    to,
                    arg: Box::new(x),
                },
                AnswerType::Entities(r.roles[to].ty.clone()),
            ));
        }
        // An attribute of the argument's type.
        if args.len() == 1
            && let Some(ety) = env.entities.iter().find(|e| e.attr(c).is_some())
        {
            let (x, ty) = self.entities_arg(env, &args[0], &format!("`{c}`"))?;
            let Some(a) = env
                .entities
                .iter()
                .find(|e| e.name == ty)
                .and_then(|e| e.attr(c))
            else {
                self.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        args[0].span(),
                        format!("`{c}` is an attribute of `{}`, not of `{ty}`", ety.name),
                    )
                    .label(format!("a `{ty}`"))
                    .help(format!("read an attribute of `{ty}`")),
                );
                return None;
            };
            return Some((
                AnswerExpr::Attr {
                    attr: c.into(),
                    arg: Box::new(x),
                },
                AnswerType::Values(a.ty.clone()),
            ));
        }
        let mut cands: Vec<&str> = BUILTINS.to_vec();
        cands.extend(env.slots.iter().map(|s| s.name.as_str()));
        cands.extend(env.relations.iter().map(|r| r.name.as_str()));
        for e in env.entities {
            cands.extend(e.attrs.iter().map(|a| a.name.as_str()));
        }
        self.unknown(
            Code::UnknownFunction,
            "function",
            callee,
            cands,
            "answers use count, count_each, argmin, argmax, same, related, slots, relations and attributes",
        );
        None
    }
}

struct ExprEnv<'a> {
    t: &'a Tables<'a>,
    slots: &'a [Slot],
    entities: &'a [EntityType],
    relations: &'a [Relation],
    hop_rels: &'a [String],
}

/// A dependency of a derived relation on another, for stratification.
#[derive(Debug)]
struct DepEdge {
    from: String,
    to: String,
    negated: bool,
    span: Span,
    body: Span,
}

#[derive(Clone, Copy)]
enum ArgKind {
    Int,
    Float,
    Role,
    Attr(AttrWant),
}

#[derive(Clone, Copy)]
enum AttrWant {
    Enum2,
    Date,
    Any,
}

struct GenSpec {
    name: &'static str,
    kind: GenKind,
    /// (argument, kind, required)
    args: &'static [(&'static str, ArgKind, bool)],
}

/// The generators a base relation can use, and the arguments each takes.
const GEN_SPECS: &[GenSpec] = &[
    GenSpec {
        name: "family_tree",
        kind: GenKind::FamilyTree,
        args: &[
            ("parent", ArgKind::Role, true),
            ("trees", ArgKind::Int, true),
            ("max_size", ArgKind::Int, false),
            ("max_depth", ArgKind::Int, false),
            ("max_branching", ArgKind::Int, false),
            ("stop_prob", ArgKind::Float, false),
            ("gender", ArgKind::Attr(AttrWant::Enum2), false),
            ("birth", ArgKind::Attr(AttrWant::Date), false),
            ("surname", ArgKind::Attr(AttrWant::Any), false),
        ],
    },
    GenSpec {
        name: "random_graph",
        kind: GenKind::RandomGraph,
        args: &[("mean_degree", ArgKind::Float, true)],
    },
    GenSpec {
        name: "function",
        kind: GenKind::Function,
        args: &[("from", ArgKind::Role, true)],
    },
    GenSpec {
        name: "assign",
        kind: GenKind::Assign,
        args: &[
            ("from", ArgKind::Role, true),
            ("min", ArgKind::Int, true),
            ("max", ArgKind::Int, true),
        ],
    },
];

/// Tarjan's strongly connected components, iterative so deep rule graphs cannot overflow the
/// stack. Components come out in reverse topological order (dependencies first).
fn tarjan(adj: &[Vec<(usize, bool)>]) -> Vec<Vec<usize>> {
    let n = adj.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut comps = Vec::new();
    let mut next = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if *i < adj[v].len() {
                let w = adj[v][*i].0;
                *i += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some(&(u, _)) = work.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    comp.sort();
                    comps.push(comp);
                }
            }
        }
    }
    comps
}

fn literal_negative(l: &Literal) -> bool {
    match l {
        Literal::Int(i) => *i < 0,
        Literal::Float(f) => *f < 0.0,
        _ => false,
    }
}

fn a_an(word: &str) -> String {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {word}")
    } else {
        format!("a {word}")
    }
}

fn describe_literal(l: &Literal) -> String {
    match l {
        Literal::Int(i) => format!("the integer {i}"),
        Literal::Float(f) => format!("the number {f}"),
        Literal::Bool(b) => format!("the boolean {b}"),
        Literal::Date(d) => format!("the date {d}"),
        Literal::Str(s) => format!("the string \"{s}\""),
        Literal::Ident(i) => format!("the name `{i}`"),
        Literal::Param(p) => format!("the parameter `${p}`"),
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
