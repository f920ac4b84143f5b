//! Relations: heads (roles and types), base relations with their generators and arguments, declared cardinalities, and how facts read as text (`say`).

use super::*;

impl Cx<'_> {
    /// Role names and types of every relation, needed before any rule body is checked.
    pub(super) fn heads(&mut self, t: &Tables) -> BTreeMap<String, Vec<Role>> {
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
                    ty: Ref::named(&role.ty.text),
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

    pub(super) fn relations(
        &mut self,
        t: &Tables,
        entities: &[EntityType],
        heads: &BTreeMap<String, Vec<Role>>,
        pools: &[Pool],
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
                            ty: Ref::default(),
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
                    RelationDef::Base(self.generator(t, r, g, &role_arr, entities, heads))
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
            let attrs = self.fact_attrs(t, r, &role_arr, &def, pools);
            out.push(Relation {
                name: r.name.text.clone(),
                roles: role_arr,
                symmetric: r.symmetric.is_some(),
                irreflexive: r.irreflexive.is_some(),
                cards,
                def,
                says,
                attrs,
                weight,
                stratum: 0,
                recursive: false,
            });
        }
        out
    }

    /// A base relation's fact attributes: plain values drawn for each fact (an enum, a
    /// pool, an int or date range), read as `rel.attr(x)` in answers and `{rel.attr}` in
    /// articles.
    fn fact_attrs(
        &mut self,
        t: &Tables,
        r: &RelationDecl,
        roles: &[Role; 2],
        def: &RelationDef,
        pools: &[Pool],
    ) -> Vec<Attribute> {
        let mut out: Vec<Attribute> = Vec::new();
        if r.attrs.is_empty() {
            return out;
        }
        // Seen as an entity type of its own, so sources check as entity attributes do.
        let holder = EntityDecl {
            name: r.name.clone(),
            extends: None,
            count: None,
            attrs: r.attrs.clone(),
            span: r.span,
        };
        for a in &r.attrs {
            let fault = if matches!(def, RelationDef::Derived(_)) {
                Some((a.name.span, "a derived relation's facts come from its rule, which gives them no values".to_string(), "move the attribute to the base relation the rule reads, or generate this relation".to_string()))
            } else if let Some(k) = a.key.or(a.unique) {
                Some((
                    k,
                    "facts have no names, so a fact attribute is neither `key` nor `unique`".into(),
                    "remove the modifier".into(),
                ))
            } else if matches!(
                a.source,
                ast::Source::Match { .. } | ast::Source::Text { .. }
            ) {
                Some((
                    a.source.span(),
                    "a fact attribute draws its own value: an enum, a pool, an int or a date range"
                        .into(),
                    "draw it from a range or a pool".into(),
                ))
            } else if let Some((w, _)) = &a.whose {
                Some((
                    w.span,
                    "`whose` starts a chain at entities; facts are not entities".into(),
                    "remove `whose`".into(),
                ))
            } else if roles.iter().any(|x| x.name == a.name.text)
                || out.iter().any(|x| x.name == a.name.text)
            {
                Some((
                    a.name.span,
                    format!(
                        "`{}` is already a role or an attribute of `{}`",
                        a.name.text, r.name.text
                    ),
                    "give the attribute a name of its own".into(),
                ))
            } else {
                None
            };
            if let Some((span, why, help)) = fault {
                self.push(
                    Diagnostic::new(
                        Code::RelationAttribute,
                        span,
                        format!("`{}.{}`: {why}", r.name.text, a.name.text),
                    )
                    .label("not a fact attribute")
                    .help(help),
                );
                continue;
            }
            out.push(self.attribute(t, &holder, a, pools));
        }
        out
    }

    pub(super) fn generator(
        &mut self,
        t: &Tables,
        r: &RelationDecl,
        g: &GenerateDecl,
        roles: &[Role; 2],
        entities: &[EntityType],
        heads: &BTreeMap<String, Vec<Role>>,
    ) -> Generator {
        let Some(spec) = GEN_SPECS.iter().find(|s| s.name == g.generator.text) else {
            self.unknown(
                Code::UnknownGenerator,
                "generator",
                &g.generator,
                GEN_SPECS.iter().map(|s| s.name),
                "generators are family_tree, random_graph, function, one_to_one and assign",
            );
            return Generator {
                kind: GenKind::Function,
                args: BTreeMap::new(),
                given: None,
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
        if spec.kind == GenKind::FamilyTree
            && let Some(ty) = roles.first().map(|r| r.ty.name())
            && t.entities.iter().any(|e| {
                e.name.text == ty && e.extends.is_some()
                    || e.extends.as_ref().is_some_and(|s| s.text == ty)
            })
        {
            self.push(
                Diagnostic::new(Code::GeneratorArgs, g.generator.span, format!("`family_tree` cannot create `{ty}`, a type in a hierarchy"))
                    .label("a tree decides how many there are")
                    .related(r.head_span, "roles")
                    .help("family trees create the people of a type of their own: neither extending another type nor extended"),
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
        if spec.kind == GenKind::OneToOne && r.symmetric.is_some() {
            self.push(
                Diagnostic::new(Code::GeneratorArgs, g.generator.span, format!("`one_to_one` cannot generate the symmetric relation `{}`", r.name.text))
                    .label("pairs one side with the other")
                    .related(r.head_span, "declared symmetric")
                    .help("`one_to_one` gives each `from` entity its own partner of the other role; drop `symmetric`, or use `random_graph` for a symmetric relation"),
            );
        }
        // A `where` is a rule body over the roles; its atoms order generation, not
        // evaluation, so they add no dependency edges for stratification.
        let given = g.given.as_ref().and_then(|b| {
            if spec.kind == GenKind::FamilyTree {
                self.push(
                    Diagnostic::new(Code::GeneratorArgs, b.span, "a family tree draws no partners, so it takes no `where`")
                        .label("not applicable")
                        .help("constrain a relation generated by `function`, `assign`, `one_to_one` or `random_graph`"),
                );
                return None;
            }
            let edges = self.dep_edges.len();
            let rule = self.rule_body(t, r, b, roles, heads, entities);
            self.dep_edges.truncate(edges);
            Some(rule)
        });
        Generator {
            kind: spec.kind,
            args,
            given,
        }
    }

    /// An attribute template's relation placeholder (`"{based_in} {suffix}"`) reads the one
    /// partner each entity has: the relation must be generated by `function` or `one_to_one`
    /// from the entity's role. Such an attribute is filled once the relations exist, so no
    /// other attribute may read it.
    pub(super) fn related_keys(
        &mut self,
        t: &Tables,
        entities: &[EntityType],
        relations: &[Relation],
    ) {
        for (decl, ety) in t.entities.iter().zip(entities) {
            for a in &decl.attrs {
                let ast::Source::Text { template, span } = &a.source else {
                    continue;
                };
                let late: Vec<&str> = template_names(&template.value)
                    .into_iter()
                    .filter(|n| ety.attr(n).is_none())
                    .collect();
                for name in &late {
                    let Some(r) = relations.iter().find(|r| r.name == *name) else {
                        continue;
                    };
                    let one = match &r.def {
                        RelationDef::Base(g)
                            if matches!(g.kind, GenKind::Function | GenKind::OneToOne) =>
                        {
                            matches!(g.args.get("from"), Some(GenArg::Name(f)) if r
                                .role_index(f)
                                .is_some_and(|i| t.is_a(&ety.name, r.roles[i].ty.name())))
                        }
                        _ => false,
                    };
                    if !one {
                        self.push(
                            Diagnostic::new(Code::TemplatePlaceholder, *span, format!("`{{{name}}}` in `{}.{}` names the one partner through `{name}`, but `{name}` can give a `{}` several or none", ety.name, a.name.text, ety.name))
                                .label("not one partner")
                                .help(format!("generate `{name}` with `function(from: ROLE)` or `one_to_one(from: ROLE)`, ROLE being the `{}` role", ety.name)),
                        );
                    }
                }
                if late.is_empty() {
                    continue;
                }
                for other in &decl.attrs {
                    let reads = match &other.source {
                        ast::Source::Text { template, .. } => {
                            template_names(&template.value).contains(&a.name.text.as_str())
                        }
                        ast::Source::Match { on, .. } => on.text == a.name.text,
                        _ => false,
                    };
                    if reads {
                        self.push(
                            Diagnostic::new(Code::TemplatePlaceholder, other.source.span(), format!("`{}` reads `{}`, which is filled from a relation after the other attributes", other.name.text, a.name.text))
                                .label("filled too late")
                                .help(format!("build `{}` from the attributes `{}` is built from", other.name.text, a.name.text)),
                        );
                    }
                }
            }
        }
    }

    /// `where` clauses read base relations only, generated in an order where each comes
    /// after those its clause reads: a derived relation or a cycle is an error.
    pub(super) fn generation_order(&mut self, t: &Tables, relations: &[Relation]) {
        let reads = |r: &Relation| -> Vec<String> {
            match &r.def {
                RelationDef::Base(Generator {
                    given: Some(rule), ..
                }) => rule
                    .body
                    .iter()
                    .filter_map(|b| match b {
                        BodyIr::Atom { relation, .. } => Some(relation.name().to_string()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            }
        };
        for r in relations {
            if !matches!(&r.def, RelationDef::Base(g) if g.given.is_some()) {
                continue;
            }
            let Some(decl) = t.relation(&r.name) else {
                continue;
            };
            let span = decl
                .generate
                .first()
                .and_then(|g| g.given.as_ref())
                .map_or(decl.head_span, |b| b.span);
            for name in reads(r) {
                let derived = relations
                    .iter()
                    .find(|x| x.name == name)
                    .is_some_and(|x| matches!(x.def, RelationDef::Derived(_)));
                if derived {
                    self.push(
                        Diagnostic::new(Code::GeneratorArgs, span, format!("the `where` of `{}` reads `{name}`, a derived relation", r.name))
                            .label("reads a rule's facts")
                            .help(format!("a `where` reads generated relations; write `{name}`'s rule body into the `where` instead")),
                    );
                }
            }
            // A path back to `r` through the relations the clauses read is a cycle.
            let mut stack = reads(r);
            let mut seen = BTreeSet::new();
            while let Some(n) = stack.pop() {
                if n == r.name {
                    self.push(
                        Diagnostic::new(Code::GeneratorArgs, span, format!("the `where` of `{}` depends on `{}` itself", r.name, r.name))
                            .label("generation cycle")
                            .help("each `where` reads relations generated before it; break the cycle by dropping one clause"),
                    );
                    break;
                }
                if seen.insert(n.clone())
                    && let Some(x) = relations.iter().find(|x| x.name == n)
                {
                    stack.extend(reads(x));
                }
            }
        }
    }

    pub(super) fn gen_arg(
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

    pub(super) fn cards(
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
                GenKind::Function | GenKind::OneToOne => match g.args.get("from") {
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
            // `one_to_one` also bounds the other side: each partner has at most one.
            let other = bounded
                .filter(|_| g.kind == GenKind::OneToOne)
                .map(|b| 1 - b);
            for (c, span) in &out {
                if Some(c.role) == bounded || (c.lo == 0 && c.hi.is_none()) {
                    continue;
                }
                if Some(c.role) == other {
                    if c.lo > 0 || c.hi.is_some_and(|h| h < 1) {
                        self.push(
                            Diagnostic::new(
                                Code::ContradictoryCardinality,
                                *span,
                                format!("`one_to_one` gives each `{}` at most one partner, possibly none, which this cardinality does not allow", roles[c.role].name),
                            )
                            .label("contradicts the generator")
                            .related(gen_decl.span, "generator")
                            .help(format!("write `each {} has 0..1 {};`", roles[c.role].name, roles[1 - c.role].name)),
                        );
                    }
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

    pub(super) fn says(
        &mut self,
        r: &RelationDecl,
        roles: &[Role; 2],
        entities: &[EntityType],
    ) -> Vec<Say> {
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
                            attr: AttrRef::named(&ety.name, &w.attr.text),
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
            let phrase = s.phrase.as_ref().map(|(ps, pp)| {
                [ps, pp].map(|x| {
                    let parts = self.text_parts(x);
                    let holes = parts
                        .iter()
                        .filter(|(p, _)| matches!(p, TextPart::Hole { .. }))
                        .count();
                    let other = &roles[1 - i].name;
                    for (p, span) in &parts {
                        if let TextPart::Hole { name, .. } = p
                            && name != other
                        {
                            self.push(
                                Diagnostic::new(Code::TemplatePlaceholder, *span, format!("`{{{name}}}` is not the role a hop starts from"))
                                    .label("unknown placeholder")
                                    .help(format!("a hop phrase has one placeholder, the other role: `{{{other}}}`")),
                            );
                        }
                    }
                    if holes != 1 {
                        self.push(
                            Diagnostic::new(Code::TemplatePlaceholder, x.span, format!("a hop phrase needs exactly one placeholder `{{{other}}}`, found {holes}"))
                                .label("where does the chain go?")
                                .help(format!("write e.g. `phrase \"the {} of {{{other}}}\" / \"the {} of {{{other}}}\"`", s.singular.value, s.plural.value)),
                        );
                    }
                    parts.into_iter().map(|(p, _)| p).collect::<Vec<_>>()
                })
            });
            out.push(Say {
                role: i,
                of: 1 - i,
                singular: s.singular.value.clone(),
                plural: s.plural.value.clone(),
                phrase,
                when,
            });
        }
        out
    }
}

#[derive(Clone, Copy)]
pub(super) enum ArgKind {
    Int,
    Float,
    Role,
    Attr(AttrWant),
}

#[derive(Clone, Copy)]
pub(super) enum AttrWant {
    Enum2,
    Date,
    Any,
}

pub(super) struct GenSpec {
    name: &'static str,
    kind: GenKind,
    /// (argument, kind, required)
    args: &'static [(&'static str, ArgKind, bool)],
}

/// The generators a base relation can use, and the arguments each takes.
pub(super) const GEN_SPECS: &[GenSpec] = &[
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
        name: "one_to_one",
        kind: GenKind::OneToOne,
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

/// The `{name}` placeholders of a template, `{{`/`}}` escapes skipped.
fn template_names(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        if rest[i..].starts_with("{{") {
            rest = &rest[i + 2..];
            continue;
        }
        let after = &rest[i + 1..];
        let Some(j) = after.find('}') else { break };
        out.push(&after[..j]);
        rest = &after[j + 1..];
    }
    out
}
