//! The pest front end: source text → `ast::RuleFile`, or one syntax diagnostic.
//!
//! This is the only module that sees pest types. pest stops at the first syntax error, so a
//! parse yields at most one diagnostic; its expected-token list is translated into words.

use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use std::sync::Mutex;

use super::ast::*;
use super::diag::{Code, Diagnostic};

#[derive(pest_derive::Parser)]
#[grammar = "grammar/rules.pest"]
struct RulesParser;

type P<'a> = Pair<'a, Rule>;

/// Parses a whole rule file.
pub fn parse(src: &str) -> Result<RuleFile, Diagnostic> {
    let mut pairs = match RulesParser::parse(Rule::file, src) {
        Ok(p) => p,
        Err(_) => return Err(detailed_error(src)),
    };
    let file = pairs
        .next()
        .expect("the `file` rule always yields one pair");
    let items = file
        .into_inner()
        .filter(|p| p.as_rule() != Rule::EOI)
        .map(item)
        .collect();
    Ok(RuleFile {
        items,
        comments: comments(src),
    })
}

/// Every syntax error of a file that does not parse, recovering at statement boundaries:
/// after each error the broken statement (from the previous `;`, `{` or `}` to its own `;`,
/// or its block) is blanked out — spans and line numbers kept — and the file parsed again,
/// so one run reports each broken line. An error that only follows from an earlier blanking
/// (nothing left to blank) ends the search; at most `MAX` are reported.
pub fn syntax_errors(src: &str) -> Vec<Diagnostic> {
    const MAX: usize = 50;
    let mut text = src.to_string();
    let mut out: Vec<Diagnostic> = Vec::new();
    let mut last = None;
    while out.len() < MAX {
        if RulesParser::parse(Rule::file, &text).is_ok() {
            break;
        }
        let d = detailed_error(&text);
        let pos = d.span.start;
        let Some((start, end)) = statement_around(&text, pos) else {
            if out.is_empty() {
                out.push(d);
            }
            break;
        };
        if last.is_some_and(|l| pos <= l) {
            break;
        }
        last = Some(pos);
        // Only statements before the error were blanked, so its message quotes the source.
        out.push(d);
        text = blank(&text, start, end);
    }
    out
}

/// The statement containing byte `pos`: from just after the previous `;`, `{` or `}` to the
/// end of the statement (its `;`, or its closing `}` when it opens a block), strings and
/// comments skipped. `None` when it holds nothing but blanks.
fn statement_around(src: &str, pos: usize) -> Option<(usize, usize)> {
    let marks = boundaries(src);
    let start = marks
        .iter()
        .rev()
        .find(|(i, _)| *i < pos)
        .map_or(0, |(i, _)| i + 1);
    let mut depth = 0usize;
    let mut end = src.len();
    for &(i, c) in marks.iter().filter(|(i, _)| *i >= pos) {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                end = i;
                break;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = i + 1;
                    break;
                }
            }
            ';' if depth == 0 => {
                end = i + 1;
                break;
            }
            _ => {}
        }
    }
    let span = src.get(start..end)?;
    (!span.trim().is_empty()).then_some((start, end))
}

/// Positions of `;`, `{` and `}` outside strings and comments.
fn boundaries(src: &str) -> Vec<(usize, char)> {
    let mut out = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                // A string ends at its closing quote, or (unterminated) at the line's end.
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '/' if chars.peek().is_some_and(|&(_, n)| n == '/') => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            ';' | '{' | '}' => out.push((i, c)),
            _ => {}
        }
    }
    out
}

