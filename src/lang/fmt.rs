//! The canonical printer behind `synthpipe fmt`: AST → text in one fixed layout.
//!
//! Literals are printed exactly as written (so numbers keep their spelling), everything else is
//! re-laid out: four-space indents, one statement per line, one blank line between
//! declarations. `//` comments are kept: each is printed before the first construct that starts
//! after it, or at the end of the line it trailed. Parsing the output gives the same IR.

use super::ast::*;

/// Formats a parsed rule file. `src` must be the text `file` was parsed from.
pub fn format(file: &RuleFile, src: &str) -> String {
    let mut p = Printer {
        src,
        out: String::new(),
        comments: &file.comments,
        next: 0,
        indent: 0,
    };
    let mut prev: Option<&Item> = None;
    for item in &file.items {
        if let Some(prev) = prev {
            let compact = matches!(
                (prev, item),
                (Item::Param(_), Item::Param(_))
                    | (Item::Pool(_), Item::Pool(_))
                    | (Item::Bank(_), Item::Bank(_))
            ) && !p.comment_before(item.span().start);
            if !compact {
                p.out.push('\n');
            }
        }
        p.comments_before(item.span().start);
        p.item(item);
        prev = Some(item);
    }
    p.comments_before(usize::MAX);
    p.out
}

struct Printer<'a> {
    src: &'a str,
    out: String,
    comments: &'a [(Span, String)],
    next: usize,
    indent: usize,
}

