//! Snapshot and property tests of the rule language: the IR of every valid file, the rendered
//! diagnostics of every invalid one, `fmt` round trips, and coverage of every diagnostic code.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{root, rule_files, stem};
use synthpipe::lang::{self, Code, check_file, diag};

fn ok_files() -> Vec<std::path::PathBuf> {
    let mut v = rule_files("rules");
    v.extend(rule_files("tests/grammar/ok"));
    v
}

fn render(path: &Path, text: &str, diags: &[lang::Diagnostic]) -> String {
    diag::render_plain(
        diags,
        &path.file_name().unwrap().to_string_lossy(),
        text,
        100,
    )
}

#[test]
fn every_valid_file_checks_clean_and_its_ir_is_snapshotted() {
    let files = ok_files();
    assert!(
        files.len() >= 4,
        "expected the shipped domains and tests/grammar/ok files"
    );
    for path in files {
        let (text, checked) = check_file(&path).unwrap();
        assert!(
            checked.diagnostics.is_empty(),
            "{} should check clean:\n{}",
            path.display(),
            render(&path, &text, &checked.diagnostics)
        );
        let ir = checked.ir.expect("no errors means an IR");
        let dir = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        insta::with_settings!({ snapshot_suffix => format!("{dir}-{}", stem(&path)), omit_expression => true }, {
            insta::assert_yaml_snapshot!("ir", ir);
        });
    }
}

#[test]
fn every_invalid_file_is_rejected_with_coded_diagnostics() {
    let files = rule_files("tests/grammar/err");
    assert!(
        files.len() >= 30,
        "at least 30 error fixtures, found {}",
        files.len()
    );
    for path in files {
        let (text, checked) = check_file(&path).unwrap();
        assert!(
            !checked.diagnostics.is_empty(),
            "{} produced no diagnostic",
            path.display()
        );
        // The first line names the code the fixture is about; it must be among those reported.
        let first = text.lines().next().unwrap_or("");
        let intended: String = first
            .trim_start_matches("//")
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            checked
                .diagnostics
                .iter()
                .any(|d| d.code.name() == intended),
            "{}: expected `{intended}` among {:?}",
            path.display(),
            checked
                .diagnostics
                .iter()
                .map(|d| d.code.name())
                .collect::<Vec<_>>()
        );
        for d in &checked.diagnostics {
            assert!(
                d.span.end <= text.len() && d.span.start <= d.span.end,
                "{}: span out of range",
                path.display()
            );
            assert!(
                d.help.is_some(),
                "{}: `{}` has no help",
                path.display(),
                d.code.name()
            );
        }
        let rendered = render(&path, &text, &checked.diagnostics);
        insta::with_settings!({ snapshot_suffix => stem(&path), omit_expression => true }, {
            insta::assert_snapshot!("diagnostics", rendered);
        });
    }
}

#[test]
fn every_diagnostic_code_has_a_fixture_and_documentation() {
    let mut seen = BTreeSet::new();
    for path in rule_files("tests/grammar/err") {
        let (_, checked) = check_file(&path).unwrap();
        seen.extend(checked.diagnostics.iter().map(|d| d.code));
    }
    let docs = std::fs::read_to_string(root().join("docs/rules.md")).unwrap();
    for code in Code::ALL {
        assert!(
            seen.contains(code),
            "no fixture in tests/grammar/err triggers `{}`",
            code.name()
        );
        assert!(
            docs.contains(&code.full()),
            "docs/rules.md does not document `{}`",
            code.full()
        );
    }
}

#[test]
fn fmt_round_trips_to_the_same_ir_and_is_idempotent() {
    for path in ok_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let formatted = lang::format_source(&text).unwrap();
        let base = path.parent().unwrap();
        let before = lang::check_source(&text, Some(base)).ir.unwrap();
        let after = lang::check_source(&formatted, Some(base)).ir.unwrap();
        assert_eq!(before, after, "{}: fmt changed the IR", path.display());
        assert_eq!(before.digest(), after.digest());
        assert_eq!(
            lang::format_source(&formatted).unwrap(),
            formatted,
            "{}: fmt is not idempotent",
            path.display()
        );
        // Comments survive.
        let count = |s: &str| s.matches("//").count();
        assert_eq!(
            count(&text),
            count(&formatted),
            "{}: fmt lost comments",
            path.display()
        );
    }
}

#[test]
fn shipped_rules_are_formatted() {
    for path in rule_files("rules") {
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            lang::format_source(&text).unwrap(),
            text,
            "run `synthpipe fmt {}`",
            path.display()
        );
    }
}

