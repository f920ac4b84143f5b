//! Question templates: settings, slots, hop relations, and the surface forms templates need.

use super::*;

impl Cx<'_> {
    pub(super) fn questions(
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
                Some(HopSet::Bank(Ref::named(b)))
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
        let agree = match &q.number {
            None => true,
            Some(n) if n.text == "agree" => true,
            Some(n) if n.text == "singular" => false,
            Some(n) => {
                self.unknown(
                    Code::UnknownOption,
                    "`number` setting",
                    n,
                    ["agree", "singular"],
                    "`number agree;` (the default) or `number singular;` (PhantomWiki's wording)",
                );
                true
            }
        };
        let allowed = self.filters(&q.allow);
        let filters: Vec<Filter> = Filter::ALL
            .into_iter()
            .filter(|f| !allowed.contains(f))
            .collect();
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
                        if agree
                            && !a.unique
                            && a.whose_plural.is_none()
                            && (a.whose.is_some() || a.say.is_some())
                        {
                            let one = match &a.whose {
                                Some(_) => "a `whose` form".to_string(),
                                None => format!("only the default `the {} whose ..`", ety.name),
                            };
                            self.push(
                                Diagnostic::new(Code::MissingSurfaceForm, p.span, format!("attribute `{}.{}` starts chains that may denote several entities, but has {one} in the singular", ety.name, a.name))
                                    .label("no plural to agree with")
                                    .help(format!("give both forms: `whose \"the {t} whose .. is {{value}}\" / \"the {t}s whose .. is {{value}}\";` (or `number singular;`)", t = ety.name)),
                            );
                        }
                        if a.whose.is_none() && a.say.is_none() {
                            self.push(
                                Diagnostic::new(Code::MissingSurfaceForm, p.span, format!("attribute `{}.{}` has no surface form for a `whose` start", ety.name, a.name))
                                    .label("cannot be put into words")
                                    .help(format!("give `{}` a `{{ say \"..\"; }}` or `{{ whose \"the {} whose .. is {{value}}\"; }}`", a.name, ety.name)),
                            );
                        }
                        starts.push(Start::Whose {
                            entity: Ref::named(&ety.name),
                            attr: AttrRef::named(&ety.name, &a.name),
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
                .find(|x| x.name == *b)
                .map(|b| b.relations.iter().map(|r| r.name().to_string()).collect())
                .unwrap_or_default(),
            Some(HopSet::Param(p)) => match t.params.get(p.as_str()).map(|d| &d.default.value) {
                Some(Literal::Ident(b)) => banks
                    .iter()
                    .find(|x| &x.name == b)
                    .map(|b| b.relations.iter().map(|r| r.name().to_string()).collect())
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
                if agree {
                    self.bare_verbs(tp, &tpl.text, &tpl.slots);
                }
                templates.push(tpl);
            }
        }
        Some(Questions {
            depth,
            per_template,
            unanswerable,
            max_answers,
            hops,
            agree,
            filters,
            starts,
            templates,
        })
    }

    /// The walk filters `allow` names.
    fn filters(&mut self, names: &[Name]) -> Vec<Filter> {
        let mut out = Vec::new();
        for n in names {
            match Filter::ALL.into_iter().find(|f| f.name() == n.text) {
                Some(f) => out.push(f),
                None => self.unknown(
                    Code::UnknownOption,
                    "walk filter",
                    n,
                    Filter::ALL.map(Filter::name),
                    "`allow` takes backtrack, start_in_answer and every_value",
                ),
            }
        }
        out
    }

    pub(super) fn need_says(
        &mut self,
        t: &Tables,
        rels: &[RelationRef],
        relations: &[Relation],
        at: Span,
    ) {
        for name in rels {
            if let Some(r) = relations.iter().find(|r| r.name == *name)
                && r.says.is_empty()
            {
                let decl = t.relation(name.name()).map_or(at, |d| d.head_span);
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

    pub(super) fn attr_path<'e>(
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

    pub(super) fn template(
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
                        SlotKindIr::Chain(Ref::named(&ty.text))
                    } else {
                        SlotKindIr::Name(Ref::named(&ty.text))
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
                            v.push((Ref::named(&e.name), AttrRef::named(&e.name, &a.name)));
                        }
                    }
                    SlotKindIr::Attr(v)
                }
                SlotKind::Relation(names) => {
                    let mut v = Vec::new();
                    for n in names {
                        if let Some(r) = relations.iter().find(|r| r.name == n.text) {
                            v.push(Ref::named(&r.name));
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
        let allow = self.filters(&tp.allow);
        let parts = self.text_parts_in(&tp.text, true);
        let mut used = BTreeSet::new();
        let mut text = Vec::new();
        for (p, span) in parts {
            if let TextPart::Agree { of: Some(of), .. } = &p
                && !slots.iter().any(|(s, _)| &s.name == of)
            {
                self.push(
                    Diagnostic::new(
                        Code::TemplatePlaceholder,
                        span,
                        format!("`{of}` is not a slot of template `{}`", tp.name.text),
                    )
                    .label("agrees with nothing")
                    .help(
                        did_you_mean(of, slots.iter().map(|(s, _)| s.name.as_str()))
                            .unwrap_or_else(|| {
                                "name a slot after `:`, or leave it out to agree with the answer"
                                    .into()
                            }),
                    ),
                );
            }
            if let TextPart::Hole { name, form, .. } = &p {
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
            allow,
            slots,
            answer,
            answer_type,
        })
    }
}

/// Verbs that change with number; written bare in a template, they cannot agree. (`have`
/// is left out: after `{does/do}` it is the bare form, right in both numbers.)
const AUXILIARIES: [(&str, &str); 7] = [
    ("is", "is/are"),
    ("are", "is/are"),
    ("was", "was/were"),
    ("were", "was/were"),
    ("does", "does/do"),
    ("do", "does/do"),
    ("has", "has/have"),
];

impl Cx<'_> {
    /// Warns about a bare auxiliary in a template with a chain slot: the chain (and so the
    /// answer) may denote several entities, and the verb then reads wrong.
    fn bare_verbs(&mut self, tp: &TemplateDecl, text: &[TextPart], slots: &[Slot]) {
        let Some(chain) = slots
            .iter()
            .find(|s| matches!(s.kind, SlotKindIr::Chain(_)))
        else {
            return;
        };
        for p in text {
            let TextPart::Lit(l) = p else { continue };
            for w in l.split(|c: char| !c.is_ascii_alphabetic()) {
                let lower = w.to_ascii_lowercase();
                let Some((_, both)) = AUXILIARIES.iter().find(|(a, _)| *a == lower) else {
                    continue;
                };
                // Underline the word itself: its first whole-word occurrence in the string.
                let raw = self
                    .src
                    .get(tp.text.span.start..tp.text.span.end)
                    .unwrap_or("");
                let at = raw
                    .match_indices(w)
                    .find(|(i, _)| {
                        let before = raw[..*i].chars().next_back();
                        let after = raw[i + w.len()..].chars().next();
                        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '{')
                            && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '/')
                    })
                    .map_or(tp.text.span, |(i, _)| {
                        Span::new(tp.text.span.start + i, tp.text.span.start + i + w.len())
                    });
                self.push(
                    Diagnostic::new(Code::Agreement, at, format!("`{w}` in template `{}` cannot agree in number", tp.name.text))
                        .label(format!("`{w}` stays as written"))
                        .help(format!("slot `{}` may denote several entities: write `{{{both}}}` to agree with the answer, or `{{{both}:{}}}` to agree with the slot (`number singular;` keeps every question in the singular)", chain.name, chain.name)),
                );
                return;
            }
        }
    }
}
