//! The universe and the query engine against a brute-force oracle: every derived relation of
//! every shipped domain, on small random universes, evaluated naively (whole-relation nested
//! loop joins, stratum by stratum, to a fixpoint) must equal what the solver answers.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::root;
use synthpipe::lang::check_file;
use synthpipe::lang::ir::{AttrType, BodyIr, Ir, RelationDef, TestValueIr, Value};
use synthpipe::universe::params::Params;
use synthpipe::universe::solve::Solver;
use synthpipe::universe::world::{self, AttrVal, World, parse_date, render};

type Rel = BTreeSet<(u32, u32)>;

fn load(path: &str) -> Ir {
    let (text, checked) = check_file(&root().join(path)).unwrap();
    checked
        .ir
        .unwrap_or_else(|| panic!("{path} must check clean:\n{text:.0}"))
}

fn sets(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Small universes of every shipped domain, so the naive oracle stays fast.
fn small_domains() -> Vec<(&'static str, Vec<(String, String)>)> {
    vec![
        (
            "rules/family.rules",
            sets(&[
                ("trees", "3"),
                ("max_tree_size", "14"),
                ("friend_degree", "2.0"),
            ]),
        ),
        (
            "rules/wiki.rules",
            sets(&[
                ("countries", "4"),
                ("cities", "8"),
                ("people", "30"),
                ("films", "15"),
                ("companies", "5"),
            ]),
        ),
        (
            "rules/academia.rules",
            sets(&[
                ("universities", "4"),
                ("researchers", "25"),
                ("papers", "30"),
                ("fields", "5"),
            ]),
        ),
        ("tests/grammar/ok/school.rules", Vec::new()),
        ("tests/grammar/ok/features.rules", Vec::new()),
    ]
}

fn attr_cmp(
    ir: &Ir,
    w: &World,
    ty: usize,
    attr: usize,
    e: u32,
    other: &AttrVal,
    other_text: &str,
) -> std::cmp::Ordering {
    let v = &w.types[ty].columns[attr][e as usize];
    match (v, other) {
        (AttrVal::Int(a), AttrVal::Int(b)) => a.cmp(b),
        (AttrVal::Date(a), AttrVal::Date(b)) => a.cmp(b),
        _ => render(ir, &ir.entities[ty], attr, v)
            .as_str()
            .cmp(other_text),
    }
}

fn holds(op: &str, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        "=" => o == Equal,
        "!=" => o != Equal,
        "<" => o == Less,
        "<=" => o != Greater,
        ">" => o == Greater,
        ">=" => o != Less,
        _ => panic!("unknown op {op}"),
    }
}