#[test]
fn ir_digest_ignores_layout_but_not_meaning() {
    let a = "pool n = [\"x\", \"y\"];\nentity t count 2 { name: key pool n; }\n";
    let b = "// a comment\npool n = [\"x\",\"y\"];   entity t count 2 {\n name : key pool n ;\n}";
    let c = "pool n = [\"x\", \"z\"];\nentity t count 2 { name: key pool n; }\n";
    let d = |s: &str| lang::check_source(s, None).ir.unwrap().digest();
    assert_eq!(d(a), d(b));
    assert_ne!(d(a), d(c), "pool contents are part of the digest");
}

#[test]
fn family_has_phantomwiki_relations_weights_and_easy_mode() {
    let (_, checked) = check_file(&root().join("rules/family.rules")).unwrap();
    let ir = checked.ir.unwrap();
    let family = ir.bank("family").unwrap();
    assert_eq!(
        family.relations.len(),
        44,
        "PhantomWiki's 44 family relations"
    );
    let weight = |r: &str| ir.relation(r).unwrap().weight;
    for r in [
        "mother", "father", "son", "daughter", "sibling", "brother", "sister", "wife", "husband",
        "parent", "child",
    ] {
        assert_eq!(weight(r), 1, "{r}");
    }
    for r in [
        "aunt",
        "uncle",
        "niece",
        "nephew",
        "grandmother",
        "grandson",
        "mother_in_law",
        "son_in_law",
    ] {
        assert_eq!(weight(r), 2, "{r}");
    }
    for r in ["great_aunt", "great_grandfather", "cousin", "male_cousin"] {
        assert_eq!(weight(r), 3, "{r}");
    }
    for r in [
        "second_aunt",
        "second_uncle",
        "female_first_cousin_once_removed",
    ] {
        assert_eq!(weight(r), 4, "{r}");
    }
    for r in ["female_second_cousin", "male_second_cousin"] {
        assert_eq!(weight(r), 5, "{r}");
    }
    let easy: BTreeSet<&str> = ir
        .bank("easy")
        .unwrap()
        .relations
        .iter()
        .map(|r| r.name())
        .collect();
    let want: BTreeSet<&str> = [
        "parent", "child", "sibling", "brother", "sister", "mother", "father", "son", "daughter",
        "wife", "husband", "friend",
    ]
    .into();
    assert_eq!(easy, want);
    // Names: 1,000,000 unique full names need at least 1000 first names per gender and surnames.
    for pool in ["female_first_names", "male_first_names", "surnames"] {
        assert!(
            ir.pools.iter().find(|p| p.name == pool).unwrap().len >= 1000,
            "{pool}"
        );
    }
    for pool in ["jobs", "hobbies"] {
        assert!(
            ir.pools.iter().find(|p| p.name == pool).unwrap().len >= 300,
            "{pool}"
        );
    }
    assert!(ir.relation("ancestor").unwrap().recursive);
    assert!(
        ir.relation("collateral_relative").unwrap().stratum
            > ir.relation("ancestor").unwrap().stratum
    );
}

#[test]
fn a_megabyte_rule_file_checks_clean() {
    let src = common::large_rules(1 << 20);
    let checked = lang::check_source(&src, None);
    assert!(
        checked.diagnostics.is_empty(),
        "{:?}",
        &checked.diagnostics[..checked.diagnostics.len().min(3)]
    );
}

/// The ```rules blocks of docs/rules.md, each with the heading it sits under.
fn doc_examples() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(root().join("docs/rules.md")).unwrap();
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut block: Option<String> = None;
    for line in doc.lines() {
        match &mut block {
            Some(b) if line == "```" => {
                out.push((heading.clone(), std::mem::take(b)));
                block = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None if line == "```rules" => block = Some(String::new()),
            None if line.starts_with('#') => heading = line.to_string(),
            None => {}
        }
    }
    out
}

