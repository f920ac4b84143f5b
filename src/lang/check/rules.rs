//! Derived relations: Datalog rule bodies (grounded variables, tests, negation), stratification, and relations no rule can populate.

use super::*;

impl Cx<'_> {
    pub(super) fn rule_body(
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
                ty: Some((role.ty.name().to_string(), decl.ty.span)),
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
                let want = target_roles[ri].ty.name();
                match &vars[vi].ty {
                    None => vars[vi].ty = Some((want.to_string(), v.span)),
                    // A person in a players' role is a player: the narrower type holds.
                    Some((have, first)) if have != want && t.is_a(want, have) => {
                        vars[vi].ty = Some((want.to_string(), *first));
                    }
                    Some((have, first))
                        if have != want
                            && !t.meets(have, want)
                            && t.entity(want).is_some()
                            && t.entity(have).is_some() =>
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
                    relation: Ref::named(&atom.relation.text),
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
                                attr: AttrRef::named(&ty2, &a2.text),
                            }
                        }
                        TestValue::Lit(l) => match self.test_literal(t, l, &a.ty, &a.name) {
                            Some(v) => v,
                            None => continue,
                        },
                    };
                    body[k] = Some(BodyIr::AttrTest {
                        var: vi,
                        attr: AttrRef::named(&ty, &attr.text),
                        op: *op,
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
                        op: *op,
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
                // Only under `not`: usually "no such entity at all" was meant, which is `_`.
                let negated: Vec<Span> = b
                    .lits
                    .iter()
                    .filter_map(|l| match l {
                        BodyLit::Atom {
                            atom,
                            negated: Some(_),
                        } => Some(atom.span),
                        _ => None,
                    })
                    .collect();
                let only_negated = v
                    .uses
                    .iter()
                    .all(|u| negated.iter().any(|n| n.start <= u.start && u.end <= n.end));
                let help = if only_negated {
                    format!(
                        "`{0}` occurs only under `not`: if any entity is meant (\"has no such partner\"), write `_` instead of `{0}`; otherwise bind `{0}` in an atom that is not negated",
                        v.name
                    )
                } else {
                    format!(
                        "bind `{}` in a relation atom that is not negated; tests and `not` only filter",
                        v.name
                    )
                };
                self.push(
                    Diagnostic::new(
                        Code::UngroundedVariable,
                        *first,
                        format!("variable `{}` is not bound by any positive atom", v.name),
                    )
                    .label("ungrounded")
                    .help(help),
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
                        v.ty.as_ref().map(|t| Ref::named(&t.0)).unwrap_or_default(),
                    )
                })
                .collect(),
            body: body.into_iter().flatten().collect(),
        }
    }

    pub(super) fn test_literal(
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
    pub(super) fn stratify(&mut self, t: &Tables, relations: &mut [Relation]) {
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
    pub(super) fn populated(&mut self, t: &Tables, relations: &[Relation]) {
        let by_tree: BTreeSet<&str> = relations
            .iter()
            .filter(|r| matches!(&r.def, RelationDef::Base(g) if g.kind == GenKind::FamilyTree))
            // A tree over two different types is already an error; it populates nothing.
            .filter(|r| r.roles[0].ty == r.roles[1].ty)
            .map(|r| r.roles[0].ty.name())
            .collect();
        for e in &t.entities {
            let tree = by_tree.contains(e.name.text.as_str());
            // A supertype without a count is made of its subtypes' entities.
            let extended = t
                .entities
                .iter()
                .any(|x| x.extends.as_ref().is_some_and(|s| s.text == e.name.text));
            if e.count.is_none() && !tree && !extended {
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
}

/// A dependency of a derived relation on another, for stratification.
#[derive(Debug)]
pub(super) struct DepEdge {
    from: String,
    to: String,
    negated: bool,
    span: Span,
    body: Span,
}

/// Tarjan's strongly connected components, iterative so deep rule graphs cannot overflow the
/// stack. Components come out in reverse topological order (dependencies first).
pub(super) fn tarjan(adj: &[Vec<(usize, bool)>]) -> Vec<Vec<usize>> {
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

pub(super) fn literal_negative(l: &Literal) -> bool {
    match l {
        Literal::Int(i) => *i < 0,
        Literal::Float(f) => *f < 0.0,
        _ => false,
    }
}

pub(super) fn describe_literal(l: &Literal) -> String {
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
