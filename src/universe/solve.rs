//! Answers "which entities does relation R reach from x?" for base and derived relations:
//! base facts through indexes, non-recursive rules top-down from the bound entity, and
//! recursive relations materialised once by semi-naive bottom-up evaluation.

use std::cmp::Ordering;
use std::sync::OnceLock;

use super::GenError;
use super::params::Params;
use super::world::{AttrVal, World, parse_date, render};
use crate::lang::ir::CmpOp;
use crate::lang::ir::{AttrType, BodyIr, Ir, RelationDef, TestValueIr, Value};

/// Adjacency in compressed form: the partners of entity `e` are
/// `targets[offsets[e]..offsets[e + 1]]`, sorted.
#[derive(Debug, Default)]
pub struct Csr {
    offsets: Vec<usize>,
    targets: Vec<u32>,
}

impl Csr {
    fn build(n: usize, pairs: &[(u32, u32)]) -> Csr {
        let mut offsets = vec![0usize; n + 1];
        for &(a, _) in pairs {
            offsets[a as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut targets = vec![0u32; pairs.len()];
        for &(a, b) in pairs {
            targets[fill[a as usize]] = b;
            fill[a as usize] += 1;
        }
        for i in 0..n {
            let s = &mut targets[offsets[i]..offsets[i + 1]];
            s.sort_unstable();
        }
        Csr { offsets, targets }
    }

    pub fn get(&self, e: u32) -> &[u32] {
        let e = e as usize;
        if e + 1 >= self.offsets.len() {
            return &[];
        }
        &self.targets[self.offsets[e]..self.offsets[e + 1]]
    }
}

/// Both directions of a materialised relation: `by_role[i]` maps an entity in role `i` to
/// its partners in the other role.
#[derive(Debug, Default)]
pub struct Index {
    by_role: [Csr; 2],
}

impl Index {
    fn build(n0: usize, n1: usize, pairs: &[(u32, u32)], symmetric: bool) -> Index {
        let mut fwd: Vec<(u32, u32)> = pairs.to_vec();
        let mut bwd: Vec<(u32, u32)> = pairs.iter().map(|&(a, b)| (b, a)).collect();
        if symmetric {
            fwd.extend(pairs.iter().map(|&(a, b)| (b, a)));
            fwd.sort_unstable();
            fwd.dedup();
            bwd = fwd.clone();
        }
        Index {
            by_role: [Csr::build(n0, &fwd), Csr::build(n1, &bwd)],
        }
    }
}

#[derive(Debug, Clone)]
enum Rhs {
    Const(AttrVal),
    /// Text compared by its rendering (pool values and composed text).
    Text(String),
    Attr {
        var: usize,
        attr: usize,
    },
}

#[derive(Debug, Clone)]
enum Lit {
    Atom {
        rel: usize,
        negated: bool,
        args: [usize; 2],
    },
    AttrTest {
        var: usize,
        attr: usize,
        op: CmpOp,
        rhs: Rhs,
    },
    VarTest {
        left: usize,
        op: CmpOp,
        right: usize,
    },
}

impl Lit {
    fn vars(&self) -> Vec<usize> {
        match self {
            Lit::Atom { args, .. } => args.to_vec(),
            Lit::AttrTest { var, rhs, .. } => match rhs {
                Rhs::Attr { var: v2, .. } => vec![*var, *v2],
                _ => vec![*var],
            },
            Lit::VarTest { left, right, .. } => vec![*left, *right],
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    /// Entity type index of each variable; variables 0 and 1 are the head roles.
    var_types: Vec<usize>,
    /// `_` variables: fresh at each use, existential inside a negation.
    anonymous: Vec<bool>,
    lits: Vec<Lit>,
}

/// Where an atom's facts come from during bottom-up evaluation of a recursive relation.
enum Source<'s> {
    Solver,
    Adj(&'s Adj),
}

/// Growing adjacency of a relation under bottom-up evaluation.
#[derive(Default)]
struct Adj {
    by_role: [Vec<Vec<u32>>; 2],
}

impl Adj {
    fn new(n0: usize, n1: usize) -> Adj {
        Adj {
            by_role: [vec![Vec::new(); n0], vec![Vec::new(); n1]],
        }
    }
    fn get(&self, role: usize, e: u32) -> &[u32] {
        self.by_role[role]
            .get(e as usize)
            .map_or(&[], |v| v.as_slice())
    }
}

pub struct Solver<'a> {
    pub ir: &'a Ir,
    pub world: &'a World,
    /// Entity type index of each relation's roles.
    pub role_types: Vec<[usize; 2]>,
    rules: Vec<Vec<Rule>>,
    base: Vec<Option<Index>>,
    materialised: Vec<OnceLock<Index>>,
    /// Relations that must be materialised (recursive ones), with their recursive group.
    groups: Vec<Option<Vec<usize>>>,
}

impl<'a> Solver<'a> {
    /// Compiles the derived relations' rules against `world`. Checked rules always compile:
    /// a literal that does not would make its rule weaker and its answers wrong, so it is an
    /// error (a parameter value outside an enum, or an internal error), never dropped.
    pub fn new(ir: &'a Ir, world: &'a World, params: &Params) -> Result<Solver<'a>, GenError> {
        let role_types: Vec<[usize; 2]> = ir
            .relations
            .iter()
            .map(|r| [r.roles[0].ty.id(), r.roles[1].ty.id()])
            .collect();
        let mut rules = Vec::with_capacity(ir.relations.len());
        for r in &ir.relations {
            let mut out = Vec::new();
            if let RelationDef::Derived(rs) = &r.def {
                for rule in rs {
                    let var_types: Vec<usize> = rule.vars.iter().map(|(_, t)| t.id()).collect();
                    let lits = rule
                        .body
                        .iter()
                        .map(|b| compile_lit(ir, params, b))
                        .collect::<Result<Vec<_>, LitError>>()
                        .map_err(|e| match e {
                            LitError::Param(p) => {
                                GenError::Invalid(format!("relation `{}`: {p}", r.name))
                            }
                            LitError::Unresolved(what) => GenError::Internal(format!(
                                "a literal of relation `{}` does not resolve: {what}",
                                r.name
                            )),
                        })?;
                    let anonymous = rule.vars.iter().map(|(n, _)| n == "_").collect();
                    out.push(Rule {
                        var_types,
                        anonymous,
                        lits,
                    });
                }
            }
            rules.push(out);
        }
        let base = ir
            .relations
            .iter()
            .enumerate()
            .map(|(i, r)| {
                world.base[i].as_ref().map(|f| {
                    let [t0, t1] = role_types[i];
                    Index::build(
                        world.types[t0].space,
                        world.types[t1].space,
                        &f.pairs,
                        r.symmetric,
                    )
                })
            })
            .collect();
        // A relation is materialised when it depends on itself; its group is every relation
        // on a dependency cycle with it, evaluated together.
        let deps: Vec<Vec<usize>> = rules
            .iter()
            .map(|rs| {
                let mut d: Vec<usize> = rs
                    .iter()
                    .flat_map(|r| r.lits.iter())
                    .filter_map(|l| match l {
                        Lit::Atom { rel, .. } => Some(*rel),
                        _ => None,
                    })
                    .collect();
                d.sort_unstable();
                d.dedup();
                d
            })
            .collect();
        let reach = |from: usize| {
            let mut seen = vec![false; deps.len()];
            let mut stack = deps[from].clone();
            while let Some(x) = stack.pop() {
                if !seen[x] {
                    seen[x] = true;
                    stack.extend(deps[x].iter().copied());
                }
            }
            seen
        };
        let reaches: Vec<Vec<bool>> = (0..deps.len()).map(reach).collect();
        let groups = (0..deps.len())
            .map(|r| {
                reaches[r][r].then(|| {
                    (0..deps.len())
                        .filter(|&s| reaches[r][s] && reaches[s][r])
                        .collect()
                })
            })
            .collect();
        Ok(Solver {
            ir,
            world,
            role_types,
            rules,
            base,
            materialised: (0..ir.relations.len()).map(|_| OnceLock::new()).collect(),
            groups,
        })
    }

    /// Every partner in role `1 - from` of entity `x` in role `from`, sorted and distinct.
    pub fn image(&self, rel: usize, from: usize, x: u32) -> Vec<u32> {
        if let Some(ix) = &self.base[rel] {
            return ix.by_role[from].get(x).to_vec();
        }
        if self.groups[rel].is_some() {
            return self.materialise(rel).by_role[from].get(x).to_vec();
        }
        let r = &self.ir.relations[rel];
        let mut out = Vec::new();
        for rule in &self.rules[rel] {
            self.eval_rule(rule, &[], Some((from, x)), &mut |b| out.push(b[1 - from]));
            if r.symmetric {
                self.eval_rule(rule, &[], Some((1 - from, x)), &mut |b| out.push(b[from]));
            }
        }
        out.sort_unstable();
        out.dedup();
        if r.irreflexive && self.role_types[rel][0] == self.role_types[rel][1] {
            out.retain(|&y| y != x);
        }
        out
    }

    /// The image of a set: every partner of any member.
    pub fn image_set(&self, rel: usize, from: usize, xs: &[u32]) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for &x in xs {
            out.extend(self.image(rel, from, x));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn contains(&self, rel: usize, a: u32, b: u32) -> bool {
        self.image(rel, 0, a).binary_search(&b).is_ok()
    }

    /// Verifies every declared cardinality (`each ROLE has LO..HI OTHER`) on the facts of
    /// the universe, base and derived: the checker proves what the generators guarantee, and
    /// this catches the rest (a derived relation's range, a generator's corner case). The
    /// first entity outside its range, in declaration and creation order, is the error.
    pub fn check_cardinalities(&self) -> Result<(), GenError> {
        use rayon::prelude::*;
        for (ri, r) in self.ir.relations.iter().enumerate() {
            for c in &r.cards {
                let t = self.role_types[ri][c.role];
                let members = self.world.types[t].members.clone();
                let bad = members.into_par_iter().map(|e| e as u32).find_first(|&e| {
                    let k = self.image(ri, c.role, e).len() as u64;
                    k < c.lo || c.hi.is_some_and(|h| k > h)
                });
                if let Some(e) = bad {
                    let count = self.image(ri, c.role, e).len();
                    let td = &self.world.types[t];
                    let entity = render(
                        self.ir,
                        &self.ir.entities[t],
                        td.key,
                        &td.columns[td.key][e as usize],
                    );
                    let range = match c.hi {
                        Some(h) if h == c.lo => h.to_string(),
                        Some(h) => format!("{}..{h}", c.lo),
                        None => format!("{}..*", c.lo),
                    };
                    return Err(GenError::Cardinality(Box::new(super::Breach {
                        relation: r.name.clone(),
                        role: r.roles[c.role].name.clone(),
                        entity,
                        count,
                        other: r.roles[1 - c.role].name.clone(),
                        range,
                    })));
                }
            }
        }
        Ok(())
    }

    /// All facts of a relation as `(role 0, role 1)` pairs, both orders for symmetric ones.
    pub fn all_pairs(&self, rel: usize) -> Vec<(u32, u32)> {
        let n0 = self.world.types[self.role_types[rel][0]].space;
        let mut out = Vec::new();
        for a in 0..n0 as u32 {
            for b in self.image(rel, 0, a) {
                out.push((a, b));
            }
        }
        out
    }

    fn materialise(&self, rel: usize) -> &Index {
        self.materialised[rel].get_or_init(|| {
            let group = self.groups[rel].clone().unwrap_or_else(|| vec![rel]);
            let pairs = self.bottom_up(&group);
            let pos = group.iter().position(|&g| g == rel).unwrap_or(0);
            let [t0, t1] = self.role_types[rel];
            Index::build(
                self.world.types[t0].space,
                self.world.types[t1].space,
                &pairs[pos],
                false,
            )
        })
    }

    /// Semi-naive evaluation of a group of mutually recursive relations: each round joins
    /// only the facts new in the previous round, so every fact is derived a bounded number
    /// of times instead of once per derivation path.
    fn bottom_up(&self, group: &[usize]) -> Vec<Vec<(u32, u32)>> {
        let size = |r: usize| {
            let [t0, t1] = self.role_types[r];
            (self.world.types[t0].space, self.world.types[t1].space)
        };
        let mut total: Vec<Adj> = group
            .iter()
            .map(|&r| {
                let (a, b) = size(r);
                Adj::new(a, b)
            })
            .collect();
        let mut all: Vec<Vec<(u32, u32)>> = vec![Vec::new(); group.len()];
        let mut delta: Vec<Vec<(u32, u32)>> = vec![Vec::new(); group.len()];
        let in_group = |rel: usize| group.iter().position(|&g| g == rel);
        let add = |gi: usize,
                   (a, b): (u32, u32),
                   total: &mut Vec<Adj>,
                   new: &mut Vec<Vec<(u32, u32)>>| {
            let r = &self.ir.relations[group[gi]];
            if r.irreflexive
                && self.role_types[group[gi]][0] == self.role_types[group[gi]][1]
                && a == b
            {
                return;
            }
            let mut pairs = vec![(a, b)];
            if r.symmetric {
                pairs.push((b, a));
            }
            for (a, b) in pairs {
                let fwd = &mut total[gi].by_role[0][a as usize];
                if let Err(pos) = fwd.binary_search(&b) {
                    fwd.insert(pos, b);
                    let bwd = &mut total[gi].by_role[1][b as usize];
                    if let Err(p2) = bwd.binary_search(&a) {
                        bwd.insert(p2, a);
                    }
                    new[gi].push((a, b));
                }
            }
        };
        // Round 0: rules with no atom in the group.
        let mut new: Vec<Vec<(u32, u32)>> = vec![Vec::new(); group.len()];
        for (gi, &rel) in group.iter().enumerate() {
            for rule in &self.rules[rel] {
                let recursive = rule
                    .lits
                    .iter()
                    .any(|l| matches!(l, Lit::Atom { rel, .. } if in_group(*rel).is_some()));
                if recursive {
                    continue;
                }
                let mut found = Vec::new();
                self.eval_rule(rule, &[], None, &mut |b| found.push((b[0], b[1])));
                for p in found {
                    add(gi, p, &mut total, &mut new);
                }
            }
        }
        loop {
            for (gi, d) in new.iter_mut().enumerate() {
                all[gi].extend(d.iter().copied());
                delta[gi] = std::mem::take(d);
            }
            if delta.iter().all(Vec::is_empty) {
                break;
            }
            let delta_adj: Vec<Adj> = group
                .iter()
                .enumerate()
                .map(|(gi, &r)| {
                    let (n0, n1) = size(r);
                    let mut a = Adj::new(n0, n1);
                    for &(x, y) in &delta[gi] {
                        a.by_role[0][x as usize].push(y);
                        a.by_role[1][y as usize].push(x);
                    }
                    a
                })
                .collect();
            let mut found: Vec<(usize, (u32, u32))> = Vec::new();
            for (gi, &rel) in group.iter().enumerate() {
                for rule in &self.rules[rel] {
                    let rec: Vec<usize> = rule
                        .lits
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| matches!(l, Lit::Atom { rel, negated: false, .. } if in_group(*rel).is_some()))
                        .map(|(i, _)| i)
                        .collect();
                    for &j in &rec {
                        // Atom j reads the last round's new facts; the others read all facts.
                        let sources: Vec<Source> = rule
                            .lits
                            .iter()
                            .enumerate()
                            .map(|(i, l)| match l {
                                Lit::Atom { rel, .. } => match in_group(*rel) {
                                    Some(g) if i == j => Source::Adj(&delta_adj[g]),
                                    Some(g) => Source::Adj(&total[g]),
                                    None => Source::Solver,
                                },
                                _ => Source::Solver,
                            })
                            .collect();
                        self.eval_rule(rule, &sources, None, &mut |b| {
                            found.push((gi, (b[0], b[1])))
                        });
                    }
                }
            }
            for (gi, p) in found {
                add(gi, p, &mut total, &mut new);
            }
        }
        for v in &mut all {
            v.sort_unstable();
            v.dedup();
        }
        all
    }

    /// Runs a rule body, calling `emit` with the head bindings `[v0, v1]` of every solution.
    fn eval_rule(
        &self,
        rule: &Rule,
        sources: &[Source],
        bound: Option<(usize, u32)>,
        emit: &mut dyn FnMut([u32; 2]),
    ) {
        let mut b: Vec<Option<u32>> = vec![None; rule.var_types.len()];
        if let Some((v, x)) = bound {
            b[v] = Some(x);
        }
        let mut done = vec![false; rule.lits.len()];
        self.search(rule, sources, &mut b, &mut done, emit);
    }

    fn search(
        &self,
        rule: &Rule,
        sources: &[Source],
        b: &mut Vec<Option<u32>>,
        done: &mut Vec<bool>,
        emit: &mut dyn FnMut([u32; 2]),
    ) {
        // Tests and negations as soon as their variables are bound: they only prune.
        let mut checked = Vec::new();
        let mut ok = true;
        for (i, l) in rule.lits.iter().enumerate() {
            if done[i] || matches!(l, Lit::Atom { negated: false, .. }) {
                continue;
            }
            if l.vars()
                .iter()
                .all(|&v| b[v].is_some() || rule.anonymous[v])
            {
                done[i] = true;
                checked.push(i);
                if !self.test(rule, l, b, sources.get(i)) {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            // The positive atom with the most bound variables next (a delta atom first when
            // nothing is bound, since it is the smallest).
            let mut best: Option<(usize, usize)> = None;
            for (i, l) in rule.lits.iter().enumerate() {
                if done[i] {
                    continue;
                }
                if let Lit::Atom {
                    negated: false,
                    args,
                    ..
                } = l
                {
                    let n = args.iter().filter(|&&v| b[v].is_some()).count();
                    let n = n * 2 + usize::from(matches!(sources.get(i), Some(Source::Adj(_))));
                    if best.is_none_or(|(_, bn)| n > bn) {
                        best = Some((i, n));
                    }
                }
            }
            match best {
                None => {
                    if let (Some(x), Some(y)) = (b[0], b[1]) {
                        emit([x, y]);
                    }
                }
                Some((i, _)) => {
                    let Lit::Atom { rel, args, .. } = &rule.lits[i] else {
                        unreachable!("picked a positive atom")
                    };
                    let (rel, args) = (*rel, *args);
                    done[i] = true;
                    let src = sources.get(i).unwrap_or(&Source::Solver);
                    match (b[args[0]], b[args[1]]) {
                        (Some(x), Some(y)) => {
                            if self.has(rel, src, x, y) {
                                self.search(rule, sources, b, done, emit);
                            }
                        }
                        (Some(x), None) => {
                            for y in self.partners(rel, src, 0, x) {
                                b[args[1]] = Some(y);
                                self.search(rule, sources, b, done, emit);
                            }
                            b[args[1]] = None;
                        }
                        (None, Some(y)) => {
                            for x in self.partners(rel, src, 1, y) {
                                b[args[0]] = Some(x);
                                self.search(rule, sources, b, done, emit);
                            }
                            b[args[0]] = None;
                        }
                        (None, None) => {
                            let pairs: Vec<(u32, u32)> = match src {
                                Source::Adj(a) => a.by_role[0]
                                    .iter()
                                    .enumerate()
                                    .flat_map(|(x, ys)| ys.iter().map(move |&y| (x as u32, y)))
                                    .collect(),
                                Source::Solver => self.all_pairs(rel),
                            };
                            for (x, y) in pairs {
                                if args[0] == args[1] && x != y {
                                    continue;
                                }
                                b[args[0]] = Some(x);
                                b[args[1]] = Some(y);
                                self.search(rule, sources, b, done, emit);
                            }
                            b[args[0]] = None;
                            b[args[1]] = None;
                        }
                    }
                    done[i] = false;
                }
            }
        }
        for i in checked {
            done[i] = false;
        }
    }

    fn partners(&self, rel: usize, src: &Source, from: usize, x: u32) -> Vec<u32> {
        match src {
            Source::Adj(a) => a.get(from, x).to_vec(),
            Source::Solver => self.image(rel, from, x),
        }
    }

    fn has(&self, rel: usize, src: &Source, x: u32, y: u32) -> bool {
        match src {
            Source::Adj(a) => a.get(0, x).contains(&y),
            Source::Solver => self.contains(rel, x, y),
        }
    }

    fn test(&self, rule: &Rule, l: &Lit, b: &[Option<u32>], src: Option<&Source>) -> bool {
        match l {
            Lit::Atom { rel, args, .. } => {
                // Negated: lower strata are complete, so membership is final. An anonymous
                // argument is existential: `not r(x, _)` holds when x has no partner at all.
                let src = src.unwrap_or(&Source::Solver);
                match (b[args[0]], b[args[1]]) {
                    (Some(x), Some(y)) => !self.has(*rel, src, x, y),
                    (Some(x), None) => self.partners(*rel, src, 0, x).is_empty(),
                    (None, Some(y)) => self.partners(*rel, src, 1, y).is_empty(),
                    (None, None) => {
                        let n0 = self.world.types[self.role_types[*rel][0]].space as u32;
                        (0..n0).all(|x| self.partners(*rel, src, 0, x).is_empty())
                    }
                }
            }
            Lit::VarTest { left, op, right } => {
                let (Some(x), Some(y)) = (b[*left], b[*right]) else {
                    return false;
                };
                op.holds(x.cmp(&y))
            }
            Lit::AttrTest { var, attr, op, rhs } => {
                let Some(e) = b[*var] else { return false };
                let t = rule.var_types[*var];
                let v = &self.world.types[t].columns[*attr][e as usize];
                match rhs {
                    Rhs::Const(c) => op.holds(cmp_vals(v, c)),
                    Rhs::Text(s) => {
                        let ety = &self.ir.entities[t];
                        op.holds(render(self.ir, ety, *attr, v).as_str().cmp(s.as_str()))
                    }
                    Rhs::Attr { var: v2, attr: a2 } => {
                        let Some(e2) = b[*v2] else { return false };
                        let t2 = rule.var_types[*v2];
                        let w = &self.world.types[t2].columns[*a2][e2 as usize];
                        match (v, w) {
                            (AttrVal::Int(_), _)
                            | (AttrVal::Date(_), _)
                            | (AttrVal::Enum(_), _) => op.holds(cmp_vals(v, w)),
                            _ => {
                                let x = render(self.ir, &self.ir.entities[t], *attr, v);
                                let y = render(self.ir, &self.ir.entities[t2], *a2, w);
                                op.holds(x.cmp(&y))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn cmp_vals(a: &AttrVal, b: &AttrVal) -> Ordering {
    match (a, b) {
        (AttrVal::Int(x), AttrVal::Int(y)) => x.cmp(y),
        (AttrVal::Date(x), AttrVal::Date(y)) => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Why a body literal does not compile.
enum LitError {
    /// A parameter value that can never equal the attribute it is compared with.
    Param(String),
    /// A name the checker let through that does not resolve: a bug.
    Unresolved(String),
}

/// Compiles one body literal.
fn compile_lit(ir: &Ir, params: &Params, b: &BodyIr) -> Result<Lit, LitError> {
    let unresolved = LitError::Unresolved;
    Ok(match b {
        BodyIr::Atom {
            relation,
            negated,
            args,
        } => Lit::Atom {
            rel: relation.id(),
            negated: *negated,
            args: *args,
        },
        BodyIr::VarTest { left, op, right } => Lit::VarTest {
            left: *left,
            op: *op,
            right: *right,
        },
        BodyIr::AttrTest {
            var,
            attr,
            op,
            value,
        } => {
            let ety = &ir.entities[attr.owner()];
            let ai = attr.index();
            let aty = &ety.attrs[ai].ty;
            let lit_value = |v: &Value| -> Option<Rhs> {
                Some(match (aty, v) {
                    (AttrType::Enum(vs), Value::Str(s)) => {
                        Rhs::Const(AttrVal::Enum(vs.iter().position(|x| x == s)? as u16))
                    }
                    (AttrType::Int, Value::Int(i)) => Rhs::Const(AttrVal::Int(*i)),
                    (AttrType::Date, Value::Date(d)) => Rhs::Const(AttrVal::Date(parse_date(d)?)),
                    (AttrType::Text, Value::Str(s)) => Rhs::Text(s.clone()),
                    _ => return None,
                })
            };
            let rhs = match value {
                TestValueIr::Value(v) => lit_value(v)
                    .ok_or_else(|| unresolved(format!("value {v:?} of `{}.{attr}`", ety.name)))?,
                TestValueIr::Param(p) => {
                    let v = params
                        .get(p)
                        .ok_or_else(|| unresolved(format!("parameter `{p}`")))?;
                    lit_value(v).ok_or_else(|| {
                        LitError::Param(format!(
                            "`${p}` is {}, which `{}.{attr}` ({}) can never equal",
                            describe(v),
                            ety.name,
                            aty.describe()
                        ))
                    })?
                }
                TestValueIr::Attr { var: v2, attr: a2 } => Rhs::Attr {
                    var: *v2,
                    attr: a2.index(),
                },
            };
            Lit::AttrTest {
                var: *var,
                attr: ai,
                op: *op,
                rhs,
            }
        }
    })
}

fn describe(v: &Value) -> String {
    match v {
        Value::Int(i) => format!("`{i}`"),
        Value::Float(f) => format!("`{f}`"),
        Value::Bool(b) => format!("`{b}`"),
        Value::Str(s) | Value::Date(s) | Value::Bank(s) => format!("`{s}`"),
    }
}
