//! Answer expressions: built-in functions (`count`, `count_each`, `argmin`, `argmax`, `same`, `related`), their arities and argument types.

use super::*;

impl Cx<'_> {
    pub(super) fn expr(&mut self, env: &ExprEnv, e: &Expr) -> Option<(AnswerExpr, AnswerType)> {
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
            Expr::Intersect { op, parts, span } => {
                let sym = op.symbol();
                let what = match op {
                    SetOp::And => "intersects",
                    SetOp::Or => "joins",
                    SetOp::Minus => "subtracts",
                };
                let mut out = Vec::new();
                let mut ty: Option<EntityRef> = None;
                for p in parts {
                    let (x, xt) = self.expr(env, p)?;
                    let AnswerType::Entities(et) = xt else {
                        self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                p.span(),
                                format!(
                                    "`{sym}` {what} sets of entities, but this is {}",
                                    xt.describe()
                                ),
                            )
                            .label("not entities")
                            .help(format!("`{sym}` combines chains or relation hops")),
                        );
                        return None;
                    };
                    // `|` joins players and managers into people; `&` and `-` need sets
                    // that can share entities, and keep the narrower or the first type.
                    let next = match &ty {
                        None => Some(et.name().to_string()),
                        Some(prev) => match op {
                            SetOp::Or => env.t.join(prev.name(), et.name()),
                            SetOp::And if env.t.is_a(et.name(), prev.name()) => {
                                Some(et.name().to_string())
                            }
                            _ if env.t.meets(prev.name(), et.name()) => {
                                Some(prev.name().to_string())
                            }
                            _ => None,
                        },
                    };
                    let Some(next) = next else {
                        let prev = ty.unwrap_or_default();
                        self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                *span,
                                format!("`{sym}` mixes `{prev}` and `{et}` entities"),
                            )
                            .label("different types")
                            .help(format!(
                                "both sides of `{sym}` must denote entities of one type, or of types one of which extends the other"
                            )),
                        );
                        return None;
                    };
                    ty = Some(Ref::named(next));
                    out.push(x);
                }
                let e = match op {
                    SetOp::And => AnswerExpr::Intersect(out),
                    SetOp::Or => AnswerExpr::Union(out),
                    SetOp::Minus => AnswerExpr::Difference(out),
                };
                Some((e, AnswerType::Entities(ty.unwrap_or_default())))
            }
            Expr::Call {
                callee,
                role,
                args,
                span,
            } => self.call(env, callee, role.as_ref(), args, *span),
        }
    }

    pub(super) fn arity(
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

    pub(super) fn entities_arg(
        &mut self,
        env: &ExprEnv,
        e: &Expr,
        what: &str,
    ) -> Option<(AnswerExpr, EntityRef)> {
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

    pub(super) fn call(
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
                // A player and a manager compare as people.
                let shared = match (&at, &bt) {
                    (AnswerType::Entities(x), AnswerType::Entities(y)) => {
                        env.t.join(x.name(), y.name()).is_some()
                    }
                    _ => at == bt,
                };
                if !shared {
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
                if args.len() < 2 {
                    self.push(
                        Diagnostic::new(
                            Code::AtomArity,
                            span,
                            format!("`{c}` takes an attribute and a set or candidates"),
                        )
                        .label("too few arguments")
                        .help(format!("write `{c}(dob, x, y)` (which of x and y) or `{c}(dob, players(x))` (which of a set)")),
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
                let mut ty: Option<EntityRef> = None;
                for a in &args[1..] {
                    let (x, et) = self.entities_arg(env, a, &format!("`{c}`"))?;
                    let joined = match &ty {
                        None => Some(et.name().to_string()),
                        Some(p) => env.t.join(p.name(), et.name()),
                    };
                    let Some(joined) = joined else {
                        self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                a.span(),
                                format!("`{c}` compares entities of one type"),
                            )
                            .label("different type")
                            .help("pass candidates of one entity type, or of types that extend a common one"),
                        );
                        return None;
                    };
                    ty = Some(Ref::named(joined));
                    xs.push(x);
                }
                let ty = ty.unwrap_or_default();
                let ety = env.entities.iter().find(|e| e.name == ty)?;
                // A relation instead of an attribute ranks by the number of partners.
                if ety.attr(&attr.text).is_none()
                    && let Some(r) = env.relations.iter().find(|r| r.name == attr.text)
                {
                    let Some(say) = say_from(env, r, &ty) else {
                        self.push(
                            Diagnostic::new(Code::MissingSurfaceForm, attr.span, format!("`{}` has no surface form read from a `{ty}`, so its partners cannot be counted", r.name))
                                .label("nothing to count")
                                .help(format!("give `{}` a `say` for the role seen from `{ty}`", r.name)),
                        );
                        return None;
                    };
                    let e = AnswerExpr::ArgCount {
                        relation: Ref::named(&r.name),
                        to: say.role,
                        max: c == "argmax",
                        args: xs,
                    };
                    return Some((e, AnswerType::Entities(ty)));
                }
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
                let attr = AttrRef::named(&ety.name, &a.name);
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
                    let cands: Vec<&str> = if list.is_empty() {
                        env.hop_rels.iter().map(String::as_str).collect()
                    } else {
                        list.iter().map(Ref::name).collect()
                    };
                    let mut out_ty: Option<EntityRef> = None;
                    for name in cands {
                        let Some(r) = env.relations.iter().find(|r| r.name == name) else {
                            continue;
                        };
                        for s in r
                            .says
                            .iter()
                            .filter(|s| env.t.meets(ty.name(), r.roles[s.of].ty.name()))
                        {
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
                            .and_then(|x| x.attr(a.name()))
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
        if let Some(r) = env.relations.iter().find(|r| r.name == c)
            && let Some(rn) = role
            && r.role_index(&rn.text).is_none()
            && let Some(ai) = r.attrs.iter().position(|a| a.name == rn.text)
        {
            return self.fact_attr(env, r, ai, rn, args, span);
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
                None => match say_from(env, r, &ty) {
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
            if !env.t.meets(ty.name(), r.roles[1 - to].ty.name()) {
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
                    relation: Ref::named(c),
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
                    attr: AttrRef::named(ty.name(), c),
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

impl Cx<'_> {
    /// `rel.attr(x)` or `rel.attr(x, y)`: a fact attribute over the facts from `x` (to `y`).
    fn fact_attr(
        &mut self,
        env: &ExprEnv,
        r: &Relation,
        ai: usize,
        attr: &Name,
        args: &[Expr],
        span: Span,
    ) -> Option<(AnswerExpr, AnswerType)> {
        let c = format!("{}.{}", r.name, attr.text);
        if args.is_empty() || args.len() > 2 {
            self.push(
                Diagnostic::new(
                    Code::AtomArity,
                    span,
                    format!("`{c}` reads the facts of one set, or between two"),
                )
                .label(plural(args.len(), "argument", "arguments"))
                .help(format!("write `{c}(x)` or `{c}(x, y)`")),
            );
            return None;
        }
        let mut xs = Vec::new();
        let mut tys = Vec::new();
        for a in args {
            let (x, t) = self.entities_arg(env, a, &format!("`{c}`"))?;
            xs.push(x);
            tys.push(t);
        }
        // The first argument's role: of its very type, else a supertype's, else a subtype's;
        // the second argument takes the other role.
        let fits = |role: usize, ty: &EntityRef, exact: bool| {
            let rt = r.roles[role].ty.name();
            if exact {
                rt == ty.name()
            } else {
                env.t.meets(ty.name(), rt)
            }
        };
        let from = [true, false].iter().find_map(|&exact| {
            (0..2).find(|&i| {
                fits(i, &tys[0], exact) && tys.get(1).is_none_or(|t| fits(1 - i, t, false))
            })
        });
        let Some(from) = from else {
            let roles = r
                .roles
                .iter()
                .map(|x| format!("`{}: {}`", x.name, x.ty))
                .collect::<Vec<_>>()
                .join(" and ");
            self.push(
                Diagnostic::new(
                    Code::TypeMismatch,
                    span,
                    format!(
                        "`{c}` reads facts of {roles}, but its {} {}",
                        if args.len() == 1 {
                            "argument is"
                        } else {
                            "arguments are"
                        },
                        tys.iter()
                            .map(|t| format!("a `{t}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                )
                .label("no role fits")
                .help("pass entities of the relation's role types"),
            );
            return None;
        };
        Some((
            AnswerExpr::FactAttr {
                relation: Ref::named(&r.name),
                attr: ai,
                from,
                args: xs,
            },
            AnswerType::Values(r.attrs[ai].ty.clone()),
        ))
    }
}

/// The surface form reading `r` from a set of `ty`: from a role of that very type first,
/// then from a supertype's role (players along `born_in(person, ..)`), then a subtype's.
fn say_from<'r>(env: &ExprEnv, r: &'r Relation, ty: &EntityRef) -> Option<&'r Say> {
    let from = |s: &&Say| r.roles[s.of].ty.name().to_string();
    r.says
        .iter()
        .find(|s| from(s) == ty.name())
        .or_else(|| r.says.iter().find(|s| env.t.is_a(ty.name(), &from(s))))
        .or_else(|| r.says.iter().find(|s| env.t.is_a(&from(s), ty.name())))
}

pub(super) struct ExprEnv<'a> {
    pub(super) t: &'a Tables<'a>,
    pub(super) slots: &'a [Slot],
    pub(super) entities: &'a [EntityType],
    pub(super) relations: &'a [Relation],
    pub(super) hop_rels: &'a [String],
}