/// `src` with bytes `start..end` replaced by spaces, newlines kept.
fn blank(src: &str, start: usize, end: usize) -> String {
    let mut out = String::with_capacity(src.len());
    out.push_str(&src[..start]);
    for c in src[start..end].chars() {
        if c == '\n' {
            out.push('\n');
        } else {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    }
    out.push_str(&src[end..]);
    out
}

/// Re-parses a file known to be invalid with pest's attempt tracking on, so the error points
/// at the exact token rather than the start of the enclosing rule. Tracking doubles parse
/// time, so valid files are parsed without it. The switch is process-global: a count of
/// detailed parses in flight keeps it on until the last one ends, so a concurrent parse can
/// never turn it off under another (which would make diagnostics depend on thread timing).
fn detailed_error(src: &str) -> Diagnostic {
    static ACTIVE: Mutex<usize> = Mutex::new(0);
    let enter = |delta: isize| {
        let mut n = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_add_signed(delta);
        pest::set_error_detail(*n > 0);
    };
    enter(1);
    let result = RulesParser::parse(Rule::file, src);
    enter(-1);
    match result {
        Err(e) => syntax_error(src, e),
        // Unreachable in practice: the same input parsed without tracking failed.
        Ok(_) => Diagnostic::new(
            Code::Syntax,
            Span::new(0, 0),
            "the file could not be parsed",
        )
        .label("here")
        .help("see docs/rules.md for the shape of each declaration"),
    }
}

fn syntax_error(src: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    let (mut start, mut end) = match e.location {
        InputLocation::Pos(p) => (p, p),
        InputLocation::Span((s, e)) => (s, e),
    };
    // Literal tokens (`:`, `;`, `{`) expected further in than any rule attempt.
    let mut tokens: Vec<String> = Vec::new();
    if let Some(a) = e.parse_attempts()
        && a.max_position > start
        && a.max_position <= src.len()
    {
        start = a.max_position;
        end = start;
        tokens = a
            .expected_tokens()
            .into_iter()
            // Only literal tokens: ranges and built-ins (letters, digits) are better
            // described by the rule that wanted them.
            .map(|t| t.to_string())
            .filter(|t| {
                !t.is_empty()
                    && !t.contains("..")
                    && t != "BUILTIN_RULE"
                    && t != "//"
                    && t.trim() == t
            })
            .map(|t| format!("`{t}`"))
            .collect();
    }
    // Point at the offending token (up to the end of the word), not an empty position.
    let end = if end > start {
        end
    } else {
        let rest = &src[start.min(src.len())..];
        let word = rest
            .char_indices()
            .find(|&(i, c)| i > 0 && !(c.is_alphanumeric() || c == '_'))
            .map_or(rest.len(), |(i, _)| i);
        start + word.max(rest.chars().next().map_or(0, char::len_utf8))
    };
    let found = if start >= src.len() {
        "end of file".to_string()
    } else {
        // Control characters (a raw newline in an unterminated string) must not break the line.
        format!(
            "`{}`",
            src[start..end]
                .chars()
                .take(30)
                .collect::<String>()
                .escape_debug()
        )
    };
    // At the end of the file there is nothing to underline: point at the last character.
    let (start, end) = if start >= src.len() && !src.is_empty() {
        let last = src.char_indices().last().map_or(0, |(i, _)| i);
        (last, src.len())
    } else {
        (start, end)
    };
    let (message, label, help) = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut words: Vec<&str> = if tokens.is_empty() {
                positives.iter().map(|r| describe(*r)).collect()
            } else {
                tokens.iter().map(String::as_str).collect()
            };
            // After a generator's `)` the optional `where` is attempted last, so pest
            // reports it alone; the statement may as well end there.
            if words == ["`where`"] {
                words.insert(0, "`;`");
            }
            words.sort();
            words.dedup();
            let expected = match words.len() {
                0 => "something else".to_string(),
                1 => words[0].to_string(),
                _ => {
                    let (last, rest) = words.split_last().expect("len >= 2");
                    format!("{} or {}", rest.join(", "), last)
                }
            };
            (
                format!("unexpected {found}: expected {expected}"),
                format!("expected {expected}"),
                hint(src, start, &words),
            )
        }
        ErrorVariant::CustomError { message } => (message.clone(), "here".into(), None),
    };
    Diagnostic::new(Code::Syntax, Span::new(start, end.min(src.len())), message)
        .label(label)
        .help(
            help.unwrap_or_else(|| {
                "see docs/rules.md for the shape of each declaration".to_string()
            }),
        )
}

/// Hand-written hints for the most common slips.
fn hint(src: &str, pos: usize, expected: &[&str]) -> Option<String> {
    let before = src[..pos.min(src.len())].trim_end();
    if before.matches('"').count() % 2 == 1 && src[before.len()..].starts_with(['\n', '\r']) {
        return Some("a string ends on the line it starts: close it with `\"` (write `\\n` for a line break)".into());
    }
    let code: String = src
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect();
    if src.get(pos..).is_none_or(|rest| rest.trim().is_empty())
        && code.matches('{').count() > code.matches('}').count()
    {
        return Some("a `{` is never closed: add the missing `}`".into());
    }
    let gap = &src[before.len()..pos.min(src.len())];
    if gap.contains('\n') && !before.ends_with([';', '{', '}']) && !before.is_empty() {
        return Some("the previous line may be missing its `;`".into());
    }
    let word = src.get(pos..).map_or("", |rest| {
        rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("")
    });
    // The statement so far, from the previous `;`, `{` or `}`.
    let stmt_start = boundaries(src)
        .iter()
        .rev()
        .find(|(i, _)| *i < pos)
        .map_or(0, |(i, _)| i + 1);
    let stmt = src
        .get(stmt_start..pos.min(src.len()))
        .unwrap_or("")
        .trim_start();
    if stmt.starts_with("entity")
        && (src[pos.min(src.len())..].starts_with(':') || matches!(word, "is" | "extends"))
    {
        return Some(
            "a type extends another with `extends`, before its count: \
             `entity doctor extends staff count 20 { .. }`"
                .into(),
        );
    }
    if stmt.starts_with("say") && stmt.contains(':') && expected.contains(&"`/`") {
        return Some(
            "a relation's `say` gives the singular and the plural: \
             `say friend: \"friend\" / \"friends\";`"
                .into(),
        );
    }
    if stmt.starts_with("answer") && src[pos.min(src.len())..].starts_with(['&', '|', '-']) {
        return Some(
            "one kind of set operator per answer: `a & b & c` (in all), `a | b | c` (in \
             any) or `a - b` (in a, not in b)"
                .into(),
        );
    }
    if matches!(word, "key" | "unique") {
        return Some(format!(
            "`key` and `unique` go before the attribute's source: `name: {word} pool names;`"
        ));
    }
    if expected.contains(&"`;`") {
        return Some("every declaration and statement ends with `;`".into());
    }
    if before.ends_with(':') && expected.iter().any(|w| w.contains("source")) {
        return Some(
            "an attribute takes a source: `enum { .. }`, `pool NAME`, `int LO..HI`, \
             `date LO..HI`, `match ATTR { .. }` or a text template \"{a} {b}\""
                .into(),
        );
    }
    if expected.contains(&"a declaration") {
        return Some(
            "a rule file is a list of `param`, `pool`, `entity`, `relation`, `bank`, \
             `article` and `questions` declarations"
                .into(),
        );
    }
    None
}

fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::param_decl
        | Rule::pool_decl
        | Rule::entity_decl
        | Rule::relation_decl
        | Rule::bank_decl
        | Rule::article_decl
        | Rule::questions_decl => "a declaration",
        Rule::ident | Rule::ident_list => "a name",
        Rule::string | Rule::text_src => "a string",
        Rule::int | Rule::int_value => "an integer",
        Rule::float => "a number",
        Rule::date | Rule::date_value => "a date (YYYY-MM-DD)",
        Rule::param_ref => "a `$parameter`",
        Rule::literal | Rule::gen_value | Rule::test_value => "a value",
        Rule::source
        | Rule::enum_src
        | Rule::pool_src
        | Rule::int_src
        | Rule::date_src
        | Rule::match_src => "an attribute source",
        Rule::attr_decl => "an attribute",
        Rule::attr_mod => "`key` or `unique`",
        Rule::role_decl => "a role `name: type`",
        Rule::rel_flag => "`symmetric` or `irreflexive`",
        Rule::rule_bodies => "`:=` and a rule body",
        Rule::rule_body | Rule::atom | Rule::neg_atom | Rule::attr_test | Rule::var_test => {
            "a body literal"
        }
        Rule::role_arg => "a role argument `role: variable`",
        Rule::cmp_op => "a comparison",
        Rule::rel_body | Rule::attr_body => "`{`",
        Rule::card_decl
        | Rule::generate_decl
        | Rule::rel_say
        | Rule::weight_decl
        | Rule::attr_say
        | Rule::attr_whose
        | Rule::attr_format => {
            "a statement (`say`, `whose`, `format`, `each`, `generate`, `weight`)"
        }
        Rule::say_when => "`when`",
        Rule::say_phrase => "`phrase`",
        Rule::card_range => "a cardinality like `0..2` or `1`",
        Rule::gen_arg => "a generator argument `name: value`",
        Rule::title_decl | Rule::section_decl | Rule::line_decl | Rule::facts_decl => {
            "an article part (`title`, `section`, `line`, `facts`)"
        }
        Rule::depth_decl
        | Rule::per_template_decl
        | Rule::unanswerable_decl
        | Rule::max_answers_decl
        | Rule::hops_decl
        | Rule::number_decl
        | Rule::allow_decl
        | Rule::start_decl
        | Rule::template_decl => {
            "a questions statement (`depth`, `per_template`, `unanswerable`, `max_answers`, `hops`, `start`, `template`)"
        }
        Rule::start_name | Rule::start_whose => "`name` or `whose`",
        Rule::attr_path => "`type.attribute`",
        Rule::slot_decl => "a slot `name: kind;`",
        Rule::slot_kind | Rule::chain_slot | Rule::name_slot | Rule::attr_slot | Rule::rel_slot => {
            "a slot kind (`chain`, `name`, `attr`, `relation`)"
        }
        Rule::answer_decl => "`answer`",
        Rule::expr | Rule::term | Rule::call | Rule::callee => "an expression",
        Rule::and_op => "`&`",
        Rule::or_op => "`|`",
        Rule::minus_op => "`-`",
        Rule::template_when => "`when`",
        Rule::pool_file | Rule::pool_list => "`file \"..\"` or a list `[\"..\"]`",
        Rule::param_range => "`in LO..HI`",
        Rule::entity_count => "`count`",
        Rule::entity_extends => "`extends`",
        Rule::match_arm => "a match arm `variant => source`",
        Rule::boolean => "`true` or `false`",
        Rule::star => "`*`",
        Rule::kw_param => "`param`",
        Rule::kw_pool => "`pool`",
        Rule::kw_file => "`file`",
        Rule::kw_entity => "`entity`",
        Rule::kw_count => "`count`",
        Rule::kw_extends => "`extends`",
        Rule::kw_where => "`where`",
        Rule::gen_where => "`where`",
        Rule::kw_key => "`key`",
        Rule::kw_unique => "`unique`",
        Rule::kw_enum => "`enum`",
        Rule::kw_int => "`int`",
        Rule::kw_date => "`date`",
        Rule::kw_match => "`match`",
        Rule::kw_say => "`say`",
        Rule::kw_whose => "`whose`",
        Rule::kw_relation => "`relation`",
        Rule::kw_symmetric => "`symmetric`",
        Rule::kw_irreflexive => "`irreflexive`",
        Rule::kw_not => "`not`",
        Rule::kw_each => "`each`",
        Rule::kw_has => "`has`",
        Rule::kw_generate => "`generate`",
        Rule::kw_when => "`when`",
        Rule::kw_weight => "`weight`",
        Rule::kw_bank => "`bank`",
        Rule::kw_article => "`article`",
        Rule::kw_title => "`title`",
        Rule::kw_section => "`section`",
        Rule::kw_line => "`line`",
        Rule::kw_else => "`else`",
        Rule::kw_facts => "`facts`",
        Rule::kw_questions => "`questions`",
        Rule::kw_depth => "`depth`",
        Rule::kw_per_template => "`per_template`",
        Rule::kw_unanswerable => "`unanswerable`",
        Rule::kw_max_answers => "`max_answers`",
        Rule::kw_hops => "`hops`",
        Rule::kw_start => "`start`",
        Rule::kw_name => "`name`",
        Rule::kw_template => "`template`",
        Rule::kw_chain => "`chain`",
        Rule::kw_attr => "`attr`",
        Rule::kw_answer => "`answer`",
        Rule::kw_in => "`in`",
        Rule::kw_number => "`number`",
        Rule::kw_allow => "`allow`",
        Rule::kw_phrase => "`phrase`",
        Rule::kw_format => "`format`",
        Rule::file
        | Rule::item
        | Rule::WHITESPACE
        | Rule::COMMENT
        | Rule::ident_char
        | Rule::string_body
        | Rule::body_lit
        | Rule::rel_item
        | Rule::article_item
        | Rule::q_item
        | Rule::attr_ref => "something else",
    }
}

