//! Fidelity with PhantomWiki: family questions at PhantomWiki's settings are re-answered by a
//! brute-force checker that knows nothing of synthpipe's solver, composer or programs. It
//! reads only `entities.jsonl` and the *base* facts (`parent`, `friend`), derives every
//! family relation with PhantomWiki's own Prolog rules (`rules_derived.pl`, re-stated below
//! clause by clause), parses each question's text with PhantomWiki's question grammar and
//! alias tables, and computes the answer, the set after every hop and the difficulty the way
//! PhantomWiki's query and `question_difficulty.py` do ("How many" = the set of per-person
//! counts; an aggregation adds 1). The templates PhantomWiki lacks (comparison,
//! intersection, "How is X related to Y?") are checked against docs/rules.md.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{jsonl as lines, root, tmpdir};
use serde_json::Value as Json;
use synthpipe::lang::check_file;
use synthpipe::universe::dataset::{Options, generate};
use synthpipe::universe::params::Params;

type People = BTreeSet<usize>;
/// `rel[x]` = every `y` with `rel(x, y)` in PhantomWiki's argument order.
type Rel = Vec<People>;

/// PhantomWiki's relations: predicate, singular alias, plural alias, difficulty
/// (`FAMILY_RELATION_ALIAS`, `FAMILY_RELATION_PLURAL_ALIAS`, `FAMILY_RELATION_DIFFICULTY`,
/// friendship's constants).
const RELATIONS: [(&str, &str, &str, usize); 45] = [
    ("parent", "parent", "parents", 1),
    ("sibling", "sibling", "siblings", 1),
    ("sister", "sister", "sisters", 1),
    ("brother", "brother", "brothers", 1),
    ("mother", "mother", "mothers", 1),
    ("father", "father", "fathers", 1),
    ("child", "child", "children", 1),
    ("son", "son", "sons", 1),
    ("daughter", "daughter", "daughters", 1),
    ("wife", "wife", "wives", 1),
    ("husband", "husband", "husbands", 1),
    ("aunt", "aunt", "aunts", 2),
    ("uncle", "uncle", "uncles", 2),
    ("niece", "niece", "nieces", 2),
    ("nephew", "nephew", "nephews", 2),
    ("grandparent", "grandparent", "grandparents", 2),
    ("grandmother", "grandmother", "grandmothers", 2),
    ("grandfather", "grandfather", "grandfathers", 2),
    ("grandchild", "grandchild", "grandchildren", 2),
    ("granddaughter", "granddaughter", "granddaughters", 2),
    ("grandson", "grandson", "grandsons", 2),
    ("father_in_law", "father-in-law", "fathers-in-law", 2),
    ("mother_in_law", "mother-in-law", "mothers-in-law", 2),
    ("brother_in_law", "brother-in-law", "brothers-in-law", 2),
    ("sister_in_law", "sister-in-law", "sisters-in-law", 2),
    ("son_in_law", "son-in-law", "sons-in-law", 2),
    ("daughter_in_law", "daughter-in-law", "daughters-in-law", 2),
    ("great_aunt", "great-aunt", "great-aunts", 3),
    ("great_uncle", "great-uncle", "great-uncles", 3),
    (
        "great_grandparent",
        "great-grandparent",
        "great-grandparents",
        3,
    ),
    (
        "great_grandmother",
        "great-grandmother",
        "great-grandmothers",
        3,
    ),
    (
        "great_grandfather",
        "great-grandfather",
        "great-grandfathers",
        3,
    ),
    (
        "great_grandchild",
        "great-grandchild",
        "great-grandchildren",
        3,
    ),
    (
        "great_granddaughter",
        "great-granddaughter",
        "great-granddaughters",
        3,
    ),
    ("great_grandson", "great-grandson", "great-grandsons", 3),
    ("cousin", "cousin", "cousins", 3),
    ("female_cousin", "female cousin", "female cousins", 3),
    ("male_cousin", "male cousin", "male cousins", 3),
    (
        "female_first_cousin_once_removed",
        "female first cousin once removed",
        "female first cousins once removed",
        4,
    ),
    (
        "male_first_cousin_once_removed",
        "male first cousin once removed",
        "male first cousins once removed",
        4,
    ),
    ("second_aunt", "second aunt", "second aunts", 4),
    ("second_uncle", "second uncle", "second uncles", 4),
    (
        "female_second_cousin",
        "female second cousin",
        "female second cousins",
        5,
    ),
    (
        "male_second_cousin",
        "male second cousin",
        "male second cousins",
        5,
    ),
    ("friend", "friend", "friends", 1),
];

