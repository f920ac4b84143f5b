//! Entity types: attributes and their sources (pools, ranges, dates, formats, other attributes), attribute cycles, and whether unique keys can be drawn.

use super::*;

impl Cx<'_> {
    pub(super) fn entities(&mut self, t: &Tables, pools: &[Pool]) -> Vec<EntityType> {
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
                let attr = self.attribute(t, e, a, pools);
                attrs.push(attr);
            }
            // Text templates and matches may refer to attributes declared later, but not in a cycle.
            self.attr_cycles(e);
            let parent = e
                .extends
                .as_ref()
                .and_then(|s| self.supertype(t, e, s, &out));
            if let Some(p) = parent {
                let p: &EntityType = &out[p];
                for a in &e.attrs {
                    if p.attr(&a.name.text).is_some() {
                        self.push(
                            Diagnostic::new(Code::DuplicateDefinition, a.name.span, format!("attribute `{}` is inherited from `{}`", a.name.text, p.name))
                                .label("declared again")
                                .related(e.extends.as_ref().map_or(e.name.span, |s| s.span), "inherited from here")
                                .help("a subtype reads its supertype's attributes as they are; remove this one or rename it"),
                        );
                    }
                }
                for (a, k) in &keys {
                    self.push(
                        Diagnostic::new(Code::KeyAttribute, *k, format!("`{}` is named by `{}`, the key it inherits from `{}`", e.name.text, p.key, p.name))
                            .label("second key")
                            .related(a.name.span, "declared here")
                            .help("remove `key`: names must differ across the whole supertype; mark it `unique` if it must differ too"),
                    );
                }
                let mut all = p.attrs.clone();
                let inherited = all.len();
                all.extend(attrs.into_iter().filter(|a| p.attr(&a.name).is_none()));
                out.push(EntityType {
                    name: e.name.text.clone(),
                    extends: Some(Ref::named(&p.name)),
                    count,
                    key: AttrRef::named(&e.name.text, p.key.name()),
                    attrs: all,
                    inherited,
                });
                continue;
            }
            let key = match keys.as_slice() {
                // A subtype whose supertype is unknown is reported once, there.
                [] if e.extends.is_some() => String::new(),
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
                extends: None,
                count,
                key: AttrRef::named(&e.name.text, key),
                attrs,
                inherited: 0,
            });
        }
        out
    }

    /// The index in `done` of the supertype `s` that `e` extends: a type declared earlier,
    /// so that the hierarchy has no cycle and a supertype's values exist before its
    /// subtypes read them.
    fn supertype(
        &mut self,
        t: &Tables,
        e: &EntityDecl,
        s: &Name,
        done: &[EntityType],
    ) -> Option<usize> {
        if let Some(i) = done.iter().position(|d| d.name == s.text) {
            return Some(i);
        }
        let (label, help) = if s.text == e.name.text {
            (
                "extends itself".to_string(),
                "a type extends another type".to_string(),
            )
        } else if t.entity(&s.text).is_some() {
            (
                "declared later".to_string(),
                format!("declare `{}` before `{}`", s.text, e.name.text),
            )
        } else {
            return {
                self.unknown(
                    Code::UnknownType,
                    "entity type",
                    s,
                    t.entity_names(),
                    "a type extends an entity type declared before it",
                );
                None
            };
        };
        self.push(
            Diagnostic::new(
                Code::UnknownType,
                s.span,
                format!("`{}` cannot extend `{}`", e.name.text, s.text),
            )
            .label(label)
            .help(help),
        );
        None
    }

    /// One attribute of entity type `e` (or of a relation, seen as one).
    pub(super) fn attribute(
        &mut self,
        t: &Tables,
        e: &EntityDecl,
        a: &AttrDecl,
        pools: &[Pool],
    ) -> Attribute {
        let (source, ty) = self.source(t, e, &a.source, pools);
        let whose = a.whose.as_ref().map(|(w, _)| self.whose_text(w));
        let format = a.format.as_ref().and_then(|f| self.format(f, &ty));
        let whose_plural = a
            .whose
            .as_ref()
            .and_then(|(_, p)| p.as_ref())
            .map(|p| self.whose_text(p));
        Attribute {
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
            whose_plural,
            format,
        }
    }

    /// The format `format NAME;` names for an attribute of type `ty`; the defaults (`iso`,
    /// `plain`) are `None`.
    fn format(&mut self, f: &Name, ty: &AttrType) -> Option<Format> {
        let names: &[&str] = match ty {
            AttrType::Date => &["iso", "long", "us"],
            AttrType::Int => &["plain", "grouped"],
            _ => &[],
        };
        match f.text.as_str() {
            "long" if names.contains(&"long") => Some(Format::Long),
            "us" if names.contains(&"us") => Some(Format::Us),
            "grouped" if names.contains(&"grouped") => Some(Format::Grouped),
            t if names.contains(&t) => None,
            _ if names.is_empty() => {
                self.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        f.span,
                        format!(
                            "`format` applies to int and date attributes, not {}",
                            ty.describe()
                        ),
                    )
                    .label("nothing to format")
                    .help("remove it; enum, pool and text values read as written"),
                );
                None
            }
            _ => {
                self.unknown(
                    Code::UnknownOption,
                    &format!("format for {}", ty.describe()),
                    f,
                    names.iter().copied(),
                    &format!("formats for {}: {}", ty.describe(), names.join(", ")),
                );
                None
            }
        }
    }

    /// A `whose` form: text with one placeholder, `{value}`.
    fn whose_text(&mut self, w: &Str) -> Vec<TextPart> {
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
    }

    pub(super) fn source(
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
                (AttrSource::Pool(Ref::named(&pool.text)), AttrType::Text)
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
                        on: AttrRef::named(&e.name.text, &on.text),
                        arms: out_arms,
                    },
                    ty.unwrap_or(AttrType::Text),
                )
            }
            ast::Source::Text { template, .. } => {
                let parts = self.text_parts(template);
                for (p, span) in &parts {
                    if let TextPart::Hole { name, form, .. } = p {
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
                        } else if form.is_none()
                            && !e.attrs.iter().any(|a| &a.name.text == name)
                            && t.relation(name).is_some_and(|r| {
                                r.roles.iter().any(|x| t.is_a(&e.name.text, &x.ty.text))
                            })
                        {
                            // The name of the one partner through a relation ("{based_in}
                            // United"); `related_keys` checks that there is exactly one.
                        } else if form.is_some() || !e.attrs.iter().any(|a| &a.name.text == name) {
                            let n = Name {
                                text: name.clone(),
                                span: *span,
                            };
                            self.push(
                                Diagnostic::new(Code::TemplatePlaceholder, *span, format!("`{{{name}}}` is not an attribute of `{}`", e.name.text))
                                    .label("unknown placeholder")
                                    .help(did_you_mean(&n.text, e.attrs.iter().map(|a| a.name.text.as_str())).unwrap_or_else(|| "a text attribute may use the entity's other attributes as `{name}`, and a relation that gives it one partner as `{relation}`".into())),
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

    pub(super) fn date_bound(&mut self, lit: &Lit, t: &Tables) -> DateBound {
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
    pub(super) fn attr_cycles(&mut self, e: &EntityDecl) {
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
    pub(super) fn capacity_warning(
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
                    TextPart::Lit(_) | TextPart::Agree { .. } => Some(acc),
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
}