/// Naive evaluation of every relation: no indexes, no top-down search, no semi-naive deltas,
/// and names looked up afresh (so it also checks the ids the checker linked).
fn oracle(path: &str, ir: &Ir, w: &World, params: &Params) -> Vec<Rel> {
    let ty = |n: &str| w.type_index(n).unwrap();
    let mut rels: Vec<Rel> = vec![Rel::new(); ir.relations.len()];
    for (i, r) in ir.relations.iter().enumerate() {
        if let Some(f) = &w.base[i] {
            for &(a, b) in &f.pairs {
                rels[i].insert((a, b));
                if r.symmetric {
                    rels[i].insert((b, a));
                }
            }
        }
    }
    let max_stratum = ir.relations.iter().map(|r| r.stratum).max().unwrap_or(0);
    for stratum in 0..=max_stratum {
        loop {
            let mut changed = false;
            for (i, r) in ir.relations.iter().enumerate() {
                let RelationDef::Derived(rules) = &r.def else {
                    continue;
                };
                if r.stratum != stratum {
                    continue;
                }
                for rule in rules {
                    let nv = rule.vars.len();
                    let vt: Vec<usize> = rule.vars.iter().map(|(_, t)| ty(t.name())).collect();
                    let mut rows: Vec<Vec<Option<u32>>> = vec![vec![None; nv]];
                    for lit in &rule.body {
                        if let BodyIr::Atom {
                            relation,
                            negated: false,
                            args,
                        } = lit
                        {
                            let ri = ir
                                .relations
                                .iter()
                                .position(|x| &x.name == relation)
                                .unwrap();
                            let mut next = Vec::new();
                            for row in &rows {
                                for &(a, b) in &rels[ri] {
                                    if row[args[0]].is_some_and(|x| x != a)
                                        || row[args[1]].is_some_and(|y| y != b)
                                        || (args[0] == args[1] && a != b)
                                    {
                                        continue;
                                    }
                                    let mut n = row.clone();
                                    n[args[0]] = Some(a);
                                    n[args[1]] = Some(b);
                                    next.push(n);
                                }
                            }
                            rows = next;
                        }
                    }
                    for row in rows {
                        let val = |v: usize| {
                            row[v].unwrap_or_else(|| {
                                panic!(
                                    "{path}: `{}` leaves variable {} unbound",
                                    r.name, rule.vars[v].0
                                )
                            })
                        };
                        let ok = rule.body.iter().all(|lit| match lit {
                            BodyIr::Atom { negated: false, .. } => true,
                            BodyIr::Atom {
                                relation,
                                negated: true,
                                args,
                            } => {
                                let ri = ir
                                    .relations
                                    .iter()
                                    .position(|x| &x.name == relation)
                                    .unwrap();
                                // `_` is existential inside a negation.
                                let anon = |v: usize| rule.vars[v].0 == "_";
                                !rels[ri].iter().any(|&(a, b)| {
                                    (anon(args[0]) || val(args[0]) == a)
                                        && (anon(args[1]) || val(args[1]) == b)
                                })
                            }
                            BodyIr::VarTest { left, op, right } => {
                                holds(op.as_str(), val(*left).cmp(&val(*right)))
                            }
                            BodyIr::AttrTest {
                                var,
                                attr,
                                op,
                                value,
                            } => {
                                let t = vt[*var];
                                let ety = &ir.entities[t];
                                let ai = ety.attrs.iter().position(|a| &a.name == attr).unwrap();
                                let lit_val = |v: &Value| -> (AttrVal, String) {
                                    match (&ety.attrs[ai].ty, v) {
                                        (AttrType::Int, Value::Int(i)) => {
                                            (AttrVal::Int(*i), i.to_string())
                                        }
                                        (AttrType::Date, Value::Date(d)) => {
                                            (AttrVal::Date(parse_date(d).unwrap()), d.clone())
                                        }
                                        (_, Value::Str(s)) => {
                                            (AttrVal::Text(s.as_str().into()), s.clone())
                                        }
                                        other => panic!("unexpected test value {other:?}"),
                                    }
                                };
                                let (other, text) = match value {
                                    TestValueIr::Value(v) => lit_val(v),
                                    TestValueIr::Param(p) => lit_val(params.get(p).unwrap()),
                                    TestValueIr::Attr { var: v2, attr: a2 } => {
                                        let t2 = vt[*v2];
                                        let e2 = &ir.entities[t2];
                                        let a2i =
                                            e2.attrs.iter().position(|a| &a.name == a2).unwrap();
                                        let ov =
                                            w.types[t2].columns[a2i][val(*v2) as usize].clone();
                                        let txt = render(ir, e2, a2i, &ov);
                                        (ov, txt)
                                    }
                                };
                                holds(
                                    op.as_str(),
                                    attr_cmp(ir, w, t, ai, val(*var), &other, &text),
                                )
                            }
                        });
                        if !ok {
                            continue;
                        }
                        let (a, b) = (val(0), val(1));
                        let same_type = r.roles[0].ty == r.roles[1].ty;
                        if r.irreflexive && same_type && a == b {
                            continue;
                        }
                        changed |= rels[i].insert((a, b));
                        if r.symmetric {
                            changed |= rels[i].insert((b, a));
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }
    rels
}

#[test]
fn every_derived_relation_matches_the_brute_force_oracle() {
    let mut checked_pairs = 0usize;
    for (path, overrides) in small_domains() {
        let ir = load(path);
        let params = Params::resolve(&ir, &overrides).unwrap();
        for seed in 0..3u64 {
            let w = world::build(&ir, &params, seed).unwrap();
            let solver = Solver::new(&ir, &w, &params).unwrap();
            let expected = oracle(path, &ir, &w, &params);
            for (ri, r) in ir.relations.iter().enumerate() {
                let [t0, t1] = solver.role_types[ri];
                let mut fwd: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
                let mut bwd: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
                for &(a, b) in &expected[ri] {
                    fwd.entry(a).or_default().insert(b);
                    bwd.entry(b).or_default().insert(a);
                }
                for x in 0..w.types[t0].space as u32 {
                    let want: Vec<u32> = fwd
                        .get(&x)
                        .map(|s| s.iter().copied().collect())
                        .unwrap_or_default();
                    assert_eq!(
                        solver.image(ri, 0, x),
                        want,
                        "{path} seed {seed}: {}({x}, ?)",
                        r.name
                    );
                    checked_pairs += want.len();
                }
                for y in 0..w.types[t1].space as u32 {
                    let want: Vec<u32> = bwd
                        .get(&y)
                        .map(|s| s.iter().copied().collect())
                        .unwrap_or_default();
                    assert_eq!(
                        solver.image(ri, 1, y),
                        want,
                        "{path} seed {seed}: {}(?, {y})",
                        r.name
                    );
                }
            }
        }
    }
    assert!(
        checked_pairs > 10_000,
        "the oracle comparison must cover many facts ({checked_pairs})"
    );
}

#[test]
fn family_trees_have_plausible_shape() {
    let ir = load("rules/family.rules");
    let params = Params::resolve(&ir, &sets(&[("trees", "20"), ("max_tree_size", "50")])).unwrap();
    let w = world::build(&ir, &params, 11).unwrap();
    let people = &w.types[w.type_index("person").unwrap()];
    assert!(
        people.space >= 20 * 10,
        "trees grow: {} people",
        people.space
    );
    assert!(people.space <= 20 * 50, "trees stay within max_size");
    let parent = ir
        .relations
        .iter()
        .position(|r| r.name == "parent")
        .unwrap();
    let facts = &w.base[parent].as_ref().unwrap().pairs;
    let dob = ir.entities[0]
        .attrs
        .iter()
        .position(|a| a.name == "dob")
        .unwrap();
    let gender = ir.entities[0]
        .attrs
        .iter()
        .position(|a| a.name == "gender")
        .unwrap();
    let mut parents: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &(child, p) in facts {
        parents.entry(child).or_default().push(p);
        let (AttrVal::Date(c), AttrVal::Date(pd)) = (
            &people.columns[dob][child as usize],
            &people.columns[dob][p as usize],
        ) else {
            panic!("dates")
        };
        let years = (c - pd) as f64 / 365.25;
        assert!(
            (15.0..=60.0).contains(&years),
            "parent {years:.1} years older"
        );
    }
    for ps in parents.values() {
        assert_eq!(ps.len(), 2, "children have a mother and a father");
        let g: BTreeSet<_> = ps
            .iter()
            .map(|&p| people.columns[gender][p as usize].clone())
            .collect();
        assert_eq!(g.len(), 2, "the two parents differ in gender");
    }
    // Names are unique.
    let names: BTreeSet<_> = (0..people.space)
        .map(|e| {
            render(
                &ir,
                &ir.entities[0],
                people.key,
                &people.columns[people.key][e],
            )
        })
        .collect();
    assert_eq!(names.len(), people.space);
}

#[test]
fn same_seed_same_universe_different_seed_different_universe() {
    let ir = load("rules/wiki.rules");
    let params = Params::resolve(&ir, &[]).unwrap();
    let a = world::build(&ir, &params, 5).unwrap();
    let b = world::build(&ir, &params, 5).unwrap();
    let c = world::build(&ir, &params, 6).unwrap();
    let facts = |w: &World| {
        w.base
            .iter()
            .map(|f| f.as_ref().map(|f| f.pairs.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(facts(&a), facts(&b));
    assert_ne!(facts(&a), facts(&c));
    assert_eq!(a.types[0].columns, b.types[0].columns);
}

#[test]
fn bad_overrides_are_explained() {
    let ir = load("rules/family.rules");
    let e = Params::resolve(
        &ir,
        &sets(&[
            ("tress", "3"),
            ("trees", "x"),
            ("stop_prob", "2.0"),
            ("relations", "hard"),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("unknown parameter `tress`; did you mean `trees`?"),
        "{e}"
    );
    assert!(e.contains("`trees` is an int but `x` is not"), "{e}");
    assert!(e.contains("outside its declared range"), "{e}");
    assert!(e.contains("not a declared bank"), "{e}");
}

/// A staff domain whose relations are drawn under `where` clauses, one per generator kind.
const STAFF: &str = r#"
pool depts = ["Surgery", "Radiology", "Oncology", "Pharmacy"];
pool names = ["Ann", "Bob", "Cid", "Dee", "Eve", "Fay", "Gus", "Hal", "Ida", "Jon", "Kim", "Lou"];

entity dept count 4 {
    name: key pool depts;
}

entity person count 12 {
    name: key pool names;
}

relation works_in(person: person, dept: dept) {
    generate assign(from: dept, min: 3, max: 3);
}

relation heads(dept: dept, head: person) {
    generate one_to_one(from: dept) where works_in(person: head, dept: dept);
}

relation colleague(a: person, b: person) symmetric irreflexive {
    generate random_graph(mean_degree: 1.0)
        where works_in(person: a, dept: d), works_in(person: b, dept: d);
}

relation deputy(dept: dept, deputy: person) {
    generate function(from: dept)
        where works_in(person: deputy, dept: dept), not heads(dept: dept, head: deputy);
}

relation nurse(dept: dept, nurse: person) {
    generate assign(from: dept, min: 1, max: 2) where works_in(person: nurse, dept: dept);
}
"#;

#[test]
fn where_clauses_hold_for_every_generator_kind() {
    use synthpipe::lang::check_source;
    let ir = check_source(STAFF, None).ir.expect("checks clean");
    let params = Params::resolve(&ir, &[]).unwrap();
    let rel = |name: &str| ir.relations.iter().position(|r| r.name == name).unwrap();
    let mut edges = 0;
    for seed in 0..20 {
        let w = world::build(&ir, &params, seed).unwrap();
        let pairs = |name: &str| w.base[rel(name)].as_ref().unwrap().pairs.clone();
        let works: BTreeSet<(u32, u32)> = pairs("works_in").into_iter().collect();
        let share =
            |a: u32, b: u32| (0..4).any(|d| works.contains(&(a, d)) && works.contains(&(b, d)));
        let heads = pairs("heads");
        assert_eq!(heads.len(), 4, "every department has its own head");
        let mut bosses: Vec<u32> = heads.iter().map(|p| p.1).collect();
        bosses.sort_unstable();
        bosses.dedup();
        assert_eq!(bosses.len(), 4, "no one heads two departments");
        assert!(
            heads.iter().all(|&(d, h)| works.contains(&(h, d))),
            "{heads:?}"
        );
        let colleagues = pairs("colleague");
        assert!(
            colleagues.iter().all(|&(a, b)| a < b && share(a, b)),
            "{colleagues:?}"
        );
        edges += colleagues.len();
        let deputies = pairs("deputy");
        assert_eq!(deputies.len(), 4);
        assert!(
            deputies
                .iter()
                .all(|&(d, p)| works.contains(&(p, d)) && !heads.contains(&(d, p))),
            "{deputies:?}"
        );
        let nurses = pairs("nurse");
        assert!(
            nurses.iter().all(|&(d, p)| works.contains(&(p, d))),
            "{nurses:?}"
        );
        for d in 0..4 {
            let n = nurses.iter().filter(|x| x.0 == d).count();
            assert!((1..=2).contains(&n), "department {d} has {n} nurses");
        }
    }
    assert!(
        edges > 0,
        "the constrained random graph drew no edge in 20 universes"
    );
}

#[test]
fn an_unsatisfiable_where_names_the_entity_it_cannot_serve() {
    use synthpipe::lang::check_source;
    // Nobody both works in a department and does not.
    let src = STAFF.replace(
        "not heads(dept: dept, head: deputy)",
        "not works_in(person: deputy, dept: dept)",
    );
    let ir = check_source(&src, None).ir.expect("checks clean");
    let params = Params::resolve(&ir, &[]).unwrap();
    let e = world::build(&ir, &params, 1).unwrap_err().to_string();
    assert!(
        e.contains("relation `deputy`: `dept` ")
            && e.contains("needs 1 `deputy` its `where` admits, but only 0 exist"),
        "{e}"
    );
}