/// Easy mode: the relations of difficulty 1 and friendship (`sample.py`'s `RELATION_EASY`).
fn easy() -> Vec<&'static str> {
    RELATIONS.iter().filter(|r| r.3 < 2).map(|r| r.0).collect()
}

/// PhantomWiki's question attributes and their aliases (`ATTRIBUTE_ALIASES`).
const ATTRIBUTES: [(&str, &str); 3] = [
    ("dob", "date of birth"),
    ("job", "occupation"),
    ("hobby", "hobby"),
];

/// The universe as `entities.jsonl` and the base facts of `facts.jsonl` state it, with every
/// derived relation computed here.
struct World {
    names: Vec<String>,
    index: BTreeMap<String, usize>,
    female: Vec<bool>,
    attrs: Vec<BTreeMap<String, String>>,
    rels: BTreeMap<&'static str, Rel>,
}

fn s(v: &Json) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

impl World {
    fn read(dir: &Path) -> World {
        let mut names = Vec::new();
        let mut attrs = Vec::new();
        for e in lines(dir, "entities.jsonl") {
            assert_eq!(e["type"], "person");
            names.push(s(&e["name"]).to_string());
            attrs.push(
                e["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| (s(&a["name"]).to_string(), s(&a["value"]).to_string()))
                    .collect::<BTreeMap<_, _>>(),
            );
        }
        let index: BTreeMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        assert_eq!(index.len(), names.len(), "names are unique");
        let n = names.len();
        let female = attrs.iter().map(|a| a["gender"] == "female").collect();
        let mut parent: Rel = vec![People::new(); n];
        let mut friend_: Vec<(usize, usize)> = Vec::new();
        for f in lines(dir, "facts.jsonl") {
            assert_eq!(f["derived"], false, "the checker reads base facts only");
            let arg = |role: &str| {
                let a = f["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["role"] == role)
                    .unwrap();
                index[s(&a["entity"])]
            };
            match s(&f["relation"]) {
                "parent" => {
                    parent[arg("child")].insert(arg("parent"));
                }
                "friend" => friend_.push((arg("person"), arg("friend"))),
                other => panic!("unexpected base relation {other}"),
            }
        }
        let mut w = World {
            names,
            index,
            female,
            attrs,
            rels: BTreeMap::new(),
        };
        w.derive(parent, &friend_);
        w
    }

    fn n(&self) -> usize {
        self.names.len()
    }

    /// `rules_base.pl`, `rules_derived.pl` and `friends/rules.pl`, clause by clause.
    fn derive(&mut self, parent: Rel, friend_: &[(usize, usize)]) {
        let n = self.n();
        let female = self.female.clone();
        let is_female = |y: usize| female[y];
        let is_male = |y: usize| !female[y];
        // R(X, Y) :- A(X, Z), B(Z, Y).
        let join = |a: &Rel, b: &Rel| -> Rel {
            (0..n)
                .map(|x| a[x].iter().flat_map(|&z| b[z].iter().copied()).collect())
                .collect()
        };
        let with = |r: &Rel, keep: &dyn Fn(usize) -> bool| -> Rel {
            r.iter()
                .map(|ys| ys.iter().copied().filter(|&y| keep(y)).collect())
                .collect()
        };
        let inverse = |r: &Rel| -> Rel {
            let mut out = vec![People::new(); n];
            for (x, ys) in r.iter().enumerate() {
                for &y in ys {
                    out[y].insert(x);
                }
            }
            out
        };
        let not_self = |r: Rel| -> Rel {
            r.into_iter()
                .enumerate()
                .map(|(x, mut ys)| {
                    ys.remove(&x);
                    ys
                })
                .collect()
        };
        let child = inverse(&parent);
        // sibling(X, Y) :- parent(X, A), parent(Y, A), X \= Y.
        let sibling = not_self(join(&parent, &child));
        // married(X, Y) :- parent(Child, X), parent(Child, Y), X \= Y.
        let married = not_self(join(&child, &parent));
        let sister = with(&sibling, &is_female);
        let brother = with(&sibling, &is_male);
        let mother = with(&parent, &is_female);
        let father = with(&parent, &is_male);
        let son = with(&child, &is_male);
        let daughter = with(&child, &is_female);
        let wife = with(&married, &is_female);
        let husband = with(&married, &is_male);
        let niece = join(&sibling, &daughter);
        let nephew = join(&sibling, &son);
        let grandparent = join(&parent, &parent);
        let grandchild = inverse(&grandparent);
        let great_grandparent = join(&grandparent, &parent);
        let great_grandchild = inverse(&great_grandparent);
        // cousin(X, Y) :- parent(X, A), parent(Y, B), sibling(A, B), X \= Y.
        let cousin = not_self(join(&join(&parent, &sibling), &child));
        // female_second_cousin(X, Y) :- parent(X, A), parent(Y, B), cousin(A, B), female(Y), X \= Y.
        let second_cousin = not_self(join(&join(&parent, &cousin), &child));
        let cousin_child =
            |keep: &dyn Fn(usize) -> bool| not_self(join(&cousin, &with(&child, keep)));
        let mut friend = vec![People::new(); n];
        for &(a, b) in friend_ {
            friend[a].insert(b);
            friend[b].insert(a);
        }
        let r: Vec<(&'static str, Rel)> = vec![
            ("niece", niece),
            ("nephew", nephew),
            ("grandmother", with(&grandparent, &is_female)),
            ("grandfather", with(&grandparent, &is_male)),
            ("great_aunt", join(&grandparent, &sister)),
            ("great_uncle", join(&grandparent, &brother)),
            ("granddaughter", with(&grandchild, &is_female)),
            ("grandson", with(&grandchild, &is_male)),
            ("great_grandmother", with(&great_grandparent, &is_female)),
            ("great_grandfather", with(&great_grandparent, &is_male)),
            ("great_granddaughter", with(&great_grandchild, &is_female)),
            ("great_grandson", with(&great_grandchild, &is_male)),
            ("second_aunt", join(&great_grandparent, &sister)),
            ("second_uncle", join(&great_grandparent, &brother)),
            ("aunt", join(&parent, &sister)),
            ("uncle", join(&parent, &brother)),
            ("female_cousin", with(&cousin, &is_female)),
            ("male_cousin", with(&cousin, &is_male)),
            ("female_second_cousin", with(&second_cousin, &is_female)),
            ("male_second_cousin", with(&second_cousin, &is_male)),
            ("female_first_cousin_once_removed", cousin_child(&is_female)),
            ("male_first_cousin_once_removed", cousin_child(&is_male)),
            ("mother_in_law", join(&married, &mother)),
            ("father_in_law", join(&married, &father)),
            ("son_in_law", join(&child, &husband)),
            ("daughter_in_law", join(&child, &wife)),
            ("sister_in_law", join(&married, &sister)),
            ("brother_in_law", join(&married, &brother)),
            ("friend", friend),
            ("grandparent", grandparent),
            ("grandchild", grandchild),
            ("great_grandparent", great_grandparent),
            ("great_grandchild", great_grandchild),
            ("cousin", cousin),
            ("sister", sister),
            ("brother", brother),
            ("mother", mother),
            ("father", father),
            ("son", son),
            ("daughter", daughter),
            ("wife", wife),
            ("husband", husband),
            ("sibling", sibling),
            ("married", married),
            ("child", child),
            ("parent", parent),
        ];
        self.rels = r.into_iter().collect();
        for (rel, ..) in RELATIONS {
            assert!(self.rels.contains_key(rel), "{rel} is derived");
        }
    }

    fn image(&self, rel: &str, xs: &People) -> People {
        xs.iter()
            .flat_map(|&x| self.rels[rel][x].iter().copied())
            .collect()
    }

    fn names_of(&self, xs: &People) -> Vec<String> {
        let mut v: Vec<String> = xs.iter().map(|&x| self.names[x].clone()).collect();
        v.sort();
        v
    }
}

/// A chain as PhantomWiki's grammar derives it: `R -> 'the' RN 'of' R_c | 'the person whose'
/// AN 'is' AV`, `R_c -> R | N`; hops in reading order from the start outwards.
#[derive(Debug)]
struct Chain {
    start: Start,
    /// Relations from the start outwards.
    hops: Vec<&'static str>,
}

#[derive(Debug)]
enum Start {
    Name(usize),
    Whose(&'static str, String),
}

/// Parses a chain noun phrase ("the mother of the friend of Ada Hart").
fn parse_chain(w: &World, text: &str) -> Chain {
    let mut rest = text;
    let mut outer = Vec::new();
    // Longest alias first: "sister-in-law" before "sister".
    let mut aliases: Vec<(&'static str, &'static str)> =
        RELATIONS.iter().map(|r| (r.1, r.0)).collect();
    aliases.sort_by_key(|a| std::cmp::Reverse(a.0.len()));
    loop {
        if let Some(v) = rest.strip_prefix("the person whose ") {
            let (attr, value) = ATTRIBUTES
                .iter()
                .find_map(|(a, alias)| {
                    v.strip_prefix(&format!("{alias} is "))
                        .map(|value| (*a, value.to_string()))
                })
                .unwrap_or_else(|| panic!("no attribute in `{text}`"));
            outer.reverse();
            return Chain {
                start: Start::Whose(attr, value),
                hops: outer,
            };
        }
        let hop = aliases.iter().find_map(|(alias, rel)| {
            rest.strip_prefix(&format!("the {alias} of "))
                .map(|r| (*rel, r))
        });
        match hop {
            Some((rel, r)) => {
                outer.push(rel);
                rest = r;
            }
            None => {
                let e = *w
                    .index
                    .get(rest)
                    .unwrap_or_else(|| panic!("`{rest}` is not a person (in `{text}`)"));
                outer.reverse();
                return Chain {
                    start: Start::Name(e),
                    hops: outer,
                };
            }
        }
    }
}

/// What the checker expects of one question.
#[derive(Debug, Default)]
struct Expected {
    answers: Vec<String>,
    /// The set after every step of the program, in its order.
    sets: Vec<Vec<String>>,
    ops: Vec<&'static str>,
    /// The relation each `hop` step reads, in order.
    hop_relations: Vec<&'static str>,
    difficulty: usize,
    hops: usize,
}

fn weight(rel: &str) -> usize {
    RELATIONS.iter().find(|r| r.0 == rel).unwrap().3
}

/// Runs a chain: the start's set, then one set per hop (PhantomWiki's query evaluated
/// innermost first; every binding of every variable collected, i.e. set semantics).
fn run_chain(w: &World, c: &Chain, e: &mut Expected) -> People {
    let mut set: People = match &c.start {
        Start::Name(x) => {
            e.ops.push("name");
            People::from([*x])
        }
        Start::Whose(attr, value) => {
            e.ops.push("whose");
            e.difficulty += 1;
            e.hops += 1;
            (0..w.n())
                .filter(|&x| &w.attrs[x][*attr] == value)
                .collect()
        }
    };
    e.sets.push(w.names_of(&set));
    for rel in &c.hops {
        set = w.image(rel, &set);
        e.ops.push("hop");
        e.hop_relations.push(rel);
        e.sets.push(w.names_of(&set));
        e.difficulty += weight(rel);
        e.hops += 1;
    }
    set
}

/// The noun a `related` answer names person `x` by through `rel` (rules/family.rules' `say`
/// forms: gendered nouns for parent, child and sibling; PhantomWiki's alias otherwise).
fn noun(w: &World, rel: &str, x: usize) -> String {
    let f = w.female[x];
    match rel {
        "parent" => if f { "mother" } else { "father" }.into(),
        "child" => if f { "daughter" } else { "son" }.into(),
        "sibling" => if f { "sister" } else { "brother" }.into(),
        other => RELATIONS.iter().find(|r| r.0 == other).unwrap().1.into(),
    }
}

fn expect(w: &World, text: &str, bank: &[&'static str]) -> Expected {
    let mut e = Expected::default();
    let plural = |p: &str| {
        RELATIONS
            .iter()
            .find(|r| r.2 == p)
            .unwrap_or_else(|| panic!("`{p}` is no relation's plural"))
            .0
    };
    let single = |p: &str| {
        RELATIONS
            .iter()
            .find(|r| r.1 == p)
            .unwrap_or_else(|| panic!("`{p}` is no relation"))
            .0
    };
    let text = text
        .strip_suffix('?')
        .unwrap_or_else(|| panic!("`{text}` is not a question"));
    if let Some(rest) = text.strip_prefix("Who was born first, ") {
        let (x, y) = rest.split_once(" or ").unwrap();
        let (x, y) = (w.index[x], w.index[y]);
        assert_ne!(x, y, "a comparison names two different people: {text}");
        e.ops = vec!["name", "name", "argmin"];
        e.sets = vec![vec![w.names[x].clone()], vec![w.names[y].clone()]];
        let dob = |p: usize| w.attrs[p]["dob"].clone();
        let first = dob(x).min(dob(y));
        let set: People = [x, y].into_iter().filter(|&p| dob(p) == first).collect();
        e.answers = w.names_of(&set);
        e.difficulty = 2;
        e.hops = 2;
    } else if let Some(rest) = text.strip_prefix("Who is both the ") {
        // "Who is both the R1 of X and the R2 of Y?"
        let (left, right) = rest.split_once(" and the ").unwrap();
        let parse = |t: &str| {
            let (alias, name) = RELATIONS
                .iter()
                .filter_map(|r| t.strip_prefix(&format!("{} of ", r.1)).map(|n| (r.1, n)))
                .max_by_key(|(a, _)| a.len())
                .unwrap_or_else(|| panic!("no relation in `{t}`"));
            (single(alias), w.index[name])
        };
        let ((r1, x), (r2, y)) = (parse(left), parse(right));
        assert!(
            (r1, x) != (r2, y),
            "an intersection of one constraint with itself: {text}"
        );
        let a = w.image(r1, &People::from([x]));
        let b = w.image(r2, &People::from([y]));
        e.ops = vec!["name", "hop", "name", "hop", "intersect"];
        e.hop_relations = vec![r1, r2];
        e.sets = vec![
            vec![w.names[x].clone()],
            w.names_of(&a),
            vec![w.names[y].clone()],
            w.names_of(&b),
        ];
        e.answers = w.names_of(&a.intersection(&b).copied().collect());
        e.difficulty = weight(r1) + weight(r2);
        e.hops = 2;
    } else if let Some(rest) = text.strip_prefix("How is ") {
        // related(y, x): what X is to Y.
        let (x, y) = rest.split_once(" related to ").unwrap();
        let (x, y) = (w.index[x], w.index[y]);
        assert_ne!(x, y, "`How is X related to X?`: {text}");
        let mut nouns = BTreeSet::new();
        let mut heaviest = 1;
        for rel in bank {
            if w.rels[*rel][y].contains(&x) {
                nouns.insert(noun(w, rel, x));
                heaviest = heaviest.max(weight(rel));
            }
        }
        e.ops = vec!["name", "name", "related"];
        e.sets = vec![vec![w.names[y].clone()], vec![w.names[x].clone()]];
        e.answers = nouns.into_iter().collect();
        e.difficulty = heaviest;
        e.hops = 1;
    } else if let Some(rest) = text.strip_prefix("How many ") {
        // aggregate_all(count, distinct(R(Y_prev, Y)), Count) after the chain: one count per
        // person the chain reaches, the answer being the set of counts.
        let (p, chain) = rest.split_once(" does ").unwrap();
        let chain = chain.strip_suffix(" have").unwrap();
        let rel = plural(p);
        let c = parse_chain(w, chain);
        let set = run_chain(w, &c, &mut e);
        let counts: BTreeSet<String> = set
            .iter()
            .map(|&x| w.rels[rel][x].len().to_string())
            .collect();
        e.ops.push("count_each");
        e.answers = counts.into_iter().collect();
        // `question_difficulty.py`: `aggregate_all` adds 1, whatever the counted relation.
        e.difficulty += 1;
        e.hops += 1;
    } else if let Some(rest) = text.strip_prefix("What is the ") {
        let (attr, chain) = ATTRIBUTES
            .iter()
            .find_map(|(a, alias)| rest.strip_prefix(&format!("{alias} of ")).map(|c| (*a, c)))
            .unwrap_or_else(|| panic!("no attribute in `{text}`"));
        let c = parse_chain(w, chain);
        let set = run_chain(w, &c, &mut e);
        let values: BTreeSet<String> = set.iter().map(|&x| w.attrs[x][attr].clone()).collect();
        e.ops.push("attribute");
        e.answers = values.into_iter().collect();
        e.difficulty += 1;
        e.hops += 1;
    } else if let Some(chain) = text.strip_prefix("Who is ") {
        let c = parse_chain(w, chain);
        assert!(
            !c.hops.is_empty() || matches!(c.start, Start::Whose(..)),
            "`Who is NAME?` gives its answer away: {text}"
        );
        let set = run_chain(w, &c, &mut e);
        e.answers = w.names_of(&set);
        // The chain's last set is the answer: no step after it.
        return e;
    } else {
        panic!("not a PhantomWiki-family question: {text}");
    }
    e.sets.push(e.answers.clone());
    e
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| s(x).to_string())
        .collect()
}

/// Checks every question of one universe; returns (questions, count questions).
fn check(dir: &Path, bank: &[&'static str]) -> (usize, usize) {
    let w = World::read(dir);
    let qs = lines(dir, "questions.jsonl");
    let mut counts = 0;
    for q in &qs {
        let text = s(&q["text"]);
        let e = expect(&w, text, bank);
        assert_eq!(strings(&q["answers"]), e.answers, "answers of `{text}`");
        let steps = q["program"]["steps"].as_array().unwrap();
        let ops: Vec<&str> = steps.iter().map(|st| s(&st["op"])).collect();
        assert_eq!(ops, e.ops, "program of `{text}`");
        let hop_rels: Vec<&str> = steps
            .iter()
            .filter(|st| st["op"] == "hop")
            .map(|st| s(&st["relations"][0]["relation"]))
            .collect();
        assert_eq!(hop_rels, e.hop_relations, "hops of `{text}`");
        let inter: Vec<Vec<String>> = q["intermediate"]
            .as_array()
            .unwrap()
            .iter()
            .map(strings)
            .collect();
        assert_eq!(inter, e.sets, "intermediate sets of `{text}`");
        assert_eq!(
            q["difficulty"].as_u64().unwrap() as usize,
            e.difficulty,
            "difficulty of `{text}`"
        );
        assert_eq!(
            q["hops"].as_u64().unwrap() as usize,
            e.hops,
            "hops of `{text}`"
        );
        for st in steps.iter().filter(|st| st["op"] == "hop") {
            let rel = s(&st["relations"][0]["relation"]);
            assert!(bank.contains(&rel), "`{rel}` is not a hop relation here");
        }
        if q["question_type"] == "count" {
            counts += 1;
        }
    }
    (qs.len(), counts)
}

#[test]
fn family_questions_answer_as_phantomwiki_does() {
    let (_, checked) = check_file(&root().join("rules/family.rules")).unwrap();
    let ir = checked.ir.expect("family.rules checks clean");
    let all: Vec<&'static str> = RELATIONS.iter().map(|r| r.0).collect();
    let (mut total, mut counts) = (0, 0);
    let mut several_counts = 0;
    for size in ["25", "50"] {
        for (mode, bank) in [("easy", easy()), ("all", all.clone())] {
            for seed in [1u64, 2] {
                let set: Vec<(String, String)> = [
                    ("max_tree_size", size),
                    ("relations", mode),
                    ("question_depth", "20"),
                    ("aggregation", "true"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
                let params = Params::resolve(&ir, &set).unwrap();
                let dir = tmpdir("phantomwiki", &format!("{size}-{mode}-{seed}"));
                generate(&ir, &params, &[seed], &dir, &Options::default()).unwrap();
                let (n, c) = check(&dir, &bank);
                assert!(
                    n > 300,
                    "{size} people, {mode}, seed {seed}: only {n} questions"
                );
                total += n;
                counts += c;
                several_counts += lines(&dir, "questions.jsonl")
                    .iter()
                    .filter(|q| {
                        q["question_type"] == "count" && q["answers"].as_array().unwrap().len() > 1
                    })
                    .count();
            }
        }
    }
    eprintln!("{total} questions ({counts} \"How many\") agree with PhantomWiki");
    assert!(total >= 3000, "only {total} questions checked");
    assert!(counts >= 500, "only {counts} count questions checked");
    // The per-person meaning shows: some chains reach people with different counts.
    assert!(
        several_counts > 0,
        "no count question has more than one count"
    );
}
