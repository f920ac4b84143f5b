//! Questions are exactly right: every answer and every intermediate set of over 10,000
//! questions across all shipped domains is recomputed by brute force from the written
//! `entities.jsonl` and `facts.jsonl` (derived facts included) and the rules' surface forms,
//! independently of the solver and the composer that produced them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{jsonl as lines, root, tmpdir};
use serde_json::Value as Json;
use synthpipe::lang::check_file;
use synthpipe::lang::ir::{AnswerExpr, AttrType, Filter, Ir, SlotKindIr, TextPart};
use synthpipe::universe::dataset::{Options, generate};
use synthpipe::universe::params::Params;

fn load(path: &str) -> Ir {
    let (_, checked) = check_file(&root().join(path)).unwrap();
    checked
        .ir
        .unwrap_or_else(|| panic!("{path} must check clean"))
}

/// The universe as the files state it.
struct Files {
    /// (type, name) → attribute → value.
    attrs: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// relation → (role 0 entity, role 1 entity), both orders for symmetric relations.
    facts: BTreeMap<String, Vec<BTreeMap<String, String>>>,
}

fn read_files(dir: &Path, ir: &Ir) -> Files {
    let mut attrs = BTreeMap::new();
    for e in lines(dir, "entities.jsonl") {
        let key = (
            e["type"].as_str().unwrap().to_string(),
            e["name"].as_str().unwrap().to_string(),
        );
        let a = e["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| {
                (
                    kv["name"].as_str().unwrap().to_string(),
                    kv["value"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        attrs.insert(key, a);
    }
    let mut facts: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for f in lines(dir, "facts.jsonl") {
        let rel = f["relation"].as_str().unwrap().to_string();
        let args: Vec<(String, String)> = f["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["role"].as_str().unwrap().to_string(),
                    a["entity"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        // A fact's own attributes sit beside its roles, as `@name`.
        let own: Vec<(String, String)> = f["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|kv| {
                (
                    format!("@{}", kv["name"].as_str().unwrap()),
                    kv["value"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let r = ir.relation(&rel).unwrap();
        let v = facts.entry(rel).or_default();
        v.push(args.iter().cloned().chain(own.iter().cloned()).collect());
        if r.symmetric {
            // Listed once per pair; it holds both ways.
            let mut back = BTreeMap::from([
                (args[0].0.clone(), args[1].1.clone()),
                (args[1].0.clone(), args[0].1.clone()),
            ]);
            back.extend(own);
            v.push(back);
        }
    }
    Files { attrs, facts }
}

fn s(v: &Json) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, found {v}"))
}

/// Recomputes one step's output from the files; `outs` holds the earlier steps' outputs.
fn step(ir: &Ir, f: &Files, st: &Json, outs: &[BTreeSet<String>]) -> BTreeSet<String> {
    let input = |i: usize| &outs[st["inputs"][i].as_u64().unwrap() as usize];
    let ty = st["type"].as_str();
    // An entity is listed under its most specific type; a person may be a player.
    let is_a = |a: &str, b: &str| {
        let i = |n: &str| ir.entities.iter().position(|e| e.name == n).unwrap();
        ir.is_a(i(a), i(b))
    };
    let attr_of = |t: &str, e: &str, a: &str| -> String {
        let (_, attrs) = f
            .attrs
            .iter()
            .find(|((ty, n), _)| n == e && is_a(ty, t))
            .unwrap_or_else(|| panic!("no `{t}` named {e}"));
        attrs[a].clone()
    };
    // Type of a set: every entity name is unique within its type; find it.
    let type_of = |names: &BTreeSet<String>| -> Option<String> {
        let n = names.iter().next()?;
        f.attrs.keys().find(|(_, e)| e == n).map(|(t, _)| t.clone())
    };
    match s(&st["op"]) {
        "name" => {
            let n = s(&st["name"]).to_string();
            assert!(f.attrs.keys().any(|(t, e)| *e == n && is_a(t, ty.unwrap())));
            BTreeSet::from([n])
        }
        "whose" => f
            .attrs
            .iter()
            .filter(|((t, _), a)| is_a(t, ty.unwrap()) && a[s(&st["attribute"])] == s(&st["value"]))
            .map(|((_, e), _)| e.clone())
            .collect(),
        "hop" => {
            let r = &st["relations"].as_array().unwrap()[0];
            let from = s(&r["from_role"]);
            let to = s(&r["to_role"]);
            let xs = input(0);
            f.facts
                .get(s(&r["relation"]))
                .map(|v| {
                    v.iter()
                        .filter(|args| xs.contains(&args[from]))
                        .map(|args| args[to].clone())
                        .collect()
                })
                .unwrap_or_default()
        }
        "attribute" => {
            let xs = input(0);
            let t = type_of(xs);
            xs.iter()
                .map(|e| attr_of(t.as_deref().unwrap(), e, s(&st["attribute"])))
                .collect()
        }
        "fact_attribute" => {
            let r = &st["relations"][0];
            let (from, to) = (s(&r["from_role"]), s(&r["to_role"]));
            let key = format!("@{}", s(&st["attribute"]));
            let ys = st["inputs"].as_array().unwrap().get(1).map(|_| input(1));
            f.facts
                .get(s(&r["relation"]))
                .into_iter()
                .flatten()
                .filter(|args| input(0).contains(&args[from]))
                .filter(|args| ys.is_none_or(|ys| ys.contains(&args[to])))
                .map(|args| args[&key].clone())
                .collect()
        }
        "count" => BTreeSet::from([input(0).len().to_string()]),
        "count_each" => {
            let xs = input(0);
            match st["relations"].as_array().and_then(|a| a.first()) {
                Some(r) => {
                    let (from, to) = (s(&r["from_role"]), s(&r["to_role"]));
                    let facts = f.facts.get(s(&r["relation"]));
                    xs.iter()
                        .map(|x| {
                            let partners: BTreeSet<&String> = facts
                                .into_iter()
                                .flatten()
                                .filter(|args| &args[from] == x)
                                .map(|args| &args[to])
                                .collect();
                            partners.len().to_string()
                        })
                        .collect()
                }
                // One value of an attribute per entity.
                None => xs.iter().map(|_| "1".to_string()).collect(),
            }
        }
        "intersect" => {
            let n = st["inputs"].as_array().unwrap().len();
            let mut acc = input(0).clone();
            for i in 1..n {
                acc = acc.intersection(input(i)).cloned().collect();
            }
            acc
        }
        "union" => {
            let n = st["inputs"].as_array().unwrap().len();
            (0..n).flat_map(|i| input(i).iter().cloned()).collect()
        }
        "difference" => input(0).difference(input(1)).cloned().collect(),
        op @ ("argmin_count" | "argmax_count") => {
            let r = &st["relations"][0];
            let (from, to) = (s(&r["from_role"]), s(&r["to_role"]));
            let facts = f.facts.get(s(&r["relation"]));
            let n = st["inputs"].as_array().unwrap().len();
            let all: BTreeSet<String> = (0..n).flat_map(|i| input(i).iter().cloned()).collect();
            let count = |e: &String| {
                facts
                    .into_iter()
                    .flatten()
                    .filter(|args| &args[from] == e)
                    .map(|args| &args[to])
                    .collect::<BTreeSet<_>>()
                    .len()
            };
            let best = if op == "argmin_count" {
                all.iter().map(count).min()
            } else {
                all.iter().map(count).max()
            };
            all.iter()
                .filter(|e| Some(count(e)) == best)
                .cloned()
                .collect()
        }
        op @ ("argmin" | "argmax") => {
            let t = ty.unwrap();
            let a = s(&st["attribute"]);
            let is_int = matches!(ir.entity(t).unwrap().attr(a).unwrap().ty, AttrType::Int);
            let n = st["inputs"].as_array().unwrap().len();
            let all: BTreeSet<String> = (0..n).flat_map(|i| input(i).iter().cloned()).collect();
            // ISO dates order as text; "4 March 1921" is read back to ISO, "2,826,880" to digits.
            let key = |e: &String| {
                let v = attr_of(t, e, a);
                if is_int {
                    (v.replace(',', "").parse::<i64>().unwrap(), String::new())
                } else {
                    (0, iso_date(&v))
                }
            };
            let best = if op == "argmin" {
                all.iter().map(key).min()
            } else {
                all.iter().map(key).max()
            };
            all.iter()
                .filter(|e| Some(key(e)) == best)
                .cloned()
                .collect()
        }
        "same" => {
            let yes = !input(0).is_empty() && input(0) == input(1);
            BTreeSet::from([if yes { "yes" } else { "no" }.to_string()])
        }
        "related" => {
            let (xs, ys) = (input(0), input(1));
            let mut nouns = BTreeSet::new();
            for r in st["relations"].as_array().unwrap() {
                let rel = ir.relation(s(&r["relation"])).unwrap();
                let from = rel.role_index(s(&r["from_role"])).unwrap();
                let to = rel.role_index(s(&r["to_role"])).unwrap();
                let say = rel
                    .says
                    .iter()
                    .find(|x| x.role == to && x.of == from)
                    .unwrap();
                let to_ty = rel.roles[to].ty.name();
                for args in f.facts.get(&rel.name).into_iter().flatten() {
                    let (a, b) = (&args[s(&r["from_role"])], &args[s(&r["to_role"])]);
                    if xs.contains(a) && ys.contains(b) {
                        let noun = say
                            .when
                            .iter()
                            .find(|w| attr_of(to_ty, b, w.attr.name()) == w.value)
                            .map_or(&say.singular, |w| &w.singular);
                        nouns.insert(noun.clone());
                    }
                }
            }
            nouns
        }
        other => panic!("unknown op {other}"),
    }
}

/// Slots that must denote different entities do: comparison candidates share no entity, the
/// sides of `related` differ, and no two operands of `same` or of an intersection are the
/// same operation over the same sets ("Who is both the sister of X and the sister of X?").
fn assert_distinct_slots(q: &Json) {
    let steps = q["program"]["steps"].as_array().unwrap();
    let inter = q["intermediate"].as_array().unwrap();
    let set = |i: usize| -> BTreeSet<String> {
        inter[i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| s(v).to_string())
            .collect()
    };
    // What a step computes, its inputs named by their sets.
    let what = |i: usize| -> String {
        let st = &steps[i];
        let ins: Vec<BTreeSet<String>> = st["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| set(x.as_u64().unwrap() as usize))
            .collect();
        match s(&st["op"]) {
            "name" | "whose" => format!("{:?}", set(i)),
            _ => format!(
                "{} {} {} {:?}",
                st["op"], st["relations"], st["attribute"], ins
            ),
        }
    };
    for st in steps {
        let inputs: Vec<usize> = st["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        match s(&st["op"]) {
            "argmin" | "argmax" | "argmin_count" | "argmax_count" | "related" => {
                for (k, &a) in inputs.iter().enumerate() {
                    for &b in &inputs[k + 1..] {
                        assert!(
                            set(a).is_disjoint(&set(b)),
                            "`{}` compares an entity with itself",
                            q["text"]
                        );
                    }
                }
            }
            "same" | "intersect" | "union" | "difference" => {
                let ops: BTreeSet<String> = inputs.iter().map(|&i| what(i)).collect();
                assert_eq!(
                    ops.len(),
                    inputs.len(),
                    "`{}` combines one operand with itself",
                    q["text"]
                );
            }
            _ => {}
        }
    }
}

/// A date as written in text (`1921-03-04`, `4 March 1921` or `March 4, 1921`) in ISO form.
fn iso_date(v: &str) -> String {
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
    let words: Vec<&str> = v.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let month = |w: &str| MONTHS.iter().position(|m| *m == w).map(|i| i + 1);
    match words.as_slice() {
        [d, m, y] if month(m).is_some() => format!(
            "{y}-{:02}-{:02}",
            month(m).unwrap(),
            d.parse::<u32>().unwrap()
        ),
        [m, d, y] if month(m).is_some() => format!(
            "{y}-{:02}-{:02}",
            month(m).unwrap(),
            d.parse::<u32>().unwrap()
        ),
        _ => v.to_string(),
    }
}

/// Text with its one placeholder replaced.
fn fill(parts: &[TextPart], with: &str) -> String {
    parts
        .iter()
        .map(|p| match p {
            TextPart::Hole { .. } => with,
            TextPart::Lit(l) | TextPart::Agree { singular: l, .. } => l.as_str(),
        })
        .collect()
}

/// Under `number agree`, rebuilds the noun phrase of every start and hop from the program
/// and the rules' forms, independently of the composer: each phrase the text says is in the
/// number of its set, its other-number twin is never said, and every agreement word and
/// formless attribute noun agrees with its slot or the answer.
fn check_wording(ir: &Ir, q: &Json) {
    let qs = ir.questions.as_ref().unwrap();
    if !qs.agree {
        return;
    }
    let text = s(&q["text"]);
    let steps = q["program"]["steps"].as_array().unwrap();
    let inter = q["intermediate"].as_array().unwrap();
    let many = |i: usize| inter[i].as_array().unwrap().len() > 1;
    // Step → (phrase said in the text, denotes several).
    let mut phrases: Vec<Option<(String, bool)>> = Vec::new();
    for (i, st) in steps.iter().enumerate() {
        let forms: Option<[String; 2]> = match s(&st["op"]) {
            "name" => Some([s(&st["name"]).to_string(), s(&st["name"]).to_string()]),
            "whose" => {
                let ety = ir.entity(s(&st["type"])).unwrap();
                let a = ety.attr(s(&st["attribute"])).unwrap();
                let one = match &a.whose {
                    Some(w) => fill(w, s(&st["value"])),
                    None => format!(
                        "the {} whose {} is {}",
                        ety.name,
                        a.say.as_ref().map_or(&a.name, |x| &x.0),
                        s(&st["value"])
                    ),
                };
                let several = a
                    .whose_plural
                    .as_ref()
                    .map_or(one.clone(), |p| fill(p, s(&st["value"])));
                Some([one, several])
            }
            "hop" => {
                let input = st["inputs"][0].as_u64().unwrap() as usize;
                phrases[input].as_ref().and_then(|(inner, _)| {
                    let r = &st["relations"][0];
                    let rel = ir.relation(s(&r["relation"])).unwrap();
                    let to = rel.role_index(s(&r["to_role"])).unwrap();
                    // A hop without a surface form (`rel.role(x)`) is never said.
                    let say = rel.say_for(to)?;
                    Some(match &say.phrase {
                        Some([one, several]) => [fill(one, inner), fill(several, inner)],
                        None => [
                            format!("the {} of {inner}", say.singular),
                            format!("the {} of {inner}", say.plural),
                        ],
                    })
                })
            }
            _ => None,
        };
        let said = forms.and_then(|[one, several]| {
            let (right, wrong) = if many(i) {
                (several, one)
            } else {
                (one, several)
            };
            assert!(
                right == wrong || !text.contains(&wrong),
                "`{wrong}` is in the wrong number ({} members): {text}",
                inter[i].as_array().unwrap().len()
            );
            text.contains(&right).then_some((right, many(i)))
        });
        phrases.push(said);
    }
    let tpl = qs
        .templates
        .iter()
        .find(|t| t.name == s(&q["template"]))
        .unwrap();
    if matches!(tpl.answer, AnswerExpr::Slot(_)) {
        assert!(
            phrases.last().unwrap().is_some(),
            "the answer's chain is said as composed: {text}"
        );
    }
    let counts = ["count", "same"].contains(&s(&q["question_type"]));
    let answer_many = !counts && q["answers"].as_array().unwrap().len() > 1;
    // The words each agreement placeholder should say.
    let chosen: Vec<Option<(&str, &str)>> = tpl
        .text
        .iter()
        .map(|p| {
            let TextPart::Agree {
                singular,
                plural,
                of,
            } = p
            else {
                return None;
            };
            let want_many = match of {
                None => answer_many,
                // The chain said right after the words, if any (a name is one).
                Some(_) => phrases
                    .iter()
                    .flatten()
                    .filter(|(ph, _)| {
                        text.contains(&format!("{singular} {ph}"))
                            || text.contains(&format!("{plural} {ph}"))
                    })
                    .max_by_key(|(ph, _)| ph.len())
                    .is_some_and(|(_, m)| *m),
            };
            Some(if want_many {
                (plural.as_str(), singular.as_str())
            } else {
                (singular.as_str(), plural.as_str())
            })
        })
        .collect();
    // The template's own text on either side of an agreement placeholder, out to the
    // nearest slot.
    let said = |i: usize| match &tpl.text[i] {
        TextPart::Lit(l) => Some(l.as_str()),
        TextPart::Agree { .. } => Some(chosen[i].unwrap().0),
        TextPart::Hole { .. } => None,
    };
    let side = |range: Vec<usize>, backwards: bool| -> String {
        let mut parts: Vec<&str> = range.into_iter().map_while(said).collect();
        if backwards {
            parts.reverse();
        }
        parts.concat()
    };
    for (pi, p) in tpl.text.iter().enumerate() {
        match p {
            TextPart::Agree { .. } => {
                let (right, wrong) = chosen[pi].unwrap();
                let (before, after) = (
                    side((0..pi).rev().collect(), true),
                    side((pi + 1..tpl.text.len()).collect(), false),
                );
                assert!(
                    text.contains(&format!("{before}{right}{after}")),
                    "`{right}` expected: {text}"
                );
                assert!(
                    !text.contains(&format!("{before}{wrong}{after}")),
                    "`{wrong}` does not agree: {text}"
                );
            }
            TextPart::Hole {
                name, form: None, ..
            } => {
                let Some(SlotKindIr::Attr(cands)) =
                    tpl.slots.iter().find(|x| &x.name == name).map(|x| &x.kind)
                else {
                    continue;
                };
                for (_, a) in cands {
                    let (one, several) = ir.attr_of(a).say.clone().unwrap();
                    let (right, wrong) = if answer_many {
                        (several, one)
                    } else {
                        (one, several)
                    };
                    assert!(
                        right == wrong || !text.contains(&format!("the {wrong} of")),
                        "attribute noun `{wrong}` does not agree with {} answers: {text}",
                        q["answers"].as_array().unwrap().len()
                    );
                }
            }
            _ => {}
        }
    }
}

/// The walk filters in force for the question's template hold: no hop's set is the one two
/// steps back, no entity answer holds a named entity (comparisons aside), and no attribute
/// answer lists every value the files give that attribute.
fn check_filters(ir: &Ir, f: &Files, q: &Json) {
    let qs = ir.questions.as_ref().unwrap();
    let tpl = qs
        .templates
        .iter()
        .find(|t| t.name == s(&q["template"]))
        .unwrap();
    let on = |x: Filter| qs.filters.contains(&x) && !tpl.allow.contains(&x);
    let steps = q["program"]["steps"].as_array().unwrap();
    let inter = q["intermediate"].as_array().unwrap();
    let input = |st: &Json| {
        st["inputs"]
            .get(0)
            .and_then(Json::as_u64)
            .map(|i| i as usize)
    };
    if on(Filter::Backtrack) {
        for (i, st) in steps.iter().enumerate() {
            if st["op"] == "hop"
                && let Some(j) = input(st)
                && steps[j]["op"] == "hop"
                && let Some(k) = input(&steps[j])
            {
                let within = |a: &Json, b: &Json| {
                    let b: BTreeSet<&str> = b.as_array().unwrap().iter().map(s).collect();
                    a.as_array().unwrap().iter().all(|x| b.contains(s(x)))
                };
                assert!(
                    !(st["type"] == steps[k]["type"] && within(&inter[i], &inter[k])),
                    "step {i} goes back within step {k}: {}",
                    q["text"]
                );
            }
        }
    }
    let answers: BTreeSet<&str> = q["answers"].as_array().unwrap().iter().map(s).collect();
    let last = steps.last().unwrap();
    if on(Filter::StartInAnswer) && !["comparison"].contains(&s(&q["question_type"])) {
        let answer_ty = s(&last["type"]);
        for st in steps.iter().filter(|st| st["op"] == "name") {
            assert!(
                s(&st["type"]) != answer_ty || !answers.contains(s(&st["name"])),
                "the answer holds the named `{}`: {}",
                s(&st["name"]),
                q["text"]
            );
        }
    }
    if on(Filter::StartInAnswer) && last["op"] == "attribute" {
        let ty = &steps[input(last).unwrap()]["type"];
        for st in steps.iter().filter(|st| st["op"] == "whose") {
            assert!(
                !(st["type"] == *ty
                    && st["attribute"] == last["attribute"]
                    && answers.contains(s(&st["value"]))),
                "the answer repeats the value the question starts from: {}",
                q["text"]
            );
        }
    }
    if on(Filter::EveryValue) && last["op"] == "attribute" && answers.len() >= 2 {
        let j = input(last).unwrap();
        let ty = s(&steps[j]["type"]);
        let attr = s(&last["attribute"]);
        let all: BTreeSet<&String> = f
            .attrs
            .iter()
            .filter(|((t, _), _)| t == ty)
            .filter_map(|(_, a)| a.get(attr))
            .collect();
        assert!(
            answers.len() < all.len(),
            "the answer lists every {attr} ({}): {}",
            all.len(),
            q["text"]
        );
    }
}

/// Checks every question in `dir`; returns how many.
fn check_dir(ir: &Ir, dir: &Path) -> usize {
    let f = read_files(dir, ir);
    let qs = lines(dir, "questions.jsonl");
    let mut ids = BTreeSet::new();
    for q in &qs {
        let steps = q["program"]["steps"].as_array().unwrap();
        let inter = q["intermediate"].as_array().unwrap();
        assert_eq!(steps.len(), inter.len(), "{q}");
        let mut outs: Vec<BTreeSet<String>> = Vec::new();
        let mut hops = 0;
        for (i, st) in steps.iter().enumerate() {
            let got = step(ir, &f, st, &outs);
            let want: Vec<String> = inter[i]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| s(v).to_string())
                .collect();
            let mut sorted = want.clone();
            sorted.sort();
            assert_eq!(want, sorted, "intermediate sets are sorted: {q}");
            assert_eq!(
                got.into_iter().collect::<Vec<_>>(),
                want,
                "step {i} of {}: {}",
                q["text"],
                st
            );
            if ["hop", "attribute", "whose", "count_each"].contains(&s(&st["op"])) {
                hops += 1;
            }
            outs.push(want.into_iter().collect());
        }
        assert_eq!(q["answers"], *inter.last().unwrap(), "{q}");
        assert!(q["hops"].as_u64().unwrap() >= hops, "{q}");
        let rel_weight: i64 = steps
            .iter()
            .filter(|st| st["op"] == "hop")
            .map(|st| {
                ir.relation(s(&st["relations"][0]["relation"]))
                    .unwrap()
                    .weight
            })
            .sum();
        assert!(q["difficulty"].as_i64().unwrap() >= rel_weight, "{q}");
        assert!(ids.insert(s(&q["id"]).to_string()), "ids are unique");
        assert_distinct_slots(q);
        check_wording(ir, q);
        check_filters(ir, &f, q);
    }
    let texts: BTreeSet<&str> = qs.iter().map(|q| s(&q["text"])).collect();
    assert_eq!(texts.len(), qs.len(), "questions are de-duplicated by text");
    qs.len()
}

fn sets(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn every_answer_and_intermediate_set_recomputed_from_the_files() {
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        (
            "rules/family.rules",
            sets(&[
                ("trees", "3"),
                ("questions_per_template", "40"),
                ("unanswerable", "0.1"),
            ]),
        ),
        (
            "rules/family.rules",
            sets(&[
                ("relations", "easy"),
                ("question_depth", "11"),
                ("questions_per_template", "30"),
            ]),
        ),
        (
            "rules/wiki.rules",
            sets(&[("questions_per_template", "40")]),
        ),
        (
            "rules/academia.rules",
            sets(&[("questions_per_template", "40")]),
        ),
        (
            "rules/football.rules",
            sets(&[("questions_per_template", "40"), ("question_depth", "11")]),
        ),
        ("tests/grammar/ok/features.rules", sets(&[])),
        ("tests/grammar/ok/school.rules", sets(&[])),
    ];
    let mut total = 0;
    let mut by_domain = Vec::new();
    for (i, (path, set)) in cases.iter().enumerate() {
        let ir = load(path);
        for seed in [1u64, 2] {
            let params = Params::resolve(&ir, set).unwrap();
            let dir = tmpdir("questions", &format!("{i}-{seed}"));
            let opts = Options {
                derived: true,
                progress: false,
            };
            let m = generate(&ir, &params, &[seed], &dir, &opts)
                .unwrap()
                .manifest;
            let n = check_dir(&ir, &dir);
            assert_eq!(n, m.counts.questions);
            by_domain.push(format!("{path} seed {seed}: {n}"));
            total += n;
        }
    }
    eprintln!("{total} questions recomputed: {by_domain:#?}");
    assert!(total >= 10_000, "only {total} questions checked");
}

#[test]
fn shipped_domains_ask_every_template_they_declare() {
    for path in [
        "rules/family.rules",
        "rules/wiki.rules",
        "rules/academia.rules",
        "rules/football.rules",
        "tests/grammar/ok/features.rules",
        "tests/grammar/ok/school.rules",
    ] {
        let ir = load(path);
        let params = Params::resolve(&ir, &[]).unwrap();
        let dir = tmpdir(
            "questions",
            &format!("templates-{}", common::stem(&root().join(path))),
        );
        let opts = Options::default();
        let m = generate(&ir, &params, &[0], &dir, &opts).unwrap().manifest;
        let q = ir.questions.as_ref().unwrap();
        for t in &q.templates {
            let on = t.when.as_ref().is_none_or(|p| params.bool(p));
            let n = m.histograms.template.get(&t.name).copied().unwrap_or(0);
            assert!(
                !on || n > 0,
                "{path}: template `{}` produced no questions",
                t.name
            );
        }
        assert_eq!(
            m.histograms.question_type.values().sum::<usize>(),
            m.counts.questions
        );
        assert_eq!(
            m.histograms.difficulty.values().sum::<usize>(),
            m.counts.questions
        );
    }
}

#[test]
fn family_at_phantomwiki_depth_20_has_its_template_families() {
    // PhantomWiki's grammar at depth 20: 17 "Who is", 16 "What is the A of" and 17
    // "How many" templates. synthpipe also asks "What is the A of NAME?" (PhantomWiki's
    // grammar cannot), so 17 attribute variants; the other three templates have one each.
    let ir = load("rules/family.rules");
    let params = Params::resolve(&ir, &[]).unwrap();
    let dir = tmpdir("questions", "pw-variants");
    let m = generate(&ir, &params, &[0], &dir, &Options::default())
        .unwrap()
        .manifest;
    assert_eq!(m.counts.template_variants, 17 + 17 + 17 + 3);
    let qs = lines(&dir, "questions.jsonl");
    let ids: BTreeSet<&str> = qs.iter().map(|q| s(&q["template_id"])).collect();
    for want in [
        "who:x=name8",
        "who:x=whose8",
        "attribute:x=name8",
        "attribute:x=whose7",
        "how_many:x=name8",
        "how_many:x=whose7",
        "how_many:x=name0",
    ] {
        assert!(ids.contains(want), "{want} missing from {ids:?}");
    }
    for absent in [
        "who:x=name0",
        "who:x=name9",
        "attribute:x=whose8",
        "how_many:x=whose8",
    ] {
        assert!(!ids.contains(absent), "{absent} is deeper than 20");
    }
    // Longest chains: 8 relation hops, plus the start.
    let deepest = qs
        .iter()
        .map(|q| {
            q["program"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["op"] == "hop")
                .count()
        })
        .max();
    assert_eq!(
        deepest,
        Some(8),
        "8 chain hops (a count reads its relation per person)"
    );
}

#[test]
fn extreme_settings_generate_or_explain_never_panic() {
    // Corners of every declared range: tiny and empty-ish universes, the shallowest and
    // deepest questions, every question unanswerable, answer sets of one.
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        (
            "rules/family.rules",
            sets(&[("max_tree_size", "1"), ("question_depth", "3")]),
        ),
        (
            "rules/family.rules",
            sets(&[
                ("max_tree_size", "2"),
                ("question_depth", "50"),
                ("unanswerable", "1.0"),
            ]),
        ),
        (
            "rules/family.rules",
            sets(&[
                ("stop_prob", "1.0"),
                ("friend_degree", "0.0"),
                ("relations", "easy"),
            ]),
        ),
        (
            "rules/wiki.rules",
            sets(&[("question_depth", "30"), ("questions_per_template", "1")]),
        ),
        ("rules/academia.rules", sets(&[("question_depth", "3")])),
        (
            "tests/grammar/ok/school.rules",
            sets(&[("students", "1"), ("classes", "1"), ("teachers", "1")]),
        ),
    ];
    for (i, (path, set)) in cases.iter().enumerate() {
        let ir = load(path);
        let params = Params::resolve(&ir, set).unwrap();
        let dir = tmpdir("questions", &format!("extreme-{i}"));
        let opts = Options {
            derived: true,
            progress: false,
        };
        match generate(&ir, &params, &[3], &dir, &opts) {
            Ok(g) => {
                let n = check_dir(&ir, &dir);
                assert_eq!(n, g.manifest.counts.questions, "{path} {set:?}");
                if set.iter().any(|(k, v)| k == "unanswerable" && v == "1.0") {
                    // Every question that can be asked with an empty answer is.
                    for q in lines(&dir, "questions.jsonl") {
                        let hops = s(&q["template_id"])
                            .split([',', ':'])
                            .filter_map(|p| {
                                p.trim_start_matches(|c: char| !c.is_ascii_digit())
                                    .parse::<u32>()
                                    .ok()
                            })
                            .sum::<u32>();
                        let can_be_empty = match s(&q["question_type"]) {
                            "entity" | "attribute" => hops > 0,
                            "intersection" => true,
                            _ => false,
                        };
                        assert!(
                            !can_be_empty || q["answers"].as_array().unwrap().is_empty(),
                            "{q}"
                        );
                    }
                }
            }
            Err(e) => assert!(!e.to_string().is_empty(), "{path} {set:?}"),
        }
    }
}

#[test]
fn no_question_names_one_entity_where_two_must_differ_over_many_seeds() {
    // Small universes make repeats likely: two random picks among few entities often agree.
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        (
            "rules/family.rules",
            sets(&[("max_tree_size", "4"), ("question_depth", "7")]),
        ),
        (
            "rules/family.rules",
            sets(&[
                ("max_tree_size", "25"),
                ("question_depth", "20"),
                ("relations", "easy"),
            ]),
        ),
        ("rules/wiki.rules", sets(&[("question_depth", "7")])),
        ("rules/academia.rules", sets(&[("question_depth", "7")])),
        ("tests/grammar/ok/features.rules", sets(&[])),
        ("tests/grammar/ok/school.rules", sets(&[("students", "3")])),
    ];
    let mut checked = 0;
    for (i, (path, set)) in cases.iter().enumerate() {
        let ir = load(path);
        let params = Params::resolve(&ir, set).unwrap();
        let dir = tmpdir("questions", &format!("distinct-{i}"));
        let seeds: Vec<u64> = (1..=20).collect();
        let m = generate(&ir, &params, &seeds, &dir, &Options::default())
            .unwrap()
            .manifest;
        for q in lines(&dir, "questions.jsonl") {
            assert_distinct_slots(&q);
            checked += 1;
        }
        // Small universes do draw repeats; they are dropped and counted, never written.
        if i == 0 {
            assert!(m.counts.degenerate["born_first"] > 0, "{:?}", m.counts);
        }
    }
    assert!(checked > 5_000, "only {checked} questions");
}

#[test]
fn a_template_that_cannot_be_filled_distinctly_is_skipped_and_counted() {
    // One person: "Who was born first, X or Y?" can only name her twice.
    let ir = load("rules/family.rules");
    let params = Params::resolve(&ir, &sets(&[("max_tree_size", "1")])).unwrap();
    let dir = tmpdir("questions", "one-person");
    let m = generate(&ir, &params, &[1], &dir, &Options::default())
        .unwrap()
        .manifest;
    assert_eq!(m.histograms.template["born_first"], 0);
    assert!(m.counts.degenerate["born_first"] > 0);
    assert_eq!(m.histograms.template["how_related"], 0);
    let manifest: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["counts"]["degenerate"]["born_first"]
            .as_u64()
            .unwrap()
            > 0
    );
}

/// Two clubs, four players: "Do X and Y have the same number of players?" over counts.
const CLUBS: &str = r#"
pool player_names = ["Ann", "Bob", "Cid", "Dee"];
pool club_names = ["Harrowgate Dynamo", "Fenwick Rovers"];

entity player count 4 {
    name: key pool player_names;
}

entity club count 2 {
    name: key pool club_names;
}

relation plays_for(player: player, club: club) {
    generate function(from: player);
    say club: "club" / "clubs";
    say player: "player" / "players";
}

questions {
    per_template 4;
    template same_size "Do {x} and {y} have the same number of players?" {
        x: name club;
        y: name club;
        answer same(count(plays_for.player(x)), count(plays_for.player(y)));
    }
}
"#;

#[test]
fn same_over_counts_is_right_both_ways() {
    let checked = synthpipe::lang::check_source(CLUBS, None);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let ir = checked.ir.unwrap();
    let params = Params::resolve(&ir, &[]).unwrap();
    let (mut yes, mut no) = (0, 0);
    for seed in 0..40u64 {
        let dir = tmpdir("questions", &format!("clubs-{seed}"));
        generate(&ir, &params, &[seed], &dir, &Options::default()).unwrap();
        let mut players: BTreeMap<String, usize> = BTreeMap::new();
        for f in lines(&dir, "facts.jsonl") {
            *players
                .entry(s(&f["args"][1]["entity"]).to_string())
                .or_default() += 1;
        }
        for q in lines(&dir, "questions.jsonl") {
            let text = s(&q["text"]);
            let (x, y) = text
                .strip_prefix("Do ")
                .and_then(|t| t.strip_suffix(" have the same number of players?"))
                .and_then(|t| t.split_once(" and "))
                .unwrap();
            assert_ne!(x, y, "{text}");
            let same = players.get(x).copied().unwrap_or(0) == players.get(y).copied().unwrap_or(0);
            assert_eq!(
                q["answers"],
                serde_json::json!([if same { "yes" } else { "no" }]),
                "{text}"
            );
            if same {
                yes += 1;
            } else {
                no += 1;
            }
        }
    }
    assert!(yes > 0 && no > 0, "yes {yes}, no {no}");
}

#[test]
fn a_false_cardinality_on_a_derived_relation_stops_generation_naming_the_entity() {
    let src = r#"
pool names = ["Ann", "Bob", "Cid", "Dee", "Eve", "Fay"];

entity person count 6 {
    name: key pool names;
}

relation knows(person: person, friend: person) symmetric irreflexive {
    generate random_graph(mean_degree: 4.0);
    say friend: "friend" / "friends";
}

relation friend_of_friend(person: person, other: person)
    := knows(person: person, friend: f), knows(person: f, friend: other), person != other
{
    each person has 0..1 other;
    say other: "friend of a friend" / "friends of friends";
}
"#;
    let checked = synthpipe::lang::check_source(src, None);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let ir = checked.ir.unwrap();
    let params = Params::resolve(&ir, &[]).unwrap();
    let dir = tmpdir("questions", "false-card");
    let e = generate(&ir, &params, &[1], &dir, &Options::default()).unwrap_err();
    assert_eq!(e.code(), "synthpipe::generate::cardinality");
    let msg = e.to_string();
    assert!(
        msg.contains("friend_of_friend") && msg.contains("each person has 0..1 other"),
        "{msg}"
    );
    assert!(
        ["Ann", "Bob", "Cid", "Dee", "Eve", "Fay"]
            .iter()
            .any(|n| msg.contains(&format!("`{n}`"))),
        "{msg}"
    );
    assert!(!dir.join("manifest.json").exists(), "nothing is written");
}

#[test]
fn walk_filter_counts_are_in_the_manifest_only_where_filters_are_in_force() {
    for (path, filtered) in [("rules/wiki.rules", true), ("rules/family.rules", false)] {
        let ir = load(path);
        let params = Params::resolve(&ir, &sets(&[("questions_per_template", "20")])).unwrap();
        let dir = tmpdir("questions", &format!("removed-{filtered}"));
        let m = generate(&ir, &params, &[1, 2], &dir, &Options::default())
            .unwrap()
            .manifest;
        let json = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
        assert_eq!(json.contains("\"removed\""), filtered, "{path}");
        if filtered {
            // Every template switched on, with each of the three filters.
            let on = m.histograms.template.len();
            assert_eq!(m.counts.removed.len(), on);
            for per in m.counts.removed.values() {
                let names: Vec<&str> = per.keys().map(String::as_str).collect();
                assert_eq!(names, ["backtrack", "every_value", "start_in_answer"]);
            }
            let total: usize = m.counts.removed.values().flat_map(|p| p.values()).sum();
            assert!(total > 0, "the filters removed something at this size");
        }
    }
}

/// A template that cannot produce a question and a `whose` start that cannot start one are
/// named, with why, in the manifest and as warnings.
#[test]
fn a_template_or_start_that_produces_nothing_says_why() {
    let src = r#"
pool names = ["Ann", "Bob", "Cid", "Dee", "Eve", "Fay"];
pool towns = ["Oslo", "Rome"];

entity person count 6 {
    name: key pool names;
    team: enum { red } {
        say "team";
        whose "the person in team {value}" / "the people in team {value}";
    }
}

entity town count 2 {
    name: key pool towns;
}

relation lives_in(person: person, town: town) {
    generate function(from: person);
    say town: "home town" / "home towns";
}

relation knows(person: person, friend: person) symmetric irreflexive {
    generate random_graph(mean_degree: 2.0);
    say friend: "friend" / "friends";
}

bank social = knows;

questions {
    hops social;
    max_answers 3;
    start name;
    start whose person.team;

    template who "Who {is/are} {x}?" {
        x: chain person;
        answer x;
    }

    template town "Which {town/towns} {is/are} {t}?" {
        t: chain town;
        answer t;
    }
}
"#;
    let checked = synthpipe::lang::check_source(src, None);
    let ir = checked
        .ir
        .unwrap_or_else(|| panic!("{:?}", checked.diagnostics));
    let params = Params::resolve(&ir, &[]).unwrap();
    let dir = tmpdir("questions", "nothing");
    let m = generate(&ir, &params, &[1, 2], &dir, &Options::default())
        .unwrap()
        .manifest;
    assert!(m.histograms.template["who"] > 0);
    assert_eq!(m.histograms.template["town"], 0);
    let why = &m.counts.no_questions;
    assert_eq!(
        why.keys().map(String::as_str).collect::<Vec<_>>(),
        ["start whose person.team", "town"]
    );
    assert!(
        why["town"].starts_with("no variant of it fits"),
        "{}",
        why["town"]
    );
    assert!(
        why["start whose person.team"].contains("more than `max_answers` (3)"),
        "{}",
        why["start whose person.team"]
    );
    let warnings = m.counts.warnings();
    assert_eq!(warnings.len(), 2);
    assert!(warnings[1].starts_with(
        "warning[synthpipe::generate::no_questions]: template `town` produced no question: "
    ));
}

/// `one_to_one`: every manager gets a club of its own, no club two managers, in every
/// universe; too few clubs is a coded error, never a shared club.
#[test]
fn one_to_one_gives_each_its_own_partner_or_explains() {
    let ir = load("rules/football.rules");
    for seed in 1..=5u64 {
        let params = Params::resolve(&ir, &sets(&[("managers", "20"), ("clubs", "20")])).unwrap();
        let dir = tmpdir("questions", &format!("one-to-one-{seed}"));
        generate(&ir, &params, &[seed], &dir, &Options::default()).unwrap();
        let mut clubs = BTreeSet::new();
        let mut managers = BTreeSet::new();
        for f in lines(&dir, "facts.jsonl") {
            if f["relation"] == "manages" {
                let role = |r: &str| {
                    let a = f["args"].as_array().unwrap();
                    s(&a.iter().find(|x| x["role"] == r).unwrap()["entity"]).to_string()
                };
                assert!(managers.insert(role("manager")), "a manager twice: {f}");
                assert!(clubs.insert(role("club")), "a club with two managers: {f}");
            }
        }
        assert_eq!(
            (managers.len(), clubs.len()),
            (20, 20),
            "every manager has a club"
        );
    }
    let params = Params::resolve(&ir, &sets(&[("managers", "25"), ("clubs", "24")])).unwrap();
    let dir = tmpdir("questions", "one-to-one-short");
    let Err(err) = generate(&ir, &params, &[1], &dir, &Options::default()) else {
        panic!("25 managers cannot have 24 clubs of their own");
    };
    assert_eq!(err.code(), "synthpipe::generate::invalid");
    assert!(err.to_string().contains("only 24 exist"), "{err}");
}
