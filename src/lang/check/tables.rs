//! Symbol tables: every declaration collected by name (types, relations and banks share one namespace), duplicates and reserved names reported, and lookups with did-you-mean suggestions.

use super::*;

impl Cx<'_> {
    pub(super) fn unknown<'c>(
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

    pub(super) fn duplicate(&mut self, what: &str, name: &Name, first: Span) {
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

    pub(super) fn collect<'a>(&mut self, file: &'a RuleFile) -> Tables<'a> {
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

    pub(super) fn reserved(&mut self, name: &Name, what: &str) {
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

    pub(super) fn global<'a>(&mut self, t: &mut Tables<'a>, name: &'a Name, g: Global<'a>) -> bool {
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
}