/// Collects `//` comments (outside strings) so the formatter can keep them.
fn comments(src: &str) -> Vec<(Span, String)> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_str = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_str {
            if b == b'\\' {
                i += 1;
            } else if b == b'"' || b == b'\n' {
                in_str = false;
            }
        } else if b == b'"' {
            in_str = true;
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
            out.push((Span::new(i, end), src[i + 2..end].trim_end().to_string()));
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

// ------------------------------------------------------------------ pairs → AST

fn span(p: &P) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end())
}

fn name(p: P) -> Name {
    Name {
        text: p.as_str().to_string(),
        span: span(&p),
    }
}

fn string(p: P) -> Str {
    let sp = span(&p);
    let body = p.into_inner().next().map_or("", |b| b.as_str());
    let mut value = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some(other) => value.push(other),
                None => {}
            }
        } else {
            value.push(c);
        }
    }
    Str { value, span: sp }
}

/// Integers that overflow i64 become a syntax-level value the checker rejects as a range
/// problem; saturating keeps the parser total.
fn parse_int(s: &str) -> i64 {
    s.parse::<i64>().unwrap_or(if s.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    })
}

fn lit(p: P) -> Lit {
    let sp = span(&p);
    let inner = match p.as_rule() {
        Rule::literal | Rule::gen_value | Rule::int_value | Rule::date_value | Rule::test_value => {
            p.into_inner()
                .next()
                .expect("value rules wrap exactly one token")
        }
        _ => p,
    };
    let text = inner.as_str();
    let value = match inner.as_rule() {
        Rule::int => Literal::Int(parse_int(text)),
        Rule::float => Literal::Float(text.parse().unwrap_or(f64::NAN)),
        Rule::boolean => Literal::Bool(text == "true"),
        Rule::date => Literal::Date(text.to_string()),
        Rule::string => Literal::Str(string(inner).value),
        Rule::param_ref => Literal::Param(text[1..].to_string()),
        _ => Literal::Ident(text.to_string()),
    };
    Lit { value, span: sp }
}

fn item(p: P) -> Item {
    match p.as_rule() {
        Rule::param_decl => Item::Param(param_decl(p)),
        Rule::pool_decl => Item::Pool(pool_decl(p)),
        Rule::entity_decl => Item::Entity(entity_decl(p)),
        Rule::relation_decl => Item::Relation(relation_decl(p)),
        Rule::bank_decl => Item::Bank(bank_decl(p)),
        Rule::article_decl => Item::Article(article_decl(p)),
        Rule::questions_decl => Item::Questions(questions_decl(p)),
        r => unreachable!("grammar yields only declarations at top level, got {r:?}"),
    }
}

fn skip_kw<'a>(it: &mut impl Iterator<Item = P<'a>>) {
    it.next();
}

fn param_decl(p: P) -> ParamDecl {
    let sp = span(&p);
    let mut it = p.into_inner();
    skip_kw(&mut it);
    let name = name(it.next().expect("param name"));
    let ty = self::name(it.next().expect("param type"));
    let default = lit(it.next().expect("param default"));
    let mut range = None;
    let mut doc = None;
    for q in it {
        match q.as_rule() {
            Rule::param_range => {
                let mut r = q.into_inner();
                skip_kw(&mut r);
                let lo = lit(r.next().expect("range lo"));
                let hi = lit(r.next().expect("range hi"));
                range = Some((lo, hi));
            }
            Rule::string => doc = Some(string(q)),
            _ => {}
        }
    }
    ParamDecl {
        name,
        ty,
        default,
        range,
        doc,
        span: sp,
    }
}