#[test]
fn the_documentation_examples_do_what_the_text_says() {
    let examples = doc_examples();
    // §1 promises a file that checks clean and is already canonical.
    let (_, first) = &examples[0];
    let checked = lang::check_source(first, None);
    assert!(
        checked.diagnostics.is_empty(),
        "{}",
        render(Path::new("docs.rules"), first, &checked.diagnostics)
    );
    assert_eq!(&lang::format_source(first).unwrap(), first);

    // §14 promises that each example, appended to its base file, triggers exactly the
    // diagnostic it is listed under.
    let base = examples
        .iter()
        .find(|(h, _)| h == "## 14. Diagnostics")
        .map(|(_, b)| b.clone())
        .expect("§14 shows its base file");
    let mut seen = BTreeSet::new();
    for (heading, fragment) in &examples {
        let Some(name) = heading
            .strip_prefix("### `synthpipe::rules::")
            .and_then(|h| h.strip_suffix('`'))
        else {
            continue;
        };
        let text = format!("{base}{fragment}");
        let checked = lang::check_source(&text, Some(&root().join("docs")));
        let codes: BTreeSet<&str> = checked.diagnostics.iter().map(|d| d.code.name()).collect();
        assert_eq!(
            codes,
            BTreeSet::from([name]),
            "the example for `{name}`:\n{}",
            render(Path::new("docs.rules"), &text, &checked.diagnostics)
        );
        seen.insert(name.to_string());
    }
    let all: BTreeSet<String> = Code::ALL.iter().map(|c| c.name().to_string()).collect();
    assert_eq!(seen, all, "every code has a documented example");
}

/// §15's tutorial shows the shipped football domain: each of its blocks is an excerpt of
/// `rules/football.rules`, so the two cannot drift apart.
#[test]
fn the_tutorial_is_made_of_the_shipped_football_domain() {
    let football = std::fs::read_to_string(root().join("rules/football.rules")).unwrap();
    let steps: Vec<String> = doc_examples()
        .into_iter()
        .filter(|(h, _)| h.starts_with("### Step "))
        .map(|(_, b)| b)
        .collect();
    assert!(steps.len() >= 10, "{} tutorial blocks", steps.len());
    for b in &steps {
        assert!(
            football.contains(b.trim_end()),
            "not in rules/football.rules:\n{b}"
        );
    }
}