impl Printer<'_> {
    fn comment_before(&self, pos: usize) -> bool {
        self.comments
            .get(self.next)
            .is_some_and(|(s, _)| s.start < pos)
    }

    /// Prints the comments that come before `pos` in the source, each on its own line.
    fn comments_before(&mut self, pos: usize) {
        while let Some((s, text)) = self.comments.get(self.next) {
            if s.start >= pos {
                break;
            }
            self.pad();
            self.out.push_str("//");
            self.out.push_str(text);
            self.out.push('\n');
            self.next += 1;
            // A blank line after a comment (a file header, a section title) is kept.
            let until = self
                .comments
                .get(self.next)
                .map_or(pos, |(n, _)| n.start.min(pos))
                .min(self.src.len());
            let gap = self.src.get(s.end..until).unwrap_or("");
            if gap.matches('\n').count() >= 2 && until < self.src.len() {
                self.out.push('\n');
            }
        }
    }

    /// Ends a line, keeping a comment that trailed the construct ending at `end`.
    fn end_line(&mut self, end: usize) {
        if let Some((s, text)) = self.comments.get(self.next)
            && s.start >= end
            && self
                .src
                .get(end..s.start)
                .is_some_and(|gap| gap.trim_start_matches([';', ' ', '\t', '\r']).is_empty())
        {
            self.out.push_str(" //");
            self.out.push_str(text);
            self.next += 1;
        }
        self.out.push('\n');
    }

    fn pad(&mut self) {
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
    }

    fn raw(&self, s: Span) -> &str {
        &self.src[s.start..s.end]
    }

    fn w(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn str_lit(&mut self, s: &Str) {
        self.out.push('"');
        for c in s.value.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\t' => self.out.push_str("\\t"),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn lit(&mut self, l: &Lit) {
        let text = self.raw(l.span).to_string();
        self.w(&text);
    }

    fn names(&mut self, names: &[Name]) {
        let joined: Vec<&str> = names.iter().map(|n| n.text.as_str()).collect();
        self.w(&joined.join(", "));
    }

    fn open(&mut self) {
        self.w(" {");
        self.out.push('\n');
        self.indent += 1;
    }

    fn close(&mut self, block_end: usize) {
        self.comments_before(block_end);
        self.indent -= 1;
        self.pad();
        self.w("}");
        self.end_line(block_end);
    }

    fn item(&mut self, item: &Item) {
        self.pad();
        match item {
            Item::Param(p) => {
                self.w(&format!("param {}: {} = ", p.name.text, p.ty.text));
                self.lit(&p.default);
                if let Some((lo, hi)) = &p.range {
                    self.w(" in ");
                    self.lit(lo);
                    self.w("..");
                    self.lit(hi);
                }
                if let Some(d) = &p.doc {
                    self.w(" ");
                    self.str_lit(d);
                }
                self.w(";");
                self.end_line(p.span.end);
            }
            Item::Pool(p) => {
                self.w(&format!("pool {} = ", p.name.text));
                match &p.source {
                    PoolSource::File(f) => {
                        self.w("file ");
                        self.str_lit(f);
                    }
                    PoolSource::List(items) => {
                        self.w("[");
                        for (i, s) in items.iter().enumerate() {
                            if i > 0 {
                                self.w(", ");
                            }
                            self.str_lit(s);
                        }
                        self.w("]");
                    }
                }
                self.w(";");
                self.end_line(p.span.end);
            }
            Item::Entity(e) => self.entity(e),
            Item::Relation(r) => self.relation(r),
            Item::Bank(b) => {
                self.w(&format!("bank {} = ", b.name.text));
                self.names(&b.members);
                self.w(";");
                self.end_line(b.span.end);
            }
            Item::Article(a) => {
                self.w(&format!("article {}", a.entity.text));
                self.open();
                if let Some(t) = &a.title {
                    self.comments_before(t.span.start);
                    self.pad();
                    self.w("title ");
                    self.str_lit(t);
                    self.w(";");
                    self.end_line(t.span.end);
                }
                for part in &a.parts {
                    self.article_part(part);
                }
                self.close(a.span.end);
            }
            Item::Questions(q) => self.questions(q),
        }
    }

    fn entity(&mut self, e: &EntityDecl) {
        self.w(&format!("entity {}", e.name.text));
        if let Some(s) = &e.extends {
            self.w(&format!(" extends {}", s.text));
        }
        if let Some(c) = &e.count {
            self.w(" count ");
            self.lit(c);
        }
        self.open();
        for a in &e.attrs {
            self.comments_before(a.span.start);
            self.pad();
            self.attr(a);
        }
        self.close(e.span.end);
    }

    /// One attribute, entity or relation: `name: key source { say ..; }`.
    fn attr(&mut self, a: &AttrDecl) {
        self.w(&format!("{}: ", a.name.text));
        if a.key.is_some() {
            self.w("key ");
        }
        if a.unique.is_some() {
            self.w("unique ");
        }
        self.source(&a.source);
        if a.say.is_none() && a.whose.is_none() && a.format.is_none() {
            self.w(";");
            self.end_line(a.span.end);
            return;
        }
        self.open();
        if let Some(forms) = &a.say {
            self.forms("say", forms);
        }
        if let Some(forms) = &a.whose {
            self.forms("whose", forms);
        }
        if let Some(f) = &a.format {
            self.comments_before(f.span.start);
            self.pad();
            self.w(&format!("format {};", f.text));
            self.end_line(f.span.end + 1);
        }
        self.close(a.span.end);
    }

    /// `say "one" / "many";` or `whose ..;`: a singular and an optional plural.
    fn forms(&mut self, keyword: &str, (s, p): &(Str, Option<Str>)) {
        self.comments_before(s.span.start);
        self.pad();
        self.w(&format!("{keyword} "));
        self.str_lit(s);
        if let Some(p) = p {
            self.w(" / ");
            self.str_lit(p);
        }
        self.w(";");
        self.end_line(p.as_ref().unwrap_or(s).span.end + 1);
    }

    fn source(&mut self, s: &Source) {
        match s {
            Source::Enum { variants, .. } => {
                self.w("enum { ");
                self.names(variants);
                self.w(" }");
            }
            Source::Pool { pool, .. } => self.w(&format!("pool {}", pool.text)),
            Source::Int { lo, hi, .. } | Source::Date { lo, hi, .. } => {
                self.w(if matches!(s, Source::Int { .. }) {
                    "int "
                } else {
                    "date "
                });
                self.lit(lo);
                self.w("..");
                self.lit(hi);
            }
            Source::Match { on, arms, .. } => {
                self.w(&format!("match {} {{ ", on.text));
                for (i, (v, src)) in arms.iter().enumerate() {
                    if i > 0 {
                        self.w(", ");
                    }
                    self.w(&format!("{} => ", v.text));
                    self.source(src);
                }
                self.w(" }");
            }
            Source::Text { template, .. } => self.str_lit(template),
        }
    }

    fn relation(&mut self, r: &RelationDecl) {
        self.w(&format!("relation {}(", r.name.text));
        let roles: Vec<String> = r
            .roles
            .iter()
            .map(|x| format!("{}: {}", x.name.text, x.ty.text))
            .collect();
        self.w(&roles.join(", "));
        self.w(")");
        if r.symmetric.is_some() {
            self.w(" symmetric");
        }
        if r.irreflexive.is_some() {
            self.w(" irreflexive");
        }
        for (i, b) in r.bodies.iter().enumerate() {
            self.out.push('\n');
            self.comments_before(b.span.start);
            self.pad();
            self.w(if i == 0 { "    := " } else { "     | " });
            self.body(b);
        }
        let has_block = !(r.cards.is_empty()
            && r.generate.is_empty()
            && r.says.is_empty()
            && r.attrs.is_empty()
            && r.weight.is_none());
        if !has_block {
            self.w(";");
            self.end_line(r.span.end);
            return;
        }
        if r.bodies.is_empty() {
            self.open();
        } else {
            self.out.push('\n');
            self.pad();
            self.w("{");
            self.out.push('\n');
            self.indent += 1;
        }
        // Statements keep their source order; each kind is a separate list in the AST.
        let mut stmts: Vec<(usize, Stmt)> = Vec::new();
        stmts.extend(r.cards.iter().map(|c| (c.span.start, Stmt::Card(c))));
        stmts.extend(r.generate.iter().map(|g| (g.span.start, Stmt::Gen(g))));
        stmts.extend(r.says.iter().map(|s| (s.span.start, Stmt::Say(s))));
        stmts.extend(r.attrs.iter().map(|a| (a.span.start, Stmt::Attr(a))));
        if let Some((w, s)) = &r.weight {
            stmts.push((s.start, Stmt::Weight(*w, *s)));
        }
        stmts.sort_by_key(|(k, _)| *k);
        for (start, st) in stmts {
            self.comments_before(start);
            self.pad();
            match st {
                Stmt::Card(c) => {
                    let range = self.raw(c.range_span).replace(' ', "");
                    self.w(&format!(
                        "each {} has {} {};",
                        c.role.text, range, c.other.text
                    ));
                    self.end_line(c.span.end);
                }
                Stmt::Gen(g) => {
                    self.w(&format!("generate {}(", g.generator.text));
                    for (i, (n, v)) in g.args.iter().enumerate() {
                        if i > 0 {
                            self.w(", ");
                        }
                        self.w(&format!("{}: ", n.text));
                        self.lit(v);
                    }
                    self.w(")");
                    // The clause goes on a line of its own, as a rule body does.
                    if let Some(b) = &g.given {
                        self.indent += 1;
                        self.out.push('\n');
                        self.pad();
                        self.w("where ");
                        self.body(b);
                        self.indent -= 1;
                    }
                    self.w(";");
                    self.end_line(g.span.end);
                }
                Stmt::Say(s) => {
                    self.w(&format!("say {}: ", s.role.text));
                    self.str_lit(&s.singular);
                    self.w(" / ");
                    self.str_lit(&s.plural);
                    self.indent += 1;
                    if let Some((ps, pp)) = &s.phrase {
                        self.out.push('\n');
                        self.pad();
                        self.w("phrase ");
                        self.str_lit(ps);
                        self.w(" / ");
                        self.str_lit(pp);
                    }
                    for w in &s.when {
                        self.out.push('\n');
                        self.pad();
                        self.w(&format!("when {} = {}: ", w.attr.text, w.value.text));
                        self.str_lit(&w.singular);
                        self.w(" / ");
                        self.str_lit(&w.plural);
                    }
                    self.indent -= 1;
                    self.w(";");
                    self.end_line(s.span.end);
                }
                Stmt::Weight(w, s) => {
                    self.w(&format!("weight {w};"));
                    self.end_line(s.end + 1);
                }
                Stmt::Attr(a) => self.attr(a),
            }
        }
        self.close(r.span.end);
    }

    fn body(&mut self, b: &RuleBody) {
        for (i, l) in b.lits.iter().enumerate() {
            if i > 0 {
                self.w(", ");
            }
            match l {
                BodyLit::Atom { atom, negated } => {
                    if negated.is_some() {
                        self.w("not ");
                    }
                    self.atom(atom);
                }
                BodyLit::AttrTest {
                    var,
                    attr,
                    op,
                    value,
                    ..
                } => {
                    self.w(&format!("{}.{} {} ", var.text, attr.text, op.as_str()));
                    match value {
                        TestValue::Lit(l) => self.lit(l),
                        TestValue::AttrOf { var, attr, .. } => {
                            self.w(&format!("{}.{}", var.text, attr.text))
                        }
                    }
                }
                BodyLit::VarTest {
                    left, op, right, ..
                } => {
                    self.w(&format!("{} {} {}", left.text, op.as_str(), right.text));
                }
            }
        }
    }

    fn atom(&mut self, a: &Atom) {
        let args: Vec<String> = a
            .args
            .iter()
            .map(|(r, v)| format!("{}: {}", r.text, v.text))
            .collect();
        self.w(&format!("{}({})", a.relation.text, args.join(", ")));
    }

    fn article_part(&mut self, p: &ArticlePart) {
        self.comments_before(p.span().start);
        self.pad();
        match p {
            ArticlePart::Line(s, otherwise) => {
                self.w("line ");
                self.str_lit(s);
                let mut end = s.span.end;
                if let Some(o) = otherwise {
                    self.w(" else ");
                    self.str_lit(o);
                    end = o.span.end;
                }
                self.w(";");
                self.end_line(end + 1);
            }
            ArticlePart::Facts { names, span } => {
                self.w("facts ");
                self.names(names);
                self.w(";");
                self.end_line(span.end);
            }
            ArticlePart::Section {
                heading,
                parts,
                span,
            } => {
                self.w("section ");
                self.str_lit(heading);
                self.open();
                for p in parts {
                    self.article_part(p);
                }
                self.close(span.end);
            }
        }
    }

    /// `allow a, b;` on one line, when any are given.
    fn allow(&mut self, names: &[Name]) {
        if let (Some(first), Some(last)) = (names.first(), names.last()) {
            self.comments_before(first.span.start);
            self.pad();
            self.w("allow ");
            self.names(names);
            self.w(";");
            self.end_line(last.span.end + 1);
        }
    }

    fn questions(&mut self, q: &QuestionsDecl) {
        self.w("questions");
        self.open();
        let settings = [
            ("depth", &q.depth),
            ("per_template", &q.per_template),
            ("unanswerable", &q.unanswerable),
            ("max_answers", &q.max_answers),
            ("hops", &q.hops),
        ];
        for (kw, v) in settings {
            if let Some(v) = v {
                self.comments_before(v.span.start);
                self.pad();
                self.w(&format!("{kw} "));
                self.lit(v);
                self.w(";");
                self.end_line(v.span.end + 1);
            }
        }
        if let Some(n) = &q.number {
            self.comments_before(n.span.start);
            self.pad();
            self.w(&format!("number {};", n.text));
            self.end_line(n.span.end + 1);
        }
        self.allow(&q.allow);
        for s in &q.starts {
            self.comments_before(s.span().start);
            self.pad();
            match s {
                StartDecl::Name { .. } => self.w("start name;"),
                StartDecl::Whose { attrs, .. } => {
                    let a: Vec<String> = attrs
                        .iter()
                        .map(|p| format!("{}.{}", p.entity.text, p.attr.text))
                        .collect();
                    self.w(&format!("start whose {};", a.join(", ")));
                }
            }
            self.end_line(s.span().end);
        }
        for t in &q.templates {
            self.out.push('\n');
            self.comments_before(t.span.start);
            self.pad();
            self.w(&format!("template {} ", t.name.text));
            self.str_lit(&t.text);
            if let Some(w) = &t.when {
                self.w(" when ");
                self.lit(w);
            }
            self.open();
            self.allow(&t.allow);
            for s in &t.slots {
                self.comments_before(s.span.start);
                self.pad();
                self.w(&format!("{}: ", s.name.text));
                match &s.kind {
                    SlotKind::Chain(ty) => self.w(&format!("chain {}", ty.text)),
                    SlotKind::Name(ty) => self.w(&format!("name {}", ty.text)),
                    SlotKind::Attr(paths) => {
                        let a: Vec<String> = paths
                            .iter()
                            .map(|p| format!("{}.{}", p.entity.text, p.attr.text))
                            .collect();
                        self.w(&format!("attr {}", a.join(", ")));
                    }
                    SlotKind::Relation(names) => {
                        self.w("relation");
                        if !names.is_empty() {
                            self.w(" ");
                            self.names(names);
                        }
                    }
                }
                self.w(";");
                self.end_line(s.span.end);
            }
            self.comments_before(t.answer.span().start);
            self.pad();
            self.w("answer ");
            self.expr(&t.answer);
            self.w(";");
            self.end_line(t.answer.span().end + 1);
            self.close(t.span.end);
        }
        self.close(q.span.end);
    }

    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::Ref(n) => self.w(&n.text),
            Expr::Call {
                callee, role, args, ..
            } => {
                self.w(&callee.text);
                if let Some(r) = role {
                    self.w(&format!(".{}", r.text));
                }
                self.w("(");
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        self.w(", ");
                    }
                    self.expr(a);
                }
                self.w(")");
            }
            Expr::Intersect { op, parts, .. } => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        self.w(&format!(" {} ", op.symbol()));
                    }
                    self.expr(p);
                }
            }
        }
    }
}

enum Stmt<'a> {
    Card(&'a CardDecl),
    Gen(&'a GenerateDecl),
    Say(&'a SayDecl),
    Attr(&'a AttrDecl),
    Weight(i64, Span),
}