fn pool_decl(p: P) -> PoolDecl {
    let sp = span(&p);
    let mut it = p.into_inner();
    skip_kw(&mut it);
    let name = name(it.next().expect("pool name"));
    let src = it.next().expect("pool source");
    let source = match src.as_rule() {
        Rule::pool_file => {
            let mut s = src.into_inner();
            skip_kw(&mut s);
            PoolSource::File(string(s.next().expect("pool file path")))
        }
        _ => PoolSource::List(src.into_inner().map(string).collect()),
    };
    PoolDecl {
        name,
        source,
        span: sp,
    }
}

fn entity_decl(p: P) -> EntityDecl {
    let sp = span(&p);
    let mut it = p.into_inner();
    skip_kw(&mut it);
    let name = name(it.next().expect("entity name"));
    let mut count = None;
    let mut extends = None;
    let mut attrs = Vec::new();
    for q in it {
        match q.as_rule() {
            Rule::entity_extends => {
                let mut c = q.into_inner();
                skip_kw(&mut c);
                extends = Some(self::name(c.next().expect("supertype name")));
            }
            Rule::entity_count => {
                let mut c = q.into_inner();
                skip_kw(&mut c);
                count = Some(lit(c.next().expect("count value")));
            }
            Rule::attr_decl => attrs.push(attr_decl(q)),
            _ => {}
        }
    }
    EntityDecl {
        name,
        extends,
        count,
        attrs,
        span: sp,
    }
}