/// The checker's IR refers to declarations by id (what generation uses); every id must point
/// at the declaration its name spells, or generation would silently read the wrong one.
#[test]
fn references_are_ids_of_the_declarations_they_name() {
    use synthpipe::lang::ir::*;
    fn attr_ok(ir: &Ir, a: &AttrRef) -> bool {
        ir.attr_of(a).name == a.name()
    }
    fn holes_ok(ir: &Ir, ety: &EntityType, parts: &[TextPart]) -> bool {
        parts.iter().all(|p| match p {
            TextPart::Lit(_) | TextPart::Agree { .. } => true,
            TextPart::Hole { name, to, .. } => match *to {
                Hole::Attr(i) => ety.attrs[i].name == *name,
                Hole::Relation(r) => ir.relations[r].name == *name,
                Hole::FactAttr(r, a) => {
                    ir.relations[r].name == *name
                        && p_form(p).is_some_and(|f| ir.relations[r].attrs[a].name == f)
                }
                Hole::Filled => false,
            },
        })
    }
    fn p_form(p: &TextPart) -> Option<&str> {
        match p {
            TextPart::Hole { form, .. } => form.as_deref(),
            _ => None,
        }
    }
    fn answer_ok(ir: &Ir, e: &AnswerExpr) -> bool {
        match e {
            AnswerExpr::Slot(_) => true,
            AnswerExpr::Hop { relation, arg, .. } => {
                ir.relation_of(relation).name == relation.name() && answer_ok(ir, arg)
            }
            AnswerExpr::Attr { attr, arg } => attr_ok(ir, attr) && answer_ok(ir, arg),
            AnswerExpr::HopSlot { arg, .. }
            | AnswerExpr::AttrSlot { arg, .. }
            | AnswerExpr::Count(arg)
            | AnswerExpr::CountEach(arg) => answer_ok(ir, arg),
            AnswerExpr::Intersect(xs) | AnswerExpr::Union(xs) | AnswerExpr::Difference(xs) => {
                xs.iter().all(|x| answer_ok(ir, x))
            }
            AnswerExpr::ArgMin { attr, args } | AnswerExpr::ArgMax { attr, args } => {
                attr_ok(ir, attr) && args.iter().all(|x| answer_ok(ir, x))
            }
            AnswerExpr::ArgCount { relation, args, .. } => {
                ir.relation_of(relation).name == relation.name()
                    && args.iter().all(|x| answer_ok(ir, x))
            }
            AnswerExpr::FactAttr {
                relation,
                attr,
                args,
                ..
            } => {
                let r = ir.relation_of(relation);
                r.name == relation.name()
                    && *attr < r.attrs.len()
                    && args.iter().all(|x| answer_ok(ir, x))
            }
            AnswerExpr::Same(a, b) | AnswerExpr::Related(a, b) => {
                answer_ok(ir, a) && answer_ok(ir, b)
            }
        }
    }
    let mut checked = 0;
    for path in ok_files() {
        let (_, c) = check_file(&path).unwrap();
        let ir = c.ir.unwrap();
        let p = path.display();
        let ent = |r: &EntityRef| ir.entity_of(r).name == r.name();
        let rel = |r: &RelationRef| ir.relation_of(r).name == r.name();
        for e in &ir.entities {
            assert!(attr_ok(&ir, &e.key), "{p}: key of {}", e.name);
            if let Some(s) = &e.extends {
                assert!(ent(s), "{p}: supertype of {}", e.name);
            }
            for a in &e.attrs {
                if let AttrSource::Text(parts) = &a.source {
                    assert!(holes_ok(&ir, e, parts), "{p}: template of {}", a.name);
                }
                if let AttrSource::Match { on, .. } = &a.source {
                    assert!(attr_ok(&ir, on), "{p}: match of {}", a.name);
                }
            }
        }
        for r in &ir.relations {
            assert!(
                r.roles.iter().all(|x| ent(&x.ty)),
                "{p}: roles of {}",
                r.name
            );
            for s in &r.says {
                assert!(
                    s.when.iter().all(|w| attr_ok(&ir, &w.attr)),
                    "{p}: {}",
                    r.name
                );
            }
            if let RelationDef::Derived(rules) = &r.def {
                for rule in rules {
                    assert!(rule.vars.iter().all(|(_, t)| ent(t)), "{p}: {}", r.name);
                    for b in &rule.body {
                        let ok = match b {
                            BodyIr::Atom { relation, .. } => rel(relation),
                            BodyIr::AttrTest {
                                var, attr, value, ..
                            } => {
                                attr.owner() == rule.vars[*var].1.id()
                                    && attr_ok(&ir, attr)
                                    && match value {
                                        TestValueIr::Attr { attr, .. } => attr_ok(&ir, attr),
                                        _ => true,
                                    }
                            }
                            BodyIr::VarTest { .. } => true,
                        };
                        assert!(ok, "{p}: {b:?} in {}", r.name);
                    }
                }
            }
        }
        for b in &ir.banks {
            assert!(b.relations.iter().all(rel), "{p}: bank {}", b.name);
        }
        for a in &ir.articles {
            let ety = ir.entity_of(&a.entity);
            assert!(ent(&a.entity) && holes_ok(&ir, ety, &a.title), "{p}");
            fn parts_ok(ir: &Ir, ety: &EntityType, parts: &[ArticlePartIr]) -> bool {
                parts.iter().all(|x| match x {
                    ArticlePartIr::Line { text, otherwise } => {
                        holes_ok(ir, ety, text)
                            && otherwise.as_ref().is_none_or(|o| holes_ok(ir, ety, o))
                    }
                    ArticlePartIr::Facts(fs) => fs.iter().all(|f| match f {
                        FactRef::Attr(a) => attr_ok(ir, a),
                        FactRef::Relation { relation, .. } => {
                            ir.relation_of(relation).name == relation.name()
                        }
                    }),
                    ArticlePartIr::Section { parts, .. } => parts_ok(ir, ety, parts),
                })
            }
            assert!(parts_ok(&ir, ety, &a.parts), "{p}: article of {}", ety.name);
        }
        if let Some(q) = &ir.questions {
            if let Some(HopSet::Bank(b)) = &q.hops {
                assert_eq!(ir.bank_of(b).name, b.name(), "{p}");
            }
            for s in &q.starts {
                if let Start::Whose { entity, attr } = s {
                    assert!(ent(entity) && attr_ok(&ir, attr), "{p}: {s:?}");
                }
            }
            for t in &q.templates {
                for s in &t.slots {
                    let ok = match &s.kind {
                        SlotKindIr::Chain(e) | SlotKindIr::Name(e) => ent(e),
                        SlotKindIr::Attr(l) => l.iter().all(|(e, a)| ent(e) && attr_ok(&ir, a)),
                        SlotKindIr::Relation(l) => l.iter().all(rel),
                    };
                    assert!(ok, "{p}: slot {} of {}", s.name, t.name);
                }
                assert!(answer_ok(&ir, &t.answer), "{p}: answer of {}", t.name);
            }
        }
        checked += 1;
    }
    assert!(checked >= 5, "the shipped domains and the ok fixtures");
}
