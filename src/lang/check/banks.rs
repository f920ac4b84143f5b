//! Relation banks: named sets of relations, nested banks expanded, cycles reported.

use super::*;

impl Cx<'_> {
    pub(super) fn banks(&mut self, t: &Tables) -> Vec<Bank> {
        let mut out = Vec::new();
        for b in &t.banks {
            let mut rels = Vec::new();
            let mut stack = vec![b.name.text.clone()];
            self.expand_bank(t, b, &mut rels, &mut stack);
            out.push(Bank {
                name: b.name.text.clone(),
                relations: rels.into_iter().map(Ref::named).collect(),
            });
        }
        out
    }

    pub(super) fn expand_bank(
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
}
