//! Articles: one Markdown document per entity of every type with an `article` template, plus
//! the facts it states as structured data.

use super::GenError;
use super::solve::Solver;
use super::world::{World, render};
use crate::dataset::{Article as ArticleRecord, ArticleFact};
use crate::lang::ir::{Article, ArticlePartIr, FactRef, Ir, Say, TextPart};

/// The noun naming entity `b` (of type `ty`) through `say`: the first `when` form whose
/// attribute value `b` has, else the plain form. Returns (singular, plural).
pub fn noun_of<'s>(ir: &Ir, w: &World, say: &'s Say, ty: usize, b: u32) -> (&'s str, &'s str) {
    let ety = &ir.entities[ty];
    for c in &say.when {
        if let Some(ai) = ety.attrs.iter().position(|x| x.name == c.attr)
            && render(ir, ety, ai, &w.types[ty].columns[ai][b as usize]) == c.value
        {
            return (&c.singular, &c.plural);
        }
    }
    (&say.singular, &say.plural)
}

/// "A", "A and B", "A, B and C".
fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

pub struct Writer<'a> {
    ir: &'a Ir,
    w: &'a World,
    solver: &'a Solver<'a>,
    universe: &'a str,
}

impl<'a> Writer<'a> {
    /// A writer for the articles of one universe. Every relation and attribute an article
    /// names must resolve (the checker guarantees it), so that no fact is ever left out
    /// silently while writing.
    pub fn new(
        ir: &'a Ir,
        w: &'a World,
        solver: &'a Solver<'a>,
        universe: &'a str,
    ) -> Result<Self, GenError> {
        fn refs<'p>(parts: &'p [ArticlePartIr], out: &mut Vec<&'p FactRef>) {
            for p in parts {
                match p {
                    ArticlePartIr::Facts(f) => out.extend(f),
                    ArticlePartIr::Section { parts, .. } => refs(parts, out),
                    ArticlePartIr::Line { .. } => {}
                }
            }
        }
        for art in &ir.articles {
            // Whether the universe has the type is the writer of each article's entities' job.
            let Some(ety) = ir.entity(&art.entity) else {
                return Err(GenError::Internal(format!(
                    "the article for `{}` names no entity type of the rules",
                    art.entity
                )));
            };
            let mut fs = Vec::new();
            refs(&art.parts, &mut fs);
            for f in fs {
                let ok = match f {
                    FactRef::Attr(a) => ety.attr(a).is_some(),
                    FactRef::Relation { relation, .. } => ir.relation(relation).is_some(),
                };
                if !ok {
                    return Err(GenError::Internal(format!(
                        "the article for `{}` states a fact the rules do not define: {f:?}",
                        art.entity
                    )));
                }
            }
        }
        Ok(Writer {
            ir,
            w,
            solver,
            universe,
        })
    }

    fn name(&self, t: usize, e: u32) -> String {
        let td = &self.w.types[t];
        render(
            self.ir,
            &self.ir.entities[t],
            td.key,
            &td.columns[td.key][e as usize],
        )
    }

    /// Partners of `e` through relation `rel` read from role `of` to role `role`, grouped by
    /// the noun naming them; groups in order of first appearance, names sorted.
    fn partners(
        &self,
        rel: usize,
        role: usize,
        of: usize,
        e: u32,
    ) -> Vec<(String, String, Vec<String>)> {
        let r = &self.ir.relations[rel];
        let Some(say) = r.says.iter().find(|s| s.role == role && s.of == of) else {
            return Vec::new();
        };
        let ty = self.solver.role_types[rel][role];
        let mut img: Vec<(String, u32)> = self
            .solver
            .image(rel, of, e)
            .into_iter()
            .map(|b| (self.name(ty, b), b))
            .collect();
        img.sort();
        let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
        for (n, b) in img {
            let (s, p) = noun_of(self.ir, self.w, say, ty, b);
            match groups.iter_mut().find(|g| g.0 == s) {
                Some(g) => g.2.push(n),
                None => groups.push((s.to_string(), p.to_string(), vec![n])),
            }
        }
        if groups.is_empty() {
            groups.push((say.singular.clone(), say.plural.clone(), Vec::new()));
        }
        groups
    }

    fn attr_value(&self, t: usize, attr: &str, e: u32) -> Option<(usize, String)> {
        let ety = &self.ir.entities[t];
        let ai = ety.attrs.iter().position(|a| a.name == attr)?;
        Some((
            ai,
            render(self.ir, ety, ai, &self.w.types[t].columns[ai][e as usize]),
        ))
    }

    /// Fills a title or line template: attributes by value, relations by partner names.
    /// Returns `None` when a placeholder has no value (no partners, an empty attribute):
    /// "She manages ." must never be printed. Facts are recorded only for a filled text.
    fn fill(
        &self,
        t: usize,
        e: u32,
        parts: &[TextPart],
        facts: &mut Vec<ArticleFact>,
    ) -> Option<String> {
        let ety = &self.ir.entities[t];
        let mut stated = Vec::new();
        let mut out = String::new();
        for p in parts {
            match p {
                TextPart::Lit(l) => out.push_str(l),
                TextPart::Hole { name, .. } => {
                    if let Some((ai, v)) = self.attr_value(t, name, e) {
                        if ai
                            != ety
                                .attrs
                                .iter()
                                .position(|a| a.name == ety.key)
                                .unwrap_or(usize::MAX)
                        {
                            stated.push(self.attr_fact(t, ai, v.clone()));
                        }
                        if v.is_empty() {
                            return None;
                        }
                        out.push_str(&v);
                    } else if let Some((rel, say)) = self.hole_relation(t, name) {
                        let groups = self.partners(rel, say.role, say.of, e);
                        let names: Vec<String> = groups.iter().flat_map(|g| g.2.clone()).collect();
                        if names.is_empty() {
                            return None;
                        }
                        for g in groups {
                            stated.push(self.rel_fact(rel, say.role, g));
                        }
                        out.push_str(&join(&names));
                    }
                }
            }
        }
        for f in stated {
            push_fact(facts, f);
        }
        Some(out)
    }

    /// The facts a line would state if all its placeholders had values, empty ones included:
    /// what its `else` text stands for ("She manages no club.").
    fn line_facts(&self, t: usize, e: u32, parts: &[TextPart], facts: &mut Vec<ArticleFact>) {
        for p in parts {
            let TextPart::Hole { name, .. } = p else {
                continue;
            };
            if self.attr_value(t, name, e).is_none()
                && let Some((rel, say)) = self.hole_relation(t, name)
            {
                for g in self.partners(rel, say.role, say.of, e) {
                    push_fact(facts, self.rel_fact(rel, say.role, g));
                }
            }
        }
    }

    /// The relation a placeholder `{name}` of an article about type `t` names, with the
    /// surface form that reads it from `t` (placeholders that name an attribute aside).
    fn hole_relation(&self, t: usize, name: &str) -> Option<(usize, &Say)> {
        let rel = self.ir.relations.iter().position(|r| r.name == name)?;
        let say = self.ir.relations[rel]
            .says
            .iter()
            .find(|s| self.solver.role_types[rel][s.of] == t)?;
        Some((rel, say))
    }

    fn attr_fact(&self, t: usize, ai: usize, v: String) -> ArticleFact {
        let a = &self.ir.entities[t].attrs[ai];
        ArticleFact {
            kind: "attribute".into(),
            name: a.name.clone(),
            role: String::new(),
            noun: a
                .say
                .as_ref()
                .map_or_else(|| a.name.replace('_', " "), |s| s.0.clone()),
            values: vec![v],
        }
    }

    fn rel_fact(&self, rel: usize, role: usize, g: (String, String, Vec<String>)) -> ArticleFact {
        let r = &self.ir.relations[rel];
        let noun = if g.2.len() == 1 { g.0 } else { g.1 };
        ArticleFact {
            kind: "relation".into(),
            name: r.name.clone(),
            role: r.roles[role].name.clone(),
            noun,
            values: g.2,
        }
    }

    fn parts(
        &self,
        subject: (usize, u32, &str),
        parts: &[ArticlePartIr],
        level: usize,
        doc: &mut Doc,
    ) {
        let (t, e, who) = subject;
        for p in parts {
            match p {
                ArticlePartIr::Line { text, otherwise } => {
                    let line = self.fill(t, e, text, &mut doc.facts).or_else(|| {
                        let o = otherwise.as_ref()?;
                        let filled = self.fill(t, e, o, &mut doc.facts)?;
                        self.line_facts(t, e, text, &mut doc.facts);
                        Some(filled)
                    });
                    if let Some(line) = line {
                        doc.text.push_str(&line);
                        doc.text.push_str("\n\n");
                    }
                }
                ArticlePartIr::Facts(refs) => {
                    let mut sentences = Vec::new();
                    for f in refs {
                        match f {
                            FactRef::Attr(a) => {
                                if let Some((ai, v)) = self.attr_value(t, a, e) {
                                    let fact = self.attr_fact(t, ai, v);
                                    sentences.push(format!(
                                        "The {} of {who} is {}.",
                                        fact.noun, fact.values[0]
                                    ));
                                    push_fact(&mut doc.facts, fact);
                                }
                            }
                            FactRef::Relation { relation, role, of } => {
                                let Some(rel) =
                                    self.ir.relations.iter().position(|r| &r.name == relation)
                                else {
                                    continue;
                                };
                                for g in self.partners(rel, *role, *of, e) {
                                    sentences.push(match g.2.len() {
                                        0 => format!("{who} has no {}.", g.1),
                                        1 => format!("The {} of {who} is {}.", g.0, g.2[0]),
                                        _ => format!("The {} of {who} are {}.", g.1, join(&g.2)),
                                    });
                                    push_fact(&mut doc.facts, self.rel_fact(rel, *role, g));
                                }
                            }
                        }
                    }
                    if !sentences.is_empty() {
                        doc.text.push_str(&sentences.join("\n"));
                        doc.text.push_str("\n\n");
                    }
                }
                ArticlePartIr::Section { heading, parts } => {
                    doc.text.push_str(&"#".repeat(level + 1));
                    doc.text.push(' ');
                    doc.text.push_str(heading);
                    doc.text.push_str("\n\n");
                    self.parts(subject, parts, level + 1, doc);
                }
            }
        }
    }

    /// The article about entity `e` of type `t`.
    pub fn article(&self, art: &Article, t: usize, e: u32) -> ArticleRecord {
        let name = self.name(t, e);
        let mut doc = Doc::default();
        // A title with an empty placeholder falls back to the entity's name.
        let title = self
            .fill(t, e, &art.title, &mut doc.facts)
            .unwrap_or_else(|| name.clone());
        doc.text = format!("# {title}\n\n");
        self.parts((t, e, &name), &art.parts, 1, &mut doc);
        ArticleRecord {
            universe: self.universe.to_string(),
            ty: self.ir.entities[t].name.clone(),
            name,
            title,
            text: doc.text.trim_end().to_string() + "\n",
            facts: doc.facts,
        }
    }
}

/// An article being written: its Markdown so far and the facts it has stated.
#[derive(Default)]
struct Doc {
    text: String,
    facts: Vec<ArticleFact>,
}

fn push_fact(facts: &mut Vec<ArticleFact>, f: ArticleFact) {
    if !facts.contains(&f) {
        facts.push(f);
    }
}
