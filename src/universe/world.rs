//! The universe: entities with attribute values, and the base facts of every base relation,
//! built from the IR by its generators (family trees, random graphs, functions, assignments).

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::GenError;
use super::params::Params;
use crate::lang::ir::{
    AttrSource, AttrType, DateBound, Format, GenArg, GenKind, Generator, Hole, Ir, Relation,
    RelationDef, TextPart,
};
use crate::util::rng::Rng;

/// One attribute value. Text from pools is stored as an index so a million entities do not
/// hold a million copies of the same job title.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttrVal {
    Enum(u16),
    Pool {
        pool: u16,
        idx: u32,
    },
    Text(Box<str>),
    Int(i64),
    /// Days since 1970-01-01.
    Date(i32),
}

/// The entities of one type, attribute values stored column by column.
///
/// A type and the types that extend it share one index space (the root supertype's): a
/// player is the same index as a player and as a person, so sets, relations and answers
/// cross the hierarchy without translation. A type's members are one contiguous range of
/// that space, its own entities first, then each subtype's in declaration order.
#[derive(Debug)]
pub struct TypeData {
    pub name: String,
    /// The size of the index space: the number of entities of the root supertype.
    pub space: usize,
    /// The entities of this type, subtypes' included.
    pub members: Range<usize>,
    /// The entities of this type and of no subtype.
    pub own: Range<usize>,
    /// `columns[a][e]`: attribute `a` (inherited ones first, then in declaration order) of
    /// entity `e`, for every index of the space; outside `members` it means nothing.
    pub columns: Vec<Vec<AttrVal>>,
    pub key: usize,
}

impl TypeData {
    /// Entity indices of this type, subtypes' included.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.members.clone().map(|e| e as u32)
    }
    /// A uniformly drawn member (the type has at least one).
    pub fn draw(&self, rng: &mut Rng) -> u32 {
        (self.members.start as u64 + rng.below(self.members.len() as u64)) as u32
    }
}

/// Where each type lies in its hierarchy's index space: (space size, members, own).
fn layout(ir: &Ir, own: &[usize]) -> Vec<(usize, Range<usize>, Range<usize>)> {
    let n = ir.entities.len();
    let children: Vec<Vec<usize>> = (0..n)
        .map(|p| {
            (0..n)
                .filter(|&c| ir.entities[c].extends.as_ref().is_some_and(|s| s.id() == p))
                .collect()
        })
        .collect();
    fn place(
        t: usize,
        at: usize,
        own: &[usize],
        children: &[Vec<usize>],
        out: &mut [(usize, Range<usize>, Range<usize>)],
    ) -> usize {
        let mut end = at + own[t];
        for &c in &children[t] {
            end = place(c, end, own, children, out);
        }
        out[t] = (0, at..end, at..at + own[t]);
        end
    }
    let mut out = vec![(0, 0..0, 0..0); n];
    for root in (0..n).filter(|&t| ir.entities[t].extends.is_none()) {
        let space = place(root, 0, own, &children, &mut out);
        for (t, o) in out.iter_mut().enumerate() {
            if ir.is_a(t, root) {
                o.0 = space;
            }
        }
    }
    out
}

/// Base facts of one relation as `(role 0, role 1)` index pairs, sorted and unique. For a
/// symmetric relation each unordered pair appears once, smaller index first.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    pub pairs: Vec<(u32, u32)>,
    /// `values[a][i]`: fact attribute `a` of fact `pairs[i]`.
    pub values: Vec<Vec<AttrVal>>,
}

impl Facts {
    /// Fact attribute `a` of the fact `(x, y)` as stored (a symmetric pair smaller first).
    pub fn value(&self, a: usize, x: u32, y: u32) -> Option<&AttrVal> {
        let i = self.pairs.binary_search(&(x, y)).ok()?;
        self.values.get(a)?.get(i)
    }

    /// Fact attribute `a` of the fact between `e`, in role `from`, and its partner `b`.
    pub fn value_between(
        &self,
        a: usize,
        from: usize,
        e: u32,
        b: u32,
        symmetric: bool,
    ) -> Option<&AttrVal> {
        let (x, y) = if from == 0 { (e, b) } else { (b, e) };
        let (x, y) = if symmetric && x > y { (y, x) } else { (x, y) };
        self.value(a, x, y)
    }
}

#[derive(Debug)]
pub struct World {
    pub types: Vec<TypeData>,
    /// Indexed like `ir.relations`; `None` for derived relations.
    pub base: Vec<Option<Facts>>,
}

impl World {
    pub fn type_index(&self, name: &str) -> Option<usize> {
        self.types.iter().position(|t| t.name == name)
    }
}

/// Renders an attribute value as text, the way articles, questions and answers show it.
pub fn render(ir: &Ir, ty: &crate::lang::ir::EntityType, attr: usize, v: &AttrVal) -> String {
    render_value(ir, &ty.attrs[attr], v)
}