fn attr_decl(p: P) -> AttrDecl {
    let sp = span(&p);
    let mut it = p.into_inner();
    let name = name(it.next().expect("attribute name"));
    let mut key = None;
    let mut unique = None;
    let mut source_ast = None;
    let mut say = None;
    let mut whose = None;
    let mut format = None;
    for q in it {
        match q.as_rule() {
            Rule::attr_mod => {
                let m = q.into_inner().next().expect("modifier keyword");
                match m.as_rule() {
                    Rule::kw_key => key = Some(span(&m)),
                    _ => unique = Some(span(&m)),
                }
            }
            Rule::source => source_ast = Some(source(q)),
            Rule::attr_body => {
                for b in q.into_inner() {
                    match b.as_rule() {
                        Rule::attr_say => {
                            let mut s = b.into_inner();
                            skip_kw(&mut s);
                            let sing = string(s.next().expect("singular"));
                            let plur = s.next().map(string);
                            say = Some((sing, plur));
                        }
                        Rule::attr_whose => {
                            let mut s = b.into_inner();
                            skip_kw(&mut s);
                            let sing = string(s.next().expect("whose text"));
                            whose = Some((sing, s.next().map(string)));
                        }
                        Rule::attr_format => {
                            let mut s = b.into_inner();
                            skip_kw(&mut s);
                            format = Some(self::name(s.next().expect("format name")));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    AttrDecl {
        name,
        key,
        unique,
        source: source_ast.expect("grammar requires a source"),
        say,
        whose,
        format,
        span: sp,
    }
}

fn source(p: P) -> Source {
    let inner = p.into_inner().next().expect("source wraps one alternative");
    let sp = span(&inner);
    match inner.as_rule() {
        Rule::enum_src => {
            let mut it = inner.into_inner();
            skip_kw(&mut it);
            let variants = it
                .next()
                .expect("variants")
                .into_inner()
                .map(name)
                .collect();
            Source::Enum { variants, span: sp }
        }
        Rule::pool_src => {
            let mut it = inner.into_inner();
            skip_kw(&mut it);
            Source::Pool {
                pool: name(it.next().expect("pool name")),
                span: sp,
            }
        }
        Rule::int_src | Rule::date_src => {
            let is_int = inner.as_rule() == Rule::int_src;
            let mut it = inner.into_inner();
            skip_kw(&mut it);
            let lo = lit(it.next().expect("lo"));
            let hi = lit(it.next().expect("hi"));
            if is_int {
                Source::Int { lo, hi, span: sp }
            } else {
                Source::Date { lo, hi, span: sp }
            }
        }
        Rule::match_src => {
            let mut it = inner.into_inner();
            skip_kw(&mut it);
            let on = name(it.next().expect("match attribute"));
            let arms = it
                .map(|arm| {
                    let mut a = arm.into_inner();
                    let v = name(a.next().expect("arm variant"));
                    let s = source(a.next().expect("arm source"));
                    (v, s)
                })
                .collect();
            Source::Match { on, arms, span: sp }
        }
        _ => {
            let s = string(inner.into_inner().next().expect("text template"));
            Source::Text {
                template: s,
                span: sp,
            }
        }
    }
}

fn relation_decl(p: P) -> RelationDecl {
    let sp = span(&p);
    let mut it = p.into_inner().peekable();
    skip_kw(&mut it);
    let name = name(it.next().expect("relation name"));
    let mut roles = Vec::new();
    let mut head_end = name.span.end;
    let mut symmetric = None;
    let mut irreflexive = None;
    let mut bodies = Vec::new();
    let mut cards = Vec::new();
    let mut generate = Vec::new();
    let mut says = Vec::new();
    let mut attrs = Vec::new();
    let mut weight = None;
    for q in it {
        match q.as_rule() {
            Rule::role_decl => {
                head_end = span(&q).end;
                let mut r = q.into_inner();
                let n = self::name(r.next().expect("role name"));
                let t = self::name(r.next().expect("role type"));
                roles.push(RoleDecl { name: n, ty: t });
            }
            Rule::rel_flag => {
                let f = q.into_inner().next().expect("flag keyword");
                if f.as_rule() == Rule::kw_symmetric {
                    symmetric = Some(span(&f));
                } else {
                    irreflexive = Some(span(&f));
                }
            }
            Rule::rule_bodies => bodies = q.into_inner().map(rule_body).collect(),
            Rule::rel_body => {
                for s in q.into_inner() {
                    match s.as_rule() {
                        Rule::card_decl => cards.push(card_decl(s)),
                        Rule::generate_decl => generate.push(generate_decl(s)),
                        Rule::rel_say => says.push(say_decl(s)),
                        Rule::attr_decl => attrs.push(attr_decl(s)),
                        Rule::weight_decl => {
                            let mut w = s.into_inner();
                            skip_kw(&mut w);
                            let n = w.next().expect("weight");
                            weight = Some((parse_int(n.as_str()), span(&n)));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // The head ends at the closing parenthesis after the last role.
    let head_span = Span::new(name.span.start, head_end + 1).to(name.span);
    RelationDecl {
        name,
        roles,
        symmetric,
        irreflexive,
        bodies,
        cards,
        generate,
        says,
        attrs,
        weight,
        head_span,
        span: sp,
    }
}

fn rule_body(p: P) -> RuleBody {
    let sp = span(&p);
    let lits = p.into_inner().map(body_lit).collect();
    RuleBody { lits, span: sp }
}

fn atom(p: P) -> Atom {
    let sp = span(&p);
    let mut it = p.into_inner();
    let relation = name(it.next().expect("atom relation"));
    let args = it
        .map(|a| {
            let mut r = a.into_inner();
            let role = name(r.next().expect("role"));
            let var = name(r.next().expect("variable"));
            (role, var)
        })
        .collect();
    Atom {
        relation,
        args,
        span: sp,
    }
}

fn cmp(p: P) -> CmpOp {
    match p.as_str() {
        "!=" => CmpOp::Ne,
        "<=" => CmpOp::Le,
        ">=" => CmpOp::Ge,
        "<" => CmpOp::Lt,
        ">" => CmpOp::Gt,
        _ => CmpOp::Eq,
    }
}

fn body_lit(p: P) -> BodyLit {
    let sp = span(&p);
    match p.as_rule() {
        Rule::neg_atom => {
            let mut it = p.into_inner();
            let kw = it.next().expect("not");
            BodyLit::Atom {
                atom: atom(it.next().expect("atom")),
                negated: Some(span(&kw)),
            }
        }
        Rule::atom => BodyLit::Atom {
            atom: atom(p),
            negated: None,
        },
        Rule::attr_test => {
            let mut it = p.into_inner();
            let var = name(it.next().expect("var"));
            let attr = name(it.next().expect("attr"));
            let op = cmp(it.next().expect("op"));
            let tv = it.next().expect("test value");
            let inner = tv
                .clone()
                .into_inner()
                .next()
                .expect("test value wraps one token");
            let value = if inner.as_rule() == Rule::attr_ref {
                let isp = span(&inner);
                let mut r = inner.into_inner();
                TestValue::AttrOf {
                    var: name(r.next().expect("var")),
                    attr: name(r.next().expect("attr")),
                    span: isp,
                }
            } else {
                TestValue::Lit(lit(tv))
            };
            BodyLit::AttrTest {
                var,
                attr,
                op,
                value,
                span: sp,
            }
        }
        _ => {
            let mut it = p.into_inner();
            let left = name(it.next().expect("left"));
            let op = cmp(it.next().expect("op"));
            let right = name(it.next().expect("right"));
            BodyLit::VarTest {
                left,
                op,
                right,
                span: sp,
            }
        }
    }
}

fn card_decl(p: P) -> CardDecl {
    let sp = span(&p);
    let mut it = p.into_inner();
    skip_kw(&mut it);
    let role = name(it.next().expect("role"));
    skip_kw(&mut it);
    let range = it.next().expect("range");
    let range_span = span(&range);
    let mut r = range.into_inner();
    let lo = parse_int(r.next().expect("lo").as_str());
    let hi = match r.next() {
        None => Some(lo),
        Some(h) if h.as_rule() == Rule::star => None,
        Some(h) => Some(parse_int(h.as_str())),
    };
    let other = name(it.next().expect("other role"));
    CardDecl {
        role,
        lo,
        hi,
        other,
        range_span,
        span: sp,
    }
}

fn generate_decl(p: P) -> GenerateDecl {
    let sp = span(&p);
    let mut it = p.into_inner();
    skip_kw(&mut it);
    let generator = name(it.next().expect("generator"));
    let mut args = Vec::new();
    let mut given = None;
    for a in it {
        if a.as_rule() == Rule::gen_where {
            let mut w = a.into_inner();
            skip_kw(&mut w);
            given = w.next().map(rule_body);
            continue;
        }
        let mut r = a.into_inner();
        let n = name(r.next().expect("arg name"));
        let v = lit(r.next().expect("arg value"));
        args.push((n, v));
    }
    GenerateDecl {
        generator,
        args,
        given,
        span: sp,
    }
}

fn say_decl(p: P) -> SayDecl {
    let sp = span(&p);
    let mut it = p.into_inner();
    skip_kw(&mut it);
    let role = name(it.next().expect("role"));
    let singular = string(it.next().expect("singular"));
    let plural = string(it.next().expect("plural"));
    let mut it = it.peekable();
    let phrase = it.next_if(|p| p.as_rule() == Rule::say_phrase).map(|p| {
        let mut r = p.into_inner();
        skip_kw(&mut r);
        (
            string(r.next().expect("singular phrase")),
            string(r.next().expect("plural phrase")),
        )
    });
    let when = it
        .map(|w| {
            let mut r = w.into_inner();
            skip_kw(&mut r);
            SayWhen {
                attr: name(r.next().expect("attr")),
                value: name(r.next().expect("value")),
                singular: string(r.next().expect("singular")),
                plural: string(r.next().expect("plural")),
            }
        })
        .collect();
    SayDecl {
        role,
        singular,
        plural,
        phrase,
        when,
        span: sp,
    }
}

fn bank_decl(p: P) -> BankDecl {
    let sp = span(&p);
    let mut it = p.into_inner();
    skip_kw(&mut it);
    let name = name(it.next().expect("bank name"));
    let members = it
        .next()
        .expect("members")
        .into_inner()
        .map(self::name)
        .collect();
    BankDecl {
        name,
        members,
        span: sp,
    }
}

fn article_decl(p: P) -> ArticleDecl {
    let sp = span(&p);
    let mut it = p.into_inner();
    skip_kw(&mut it);
    let entity = name(it.next().expect("entity"));
    let mut title = None;
    let mut parts = Vec::new();
    for q in it {
        if q.as_rule() == Rule::title_decl {
            let mut t = q.into_inner();
            skip_kw(&mut t);
            title = Some(string(t.next().expect("title")));
        } else {
            parts.push(article_part(q));
        }
    }
    ArticleDecl {
        entity,
        title,
        parts,
        span: sp,
    }
}

fn article_part(p: P) -> ArticlePart {
    let sp = span(&p);
    let rule = p.as_rule();
    let mut it = p.into_inner();
    skip_kw(&mut it);
    match rule {
        Rule::line_decl => {
            let text = string(it.next().expect("line"));
            skip_kw(&mut it);
            ArticlePart::Line(text, it.next().map(string))
        }
        Rule::facts_decl => ArticlePart::Facts {
            names: it.next().expect("names").into_inner().map(name).collect(),
            span: sp,
        },
        _ => {
            let heading = string(it.next().expect("heading"));
            ArticlePart::Section {
                heading,
                parts: it.map(article_part).collect(),
                span: sp,
            }
        }
    }
}

fn questions_decl(p: P) -> QuestionsDecl {
    let sp = span(&p);
    let mut it = p.into_inner();
    skip_kw(&mut it);
    let mut q = QuestionsDecl {
        depth: None,
        per_template: None,
        unanswerable: None,
        max_answers: None,
        hops: None,
        number: None,
        allow: Vec::new(),
        starts: Vec::new(),
        templates: Vec::new(),
        span: sp,
    };
    for s in it {
        let ssp = span(&s);
        match s.as_rule() {
            Rule::depth_decl
            | Rule::per_template_decl
            | Rule::unanswerable_decl
            | Rule::max_answers_decl
            | Rule::hops_decl => {
                let rule = s.as_rule();
                let mut r = s.into_inner();
                skip_kw(&mut r);
                let v = lit(r.next().expect("setting value"));
                match rule {
                    Rule::depth_decl => q.depth = Some(v),
                    Rule::per_template_decl => q.per_template = Some(v),
                    Rule::unanswerable_decl => q.unanswerable = Some(v),
                    Rule::max_answers_decl => q.max_answers = Some(v),
                    _ => q.hops = Some(v),
                }
            }
            Rule::start_decl => {
                let mut r = s.into_inner();
                skip_kw(&mut r);
                let k = r.next().expect("start kind");
                if k.as_rule() == Rule::start_name {
                    q.starts.push(StartDecl::Name { span: ssp });
                } else {
                    let mut a = k.into_inner();
                    skip_kw(&mut a);
                    q.starts.push(StartDecl::Whose {
                        attrs: a.map(attr_path).collect(),
                        span: ssp,
                    });
                }
            }
            Rule::number_decl => {
                let mut r = s.into_inner();
                skip_kw(&mut r);
                q.number = Some(name(r.next().expect("number mode")));
            }
            Rule::allow_decl => q.allow.extend(allow_decl(s)),
            Rule::template_decl => q.templates.push(template_decl(s)),
            _ => {}
        }
    }
    q
}

/// The names of `allow a, b;`.
fn allow_decl(p: P) -> Vec<Name> {
    let mut r = p.into_inner();
    skip_kw(&mut r);
    r.next()
        .map(|l| l.into_inner().map(name).collect())
        .unwrap_or_default()
}

fn attr_path(p: P) -> AttrPath {
    let sp = span(&p);
    let mut it = p.into_inner();
    AttrPath {
        entity: name(it.next().expect("entity")),
        attr: name(it.next().expect("attr")),
        span: sp,
    }
}

fn template_decl(p: P) -> TemplateDecl {
    let sp = span(&p);
    let mut it = p.into_inner();
    skip_kw(&mut it);
    let name = name(it.next().expect("template name"));
    let text = string(it.next().expect("template text"));
    let mut when = None;
    let mut slots = Vec::new();
    let mut allow = Vec::new();
    let mut answer = None;
    for q in it {
        match q.as_rule() {
            Rule::template_when => {
                let mut w = q.into_inner();
                skip_kw(&mut w);
                when = Some(lit(w.next().expect("param")));
            }
            Rule::slot_decl => slots.push(slot_decl(q)),
            Rule::allow_decl => allow.extend(allow_decl(q)),
            Rule::answer_decl => {
                let mut a = q.into_inner();
                skip_kw(&mut a);
                answer = Some(expr(a.next().expect("expr")));
            }
            _ => {}
        }
    }
    TemplateDecl {
        name,
        text,
        when,
        allow,
        slots,
        answer: answer.expect("grammar requires an answer"),
        span: sp,
    }
}

fn slot_decl(p: P) -> SlotDecl {
    let sp = span(&p);
    let mut it = p.into_inner();
    let name = name(it.next().expect("slot name"));
    let kind = it
        .next()
        .expect("slot kind")
        .into_inner()
        .next()
        .expect("kind");
    let rule = kind.as_rule();
    let mut k = kind.into_inner();
    skip_kw(&mut k);
    let kind = match rule {
        Rule::chain_slot => SlotKind::Chain(self::name(k.next().expect("type"))),
        Rule::name_slot => SlotKind::Name(self::name(k.next().expect("type"))),
        Rule::attr_slot => SlotKind::Attr(k.map(attr_path).collect()),
        _ => SlotKind::Relation(
            k.next()
                .map(|l| l.into_inner().map(self::name).collect())
                .unwrap_or_default(),
        ),
    };
    SlotDecl {
        name,
        kind,
        span: sp,
    }
}

fn expr(p: P) -> Expr {
    let sp = span(&p);
    let mut op = SetOp::And;
    let mut parts: Vec<Expr> = Vec::new();
    for q in p.into_inner() {
        match q.as_rule() {
            Rule::and_op => op = SetOp::And,
            Rule::or_op => op = SetOp::Or,
            Rule::minus_op => op = SetOp::Minus,
            _ => parts.push(term(q)),
        }
    }
    if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Expr::Intersect {
            op,
            parts,
            span: sp,
        }
    }
}

fn term(p: P) -> Expr {
    let inner = p.into_inner().next().expect("term wraps one alternative");
    match inner.as_rule() {
        Rule::call => {
            let sp = span(&inner);
            let mut it = inner.into_inner();
            let mut c = it.next().expect("callee").into_inner();
            let callee = name(c.next().expect("callee name"));
            let role = c.next().map(name);
            Expr::Call {
                callee,
                role,
                args: it.map(expr).collect(),
                span: sp,
            }
        }
        _ => Expr::Ref(name(inner)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_small_file() {
        let f = parse(
            "param n: int = 3 in 1..10 \"how many\";\n\
             entity city count $n { name: key pool cities; }\n\
             pool cities = [\"A\", \"B\"]; // two\n",
        )
        .unwrap();
        assert_eq!(f.items.len(), 3);
        assert_eq!(f.comments.len(), 1);
        assert_eq!(f.comments[0].1, " two");
    }

    #[test]
    fn syntax_error_points_at_token() {
        let src = "entity person { name key pool names; }";
        let d = parse(src).unwrap_err();
        assert_eq!(d.code, Code::Syntax);
        assert_eq!(&src[d.span.start..d.span.end], "key");
    }

    #[test]
    fn every_broken_statement_is_reported_once() {
        let src = "pool names = [\"a\", \"b\"];\n\
                   entity person count 2 {\n\
                   \x20   name key pool names;\n\
                   \x20   age: int 1..9\n\
                   \x20   born: date 1990-01-01..1999-12-31;\n\
                   \x20   job pool names;\n\
                   }\n\
                   relation knows(a: person, b: person) { say b: \"friend\"; }\n";
        let ds = syntax_errors(src);
        let lines: Vec<usize> = ds
            .iter()
            .map(|d| src[..d.span.start].matches('\n').count() + 1)
            .collect();
        assert_eq!(lines, [3, 5, 6, 8], "{ds:#?}");
        assert!(
            ds[3]
                .help
                .as_deref()
                .unwrap()
                .contains("singular and the plural")
        );
        // A valid file has none; a file broken once has one.
        assert!(syntax_errors("pool p = [\"x\"];").is_empty());
        assert_eq!(syntax_errors("pool p = [\"x\"]").len(), 1);
    }

    #[test]
    fn keywords_need_word_boundary() {
        // `nothing(...)` is an atom, not `not hing(...)`.
        let f = parse("relation r(a: t, b: t) := nothing(x: a, y: b);").unwrap();
        let Item::Relation(r) = &f.items[0] else {
            panic!()
        };
        assert!(matches!(
            &r.bodies[0].lits[0],
            BodyLit::Atom { negated: None, .. }
        ));
    }
}
