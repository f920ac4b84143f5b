//! Questions: template variants up to the question depth, instantiated by random walks over
//! the universe and answered exactly with set semantics, one recorded set per step.
//!
//! A *variant* fixes, for every chain slot of a template, how its chain starts (a name or a
//! `whose` phrase) and how many hops it takes; its id (`who:x=name3`) is the question's
//! template id. Each variant draws from its own random stream, so variants can be composed
//! on any number of threads without changing a byte.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::GenError;
use super::articles::noun_of;
use super::params::Params;
use super::solve::Solver;
use super::world::{AttrVal, World, render, render_value};
use crate::dataset::{Program, Question, Reading, Step};
use crate::lang::ir::{
    AnswerExpr, AnswerType, Filter, HopSet, Ir, Questions, RelationRef, SlotKindIr, Start,
    Template, TextPart, Value,
};
use crate::util::rng::Rng;

/// A relation read through one of its `say` forms.
#[derive(Clone, Copy, Debug)]
struct Dir {
    rel: usize,
    say: usize,
    from: usize,
    to: usize,
    from_ty: usize,
    to_ty: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    whose: bool,
    hops: usize,
}

#[derive(Clone, Debug)]
struct Variant {
    tpl: usize,
    id: String,
    /// Chain slot name → shape.
    shapes: Vec<(String, Shape)>,
}

/// The value of an expression: a set of entities of one type, of rendered attribute values,
/// a count, yes/no, or relation nouns.
#[derive(Clone, Debug)]
enum Set {
    Ents(usize, Vec<u32>),
    Vals(Vec<String>),
    Count(usize),
    YesNo(bool),
    Nouns(Vec<String>),
}

impl Set {
    fn size(&self) -> usize {
        match self {
            Set::Ents(_, v) => v.len(),
            Set::Vals(v) | Set::Nouns(v) => v.len(),
            Set::Count(_) | Set::YesNo(_) => 1,
        }
    }
}

enum Fill {
    Text(String),
    Forms(String, String),
}

/// State of one instantiation attempt.
struct Attempt {
    rng: Rng,
    steps: Vec<Step>,
    outs: Vec<Set>,
    fills: HashMap<String, Fill>,
    /// Slot values chosen so far: entity for name slots, direction for relation slots,
    /// attribute index for attribute slots.
    names: HashMap<String, (usize, u32)>,
    rels: HashMap<String, Dir>,
    attrs: HashMap<String, (usize, usize)>,
    slot_step: HashMap<String, usize>,
    /// The chain slot whose last hop must come out empty (unanswerable questions).
    empty_slot: Option<String>,
    want_empty: bool,
    /// Reading steps and difficulty of hops (a hop costs its relation's weight) and of
    /// operations that are not steps of their own (comparisons read one attribute per
    /// candidate; `related` costs the weight of the relation it names).
    extra_hops: usize,
    extra_difficulty: i64,
    /// `sigs[i]` identifies what step `i` computes: a slot's output by the entities it
    /// denotes, an operation by itself and its inputs' signatures. Two operands with one
    /// signature are the same question part twice ("both the sister of X and the sister of X").
    sigs: Vec<String>,
    /// Set when slots that must denote different entities came out the same.
    degenerate: bool,
    /// Chain slot → whether it denotes several entities (its words agree with that).
    plural: HashMap<String, bool>,
    /// The walk filters in force for this template.
    filters: Vec<Filter>,
    /// Why this draw came to nothing, and what the filters removed on the way.
    tally: Tally,
}

/// What happened to a variant's draws: how many filled no question and why, and what each
/// walk filter removed (hops avoided for `backtrack`, questions for the others).
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Variants of the template within the depth.
    pub variants: usize,
    pub draws: usize,
    /// No hop relation led on from a set (or every image was empty).
    pub no_walk: usize,
    /// Every way on exceeded `max_answers`.
    pub over_limit: usize,
    /// Draws dropped because slots that must differ came out the same.
    pub degenerate: usize,
    pub removed: std::collections::BTreeMap<Filter, usize>,
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.variants += o.variants;
        self.draws += o.draws;
        self.no_walk += o.no_walk;
        self.over_limit += o.over_limit;
        self.degenerate += o.degenerate;
        for (f, n) in &o.removed {
            *self.removed.entry(*f).or_default() += n;
        }
    }

    /// Why a template with these draws produced no question, in words.
    pub fn why_none(&self, max_answers: &str) -> String {
        if self.variants == 0 {
            return "no variant of it fits: within the question depth no start leads to a \
                    chain slot's type along the hop relations (check `hops`), or a chain that \
                    is the answer has no room for its hop"
                .into();
        }
        let mut reasons: Vec<(usize, String)> = vec![
            (
                self.no_walk,
                format!(
                    "{} of {} draws found no hop relation leading on to the slot's type \
                     (check `hops` and the bank it names)",
                    self.no_walk, self.draws
                ),
            ),
            (
                self.over_limit,
                format!(
                    "{} of {} draws only had sets larger than `max_answers` ({max_answers})",
                    self.over_limit, self.draws
                ),
            ),
            (
                self.degenerate,
                format!(
                    "{} of {} draws named one entity twice where two must differ",
                    self.degenerate, self.draws
                ),
            ),
        ];
        for (f, n) in &self.removed {
            if *f != Filter::Backtrack {
                reasons.push((
                    *n,
                    format!(
                        "the `{}` filter removed {n} of {} draws (`allow {};` keeps them)",
                        f.name(),
                        self.draws,
                        f.name()
                    ),
                ));
            }
        }
        reasons.sort_by_key(|r| std::cmp::Reverse(r.0));
        match reasons.first() {
            Some((n, why)) if *n > 0 => why.clone(),
            _ => format!(
                "none of its {} draws had an answer of the kind asked",
                self.draws
            ),
        }
    }
}

/// What an answer reads from each entity of a set: a relation in one direction, or an
/// attribute.
#[derive(Clone, Copy, Debug)]
enum Reader {
    Rel { rel: usize, from: usize },
    Attr { ty: usize, attr: usize },
}

/// Every question of one universe, and how many drawn questions each template lost because
/// slots that must differ denoted the same entities.
pub struct Composed {
    pub questions: Vec<Question>,
    /// Template name → drawn questions dropped as degenerate (every template switched on).
    pub degenerate: std::collections::BTreeMap<String, usize>,
    /// Template name → what its draws met (every template switched on).
    pub tallies: std::collections::BTreeMap<String, Tally>,
}

pub struct Composer<'a> {
    ir: &'a Ir,
    world: &'a World,
    solver: &'a Solver<'a>,
    q: &'a Questions,
    seed: u64,
    /// The universe id: question ids hash it, so they are unique across universes.
    universe: String,
    params: &'a Params,
    depth: i64,
    per_template: usize,
    unanswerable: f64,
    max_answers: usize,
    /// Hop relations read through their `say` forms.
    hops: Vec<Dir>,
    /// Every relation read through every `say` form.
    all: Vec<Dir>,
    name_start: bool,
    /// `whose` starts: entity type, attribute, entities by value.
    whose: Vec<(usize, usize, HashMap<AttrVal, Vec<u32>>)>,
    /// Entity type → attribute → how many distinct values it takes (for `every_value`).
    distinct: Vec<Vec<usize>>,
}