/// Renders a value of attribute `a`, an entity's or a fact's.
pub fn render_value(ir: &Ir, a: &crate::lang::ir::Attribute, v: &AttrVal) -> String {
    match v {
        AttrVal::Enum(i) => match &a.ty {
            AttrType::Enum(vs) => vs.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        },
        AttrVal::Pool { pool, idx } => ir
            .pools
            .get(*pool as usize)
            .and_then(|p| p.values.get(*idx as usize))
            .cloned()
            .unwrap_or_default(),
        AttrVal::Text(s) => s.to_string(),
        AttrVal::Int(i) => match a.format {
            Some(Format::Grouped) => grouped(*i),
            _ => i.to_string(),
        },
        AttrVal::Date(d) => match a.format {
            Some(f @ (Format::Long | Format::Us)) => {
                let iso = format_date(*d);
                let (y, rest) = iso.split_at(4);
                let m: usize = rest[1..3].parse().unwrap_or(1);
                let day: u32 = rest[4..6].parse().unwrap_or(1);
                let month = MONTHS[m.clamp(1, 12) - 1];
                if f == Format::Long {
                    format!("{day} {month} {y}")
                } else {
                    format!("{month} {day}, {y}")
                }
            }
            _ => format_date(*d),
        },
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `2826880` as "2,826,880".
fn grouped(i: i64) -> String {
    let digits = i.unsigned_abs().to_string();
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if i < 0 { format!("-{out}") } else { out }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian).
pub fn parse_date(s: &str) -> Option<i32> {
    let mut it = s.split('-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) as i32)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-date algorithms: exact for every date, no tables.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn format_date(days: i32) -> String {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Builds the universe. Every type and relation draws from its own named stream, so adding a
/// relation to a rule file does not change the entities or the other relations.
pub fn build(ir: &Ir, params: &Params, seed: u64) -> Result<World, GenError> {
    // Sizes first: family trees decide how many entities their type has.
    let mut trees: HashMap<usize, TreeOut> = HashMap::new();
    for r in &ir.relations {
        if let RelationDef::Base(g) = &r.def
            && g.kind == GenKind::FamilyTree
        {
            let ti = r.roles[0].ty.id();
            if trees.contains_key(&ti) {
                return Err(GenError::Invalid(format!(
                    "type `{}` is created by two family trees",
                    r.roles[0].ty
                )));
            }
            let out = family_trees(ir, ti, g, params, seed)?;
            trees.insert(ti, out);
        }
    }
    let mut own = Vec::with_capacity(ir.entities.len());
    for (ti, ety) in ir.entities.iter().enumerate() {
        own.push(match (&ety.count, trees.get(&ti)) {
            (_, Some(t)) => t.len,
            (Some(n), None) => {
                let n = params.int(n);
                usize::try_from(n).map_err(|_| {
                    GenError::Invalid(format!("type `{}` has a negative count {n}", ety.name))
                })?
            }
            (None, None) => 0,
        });
    }
    let layout = layout(ir, &own);
    // Supertypes come before their subtypes (the checker makes sure), so a subtype copies
    // the values it inherits and draws only its own.
    let mut types: Vec<TypeData> = Vec::with_capacity(ir.entities.len());
    for (ti, ety) in ir.entities.iter().enumerate() {
        let (space, members, own) = layout[ti].clone();
        let mut td = match &ety.extends {
            None => {
                let fixed = trees.get(&ti).map(|t| &t.fixed);
                entities(ir, ti, space, fixed, params, seed)?
            }
            Some(parent) => {
                let parent = &types[parent.id()];
                let fixed: HashMap<usize, Vec<AttrVal>> = (0..ety.inherited)
                    .map(|a| (a, parent.columns[a][members.clone()].to_vec()))
                    .collect();
                let mine = entities(ir, ti, members.len(), Some(&fixed), params, seed)?;
                let columns = mine
                    .columns
                    .into_iter()
                    .enumerate()
                    .map(|(a, col)| {
                        if a < ety.inherited {
                            return parent.columns[a].clone();
                        }
                        // Entities outside the type never read its own attributes.
                        let filler = col.first().cloned().unwrap_or(AttrVal::Int(0));
                        let mut full = vec![filler; space];
                        full[members.clone()].clone_from_slice(&col);
                        full
                    })
                    .collect();
                TypeData { columns, ..mine }
            }
        };
        td.space = space;
        td.members = members;
        td.own = own;
        types.push(td);
    }
    // Base relations are generated in declaration order, except that one with a `where`
    // waits for the relations its clause reads (the checker rules out cycles).
    let base = ir
        .relations
        .iter()
        .map(|r| matches!(r.def, RelationDef::Base(_)).then(Facts::default))
        .collect();
    let mut world = World { types, base };
    let mut done = vec![false; ir.relations.len()];
    while let Some(ri) = (0..ir.relations.len()).find(|&i| {
        !done[i]
            && match &ir.relations[i].def {
                RelationDef::Base(g) => reads(g).iter().all(|&d| done[d]),
                RelationDef::Derived(_) => false,
            }
    }) {
        done[ri] = true;
        let RelationDef::Base(g) = &ir.relations[ri].def else {
            continue;
        };
        let cands = match &g.given {
            Some(rule) => Some(where_candidates(ir, &mut world, ri, rule, g, params)?),
            None => None,
        };
        let facts = relation_facts(ir, &world, ri, g, &trees, params, seed, cands.as_deref())?;
        world.base[ri] = Some(facts);
    }
    fill_late(ir, &mut world, params, seed)?;
    if let Some(ri) = (0..ir.relations.len())
        .find(|&i| !done[i] && matches!(ir.relations[i].def, RelationDef::Base(_)))
    {
        return Err(GenError::Internal(format!(
            "relation `{}` waits on a `where` cycle the checker should have refused",
            ir.relations[ri].name
        )));
    }
    Ok(world)
}

/// Pairs (by index among each role's members) drawn as the generator would, each `from`
/// entity's partners taken only from `cands`, what its `where` admits.
fn constrained(
    ir: &Ir,
    world: &World,
    ri: usize,
    g: &Generator,
    params: &Params,
    rng: &mut Rng,
    cands: &[Vec<usize>],
) -> Result<Vec<(u32, u32)>, GenError> {
    let r = &ir.relations[ri];
    let (t0, t1) = (r.roles[0].ty.id(), r.roles[1].ty.id());
    let from = drawing_role(r, g)?;
    let pair = |f: usize, t: usize| {
        let (a, b) = (f as u32, t as u32);
        if from == 0 { (a, b) } else { (b, a) }
    };
    let same = r.irreflexive && t0 == t1;
    // A from entity's admitted partners, itself left out of an irreflexive relation.
    let admitted = |f: usize| -> Vec<usize> {
        cands[f]
            .iter()
            .copied()
            .filter(|&t| !(same && t == f))
            .collect()
    };
    let name = |f: usize| {
        let td = &world.types[r.roles[from].ty.id()];
        let e = td.members.start + f;
        render(
            ir,
            &ir.entities[r.roles[from].ty.id()],
            td.key,
            &td.columns[td.key][e],
        )
    };
    let short = |f: usize, k: usize, have: usize| {
        GenError::Invalid(format!(
            "relation `{}`: `{}` {} needs {k} `{}` its `where` admits, but only {have} exist",
            r.name,
            r.roles[from].name,
            name(f),
            r.roles[1 - from].name
        ))
    };
    Ok(match g.kind {
        GenKind::RandomGraph => {
            let d = match g.args.get("mean_degree") {
                Some(GenArg::Num(n)) => params.float(n),
                _ => 0.0,
            };
            let mut all: Vec<(u32, u32)> = (0..cands.len())
                .flat_map(|f| admitted(f).into_iter().map(move |t| (f, t)))
                .map(|(f, t)| {
                    let (a, b) = (f as u32, t as u32);
                    if r.symmetric && a > b { (b, a) } else { (a, b) }
                })
                .collect();
            all.sort_unstable();
            all.dedup();
            let n = cands.len() as f64;
            let wanted = (n * d / if r.symmetric { 2.0 } else { 1.0 }).round() as usize;
            rng.shuffle(&mut all);
            all.truncate(wanted);
            all
        }
        GenKind::OneToOne => {
            // A random maximum matching (augmenting paths, from entities and partners
            // in random order): every from entity gets its own partner when any such
            // assignment exists.
            let mut order: Vec<usize> = (0..cands.len()).collect();
            rng.shuffle(&mut order);
            let lists: Vec<Vec<usize>> = (0..cands.len())
                .map(|f| {
                    let mut l = admitted(f);
                    rng.shuffle(&mut l);
                    l
                })
                .collect();
            let nt = world.types[r.roles[1 - from].ty.id()].members.len();
            let mut owner: Vec<Option<usize>> = vec![None; nt];
            fn augment(
                f: usize,
                lists: &[Vec<usize>],
                owner: &mut [Option<usize>],
                seen: &mut [bool],
            ) -> bool {
                for &t in &lists[f] {
                    if seen[t] {
                        continue;
                    }
                    seen[t] = true;
                    if owner[t].is_none_or(|o| augment(o, lists, owner, seen)) {
                        owner[t] = Some(f);
                        return true;
                    }
                }
                false
            }
            for &f in &order {
                let mut seen = vec![false; nt];
                if !augment(f, &lists, &mut owner, &mut seen) {
                    return Err(GenError::Invalid(format!(
                        "relation `{}`: `one_to_one` cannot give `{}` {} a `{}` of its own that its `where` admits",
                        r.name,
                        r.roles[from].name,
                        name(f),
                        r.roles[1 - from].name
                    )));
                }
            }
            let mut out: Vec<(u32, u32)> = owner
                .iter()
                .enumerate()
                .filter_map(|(t, o)| o.map(|f| pair(f, t)))
                .collect();
            out.sort_unstable();
            out
        }
        GenKind::Function | GenKind::Assign => {
            let (lo, hi) = partner_bounds(r, g, params)?;
            let mut out = Vec::new();
            for f in 0..cands.len() {
                let k = rng.range_i64(lo, hi) as usize;
                let pool = admitted(f);
                if k > pool.len() {
                    return Err(short(f, k, pool.len()));
                }
                for i in sample_distinct(rng, pool.len(), k, None) {
                    out.push(pair(f, pool[i]));
                }
            }
            out
        }
        GenKind::FamilyTree => {
            return Err(GenError::Internal(format!(
                "relation `{}`: a family tree with a `where` reached generation",
                r.name
            )));
        }
    })
}

/// Whether an attribute is built from a relation (`"{based_in} {suffix}"`).
fn is_late(a: &crate::lang::ir::Attribute) -> bool {
    matches!(&a.source, AttrSource::Text(parts) if parts
        .iter()
        .any(|p| matches!(p, TextPart::Hole { to: Hole::Relation(_), .. })))
}

/// Fills the attributes built from relations, now that the relations exist: each entity's
/// one partner is named in the text. A key or `unique` one that collides redraws the
/// entity's own attributes the template reads ("Dravost Rovers" for a second "Dravost
/// United"), from a stream of its own.
fn fill_late(ir: &Ir, world: &mut World, params: &Params, seed: u64) -> Result<(), GenError> {
    for (ti, ety) in ir.entities.iter().enumerate() {
        for a in ety.inherited..ety.attrs.len() {
            let AttrSource::Text(parts) = &ety.attrs[a].source else {
                continue;
            };
            if !is_late(&ety.attrs[a]) {
                continue;
            }
            let unique = ety.attrs[a].unique || a == ety.key.index();
            let own: Vec<usize> = parts
                .iter()
                .filter_map(|p| match p {
                    TextPart::Hole {
                        to: Hole::Attr(i), ..
                    } if !is_late(&ety.attrs[*i]) => Some(*i),
                    _ => None,
                })
                .collect();
            // Each entity's one partner through each relation the template names.
            let mut partners: HashMap<usize, Vec<Option<u32>>> = HashMap::new();
            for p in parts {
                let TextPart::Hole {
                    to: Hole::Relation(r),
                    ..
                } = p
                else {
                    continue;
                };
                let rel = &ir.relations[*r];
                let from = match &rel.def {
                    RelationDef::Base(g) => from_role(rel, g)?,
                    RelationDef::Derived(_) => 0,
                };
                let mut v = vec![None; world.types[ti].space];
                for &(x, y) in world.base[*r].as_ref().map_or(&[][..], |f| &f.pairs[..]) {
                    let (me, other) = if from == 0 { (x, y) } else { (y, x) };
                    if let Some(slot) = v.get_mut(me as usize) {
                        *slot = Some(other);
                    }
                }
                partners.insert(*r, v);
            }
            let mut rng = Rng::stream(seed, &format!("late/{}/{}", ety.name, ety.attrs[a].name));
            let mut used: HashSet<String> = HashSet::new();
            for e in world.types[ti].members.clone() {
                let mut tries = 0;
                loop {
                    let text = late_text(ir, world, ti, parts, e, &partners);
                    if !unique || used.insert(text.clone()) {
                        set_value(ir, world, ti, a, e, AttrVal::Text(text.into()));
                        break;
                    }
                    tries += 1;
                    if tries > 10_000 || own.is_empty() {
                        return Err(GenError::Invalid(format!(
                            "could not give the `{}` entities distinct `{}` values: `{text}` comes again; add values to the pools the template reads",
                            ety.name, ety.attrs[a].name
                        )));
                    }
                    let row: Vec<Option<AttrVal>> = (0..ety.attrs.len())
                        .map(|i| Some(world.types[ti].columns[i][e].clone()))
                        .collect();
                    for &i in &own {
                        let v = draw(ir, ety, i, &row, params, &mut rng)?;
                        set_value(ir, world, ti, i, e, v);
                    }
                }
            }
        }
    }
    Ok(())
}

/// The text of attribute template `parts` for entity `e` of type `ti`.
fn late_text(
    ir: &Ir,
    world: &World,
    ti: usize,
    parts: &[TextPart],
    e: usize,
    partners: &HashMap<usize, Vec<Option<u32>>>,
) -> String {
    let ety = &ir.entities[ti];
    let mut s = String::new();
    for p in parts {
        match p {
            TextPart::Lit(l) | TextPart::Agree { singular: l, .. } => s.push_str(l),
            TextPart::Hole {
                to: Hole::Attr(i), ..
            } => {
                s.push_str(&render(ir, ety, *i, &world.types[ti].columns[*i][e]));
            }
            TextPart::Hole {
                to: Hole::Relation(r),
                ..
            } => {
                let rel = &ir.relations[*r];
                let from = match &rel.def {
                    RelationDef::Base(g) => from_role(rel, g).unwrap_or(0),
                    RelationDef::Derived(_) => 0,
                };
                let partner = partners.get(r).and_then(|v| v.get(e).copied().flatten());
                if let Some(o) = partner {
                    let t = rel.roles[1 - from].ty.id();
                    let td = &world.types[t];
                    s.push_str(&render(
                        ir,
                        &ir.entities[t],
                        td.key,
                        &td.columns[td.key][o as usize],
                    ));
                }
            }
            TextPart::Hole { .. } => {}
        }
    }
    s
}

/// Sets attribute `a` of entity `e` in type `ti` and in every subtype that inherits it.
fn set_value(ir: &Ir, world: &mut World, ti: usize, a: usize, e: usize, v: AttrVal) {
    for s in 0..ir.entities.len() {
        if ir.is_a(s, ti) {
            world.types[s].columns[a][e] = v.clone();
        }
    }
}

/// The base relations a generator's `where` reads.
fn reads(g: &Generator) -> Vec<usize> {
    g.given
        .iter()
        .flat_map(|rule| &rule.body)
        .filter_map(|b| match b {
            crate::lang::ir::BodyIr::Atom { relation, .. } => Some(relation.id()),
            _ => None,
        })
        .collect()
}

/// For each `from` entity of relation `ri` (by its index among the role type's members),
/// the partners (by index among theirs) that its `where` admits: the clause's rule
/// evaluated by the solver over the relations generated so far.
fn where_candidates(
    ir: &Ir,
    world: &mut World,
    ri: usize,
    rule: &crate::lang::ir::RuleIr,
    g: &Generator,
    params: &Params,
) -> Result<Vec<Vec<usize>>, GenError> {
    let r = &ir.relations[ri];
    let from = drawing_role(r, g)?;
    let mut ir2 = ir.clone();
    ir2.relations.push(Relation {
        name: format!("{}/where", r.name),
        symmetric: false,
        irreflexive: false,
        cards: Vec::new(),
        def: RelationDef::Derived(vec![rule.clone()]),
        says: Vec::new(),
        attrs: Vec::new(),
        stratum: ir.relations.iter().map(|x| x.stratum).max().unwrap_or(0) + 1,
        recursive: false,
        ..r.clone()
    });
    world.base.push(None);
    let out = {
        let world: &World = world;
        super::solve::Solver::new(&ir2, world, params).map(|solver| {
            let to = &world.types[r.roles[1 - from].ty.id()].members;
            world.types[r.roles[from].ty.id()]
                .ids()
                .map(|x| {
                    solver
                        .image(ir.relations.len(), from, x)
                        .into_iter()
                        .map(|y| y as usize)
                        .filter(|y| to.contains(y))
                        .map(|y| y - to.start)
                        .collect()
                })
                .collect()
        })
    };
    world.base.pop();
    out
}

/// The base facts of relation `ri`, drawn by its generator; `cands` restricts each `from`
/// entity's partners to those its `where` admits.
#[allow(clippy::too_many_arguments)]
fn relation_facts(
    ir: &Ir,
    world: &World,
    ri: usize,
    g: &Generator,
    trees: &HashMap<usize, TreeOut>,
    params: &Params,
    seed: u64,
    cands: Option<&[Vec<usize>]>,
) -> Result<Facts, GenError> {
    let r = &ir.relations[ri];
    let (t0, t1) = (r.roles[0].ty.id(), r.roles[1].ty.id());
    // Generators draw local indices among each role's members, shifted into the space.
    let (n0, n1) = (world.types[t0].members.len(), world.types[t1].members.len());
    let (o0, o1) = (
        world.types[t0].members.start as u32,
        world.types[t1].members.start as u32,
    );
    let mut rng = Rng::stream(seed, &format!("relation/{}", r.name));
    let mut pairs: Vec<(u32, u32)> = match (cands, g.kind) {
        (Some(c), _) => constrained(ir, world, ri, g, params, &mut rng, c)?,
        (None, GenKind::FamilyTree) => {
            let child_role = match g.args.get("parent") {
                Some(GenArg::Name(p)) if *p == r.roles[0].name => 1,
                _ => 0,
            };
            let t = trees
                .get(&t0)
                .map(|t| t.parent_of.as_slice())
                .unwrap_or(&[]);
            t.iter()
                .map(|&(c, p)| if child_role == 0 { (c, p) } else { (p, c) })
                .collect()
        }
        (None, GenKind::RandomGraph) => {
            let d = match g.args.get("mean_degree") {
                Some(GenArg::Num(n)) => params.float(n),
                _ => 0.0,
            };
            random_graph(&mut rng, n0, n1, d, r.symmetric, r.irreflexive && t0 == t1)
        }
        (None, GenKind::OneToOne) => {
            let from = from_role(r, g)?;
            let (nf, nt) = if from == 0 { (n0, n1) } else { (n1, n0) };
            if nf > nt {
                return Err(GenError::Invalid(format!(
                    "relation `{}`: `one_to_one` gives each of the {nf} `{}` its own `{}`, but only {nt} exist",
                    r.name,
                    r.roles[from].name,
                    r.roles[1 - from].name
                )));
            }
            let mut perm: Vec<usize> = (0..nt).collect();
            rng.shuffle(&mut perm);
            // Over one type an irreflexive pairing never pairs an entity with itself:
            // swapping with the next slot moves it without creating another.
            if r.irreflexive && t0 == t1 && nt > 1 {
                for f in 0..nf {
                    if perm[f] == f {
                        perm.swap(f, (f + 1) % nt);
                    }
                }
            }
            (0..nf)
                .map(|f| {
                    let (a, b) = (f as u32, perm[f] as u32);
                    if from == 0 { (a, b) } else { (b, a) }
                })
                .collect()
        }
        (None, GenKind::Function | GenKind::Assign) => {
            let from = from_role(r, g)?;
            let (lo, hi) = partner_bounds(r, g, params)?;
            let (nf, nt) = if from == 0 { (n0, n1) } else { (n1, n0) };
            let irreflexive = r.irreflexive && t0 == t1;
            let mut out = Vec::new();
            for f in 0..nf {
                let k = rng.range_i64(lo, hi) as usize;
                let avail = nt - usize::from(irreflexive && f < nt);
                if k > avail {
                    return Err(GenError::Invalid(format!(
                        "relation `{}` needs {k} distinct partners for each `{}` but only {avail} exist",
                        r.name, r.roles[from].name
                    )));
                }
                for t in sample_distinct(&mut rng, nt, k, irreflexive.then_some(f)) {
                    let (a, b) = (f as u32, t as u32);
                    out.push(if from == 0 { (a, b) } else { (b, a) });
                }
            }
            out
        }
    };
    if (o0, o1) != (0, 0) {
        for p in &mut pairs {
            *p = (p.0 + o0, p.1 + o1);
        }
    }
    // Roles of types that share entities (a person and a player) meet here first.
    if r.irreflexive && t0 != t1 {
        pairs.retain(|p| p.0 != p.1);
    }
    if r.symmetric {
        for p in &mut pairs {
            if p.0 > p.1 {
                *p = (p.1, p.0);
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    // Each fact attribute draws from a stream of its own, fact by fact in pair order.
    let mut values = Vec::with_capacity(r.attrs.len());
    for a in &r.attrs {
        let mut rng = Rng::stream(seed, &format!("relation/{}/{}", r.name, a.name));
        let col = pairs
            .iter()
            .map(|_| draw_source(ir, None, &a.source, &[], params, &mut rng))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| match e {
                GenError::Invalid(m) => GenError::Invalid(format!(
                    "relation `{}`, attribute `{}`: {m}",
                    r.name, a.name
                )),
                e => e,
            })?;
        values.push(col);
    }
    Ok(Facts { pairs, values })
}

/// The role a `function`, `one_to_one` or `assign` generator generates from.
fn from_role(r: &Relation, g: &Generator) -> Result<usize, GenError> {
    match g.args.get("from") {
        Some(GenArg::Name(f)) => r.role_index(f),
        _ => None,
    }
    .ok_or_else(|| {
        GenError::Internal(format!(
            "relation `{}`: the generator's `from` names no role",
            r.name
        ))
    })
}

/// The role whose entities draw partners: `from`, or role 0 for a random graph.
fn drawing_role(r: &Relation, g: &Generator) -> Result<usize, GenError> {
    match g.kind {
        GenKind::RandomGraph => Ok(0),
        _ => from_role(r, g),
    }
}

/// How many partners `function` (exactly one) and `assign` (`min..=max`) give each entity.
fn partner_bounds(r: &Relation, g: &Generator, params: &Params) -> Result<(i64, i64), GenError> {
    let (lo, hi) = if g.kind == GenKind::Function {
        (1, 1)
    } else {
        let get = |k: &str| match g.args.get(k) {
            Some(GenArg::Num(n)) => params.int(n),
            _ => 0,
        };
        (get("min"), get("max"))
    };
    if lo < 0 || hi < lo {
        return Err(GenError::Invalid(format!(
            "relation `{}`: assign needs 0 <= min <= max, got {lo}..{hi}",
            r.name
        )));
    }
    Ok((lo, hi))
}

/// `k` distinct values of `0..n`, skipping `skip`, in random order.
fn sample_distinct(rng: &mut Rng, n: usize, k: usize, skip: Option<usize>) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(k);
    if k * 4 >= n {
        let mut all: Vec<usize> = (0..n).filter(|&x| Some(x) != skip).collect();
        rng.shuffle(&mut all);
        all.truncate(k);
        return all;
    }
    while out.len() < k {
        let x = rng.index(n);
        if Some(x) != skip && !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn random_graph(
    rng: &mut Rng,
    n0: usize,
    n1: usize,
    mean_degree: f64,
    symmetric: bool,
    irreflexive: bool,
) -> Vec<(u32, u32)> {
    if n0 == 0 || n1 == 0 || mean_degree <= 0.0 {
        return Vec::new();
    }
    // A symmetric edge gives both ends a partner, so half as many edges reach the mean.
    let wanted = (n0 as f64 * mean_degree / if symmetric { 2.0 } else { 1.0 }).round() as usize;
    let possible = if symmetric {
        n0 * (n0 - usize::from(irreflexive)) / 2 + if irreflexive { 0 } else { n0 }
    } else {
        n0 * n1 - if irreflexive { n0.min(n1) } else { 0 }
    };
    let wanted = wanted.min(possible);
    let mut seen: HashSet<(u32, u32)> = HashSet::with_capacity(wanted);
    let mut out = Vec::with_capacity(wanted);
    while out.len() < wanted {
        let a = rng.index(n0) as u32;
        let b = rng.index(n1) as u32;
        if irreflexive && a == b {
            continue;
        }
        let key = if symmetric && a > b { (b, a) } else { (a, b) };
        if seen.insert(key) {
            out.push(key);
        }
    }
    out
}

/// What family trees decide: how many people, who is whose parent, and attribute values the
/// trees fix (gender, date of birth, surname) by attribute index.
struct TreeOut {
    len: usize,
    parent_of: Vec<(u32, u32)>,
    fixed: HashMap<usize, Vec<AttrVal>>,
}

struct Person {
    gender: u16,
    /// Birth date in days relative to the tree's first person.
    born: i64,
    generation: i64,
    surname: Option<u32>,
    spouse: Option<usize>,
    parents: Option<(usize, usize)>,
    children: Vec<usize>,
    done: bool,
}

const YEAR: i64 = 365;

/// PhantomWiki-style family trees: each tree starts with one person and grows, one step at a
/// time, by giving a random person parents (a couple) or a child (creating a spouse with the
/// first child), until it has `max_size` people or nobody can be extended. `stop_prob` is the
/// chance that a picked person is closed for good instead of being extended, which trades
/// bushy trees for long lines. Generations stay within `max_depth`; a couple has at most
/// `max_branching` children. Parents are 20–35 years older than their first child, siblings
/// 1–6 years apart, and 3 % of births are twins.
fn family_trees(
    ir: &Ir,
    ti: usize,
    g: &crate::lang::ir::Generator,
    params: &Params,
    seed: u64,
) -> Result<TreeOut, GenError> {
    let ety = &ir.entities[ti];
    let num = |k: &str, default: f64| match g.args.get(k) {
        Some(GenArg::Num(n)) => params.float(n),
        _ => default,
    };
    let n_trees = num("trees", 1.0).max(0.0) as usize;
    let max_size = num("max_size", 25.0).max(1.0) as usize;
    let max_depth = num("max_depth", 20.0).max(1.0) as i64;
    let max_branching = num("max_branching", 5.0).max(1.0) as usize;
    let stop_prob = num("stop_prob", 0.5).clamp(0.0, 0.99);
    let attr_of = |k: &str| match g.args.get(k) {
        Some(GenArg::Name(a)) => ety.attrs.iter().position(|x| &x.name == a),
        _ => None,
    };
    let gender_attr = attr_of("gender");
    let birth_attr = attr_of("birth");
    let surname_attr = attr_of("surname");
    let n_genders = gender_attr
        .and_then(|a| match &ety.attrs[a].ty {
            AttrType::Enum(v) => Some(v.len() as u16),
            _ => None,
        })
        .unwrap_or(2)
        .max(1);
    // Surnames come from the surname attribute's own source when it is a pool.
    let surname_pool = surname_attr.and_then(|a| match &ety.attrs[a].source {
        AttrSource::Pool(p) => Some(p.id()),
        _ => None,
    });
    let (date_lo, date_hi) = birth_attr
        .and_then(|a| match &ety.attrs[a].source {
            AttrSource::Date(lo, hi) => Some((date_bound(lo, params)?, date_bound(hi, params)?)),
            _ => None,
        })
        .unwrap_or((0, 0));

    let mut out = TreeOut {
        len: 0,
        parent_of: Vec::new(),
        fixed: HashMap::new(),
    };
    let mut genders = Vec::new();
    let mut births = Vec::new();
    let mut surnames = Vec::new();
    for tree in 0..n_trees {
        let mut rng = Rng::stream(seed, &format!("family_tree/{}/{tree}", ety.name));
        let surname_count = surname_pool.map_or(0, |p| ir.pools[p].values.len());
        let new_surname =
            |rng: &mut Rng| (surname_count > 0).then(|| rng.index(surname_count) as u32);
        let mut people: Vec<Person> = Vec::new();
        let first_surname = new_surname(&mut rng);
        people.push(Person {
            gender: rng.below(u64::from(n_genders)) as u16,
            born: 0,
            generation: 0,
            surname: first_surname,
            spouse: None,
            parents: None,
            children: Vec::new(),
            done: false,
        });
        let (mut gen_lo, mut gen_hi) = (0i64, 0i64);
        let mut guard = 0usize;
        while people.len() < max_size && guard < max_size * 50 {
            guard += 1;
            let open: Vec<usize> = (0..people.len()).filter(|&i| !people[i].done).collect();
            let Some(&p) = rng.pick(&open) else { break };
            if rng.chance(stop_prob) {
                people[p].done = true;
                continue;
            }
            let g = people[p].generation;
            let can_parents = people[p].parents.is_none()
                && people.len() + 2 <= max_size
                && (gen_hi - (g - 1)) < max_depth;
            let couple_children = people[p].children.len();
            let can_child = couple_children < max_branching
                && (g + 1 - gen_lo) < max_depth
                && people.len() + usize::from(people[p].spouse.is_none()) < max_size;
            let add_parents = match (can_parents, can_child) {
                (true, true) => rng.chance(0.5),
                (true, false) => true,
                (false, true) => false,
                (false, false) => {
                    people[p].done = true;
                    continue;
                }
            };
            if add_parents {
                let gap = rng.range_i64(20 * YEAR, 35 * YEAR);
                let mother_gender = 0u16;
                let father_gender = if n_genders > 1 { 1 } else { 0 };
                let father_surname = people[p].surname;
                let mother_surname = new_surname(&mut rng);
                let fi = people.len();
                let mi = fi + 1;
                let born = people[p].born;
                people.push(Person {
                    gender: father_gender,
                    born: born - gap - rng.range_i64(0, 8 * YEAR),
                    generation: g - 1,
                    surname: father_surname,
                    spouse: Some(mi),
                    parents: None,
                    children: vec![p],
                    done: false,
                });
                people.push(Person {
                    gender: mother_gender,
                    born: born - gap,
                    generation: g - 1,
                    surname: mother_surname,
                    spouse: Some(fi),
                    parents: None,
                    children: vec![p],
                    done: false,
                });
                people[p].parents = Some((fi, mi));
                gen_lo = gen_lo.min(g - 1);
            } else {
                let spouse = match people[p].spouse {
                    Some(s) => s,
                    None => {
                        let s = people.len();
                        let gender = if n_genders > 1 {
                            let mut x = rng.below(u64::from(n_genders - 1)) as u16;
                            if x >= people[p].gender {
                                x += 1;
                            }
                            x
                        } else {
                            0
                        };
                        let surname = new_surname(&mut rng);
                        let born = people[p].born + rng.range_i64(-5 * YEAR, 5 * YEAR);
                        people.push(Person {
                            gender,
                            born,
                            generation: g,
                            surname,
                            spouse: Some(p),
                            parents: None,
                            children: Vec::new(),
                            done: false,
                        });
                        people[p].spouse = Some(s);
                        s
                    }
                };
                // The child takes the surname of the parent whose gender is not variant 0
                // (the father, with PhantomWiki's `female, male` order).
                let father = if people[p].gender != 0 { p } else { spouse };
                let last_sibling = people[p].children.iter().map(|&c| people[c].born).max();
                let born = match last_sibling {
                    Some(b) if rng.chance(0.03) => b,
                    Some(b) => b + rng.range_i64(YEAR, 6 * YEAR),
                    None => {
                        people[p].born.max(people[spouse].born)
                            + rng.range_i64(20 * YEAR, 35 * YEAR)
                    }
                };
                let c = people.len();
                let surname = people[father].surname;
                people.push(Person {
                    gender: rng.below(u64::from(n_genders)) as u16,
                    born,
                    generation: g + 1,
                    surname,
                    spouse: None,
                    parents: Some((p, spouse)),
                    children: Vec::new(),
                    done: false,
                });
                people[p].children.push(c);
                people[spouse].children.push(c);
                gen_hi = gen_hi.max(g + 1);
            }
        }
        // Shift the tree so its youngest member is born in the last fifth of the range (or
        // anywhere, when the range is narrower than the tree's span).
        let (min_b, max_b) = people.iter().fold((i64::MAX, i64::MIN), |(a, b), p| {
            (a.min(p.born), b.max(p.born))
        });
        let span = max_b - min_b;
        let (lo, hi) = (i64::from(date_lo), i64::from(date_hi));
        let latest = if hi - lo > span {
            let earliest_end = (lo + span).max(hi - (hi - lo) / 5);
            rng.range_i64(earliest_end, hi)
        } else {
            hi
        };
        let shift = latest - max_b;
        let base = out.len as u32;
        for (i, p) in people.iter().enumerate() {
            genders.push(AttrVal::Enum(p.gender));
            births.push(AttrVal::Date((p.born + shift) as i32));
            surnames.push(match (p.surname, surname_pool) {
                (Some(s), Some(pool)) => AttrVal::Pool {
                    pool: pool as u16,
                    idx: s,
                },
                _ => AttrVal::Text("".into()),
            });
            if let Some((a, b)) = p.parents {
                out.parent_of.push((base + i as u32, base + a as u32));
                out.parent_of.push((base + i as u32, base + b as u32));
            }
        }
        out.len += people.len();
    }
    if let Some(a) = gender_attr {
        out.fixed.insert(a, genders);
    }
    if let Some(a) = birth_attr {
        out.fixed.insert(a, births);
    }
    if let (Some(a), Some(_)) = (surname_attr, surname_pool) {
        out.fixed.insert(a, surnames);
    }
    Ok(out)
}

fn date_bound(b: &DateBound, params: &Params) -> Option<i32> {
    match b {
        DateBound::Date(d) => parse_date(d),
        DateBound::Param(p) => match params.get(p) {
            Some(crate::lang::ir::Value::Date(d)) => parse_date(d),
            _ => None,
        },
    }
}

/// Attribute values for `len` entities of type `ti`. Attributes are filled in dependency
/// order (a text template after the attributes it uses); key and `unique` attributes are
/// redrawn until they differ from every earlier entity's.
fn entities(
    ir: &Ir,
    ti: usize,
    len: usize,
    fixed: Option<&HashMap<usize, Vec<AttrVal>>>,
    params: &Params,
    seed: u64,
) -> Result<TypeData, GenError> {
    let ety = &ir.entities[ti];
    let n_attrs = ety.attrs.len();
    let order = attr_order(ety);
    let key = ety.key.index();
    // Attributes built from relations are filled once the relations exist (`fill_late`).
    let late: Vec<bool> = ety.attrs.iter().map(is_late).collect();
    let unique: Vec<usize> = (0..n_attrs)
        .filter(|&a| (ety.attrs[a].unique || a == key) && !late[a])
        .collect();
    // Which attributes each unique attribute is built from, so a collision redraws only them.
    let deps: Vec<Vec<usize>> = (0..n_attrs)
        .map(|a| {
            let mut d = Vec::new();
            collect_deps(ety, a, &mut d);
            d
        })
        .collect();
    let mut columns: Vec<Vec<AttrVal>> = (0..n_attrs).map(|_| Vec::with_capacity(len)).collect();
    let mut used: Vec<HashSet<AttrVal>> = unique.iter().map(|_| HashSet::new()).collect();
    let mut rng = Rng::stream(seed, &format!("entities/{}", ety.name));
    let mut row: Vec<Option<AttrVal>> = vec![None; n_attrs];
    for e in 0..len {
        row.iter_mut().for_each(|v| *v = None);
        if let Some(f) = fixed {
            for (&a, vals) in f {
                row[a] = vals.get(e).cloned();
            }
        }
        let is_fixed = |a: usize| fixed.is_some_and(|f| f.contains_key(&a));
        for &a in &order {
            if row[a].is_none() {
                row[a] = Some(if late[a] {
                    AttrVal::Text("".into())
                } else {
                    draw(ir, ety, a, &row, params, &mut rng)?
                });
            }
        }
        for (ui, &u) in unique.iter().enumerate() {
            let mut tries = 0;
            while used[ui].contains(row[u].as_ref().expect("filled")) {
                tries += 1;
                let free: Vec<usize> = deps[u].iter().copied().filter(|&d| !is_fixed(d)).collect();
                if tries > 10_000 || free.is_empty() {
                    return Err(GenError::Invalid(format!(
                        "could not give {len} `{}` entities distinct `{}` values (stuck at entity {e}): add values to the pools or lower the count",
                        ety.name, ety.attrs[u].name
                    )));
                }
                for &d in &free {
                    row[d] = None;
                }
                for &a in &order {
                    if row[a].is_none() && !late[a] {
                        row[a] = Some(draw(ir, ety, a, &row, params, &mut rng)?);
                    }
                }
            }
            used[ui].insert(row[u].clone().expect("filled"));
        }
        for (a, v) in row.iter_mut().enumerate() {
            columns[a].push(v.take().expect("every attribute was filled"));
        }
    }
    Ok(TypeData {
        name: ety.name.clone(),
        space: len,
        members: 0..len,
        own: 0..len,
        columns,
        key,
    })
}

/// The attribute itself and everything its value is computed from.
fn collect_deps(ety: &crate::lang::ir::EntityType, a: usize, out: &mut Vec<usize>) {
    if out.contains(&a) {
        return;
    }
    out.push(a);
    let mut deps = Vec::new();
    source_deps(&ety.attrs[a].source, &mut deps);
    for i in deps {
        collect_deps(ety, i, out);
    }
}

/// The attributes a source reads: a `match`'s attribute, a text template's placeholders.
fn source_deps(s: &AttrSource, out: &mut Vec<usize>) {
    match s {
        AttrSource::Match { on, arms } => {
            out.push(on.index());
            for (_, s) in arms {
                source_deps(s, out);
            }
        }
        AttrSource::Text(parts) => {
            for p in parts {
                if let TextPart::Hole {
                    to: Hole::Attr(i), ..
                } = p
                {
                    out.push(*i);
                }
            }
        }
        _ => {}
    }
}

/// Attributes in an order where each comes after those it depends on (the checker has
/// ruled out cycles).
fn attr_order(ety: &crate::lang::ir::EntityType) -> Vec<usize> {
    let n = ety.attrs.len();
    let mut order = Vec::with_capacity(n);
    let mut state = vec![0u8; n];
    fn visit(
        ety: &crate::lang::ir::EntityType,
        a: usize,
        state: &mut [u8],
        order: &mut Vec<usize>,
    ) {
        if state[a] != 0 {
            return;
        }
        state[a] = 1;
        let mut deps = Vec::new();
        source_deps(&ety.attrs[a].source, &mut deps);
        for i in deps {
            visit(ety, i, state, order);
        }
        state[a] = 2;
        order.push(a);
    }
    for a in 0..n {
        visit(ety, a, &mut state, &mut order);
    }
    order
}

fn draw(
    ir: &Ir,
    ety: &crate::lang::ir::EntityType,
    a: usize,
    row: &[Option<AttrVal>],
    params: &Params,
    rng: &mut Rng,
) -> Result<AttrVal, GenError> {
    draw_source(ir, Some(ety), &ety.attrs[a].source, row, params, rng)
}

/// One value of a source; `ety` is the entity type whose row a `match` or text template
/// reads (a fact attribute has neither).
fn draw_source(
    ir: &Ir,
    ety: Option<&crate::lang::ir::EntityType>,
    s: &AttrSource,
    row: &[Option<AttrVal>],
    params: &Params,
    rng: &mut Rng,
) -> Result<AttrVal, GenError> {
    Ok(match s {
        AttrSource::Enum(v) => AttrVal::Enum(rng.index(v.len().max(1)) as u16),
        AttrSource::Pool(p) => {
            let pi = p.id();
            let n = ir.pools[pi].values.len();
            if n == 0 {
                return Err(GenError::Invalid(format!("pool `{p}` is empty")));
            }
            AttrVal::Pool {
                pool: pi as u16,
                idx: rng.index(n) as u32,
            }
        }
        AttrSource::Int(lo, hi) => {
            let (lo, hi) = (params.int(lo), params.int(hi));
            if hi < lo {
                return Err(GenError::Invalid(format!("empty int range {lo}..{hi}")));
            }
            AttrVal::Int(rng.range_i64(lo, hi))
        }
        AttrSource::Date(lo, hi) => {
            let (Some(lo), Some(hi)) = (date_bound(lo, params), date_bound(hi, params)) else {
                return Err(GenError::Invalid("a date bound is not a date".into()));
            };
            if hi < lo {
                return Err(GenError::Invalid("empty date range".into()));
            }
            AttrVal::Date(rng.range_i64(i64::from(lo), i64::from(hi)) as i32)
        }
        AttrSource::Match { on, arms } => {
            let oi = on.index();
            let variant = match row.get(oi).and_then(|v| v.as_ref()) {
                Some(AttrVal::Enum(i)) => match ety.map(|e| &e.attrs[oi].ty) {
                    Some(AttrType::Enum(vs)) => vs.get(*i as usize).cloned().unwrap_or_default(),
                    _ => String::new(),
                },
                _ => String::new(),
            };
            let arm = arms
                .iter()
                .find(|(v, _)| *v == variant)
                .or_else(|| arms.first())
                .map(|(_, s)| s)
                .ok_or_else(|| GenError::Invalid(format!("`match {on}` has no arms")))?;
            draw_source(ir, ety, arm, row, params, rng)?
        }
        AttrSource::Text(parts) => {
            let mut s = String::new();
            for p in parts {
                match p {
                    // The checker allows agreement only in question templates.
                    TextPart::Lit(l) | TextPart::Agree { singular: l, .. } => s.push_str(l),
                    TextPart::Hole { to, .. } => {
                        if let Hole::Attr(i) = *to
                            && let Some(ety) = ety
                            && let Some(v) = row.get(i).and_then(|v| v.as_ref())
                        {
                            s.push_str(&render(ir, ety, i, v));
                        }
                    }
                }
            }
            AttrVal::Text(s.into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for s in [
            "1970-01-01",
            "2000-02-29",
            "1800-12-31",
            "1066-10-14",
            "2030-06-15",
        ] {
            assert_eq!(format_date(parse_date(s).unwrap()), s);
        }
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("2001-02-29"), None);
        assert_eq!(parse_date("2001-2-09"), None);
    }

    #[test]
    fn numbers_group_by_thousands() {
        for (i, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (2_826_880, "2,826,880"),
            (-12_345, "-12,345"),
        ] {
            assert_eq!(grouped(i), s);
        }
    }

    #[test]
    fn random_graph_meets_the_mean_degree() {
        let mut rng = Rng::new(3);
        let g = random_graph(&mut rng, 1000, 1000, 3.0, true, true);
        assert_eq!(g.len(), 1500);
        assert!(g.iter().all(|(a, b)| a < b));
    }
}
