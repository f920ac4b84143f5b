//! Articles: one Markdown document per entity of every type with an `article` template, plus
//! the facts it states as structured data.

use super::solve::Solver;
use super::world::{World, render, render_value};
use crate::dataset::{Article as ArticleRecord, ArticleFact};
use crate::lang::ir::{Article, ArticlePartIr, FactRef, Hole, Ir, Say, TextPart};

/// The noun naming entity `b` (of type `ty`) through `say`: the first `when` form whose
/// attribute value `b` has, else the plain form. Returns (singular, plural).
pub fn noun_of<'s>(ir: &Ir, w: &World, say: &'s Say, ty: usize, b: u32) -> (&'s str, &'s str) {
    let ety = &ir.entities[ty];
    for c in &say.when {
        let ai = c.attr.index();
        if render(ir, ety, ai, &w.types[ty].columns[ai][b as usize]) == c.value {
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
    /// A writer for the articles of one universe.
    pub fn new(ir: &'a Ir, w: &'a World, solver: &'a Solver<'a>, universe: &'a str) -> Self {
        Writer {
            ir,
            w,
            solver,
            universe,
        }
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
        // A surface form reads one role from the other: `role` is `1 - of`.
        let ty = self.solver.role_types[rel][role];
        let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
        for (n, b) in self.named_partners(rel, of, e) {
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

    fn value_at(&self, t: usize, ai: usize, e: u32) -> String {
        render(
            self.ir,
            &self.ir.entities[t],
            ai,
            &self.w.types[t].columns[ai][e as usize],
        )
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
                // The checker allows agreement only in question templates.
                TextPart::Lit(l) | TextPart::Agree { singular: l, .. } => out.push_str(l),
                TextPart::Hole { to, .. } => {
                    if let Hole::Attr(ai) = *to {
                        let v = self.value_at(t, ai, e);
                        if ai != ety.key.index() {
                            stated.push(self.attr_fact(t, ai, v.clone()));
                        }
                        if v.is_empty() {
                            return None;
                        }
                        out.push_str(&v);
                    } else if let Hole::FactAttr(rel, ai) = *to
                        && let Some(say) = self.hole_say(t, rel)
                    {
                        let vals = self.fact_values(rel, ai, say.of, e);
                        if vals.is_empty() {
                            return None;
                        }
                        out.push_str(&join(&vals));
                    } else if let Hole::Relation(rel) = *to
                        && let Some(say) = self.hole_say(t, rel)
                    {
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
            if let TextPart::Hole {
                to: Hole::Relation(rel),
                ..
            } = *p
                && let Some(say) = self.hole_say(t, rel)
            {
                for g in self.partners(rel, say.role, say.of, e) {
                    push_fact(facts, self.rel_fact(rel, say.role, g));
                }
            }
        }
    }

    /// The surface form reading relation `rel`, named by a placeholder of an article about
    /// type `t`, from `t`.
    fn hole_say(&self, t: usize, rel: usize) -> Option<&Say> {
        // As the checker chose: a role of this very type, else of a supertype.
        let says = &self.ir.relations[rel].says;
        let from = |s: &&Say| self.solver.role_types[rel][s.of];
        says.iter()
            .find(|s| from(s) == t)
            .or_else(|| says.iter().find(|s| self.ir.is_a(t, from(s))))
    }

    /// Fact attribute `ai` of `e`'s facts in relation `rel` (`e` in role `of`): distinct
    /// values in partner-name order.
    fn fact_values(&self, rel: usize, ai: usize, of: usize, e: u32) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, b) in self.named_partners(rel, of, e) {
            if let Some(v) = self.fact_value(rel, ai, of, e, b)
                && !out.contains(&v)
            {
                out.push(v);
            }
        }
        out
    }

    /// Partners of `e` (in role `of`) through `rel`, sorted by name.
    fn named_partners(&self, rel: usize, of: usize, e: u32) -> Vec<(String, u32)> {
        let ty = self.solver.role_types[rel][1 - of];
        let mut img: Vec<(String, u32)> = self
            .solver
            .image(rel, of, e)
            .into_iter()
            .map(|b| (self.name(ty, b), b))
            .collect();
        img.sort();
        img
    }

    /// The rendered fact attribute `ai` of the fact between `e` (in role `of`) and `b`.
    fn fact_value(&self, rel: usize, ai: usize, of: usize, e: u32, b: u32) -> Option<String> {
        let r = &self.ir.relations[rel];
        let v = self.w.base[rel]
            .as_ref()?
            .value_between(ai, of, e, b, r.symmetric)?;
        Some(render_value(self.ir, &r.attrs[ai], v))
    }

    /// "Dravost United (year of signing: 2014)": a partner's name with its fact's
    /// attributes, so that articles state what questions on fact attributes ask.
    /// `ids` are `e`'s partners sorted by name (`named_partners`), empty when the relation
    /// has no fact attributes.
    fn with_fact_attrs(
        &self,
        rel: usize,
        of: usize,
        e: u32,
        name: &str,
        ids: &[(String, u32)],
    ) -> String {
        let r = &self.ir.relations[rel];
        let Ok(i) = ids.binary_search_by(|(n, _)| n.as_str().cmp(name)) else {
            return name.to_string();
        };
        let b = ids[i].1;
        let said: Vec<String> = r
            .attrs
            .iter()
            .enumerate()
            .filter_map(|(ai, a)| {
                let v = self.fact_value(rel, ai, of, e, b)?;
                let noun = a.say.as_ref().map_or(a.name.as_str(), |s| s.0.as_str());
                Some(format!("{noun}: {v}"))
            })
            .collect();
        format!("{name} ({})", said.join("; "))
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
                                let fact =
                                    self.attr_fact(t, a.index(), self.value_at(t, a.index(), e));
                                sentences.push(format!(
                                    "The {} of {who} is {}.",
                                    fact.noun, fact.values[0]
                                ));
                                push_fact(&mut doc.facts, fact);
                            }
                            FactRef::Relation { relation, role, of } => {
                                let rel = relation.id();
                                // Partners by name, to find each one's fact; only a relation
                                // with fact attributes needs them.
                                let ids = if self.ir.relations[rel].attrs.is_empty() {
                                    Vec::new()
                                } else {
                                    self.named_partners(rel, *of, e)
                                };
                                for g in self.partners(rel, *role, *of, e) {
                                    let named: Vec<String> =
                                        g.2.iter()
                                            .map(|n| self.with_fact_attrs(rel, *of, e, n, &ids))
                                            .collect();
                                    sentences.push(match named.len() {
                                        0 => format!("{who} has no {}.", g.1),
                                        1 => format!("The {} of {who} is {}.", g.0, named[0]),
                                        _ => format!("The {} of {who} are {}.", g.1, join(&named)),
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