impl<'a> Composer<'a> {
    pub fn new(
        ir: &'a Ir,
        world: &'a World,
        solver: &'a Solver<'a>,
        q: &'a Questions,
        params: &'a Params,
        seed: u64,
        universe: &str,
    ) -> Result<Composer<'a>, GenError> {
        let unanswerable = params.float(&q.unanswerable);
        if !(0.0..=1.0).contains(&unanswerable) {
            return Err(GenError::Invalid(format!(
                "the unanswerable share must lie between 0 and 1, found {unanswerable}"
            )));
        }
        let per_template = params.int(&q.per_template);
        let max_answers = params.int(&q.max_answers);
        if per_template < 0 || max_answers < 1 {
            return Err(GenError::Invalid(
                "questions per template must be at least 0 and the answer-set limit at least 1"
                    .into(),
            ));
        }
        let mut all = Vec::new();
        for (rel, r) in ir.relations.iter().enumerate() {
            for (say, s) in r.says.iter().enumerate() {
                all.push(Dir {
                    rel,
                    say,
                    from: s.of,
                    to: s.role,
                    from_ty: solver.role_types[rel][s.of],
                    to_ty: solver.role_types[rel][s.role],
                });
            }
        }
        // A bank parameter is a name given at generation time, so it is looked up here.
        let hop_bank = match &q.hops {
            None => None,
            Some(HopSet::Bank(b)) => Some(ir.bank_of(b)),
            Some(HopSet::Param(p)) => match params.get(p) {
                Some(Value::Bank(b)) => ir.bank(b),
                _ => None,
            },
        };
        let hops = all
            .iter()
            .copied()
            .filter(|d| hop_bank.is_none_or(|b| b.relations.iter().any(|r| r.id() == d.rel)))
            .collect();
        let mut whose = Vec::new();
        let mut name_start = false;
        for s in &q.starts {
            match s {
                Start::Name => name_start = true,
                Start::Whose { entity, attr } => {
                    let (t, a) = (entity.id(), attr.index());
                    let mut by: HashMap<AttrVal, Vec<u32>> = HashMap::new();
                    let td = &world.types[t];
                    for e in td.ids() {
                        by.entry(td.columns[a][e as usize].clone())
                            .or_default()
                            .push(e);
                    }
                    whose.push((t, a, by));
                }
            }
        }
        // Counting values costs a pass over every column: only when the filter can use it.
        let every_value = q.filters.contains(&Filter::EveryValue)
            && q.templates
                .iter()
                .any(|t| !t.allow.contains(&Filter::EveryValue));
        let distinct = if every_value {
            world
                .types
                .iter()
                .map(|td| {
                    td.columns
                        .iter()
                        .map(|c| c[td.members.clone()].iter().collect::<HashSet<_>>().len())
                        .collect()
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Composer {
            ir,
            world,
            solver,
            q,
            seed,
            universe: universe.to_string(),
            params,
            depth: params.int(&q.depth),
            per_template: per_template as usize,
            unanswerable,
            max_answers: max_answers as usize,
            hops,
            all,
            name_start,
            whose,
            distinct,
        })
    }

    fn name(&self, t: usize, e: u32) -> String {
        let td = &self.world.types[t];
        render(
            self.ir,
            &self.ir.entities[t],
            td.key,
            &td.columns[td.key][e as usize],
        )
    }

    fn names(&self, t: usize, es: &[u32]) -> Vec<String> {
        let mut v: Vec<String> = es.iter().map(|&e| self.name(t, e)).collect();
        v.sort();
        v
    }

    /// `reach[k][t]`: a chain of exactly `k` hops from type `t` can end at type `target`.
    fn reach(&self, target: usize, max: usize) -> Vec<Vec<bool>> {
        let n = self.world.types.len();
        // A chain of players ends where a person is wanted; a set of people hops along a
        // players' relation (reaching from its players).
        let mut r = vec![
            (0..n)
                .map(|t| self.ir.is_a(t, target))
                .collect::<Vec<bool>>(),
        ];
        for k in 1..=max {
            let prev = &r[k - 1];
            let row = (0..n)
                .map(|t| {
                    self.hops
                        .iter()
                        .any(|d| self.ir.meets(d.from_ty, t) && prev[d.to_ty])
                })
                .collect();
            r.push(row);
        }
        r
    }

    fn start_types(&self, shape: Shape, reach: &[Vec<bool>]) -> Vec<usize> {
        let ok = |t: usize| reach[shape.hops][t] && !self.world.types[t].members.is_empty();
        if shape.whose {
            (0..self.whose.len())
                .filter(|&i| ok(self.whose[i].0))
                .collect()
        } else {
            (0..self.world.types.len()).filter(|&t| ok(t)).collect()
        }
    }

    /// Every variant of every template switched on, in declaration order.
    fn variants(&self) -> Vec<Variant> {
        let mut out = Vec::new();
        let max_hops = (self.depth.max(0) / 2) as usize;
        for (ti, t) in self.q.templates.iter().enumerate() {
            if let Some(p) = &t.when
                && !self.params.bool(p)
            {
                continue;
            }
            let chains: Vec<(&str, usize, bool)> = t
                .slots
                .iter()
                .filter_map(|s| match &s.kind {
                    SlotKindIr::Chain(ty) => {
                        let bare = matches!(&t.answer, AnswerExpr::Slot(x) if x == &s.name);
                        Some((s.name.as_str(), ty.id(), bare))
                    }
                    _ => None,
                })
                .collect();
            let mut options: Vec<Vec<(Shape, i64)>> = Vec::new();
            for &(_, ty, bare) in &chains {
                let reach = self.reach(ty, max_hops);
                let mut o = Vec::new();
                for whose in [false, true] {
                    if (whose && self.whose.is_empty()) || (!whose && !self.name_start) {
                        continue;
                    }
                    for hops in 0..=max_hops {
                        let shape = Shape { whose, hops };
                        // "Who is Ada Hart?" gives its answer away.
                        if bare && !whose && hops == 0 {
                            continue;
                        }
                        if self.start_types(shape, &reach).is_empty() {
                            continue;
                        }
                        let cost = 2 * hops as i64 + 1 + i64::from(whose) + i64::from(!bare);
                        o.push((shape, cost));
                    }
                }
                options.push(o);
            }
            // Cartesian product of the slots' shapes within the depth budget.
            let mut combos: Vec<(Vec<Shape>, i64)> = vec![(Vec::new(), 2)];
            for o in &options {
                let mut next = Vec::new();
                for (prefix, cost) in &combos {
                    for &(shape, c) in o {
                        if cost + c <= self.depth {
                            let mut p = prefix.clone();
                            p.push(shape);
                            next.push((p, cost + c));
                        }
                    }
                }
                combos = next;
            }
            if chains.is_empty() && self.depth < 3 {
                continue;
            }
            for (shapes, _) in combos {
                let shapes: Vec<(String, Shape)> = chains
                    .iter()
                    .zip(shapes)
                    .map(|(c, s)| (c.0.to_string(), s))
                    .collect();
                let id = if shapes.is_empty() {
                    t.name.clone()
                } else {
                    let parts: Vec<String> = shapes
                        .iter()
                        .map(|(n, s)| {
                            format!("{n}={}{}", if s.whose { "whose" } else { "name" }, s.hops)
                        })
                        .collect();
                    format!("{}:{}", t.name, parts.join(","))
                };
                out.push(Variant {
                    tpl: ti,
                    id,
                    shapes,
                });
            }
        }
        out
    }

    /// Composes every variant's questions (in parallel), drops repeated texts (keeping the
    /// first in variant order) and orders the rest by id. `tick` is called once per finished variant.
    pub fn compose(&self, tick: &(dyn Fn() + Sync)) -> Composed {
        let variants = self.variants();
        let per: Vec<(Vec<Question>, Tally)> = variants
            .par_iter()
            .map(|v| {
                let qs = self.variant_questions(v);
                tick();
                qs
            })
            .collect();
        let mut tallies: std::collections::BTreeMap<String, Tally> = self
            .q
            .templates
            .iter()
            .filter(|t| t.when.as_ref().is_none_or(|p| self.params.bool(p)))
            .map(|t| {
                let removed = self.filters(t).into_iter().map(|f| (f, 0)).collect();
                (
                    t.name.clone(),
                    Tally {
                        removed,
                        ..Tally::default()
                    },
                )
            })
            .collect();
        for (v, (_, d)) in variants.iter().zip(&per) {
            let t = tallies
                .entry(self.q.templates[v.tpl].name.clone())
                .or_default();
            t.add(d);
            t.variants += 1;
        }
        let degenerate = tallies
            .iter()
            .map(|(n, t)| (n.clone(), t.degenerate))
            .collect();
        let mut seen = HashSet::new();
        let mut qs: Vec<Question> = per
            .into_iter()
            .flat_map(|(q, _)| q)
            .filter(|q| seen.insert(q.text.clone()))
            .collect();
        // By id, a hash: templates come mixed, so any prefix of the file is a fair sample
        // and columnar loaders infer every field's type from the first block.
        qs.sort_by(|a, b| a.id.cmp(&b.id));
        Composed {
            questions: qs,
            degenerate,
            tallies,
        }
    }

    /// The walk filters in force for template `t`.
    fn filters(&self, t: &Template) -> Vec<Filter> {
        self.q
            .filters
            .iter()
            .copied()
            .filter(|f| !t.allow.contains(f))
            .collect()
    }

    /// Each `whose` start (`start whose T.a`) with `None` when one of `questions` starts from
    /// it, else why none did.
    pub fn idle_starts(&self, questions: &[Question]) -> Vec<(String, Option<String>)> {
        let any_whose = self
            .variants()
            .iter()
            .any(|v| v.shapes.iter().any(|(_, s)| s.whose));
        self.whose
            .iter()
            .map(|(t, ai, by)| {
                let (ty, attr) = (&self.ir.entities[*t].name, &self.ir.entities[*t].attrs[*ai].name);
                let name = format!("start whose {ty}.{attr}");
                let used = questions.iter().any(|q| {
                    q.program
                        .steps
                        .iter()
                        .any(|s| s.op == "whose" && &s.ty == ty && &s.attribute == attr)
                });
                let why = if used {
                    None
                } else if !any_whose {
                    Some("no template variant within the depth starts a chain with `whose` (a `whose` start adds 1 to a chain's depth)".to_string())
                } else if by.values().all(|m| m.len() > self.max_answers) {
                    Some(format!(
                        "every value of `{attr}` is shared by more than `max_answers` ({}) entities",
                        self.max_answers
                    ))
                } else {
                    Some(format!(
                        "no chain from it reached a template's slot along the hop relations, or \
                         the walk filters removed what did (a `{ty}` must lead on by a hop \
                         relation)"
                    ))
                };
                (name, why)
            })
            .collect()
    }

    pub fn variant_count(&self) -> usize {
        self.variants().len()
    }

    /// A variant's questions, and what its draws met.
    fn variant_questions(&self, v: &Variant) -> (Vec<Question>, Tally) {
        let tpl = &self.q.templates[v.tpl];
        let mut rng = Rng::stream(self.seed, &format!("question/{}", v.id));
        let mut out = Vec::new();
        let mut texts = HashSet::new();
        let mut tally = Tally::default();
        let budget = self.per_template * 30 + 30;
        // An empty answer needs a hop that can come out empty, or an intersection.
        let can_be_empty = matches!(
            tpl.answer_type,
            AnswerType::Entities(_) | AnswerType::Values(_)
        ) && (v.shapes.iter().any(|(_, s)| s.hops > 0)
            || has_intersection(&tpl.answer));
        for _ in 0..budget {
            if out.len() >= self.per_template {
                break;
            }
            let want_empty =
                can_be_empty && self.unanswerable > 0.0 && rng.chance(self.unanswerable);
            let sub = Rng::new(rng.next_u64());
            let (drawn, t) = self.attempt(v, tpl, sub, want_empty);
            tally.add(&t);
            tally.draws += 1;
            match drawn {
                Drawn::Question(q) => {
                    if texts.insert(q.text.clone()) {
                        out.push(*q);
                    }
                }
                Drawn::Degenerate => tally.degenerate += 1,
                Drawn::Nothing => {}
            }
        }
        (out, tally)
    }

    fn attempt(&self, v: &Variant, tpl: &Template, rng: Rng, want_empty: bool) -> (Drawn, Tally) {
        let empty_slot = if want_empty {
            v.shapes
                .iter()
                .find(|(_, s)| s.hops > 0)
                .map(|(n, _)| n.clone())
        } else {
            None
        };
        let mut a = Attempt {
            rng,
            steps: Vec::new(),
            outs: Vec::new(),
            fills: HashMap::new(),
            names: HashMap::new(),
            rels: HashMap::new(),
            attrs: HashMap::new(),
            slot_step: HashMap::new(),
            empty_slot,
            want_empty,
            extra_hops: 0,
            extra_difficulty: 0,
            sigs: Vec::new(),
            degenerate: false,
            plural: HashMap::new(),
            filters: self.filters(tpl),
            tally: Tally::default(),
        };
        let drawn = match self.draw(v, tpl, &mut a) {
            Some(q) => Drawn::Question(Box::new(q)),
            None if a.degenerate => Drawn::Degenerate,
            None => Drawn::Nothing,
        };
        (drawn, a.tally)
    }

    /// Instantiates one question into a fresh attempt; `None` when this draw has no answer of
    /// the wanted kind (or, with `a.degenerate` set, named one entity twice).
    fn draw(&self, v: &Variant, tpl: &Template, a: &mut Attempt) -> Option<Question> {
        let (result, _) = self.eval(a, v, tpl, &tpl.answer)?;
        let ok = match tpl.answer_type {
            AnswerType::Entities(_) | AnswerType::Values(_) => (result.size() == 0) == a.want_empty,
            AnswerType::RelationNames => result.size() > 0,
            AnswerType::Count | AnswerType::YesNo => true,
        };
        if !ok {
            return None;
        }
        let capped = a.outs.iter().all(|s| match s {
            Set::Ents(_, v) => v.len() <= self.max_answers,
            Set::Vals(v) => v.len() <= self.max_answers,
            _ => true,
        });
        if !capped {
            a.tally.over_limit += 1;
            return None;
        }
        if let Some(f) = self.filtered(a, tpl, &result) {
            *a.tally.removed.entry(f).or_default() += 1;
            return None;
        }
        // A count reads as one number, whatever it counts.
        let answer_plural = self.q.agree
            && result.size() > 1
            && !matches!(question_type(&tpl.answer), "count" | "same");
        // Slots that only the text mentions still need a value.
        for s in &tpl.slots {
            if a.fills.contains_key(&s.name) {
                continue;
            }
            match &s.kind {
                SlotKindIr::Name(t) => {
                    let t = t.id();
                    let td = &self.world.types[t];
                    if td.members.is_empty() {
                        return None;
                    }
                    let e = td.draw(&mut a.rng);
                    a.fills.insert(s.name.clone(), Fill::Text(self.name(t, e)));
                    a.plural.insert(s.name.clone(), false);
                }
                SlotKindIr::Attr(c) => {
                    let (_, at) = c.get(a.rng.index(c.len().max(1)))?;
                    let attr = self.ir.attr_of(at);
                    let (s1, p1) = attr
                        .say
                        .clone()
                        .unwrap_or((attr.name.clone(), attr.name.clone()));
                    a.fills.insert(s.name.clone(), Fill::Forms(s1, p1));
                }
                SlotKindIr::Relation(c) => {
                    let dirs: Vec<&Dir> = self.slot_dirs(c).collect();
                    let d = **dirs.get(a.rng.index(dirs.len().max(1)))?;
                    let say = &self.ir.relations[d.rel].says[d.say];
                    a.fills.insert(
                        s.name.clone(),
                        Fill::Forms(say.singular.clone(), say.plural.clone()),
                    );
                }
                SlotKindIr::Chain(_) => return None,
            }
        }
        // Words agree with the slot they name (a chain's set), or else with the answer; an
        // attribute or relation slot without a form names what the answer holds.
        let plural_of = |of: &Option<String>| match of {
            Some(s) => a.plural.get(s).copied().unwrap_or(answer_plural),
            None => answer_plural,
        };
        let mut text = String::new();
        for p in &tpl.text {
            match p {
                TextPart::Lit(l) => text.push_str(l),
                TextPart::Agree {
                    singular,
                    plural,
                    of,
                } => text.push_str(if plural_of(of) { plural } else { singular }),
                TextPart::Hole { name, form, .. } => match a.fills.get(name)? {
                    Fill::Text(t) => text.push_str(t),
                    Fill::Forms(s, pl) => {
                        let plural = match form.as_deref() {
                            Some("plural") => true,
                            Some(_) => false,
                            None => answer_plural,
                        };
                        text.push_str(if plural { pl } else { s })
                    }
                },
            }
        }
        // Reading an attribute, a `whose` start and counting per entity add 1 each, whatever
        // the counted relation's weight: PhantomWiki's difficulty of an aggregation.
        let reads = a
            .steps
            .iter()
            .filter(|s| matches!(s.op.as_str(), "attribute" | "whose" | "count_each"))
            .count();
        let difficulty = a.extra_difficulty + reads as i64;
        let hops = a.extra_hops + reads;
        let intermediate: Vec<Vec<String>> = a.outs.iter().map(|s| self.render_set(s)).collect();
        let answers = intermediate.last().cloned().unwrap_or_default();
        // The universe id covers the rules, every parameter and the seed, so two datasets
        // never share an id unless they share the question's universe.
        let mut h = blake3::Hasher::new();
        h.update(self.universe.as_bytes());
        h.update(&[0]);
        h.update(v.id.as_bytes());
        h.update(&[0]);
        h.update(text.as_bytes());
        let id = format!("q{}", &h.finalize().to_hex()[..16]);
        Some(Question {
            id,
            universe: self.universe.clone(),
            seed: self.seed,
            template: tpl.name.clone(),
            template_id: v.id.clone(),
            question_type: question_type(&tpl.answer).into(),
            text,
            answers,
            difficulty,
            hops,
            program: Program {
                steps: std::mem::take(&mut a.steps),
            },
            intermediate,
        })
    }

    /// The filter in force that removes this draw, if any: an answer set holding an entity
    /// the question names (not a comparison's, which picks among the named), or an attribute
    /// answer listing every value the attribute takes.
    fn filtered(&self, a: &Attempt, tpl: &Template, result: &Set) -> Option<Filter> {
        // A hop of the answer (`coauthor(x)`) can step back too; the walk's own hops avoid it.
        if a.filters.contains(&Filter::Backtrack) && self.backtracks(a) {
            return Some(Filter::Backtrack);
        }
        let comparison = matches!(
            tpl.answer,
            AnswerExpr::ArgMin { .. } | AnswerExpr::ArgMax { .. } | AnswerExpr::ArgCount { .. }
        );
        if a.filters.contains(&Filter::StartInAnswer)
            && !comparison
            && let Set::Ents(t, answer) = result
        {
            let named = a.steps.iter().zip(&a.outs).any(|(s, o)| {
                s.op == "name"
                    && matches!(o, Set::Ents(nt, es) if self.ir.meets(*nt, *t)
                        && es.iter().any(|e| answer.binary_search(e).is_ok()))
            });
            if named {
                return Some(Filter::StartInAnswer);
            }
        }
        // An attribute answer that repeats the value its `whose` start names ("What is the
        // h-index of the researchers whose h-index is 5?") gives itself away.
        if a.filters.contains(&Filter::StartInAnswer)
            && let (Set::Vals(vals), Some(last)) = (result, a.steps.last())
            && last.op == "attribute"
            && let Some(Set::Ents(t, _)) = last.inputs.first().and_then(|&i| a.outs.get(i))
            && a.steps.iter().any(|s| {
                s.op == "whose"
                    && s.ty == self.ir.entities[*t].name
                    && s.attribute == last.attribute
                    && vals.contains(&s.value)
            })
        {
            return Some(Filter::StartInAnswer);
        }
        if a.filters.contains(&Filter::EveryValue)
            && let Set::Vals(vals) = result
            && vals.len() >= 2
            && let Some(last) = a.steps.last()
            && last.op == "attribute"
            && let Some(Set::Ents(t, _)) = last.inputs.first().and_then(|&i| a.outs.get(i))
            && let Some(ai) = self.ir.entities[*t]
                .attrs
                .iter()
                .position(|x| x.name == last.attribute)
            && vals.len() >= self.distinct[*t][ai]
        {
            return Some(Filter::EveryValue);
        }
        None
    }

    /// Whether some hop's set lies within the set two steps back, its input's input.
    fn backtracks(&self, a: &Attempt) -> bool {
        a.steps.iter().enumerate().any(|(i, s)| {
            if s.op != "hop" {
                return false;
            }
            let Some(&j) = s.inputs.first() else {
                return false;
            };
            let Some(&k) = a.steps[j].inputs.first() else {
                return false;
            };
            a.steps[j].op == "hop"
                && matches!((&a.outs[i], &a.outs[k]),
                    (Set::Ents(ti, si), Set::Ents(tk, sk)) if ti == tk && subset(si, sk))
        })
    }

    /// "the friends of P", or the relation's own phrase, in the number of the hop's set.
    fn hop_phrase(&self, d: &Dir, plural: bool, inner: &str) -> String {
        let say = &self.ir.relations[d.rel].says[d.say];
        match &say.phrase {
            Some(forms) => forms[usize::from(plural)]
                .iter()
                .map(|p| match p {
                    TextPart::Hole { .. } => inner,
                    TextPart::Lit(l) | TextPart::Agree { singular: l, .. } => l.as_str(),
                })
                .collect(),
            None => format!(
                "the {} of {inner}",
                if plural { &say.plural } else { &say.singular }
            ),
        }
    }

    fn render_set(&self, s: &Set) -> Vec<String> {
        match s {
            Set::Ents(t, v) => self.names(*t, v),
            Set::Vals(v) | Set::Nouns(v) => v.clone(),
            Set::Count(n) => vec![n.to_string()],
            Set::YesNo(b) => vec![if *b { "yes" } else { "no" }.to_string()],
        }
    }

    fn push(&self, a: &mut Attempt, step: Step, out: Set) -> usize {
        let mut sig = format!(
            "{}|{}|{}|{}|{}",
            step.op, step.ty, step.name, step.attribute, step.value
        );
        for r in &step.relations {
            sig.push_str(&format!("|{}.{}>{}", r.relation, r.from_role, r.to_role));
        }
        for &i in &step.inputs {
            sig.push_str(&format!("({})", a.sigs[i]));
        }
        a.sigs.push(sig);
        a.steps.push(step);
        a.outs.push(out);
        a.steps.len() - 1
    }

    fn slot_dirs<'b>(&'b self, cands: &'b [RelationRef]) -> impl Iterator<Item = &'b Dir> + 'b {
        let pool = if cands.is_empty() {
            &self.hops
        } else {
            &self.all
        };
        pool.iter()
            .filter(move |d| cands.is_empty() || cands.iter().any(|r| r.id() == d.rel))
    }

