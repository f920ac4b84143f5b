//! Articles: templates with placeholders, fact references, lines and their `else` forms.

use super::*;

impl Cx<'_> {
    /// Splits a string literal into text and `{placeholder}`s, with spans into the source.
    pub(super) fn text_parts(&mut self, s: &Str) -> Vec<(TextPart, Span)> {
        self.text_parts_in(s, false)
    }

    /// As [`Self::text_parts`]; `agree` admits `{is/are}` and `{does/do:x}` (question
    /// templates).
    pub(super) fn text_parts_in(&mut self, s: &Str, agree: bool) -> Vec<(TextPart, Span)> {
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
                    if let Some((sing, plur)) = inner.split_once('/') {
                        let (plur, of) = match plur.split_once(':') {
                            Some((p, o)) => (p, Some(o.trim().to_string())),
                            None => (plur, None),
                        };
                        let words_ok = !sing.trim().is_empty()
                            && !plur.trim().is_empty()
                            && !plur.contains('/')
                            && of.as_deref().is_none_or(|o| {
                                !o.is_empty()
                                    && o.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            });
                        if !agree {
                            self.push(
                                Diagnostic::new(Code::TemplatePlaceholder, span, format!("`{{{inner}}}`: agreement is only for question templates"))
                                    .label("not available here")
                                    .help("`{singular/plural}` words agree with a question's answer or slot; here write the text once"),
                            );
                        } else if !words_ok {
                            self.push(
                                Diagnostic::new(Code::TemplatePlaceholder, span, format!("`{{{inner}}}` is not an agreement placeholder"))
                                    .label("malformed")
                                    .help("write `{is/are}` (agrees with the answer) or `{does/do:x}` (agrees with slot `x`)"),
                            );
                        } else {
                            flush(&mut lit, &mut out);
                            out.push((
                                TextPart::Agree {
                                    singular: sing.to_string(),
                                    plural: plur.to_string(),
                                    of,
                                },
                                span,
                            ));
                        }
                        for _ in 0..inner.chars().count() + 1 {
                            chars.next();
                        }
                        continue;
                    }
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
                                to: Hole::Filled,
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

    pub(super) fn articles(
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
                    name: ety.key.name().into(),
                    form: None,
                    to: Hole::Filled,
                }],
            };
            let parts = a
                .parts
                .iter()
                .map(|p| self.article_part(p, ety, relations, t))
                .collect();
            out.push(Article {
                entity: Ref::named(&ety.name),
                title,
                parts,
            });
        }
        out
    }

    pub(super) fn article_part(
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
    pub(super) fn fact_ref(
        &mut self,
        n: &Name,
        ety: &EntityType,
        relations: &[Relation],
        t: &Tables,
    ) -> Option<FactRef> {
        if ety.attr(&n.text).is_some() {
            return Some(FactRef::Attr(AttrRef::named(&ety.name, &n.text)));
        }
        if let Some(r) = relations.iter().find(|r| r.name == n.text) {
            // A player's article reads people's relations too (`born_in(person, ..)`).
            let from = |s: &&Say| r.roles[s.of].ty.name().to_string();
            if let Some(s) = r
                .says
                .iter()
                .find(|s| from(s) == ety.name)
                .or_else(|| r.says.iter().find(|s| t.is_a(&ety.name, &from(s))))
            {
                return Some(FactRef::Relation {
                    relation: Ref::named(&r.name),
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

    pub(super) fn article_text(
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
            if let TextPart::Hole { name, form, .. } = &p {
                let n = Name {
                    text: name.clone(),
                    span,
                };
                let known = ety.attr(name).is_some()
                    || (allow_relations && relations.iter().any(|r| &r.name == name));
                // `{plays_for.since}`: the fact attribute of the entity's facts in a line.
                if allow_relations
                    && ety.attr(name).is_none()
                    && let Some(f) = form
                    && let Some(r) = relations.iter().find(|r| &r.name == name)
                    && r.attrs.iter().any(|a| &a.name == f)
                {
                    if self.fact_ref(&n, ety, relations, t).is_some() {
                        out.push(p);
                    }
                    continue;
                }
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
}