    fn reading(&self, d: &Dir) -> Reading {
        self.reading_of(d.rel, d.from)
    }

    fn hop_step(
        &self,
        a: &mut Attempt,
        rel: usize,
        from: usize,
        input: usize,
        xs: &[u32],
    ) -> (Set, usize) {
        let img = self.solver.image_set(rel, from, xs);
        let to_ty = self.solver.role_types[rel][1 - from];
        let step = Step {
            op: "hop".into(),
            inputs: vec![input],
            ty: self.ir.entities[to_ty].name.clone(),
            relations: vec![self.reading_of(rel, from)],
            ..Step::default()
        };
        a.extra_hops += 1;
        a.extra_difficulty += self.ir.relations[rel].weight;
        let out = Set::Ents(to_ty, img);
        let i = self.push(a, step, out.clone());
        (out, i)
    }

    fn slot_kind<'t>(tpl: &'t Template, name: &str) -> Option<&'t SlotKindIr> {
        tpl.slots.iter().find(|s| s.name == name).map(|s| &s.kind)
    }

    /// Makes a later term of an intersection or comparison contain `z` by choosing the name
    /// (and relation) of a term `rel(y)` backwards from `z`.
    fn guide(&self, a: &mut Attempt, tpl: &Template, term: &AnswerExpr, z: u32, z_ty: usize) {
        let (dirs, y): (Vec<Dir>, &str) = match term {
            AnswerExpr::Hop { relation, to, arg } => {
                let AnswerExpr::Slot(y) = arg.as_ref() else {
                    return;
                };
                let rel = relation.id();
                let d = Dir {
                    rel,
                    say: 0,
                    from: 1 - to,
                    to: *to,
                    from_ty: self.solver.role_types[rel][1 - to],
                    to_ty: self.solver.role_types[rel][*to],
                };
                (vec![d], y)
            }
            AnswerExpr::HopSlot { slot, arg } => {
                let AnswerExpr::Slot(y) = arg.as_ref() else {
                    return;
                };
                if a.rels.contains_key(slot) {
                    return;
                }
                let Some(SlotKindIr::Relation(c)) = Self::slot_kind(tpl, slot) else {
                    return;
                };
                (self.slot_dirs(c).copied().collect(), y)
            }
            _ => return,
        };
        let Some(SlotKindIr::Name(yt)) = Self::slot_kind(tpl, y) else {
            return;
        };
        if a.names.contains_key(y) {
            return;
        }
        let yt = yt.id();
        let mut dirs: Vec<Dir> = dirs
            .into_iter()
            .filter(|d| self.ir.meets(d.to_ty, z_ty) && self.ir.meets(d.from_ty, yt))
            .collect();
        a.rng.shuffle(&mut dirs);
        let yts = &self.world.types[yt].members;
        for d in dirs {
            let mut back = self.solver.image(d.rel, d.to, z);
            back.retain(|&e| yts.contains(&(e as usize)));
            if let Some(&e) = a.rng.pick(&back) {
                a.names.insert(y.to_string(), (yt, e));
                if let AnswerExpr::HopSlot { slot, .. } = term {
                    a.rels.insert(slot.clone(), d);
                }
                return;
            }
        }
    }

    /// The candidates of a comparison: their type, every entity of its arguments (sorted),
    /// and the arguments' steps. `None`, marked degenerate, when two arguments share an
    /// entity ("Who was born first, X or X?").
    fn candidates(
        &self,
        a: &mut Attempt,
        v: &Variant,
        tpl: &Template,
        args: &[AnswerExpr],
    ) -> Option<(usize, Vec<u32>, Vec<usize>)> {
        let mut inputs = Vec::new();
        let mut all = Vec::new();
        let mut ty = None;
        for arg in args {
            let (x, xi) = self.eval(a, v, tpl, arg)?;
            let Set::Ents(t, xs) = x else { return None };
            // Candidates of two subtypes compare as their common supertype.
            ty = Some(ty.map_or(t, |p| self.ir.join(p, t).unwrap_or(p)));
            inputs.push(xi);
            all.extend(xs);
        }
        let t = ty?;
        all.sort_unstable();
        let drawn = all.len();
        all.dedup();
        if all.len() < drawn {
            a.degenerate = true;
            return None;
        }
        Some((t, all, inputs))
    }

    fn eval(
        &self,
        a: &mut Attempt,
        v: &Variant,
        tpl: &Template,
        e: &AnswerExpr,
    ) -> Option<(Set, usize)> {
        match e {
            AnswerExpr::Slot(s) => {
                if let Some(&i) = a.slot_step.get(s) {
                    return Some((a.outs[i].clone(), i));
                }
                let r = match Self::slot_kind(tpl, s)? {
                    SlotKindIr::Chain(ty) => {
                        let shape = v.shapes.iter().find(|(n, _)| n == s)?.1;
                        self.walk(a, s, ty.id(), shape)?
                    }
                    SlotKindIr::Name(ty) => {
                        let t = ty.id();
                        let (t, e) = match a.names.get(s) {
                            Some(&x) => x,
                            None => {
                                let td = &self.world.types[t];
                                if td.members.is_empty() {
                                    return None;
                                }
                                (t, td.draw(&mut a.rng))
                            }
                        };
                        a.names.insert(s.clone(), (t, e));
                        let name = self.name(t, e);
                        a.fills.insert(s.clone(), Fill::Text(name.clone()));
                        let step = Step {
                            op: "name".into(),
                            ty: self.ir.entities[t].name.clone(),
                            name,
                            ..Step::default()
                        };
                        let out = Set::Ents(t, vec![e]);
                        let i = self.push(a, step, out.clone());
                        (out, i)
                    }
                    _ => return None,
                };
                a.slot_step.insert(s.clone(), r.1);
                // A slot is identified by what it denotes, however its text reaches it.
                a.sigs[r.1] = match &r.0 {
                    Set::Ents(t, es) => format!("ents|{t}|{es:?}"),
                    other => format!("{other:?}"),
                };
                Some(r)
            }
            AnswerExpr::Hop { arg, .. }
            | AnswerExpr::HopSlot { arg, .. }
            | AnswerExpr::Attr { arg, .. }
            | AnswerExpr::AttrSlot { arg, .. } => {
                let (x, xi) = self.eval(a, v, tpl, arg)?;
                let Set::Ents(t, xs) = x else { return None };
                Some(match self.reader(a, tpl, e, t, &xs)? {
                    Reader::Rel { rel, from } => self.hop_step(a, rel, from, xi, &xs),
                    Reader::Attr { ty, attr } => self.attr_step(a, ty, attr, xi, &xs),
                })
            }
            AnswerExpr::CountEach(inner) => {
                let (AnswerExpr::Hop { arg, .. }
                | AnswerExpr::HopSlot { arg, .. }
                | AnswerExpr::Attr { arg, .. }
                | AnswerExpr::AttrSlot { arg, .. }) = inner.as_ref()
                else {
                    return None;
                };
                let (x, xi) = self.eval(a, v, tpl, arg)?;
                let Set::Ents(t, xs) = x else { return None };
                let reader = self.reader(a, tpl, inner, t, &xs)?;
                let mut counts: Vec<String> = xs
                    .iter()
                    .map(|&e| match reader {
                        Reader::Rel { rel, from } => self.solver.image(rel, from, e).len(),
                        // One value per entity and attribute.
                        Reader::Attr { .. } => 1,
                    })
                    .map(|n| n.to_string())
                    .collect();
                // Sorted as text, like every answer list (PhantomWiki's too).
                counts.sort();
                counts.dedup();
                let mut step = Step {
                    op: "count_each".into(),
                    inputs: vec![xi],
                    ..Step::default()
                };
                match reader {
                    Reader::Rel { rel, from } => {
                        step.relations = vec![self.reading_of(rel, from)];
                    }
                    Reader::Attr { ty, attr } => {
                        step.attribute = self.ir.entities[ty].attrs[attr].name.clone();
                    }
                }
                let out = Set::Vals(counts);
                Some((out.clone(), self.push(a, step, out)))
            }
            AnswerExpr::Count(arg) => {
                let (x, xi) = self.eval(a, v, tpl, arg)?;
                let n = match &x {
                    Set::Ents(_, v) => v.len(),
                    Set::Vals(v) | Set::Nouns(v) => v.len(),
                    _ => 1,
                };
                let step = Step {
                    op: "count".into(),
                    inputs: vec![xi],
                    ..Step::default()
                };
                let out = Set::Count(n);
                Some((out.clone(), self.push(a, step, out)))
            }
            AnswerExpr::Intersect(terms)
            | AnswerExpr::Union(terms)
            | AnswerExpr::Difference(terms) => {
                let (op, and) = match e {
                    AnswerExpr::Union(_) => ("union", false),
                    AnswerExpr::Difference(_) => ("difference", false),
                    _ => ("intersect", true),
                };
                let mut inputs = Vec::new();
                let mut acc: Option<Set> = None;
                for term in terms {
                    // Steer an intersection towards a shared member; a union or difference
                    // has one by chance.
                    if and
                        && !a.want_empty
                        && let Some(Set::Ents(t, s)) = &acc
                        && let Some(&z) = a.rng.pick(s)
                    {
                        let t = *t;
                        self.guide(a, tpl, term, z, t);
                    }
                    let (x, xi) = self.eval(a, v, tpl, term)?;
                    inputs.push(xi);
                    acc = Some(match (acc, x) {
                        (None, x) => x,
                        (Some(Set::Ents(t, l)), Set::Ents(u, r)) => Set::Ents(
                            // As the checker typed it: players | managers are people,
                            // people & players are players.
                            match op {
                                "union" => self.ir.join(t, u).unwrap_or(t),
                                "intersect" if self.ir.is_a(u, t) => u,
                                _ => t,
                            },
                            match op {
                                "union" => union(&l, &r),
                                "difference" => l
                                    .into_iter()
                                    .filter(|x| r.binary_search(x).is_err())
                                    .collect(),
                                _ => intersect(&l, &r),
                            },
                        ),
                        (Some(Set::Vals(l)), Set::Vals(r)) if and => Set::Vals(
                            l.into_iter()
                                .filter(|x| r.binary_search(x).is_ok())
                                .collect(),
                        ),
                        _ => return None,
                    });
                }
                if has_duplicate(inputs.iter().map(|&i| &a.sigs[i])) {
                    a.degenerate = true;
                    return None;
                }
                let out = acc?;
                let step = Step {
                    op: op.into(),
                    inputs,
                    ty: match &out {
                        Set::Ents(t, _) => self.ir.entities[*t].name.clone(),
                        _ => String::new(),
                    },
                    ..Step::default()
                };
                Some((out.clone(), self.push(a, step, out)))
            }
            AnswerExpr::ArgMin { attr, args } | AnswerExpr::ArgMax { attr, args } => {
                let max = matches!(e, AnswerExpr::ArgMax { .. });
                let (t, all, inputs) = self.candidates(a, v, tpl, args)?;
                if args.len() == 1 {
                    // The oldest of one set: a choice needs two members, and costs one read
                    // of the attribute, however large the set.
                    if all.len() < 2 {
                        return None;
                    }
                    a.extra_hops += 1;
                    a.extra_difficulty += 1;
                } else {
                    a.extra_hops += all.len();
                    a.extra_difficulty += all.len() as i64;
                }
                let ai = attr.index();
                let col = &self.world.types[t].columns[ai];
                let best = if max {
                    all.iter().map(|&e| &col[e as usize]).max()
                } else {
                    all.iter().map(|&e| &col[e as usize]).min()
                };
                let out: Vec<u32> = match best {
                    Some(b) => all
                        .iter()
                        .copied()
                        .filter(|&e| &col[e as usize] == b)
                        .collect(),
                    None => Vec::new(),
                };
                let step = Step {
                    op: if max { "argmax" } else { "argmin" }.into(),
                    inputs,
                    ty: self.ir.entities[t].name.clone(),
                    attribute: attr.name().to_string(),
                    ..Step::default()
                };
                let out = Set::Ents(t, out);
                Some((out.clone(), self.push(a, step, out)))
            }
            AnswerExpr::ArgCount {
                relation,
                to,
                max,
                args,
            } => {
                let (t, all, inputs) = self.candidates(a, v, tpl, args)?;
                if all.len() < 2 {
                    return None;
                }
                let (rel, from) = (relation.id(), 1 - *to);
                let count = |e: u32| self.solver.image(rel, from, e).len();
                let best = if *max {
                    all.iter().map(|&e| count(e)).max()
                } else {
                    all.iter().map(|&e| count(e)).min()
                };
                let out: Vec<u32> = all
                    .iter()
                    .copied()
                    .filter(|&e| Some(count(e)) == best)
                    .collect();
                // Counting each candidate's partners is a hop per candidate.
                a.extra_hops += all.len();
                a.extra_difficulty += all.len() as i64 * self.ir.relations[rel].weight;
                let step = Step {
                    op: if *max { "argmax_count" } else { "argmin_count" }.into(),
                    inputs,
                    ty: self.ir.entities[t].name.clone(),
                    relations: vec![self.reading_of(rel, from)],
                    ..Step::default()
                };
                let out = Set::Ents(t, out);
                Some((out.clone(), self.push(a, step, out)))
            }
            AnswerExpr::FactAttr {
                relation,
                attr,
                from,
                args,
            } => {
                let (rel, from) = (relation.id(), *from);
                let (x, xi) = self.eval(a, v, tpl, &args[0])?;
                let Set::Ents(_, xs) = x else { return None };
                // "When did X sign for Y?": a name slot Y is drawn among X's partners, as a
                // random one would rarely have a fact with X.
                if let Some(AnswerExpr::Slot(y)) = args.get(1)
                    && !a.names.contains_key(y)
                    && let Some(SlotKindIr::Name(yt)) = Self::slot_kind(tpl, y)
                    && let Some(&e) = a.rng.pick(&xs)
                {
                    let yt = yt.id();
                    let members = &self.world.types[yt].members;
                    let mut img = self.solver.image(rel, from, e);
                    img.retain(|&z| members.contains(&(z as usize)));
                    if let Some(&z) = a.rng.pick(&img) {
                        a.names.insert(y.clone(), (yt, z));
                    }
                }
                let mut inputs = vec![xi];
                let ys = match args.get(1) {
                    Some(arg) => {
                        let (y, yi) = self.eval(a, v, tpl, arg)?;
                        let Set::Ents(_, ys) = y else { return None };
                        inputs.push(yi);
                        Some(ys)
                    }
                    None => None,
                };
                let r = &self.ir.relations[rel];
                let facts = self.world.base[rel].as_ref()?;
                let mut vals = Vec::new();
                for &e in &xs {
                    for z in self.solver.image(rel, from, e) {
                        if ys.as_ref().is_some_and(|ys| ys.binary_search(&z).is_err()) {
                            continue;
                        }
                        if let Some(val) = facts.value_between(*attr, from, e, z, r.symmetric) {
                            vals.push(render_value(self.ir, &r.attrs[*attr], val));
                        }
                    }
                }
                vals.sort();
                vals.dedup();
                a.extra_hops += 1;
                a.extra_difficulty += r.weight;
                let step = Step {
                    op: "fact_attribute".into(),
                    inputs,
                    attribute: r.attrs[*attr].name.clone(),
                    relations: vec![self.reading_of(rel, from)],
                    ..Step::default()
                };
                let out = Set::Vals(vals);
                Some((out.clone(), self.push(a, step, out)))
            }
            AnswerExpr::Same(l, r) => {
                let (x, xi) = self.eval(a, v, tpl, l)?;
                // Half the time steer towards "yes", which random picks rarely give.
                if let Set::Ents(t, s) = &x
                    && a.rng.chance(0.5)
                    && let Some(&z) = a.rng.pick(s)
                {
                    self.guide(a, tpl, r, z, *t);
                }
                let (y, yi) = self.eval(a, v, tpl, r)?;
                // "Do X and X have the same …?" gives its answer away.
                if a.sigs[xi] == a.sigs[yi] {
                    a.degenerate = true;
                    return None;
                }
                // Compared as rendered sets, so counts compare by value like everything else.
                let (l, r) = (self.render_set(&x), self.render_set(&y));
                let same = !l.is_empty() && l == r;
                let step = Step {
                    op: "same".into(),
                    inputs: vec![xi, yi],
                    ..Step::default()
                };
                let out = Set::YesNo(same);
                Some((out.clone(), self.push(a, step, out)))
            }
            AnswerExpr::Related(l, r) => {
                let (x, xi) = self.eval(a, v, tpl, l)?;
                let Set::Ents(tx, xs) = x else { return None };
                // Pick the second entity among the first one's partners, so they are related.
                if let AnswerExpr::Slot(y) = r.as_ref()
                    && !a.names.contains_key(y)
                    && let Some(SlotKindIr::Name(yt)) = Self::slot_kind(tpl, y)
                    && let yt = yt.id()
                    && let Some(&e) = a.rng.pick(&xs)
                {
                    let mut dirs: Vec<Dir> = self
                        .hops
                        .iter()
                        .copied()
                        .filter(|d| self.ir.meets(d.from_ty, tx) && self.ir.meets(d.to_ty, yt))
                        .collect();
                    a.rng.shuffle(&mut dirs);
                    let yts = &self.world.types[yt].members;
                    for d in dirs {
                        let mut img = self.solver.image(d.rel, d.from, e);
                        img.retain(|&z| yts.contains(&(z as usize)));
                        if let Some(&z) = a.rng.pick(&img) {
                            a.names.insert(y.clone(), (yt, z));
                            break;
                        }
                    }
                }
                let (y, yi) = self.eval(a, v, tpl, r)?;
                let Set::Ents(ty, ys) = y else { return None };
                // "How is X related to X?" asks nothing.
                if self.ir.meets(tx, ty) && !intersect(&xs, &ys).is_empty() {
                    a.degenerate = true;
                    return None;
                }
                let dirs: Vec<Dir> = self
                    .hops
                    .iter()
                    .copied()
                    .filter(|d| self.ir.meets(d.from_ty, tx) && self.ir.meets(d.to_ty, ty))
                    .collect();
                let mut nouns = Vec::new();
                let mut weight = 0;
                for d in &dirs {
                    let img = self.solver.image_set(d.rel, d.from, &xs);
                    for b in intersect(&img, &ys) {
                        nouns.push(self.noun(d, b));
                        weight = weight.max(self.ir.relations[d.rel].weight);
                    }
                }
                a.extra_hops += 1;
                a.extra_difficulty += weight.max(1);
                nouns.sort();
                nouns.dedup();
                let step = Step {
                    op: "related".into(),
                    inputs: vec![xi, yi],
                    relations: (dirs.iter().map(|d| self.reading(d)).collect()),
                    ..Step::default()
                };
                let out = Set::Nouns(nouns);
                Some((out.clone(), self.push(a, step, out)))
            }
        }
    }

    /// What a relation or attribute read (`rel(e)`, `rel.role(e)`, `r(e)`, `attr(e)`, `a(e)`)
    /// reads from entities `xs` of type `t`; chooses (and fills in) the relation or attribute
    /// of a slot the first time it is read.
    fn reader(
        &self,
        a: &mut Attempt,
        tpl: &Template,
        e: &AnswerExpr,
        t: usize,
        xs: &[u32],
    ) -> Option<Reader> {
        match e {
            AnswerExpr::Hop { relation, to, .. } => Some(Reader::Rel {
                rel: relation.id(),
                from: 1 - to,
            }),
            AnswerExpr::HopSlot { slot, .. } => {
                let d = match a.rels.get(slot) {
                    Some(&d) => d,
                    None => {
                        let Some(SlotKindIr::Relation(c)) = Self::slot_kind(tpl, slot) else {
                            return None;
                        };
                        let mut dirs: Vec<Dir> = self
                            .slot_dirs(c)
                            .copied()
                            .filter(|d| self.ir.meets(d.from_ty, t))
                            .collect();
                        a.rng.shuffle(&mut dirs);
                        let first = *dirs.first()?;
                        // Prefer a relation the entities actually have, within the limit.
                        dirs.into_iter()
                            .find(|d| {
                                let n = self.solver.image_set(d.rel, d.from, xs).len();
                                n > 0 && n <= self.max_answers
                            })
                            .unwrap_or(first)
                    }
                };
                a.rels.insert(slot.clone(), d);
                let say = &self.ir.relations[d.rel].says[d.say];
                a.fills.insert(
                    slot.clone(),
                    Fill::Forms(say.singular.clone(), say.plural.clone()),
                );
                Some(Reader::Rel {
                    rel: d.rel,
                    from: d.from,
                })
            }
            AnswerExpr::Attr { attr, .. } => Some(Reader::Attr {
                ty: t,
                attr: attr.index(),
            }),
            AnswerExpr::AttrSlot { slot, .. } => {
                let Some(SlotKindIr::Attr(c)) = Self::slot_kind(tpl, slot) else {
                    return None;
                };
                let ety = &self.ir.entities[t];
                let cands: Vec<usize> = c
                    .iter()
                    .filter(|(ty, _)| ty.id() == t)
                    .map(|(_, at)| at.index())
                    .collect();
                let ai = *a.rng.pick(&cands)?;
                a.attrs.insert(slot.clone(), (t, ai));
                let attr = &ety.attrs[ai];
                let (s1, p1) = attr
                    .say
                    .clone()
                    .unwrap_or((attr.name.clone(), attr.name.clone()));
                a.fills.insert(slot.clone(), Fill::Forms(s1, p1));
                Some(Reader::Attr { ty: t, attr: ai })
            }
            _ => None,
        }
    }

    fn reading_of(&self, rel: usize, from: usize) -> Reading {
        let r = &self.ir.relations[rel];
        Reading {
            relation: r.name.clone(),
            from_role: r.roles[from].name.clone(),
            to_role: r.roles[1 - from].name.clone(),
        }
    }

    /// The noun naming entity `b` through reading `d` (a `when` form where one matches).
    fn noun(&self, d: &Dir, b: u32) -> String {
        let say = &self.ir.relations[d.rel].says[d.say];
        noun_of(self.ir, self.world, say, d.to_ty, b).0.to_string()
    }

    fn attr_step(
        &self,
        a: &mut Attempt,
        t: usize,
        ai: usize,
        input: usize,
        xs: &[u32],
    ) -> (Set, usize) {
        let ety = &self.ir.entities[t];
        let col = &self.world.types[t].columns[ai];
        let mut vals: Vec<String> = xs
            .iter()
            .map(|&e| render(self.ir, ety, ai, &col[e as usize]))
            .collect();
        vals.sort();
        vals.dedup();
        let step = Step {
            op: "attribute".into(),
            inputs: vec![input],
            attribute: ety.attrs[ai].name.clone(),
            ..Step::default()
        };
        let out = Set::Vals(vals);
        let i = self.push(a, step, out.clone());
        (out, i)
    }

    /// Walks a chain of `shape.hops` hops ending at type `target`, recording its steps, and
    /// sets the slot's phrase. Each hop picks, in random order, the first hop relation
    /// whose image of the current set is non-empty (empty, on the last hop of an
    /// unanswerable question) and within the answer-set limit.
    fn walk(
        &self,
        a: &mut Attempt,
        slot: &str,
        target: usize,
        shape: Shape,
    ) -> Option<(Set, usize)> {
        let reach = self.reach(target, shape.hops);
        let starts = self.start_types(shape, &reach);
        let (mut set, mut ty, mut phrase, mut idx);
        if shape.whose {
            let mut order = starts.clone();
            a.rng.shuffle(&mut order);
            let mut found = None;
            for wi in order {
                let (t, ai, by) = &self.whose[wi];
                let e = self.world.types[*t].draw(&mut a.rng) as usize;
                let val = &self.world.types[*t].columns[*ai][e];
                let members = by.get(val)?;
                if members.len() <= self.max_answers {
                    found = Some((*t, *ai, val.clone(), members.clone()));
                    break;
                }
            }
            let Some((t, ai, val, members)) = found else {
                a.tally.over_limit += 1;
                return None;
            };
            let ety = &self.ir.entities[t];
            let attr = &ety.attrs[ai];
            let value = render(self.ir, ety, ai, &val);
            let form = match &attr.whose_plural {
                Some(p) if self.q.agree && members.len() > 1 => Some(p),
                _ => attr.whose.as_ref(),
            };
            phrase = match form {
                Some(parts) => parts
                    .iter()
                    .map(|p| match p {
                        TextPart::Lit(l) | TextPart::Agree { singular: l, .. } => l.clone(),
                        TextPart::Hole { .. } => value.clone(),
                    })
                    .collect(),
                None => {
                    let noun = attr
                        .say
                        .as_ref()
                        .map_or(attr.name.as_str(), |s| s.0.as_str());
                    format!("the {} whose {noun} is {value}", ety.name)
                }
            };
            let step = Step {
                op: "whose".into(),
                ty: ety.name.clone(),
                attribute: attr.name.clone(),
                value,
                ..Step::default()
            };
            set = members;
            ty = t;
            idx = self.push(a, step, Set::Ents(t, set.clone()));
        } else {
            ty = *a.rng.pick(&starts)?;
            let e = self.world.types[ty].draw(&mut a.rng);
            phrase = self.name(ty, e);
            let step = Step {
                op: "name".into(),
                ty: self.ir.entities[ty].name.clone(),
                name: phrase.clone(),
                ..Step::default()
            };
            set = vec![e];
            idx = self.push(a, step, Set::Ents(ty, set.clone()));
        }
        let empty_last = a.empty_slot.as_deref() == Some(slot);
        let backtrack = !a.filters.contains(&Filter::Backtrack);
        // The set before the previous hop: a hop back onto it is a backtrack.
        let mut before: Option<(usize, Vec<u32>)> = None;
        for i in 0..shape.hops {
            let remaining = shape.hops - i - 1;
            let last = remaining == 0;
            let mut dirs: Vec<Dir> = self
                .hops
                .iter()
                .copied()
                .filter(|d| self.ir.meets(d.from_ty, ty) && reach[remaining][d.to_ty])
                .collect();
            a.rng.shuffle(&mut dirs);
            let mut chosen = None;
            let mut too_big = false;
            for d in dirs {
                let img = self.solver.image_set(d.rel, d.from, &set);
                let fits = if last && empty_last {
                    img.is_empty()
                } else {
                    !img.is_empty() && img.len() <= self.max_answers
                };
                too_big |= img.len() > self.max_answers;
                if fits
                    && !backtrack
                    && before
                        .as_ref()
                        .is_some_and(|(bt, bs)| self.ir.meets(*bt, d.to_ty) && subset(&img, bs))
                {
                    *a.tally.removed.entry(Filter::Backtrack).or_default() += 1;
                    continue;
                }
                if fits {
                    chosen = Some((d, img));
                    break;
                }
            }
            let Some((d, img)) = chosen else {
                if too_big {
                    a.tally.over_limit += 1;
                } else {
                    a.tally.no_walk += 1;
                }
                return None;
            };
            let r = &self.ir.relations[d.rel];
            phrase = self.hop_phrase(&d, self.q.agree && img.len() > 1, &phrase);
            let step = Step {
                op: "hop".into(),
                inputs: vec![idx],
                ty: self.ir.entities[d.to_ty].name.clone(),
                relations: vec![self.reading(&d)],
                ..Step::default()
            };
            a.extra_hops += 1;
            a.extra_difficulty += r.weight;
            before = Some((ty, std::mem::replace(&mut set, img)));
            ty = d.to_ty;
            idx = self.push(a, step, Set::Ents(ty, set.clone()));
        }
        a.fills.insert(slot.to_string(), Fill::Text(phrase));
        a.plural
            .insert(slot.to_string(), self.q.agree && set.len() > 1);
        Some((Set::Ents(ty, set), idx))
    }
}

/// How one draw of a question ended.
enum Drawn {
    Question(Box<Question>),
    /// Slots that must differ denoted the same entities.
    Degenerate,
    /// No answer of the wanted kind here.
    Nothing,
}

/// Whether sorted set `a` lies within sorted set `b`: two hops that reach nothing beyond
/// where they started ("the patients of the admissions of P", "the tenant club of the home
/// ground of X") went back, not on.
fn subset(a: &[u32], b: &[u32]) -> bool {
    a.iter().all(|x| b.binary_search(x).is_ok())
}

/// The sorted union of two sorted sets.
fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = a.iter().chain(b).copied().collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    a.iter()
        .copied()
        .filter(|x| b.binary_search(x).is_ok())
        .collect()
}

fn has_intersection(e: &AnswerExpr) -> bool {
    match e {
        // Operands that can leave nothing: an empty answer need not come from a hop.
        AnswerExpr::Intersect(_) | AnswerExpr::Difference(_) => true,
        AnswerExpr::Union(args) => args.iter().any(has_intersection),
        AnswerExpr::Slot(_) => false,
        AnswerExpr::Hop { arg, .. }
        | AnswerExpr::HopSlot { arg, .. }
        | AnswerExpr::Attr { arg, .. }
        | AnswerExpr::AttrSlot { arg, .. }
        | AnswerExpr::Count(arg)
        | AnswerExpr::CountEach(arg) => has_intersection(arg),
        AnswerExpr::ArgMin { args, .. }
        | AnswerExpr::ArgMax { args, .. }
        | AnswerExpr::ArgCount { args, .. }
        | AnswerExpr::FactAttr { args, .. } => args.iter().any(has_intersection),
        AnswerExpr::Same(l, r) | AnswerExpr::Related(l, r) => {
            has_intersection(l) || has_intersection(r)
        }
    }
}

fn has_duplicate<'s>(xs: impl Iterator<Item = &'s String>) -> bool {
    let mut seen = HashSet::new();
    xs.into_iter().any(|x| !seen.insert(x))
}

/// The question type, named by the answer's outermost operation.
fn question_type(e: &AnswerExpr) -> &'static str {
    match e {
        AnswerExpr::Slot(_) | AnswerExpr::Hop { .. } | AnswerExpr::HopSlot { .. } => "entity",
        AnswerExpr::Attr { .. } | AnswerExpr::AttrSlot { .. } | AnswerExpr::FactAttr { .. } => {
            "attribute"
        }
        AnswerExpr::Count(_) | AnswerExpr::CountEach(_) => "count",
        AnswerExpr::Intersect(_) => "intersection",
        AnswerExpr::Union(_) => "union",
        AnswerExpr::Difference(_) => "difference",
        AnswerExpr::ArgMin { .. } | AnswerExpr::ArgMax { .. } | AnswerExpr::ArgCount { .. } => {
            "comparison"
        }
        AnswerExpr::Same(..) => "same",
        AnswerExpr::Related(..) => "related",
    }
}
