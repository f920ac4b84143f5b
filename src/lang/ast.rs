//! The spanned syntax tree of a rule file: what the user wrote, before any name is resolved.
//!
//! Nothing here depends on pest (see `syntax.rs`), so the parser can be replaced and the
//! checker and formatter only ever see these types. Every name carries the byte span of its
//! text so diagnostics can point at it.

use serde::Serialize;

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// An identifier with where it was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Name {
    pub text: String,
    pub span: Span,
}

/// A string literal, already unescaped, with the span of the whole literal (quotes included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Str {
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleFile {
    pub items: Vec<Item>,
    /// `//` comments with their spans, kept so that `fmt` can put them back.
    pub comments: Vec<(Span, String)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Item {
    Param(ParamDecl),
    Pool(PoolDecl),
    Entity(EntityDecl),
    Relation(RelationDecl),
    Bank(BankDecl),
    Article(ArticleDecl),
    Questions(QuestionsDecl),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Param(d) => d.span,
            Item::Pool(d) => d.span,
            Item::Entity(d) => d.span,
            Item::Relation(d) => d.span,
            Item::Bank(d) => d.span,
            Item::Article(d) => d.span,
            Item::Questions(d) => d.span,
        }
    }
}

/// A literal value as written: parameter defaults, ranges, generator arguments, tests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(String),
    Str(String),
    /// A bare word: an enumeration variant, a bank name, an attribute name, depending on use.
    Ident(String),
    Param(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Lit {
    pub value: Literal,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamDecl {
    pub name: Name,
    pub ty: Name,
    pub default: Lit,
    pub range: Option<(Lit, Lit)>,
    pub doc: Option<Str>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum PoolSource {
    File(Str),
    List(Vec<Str>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolDecl {
    pub name: Name,
    pub source: PoolSource,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EntityDecl {
    pub name: Name,
    /// `extends person`: the supertype whose attributes and relations this type shares.
    pub extends: Option<Name>,
    pub count: Option<Lit>,
    pub attrs: Vec<AttrDecl>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttrDecl {
    pub name: Name,
    pub key: Option<Span>,
    pub unique: Option<Span>,
    pub source: Source,
    pub say: Option<(Str, Option<Str>)>,
    /// The `whose` phrase, and its plural for a start that picks several entities.
    pub whose: Option<(Str, Option<Str>)>,
    /// `format long;`: how a value reads in text.
    pub format: Option<Name>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Source {
    Enum {
        variants: Vec<Name>,
        span: Span,
    },
    Pool {
        pool: Name,
        span: Span,
    },
    Int {
        lo: Lit,
        hi: Lit,
        span: Span,
    },
    Date {
        lo: Lit,
        hi: Lit,
        span: Span,
    },
    Match {
        on: Name,
        arms: Vec<(Name, Source)>,
        span: Span,
    },
    Text {
        template: Str,
        span: Span,
    },
}

impl Source {
    pub fn span(&self) -> Span {
        match self {
            Source::Enum { span, .. }
            | Source::Pool { span, .. }
            | Source::Int { span, .. }
            | Source::Date { span, .. }
            | Source::Match { span, .. }
            | Source::Text { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoleDecl {
    pub name: Name,
    pub ty: Name,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RelationDecl {
    pub name: Name,
    pub roles: Vec<RoleDecl>,
    pub symmetric: Option<Span>,
    pub irreflexive: Option<Span>,
    /// Alternative rule bodies (`:= a | b`); empty for a base relation.
    pub bodies: Vec<RuleBody>,
    pub cards: Vec<CardDecl>,
    pub generate: Vec<GenerateDecl>,
    pub says: Vec<SayDecl>,
    /// Attributes of each fact (a base relation's): `since: int 1990..2024;`.
    pub attrs: Vec<AttrDecl>,
    pub weight: Option<(i64, Span)>,
    /// Span of the head `name(roles)`, where most relation-level diagnostics point.
    pub head_span: Span,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleBody {
    pub lits: Vec<BodyLit>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum BodyLit {
    Atom {
        atom: Atom,
        negated: Option<Span>,
    },
    AttrTest {
        var: Name,
        attr: Name,
        op: CmpOp,
        value: TestValue,
        span: Span,
    },
    VarTest {
        left: Name,
        op: CmpOp,
        right: Name,
        span: Span,
    },
}

impl BodyLit {
    pub fn span(&self) -> Span {
        match self {
            BodyLit::Atom { atom, negated } => negated.map_or(atom.span, |n| n.to(atom.span)),
            BodyLit::AttrTest { span, .. } | BodyLit::VarTest { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Atom {
    pub relation: Name,
    pub args: Vec<(Name, Name)>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
    pub fn is_order(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
    /// The operator `as_str` prints, as the IR stores it.
    pub fn parse(s: &str) -> Option<CmpOp> {
        [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
    /// Whether `a OP b` holds, given `a.cmp(b)`.
    pub fn holds(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Eq => o == Equal,
            CmpOp::Ne => o != Equal,
            CmpOp::Lt => o == Less,
            CmpOp::Le => o != Greater,
            CmpOp::Gt => o == Greater,
            CmpOp::Ge => o != Less,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TestValue {
    Lit(Lit),
    AttrOf { var: Name, attr: Name, span: Span },
}

impl TestValue {
    pub fn span(&self) -> Span {
        match self {
            TestValue::Lit(l) => l.span,
            TestValue::AttrOf { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CardDecl {
    pub role: Name,
    pub lo: i64,
    /// `None` is `*`, unbounded.
    pub hi: Option<i64>,
    pub other: Name,
    pub range_span: Span,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GenerateDecl {
    pub generator: Name,
    pub args: Vec<(Name, Lit)>,
    /// `where BODY`: a partner is drawn only among those for which the body holds.
    pub given: Option<RuleBody>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SayDecl {
    pub role: Name,
    pub singular: Str,
    pub plural: Str,
    /// A hop phrase of its own, singular and plural, with the other role as placeholder:
    /// `phrase "the player managed by {manager}" / "the players managed by {manager}"`.
    pub phrase: Option<(Str, Str)>,
    /// Gendered (or otherwise conditional) forms: `when gender = female: "wife" / "wives"`.
    pub when: Vec<SayWhen>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SayWhen {
    pub attr: Name,
    pub value: Name,
    pub singular: Str,
    pub plural: Str,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BankDecl {
    pub name: Name,
    pub members: Vec<Name>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArticleDecl {
    pub entity: Name,
    pub title: Option<Str>,
    pub parts: Vec<ArticlePart>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ArticlePart {
    /// A line, and what to say instead when one of its placeholders has no value.
    Line(Str, Option<Str>),
    Facts {
        names: Vec<Name>,
        span: Span,
    },
    Section {
        heading: Str,
        parts: Vec<ArticlePart>,
        span: Span,
    },
}

impl ArticlePart {
    pub fn span(&self) -> Span {
        match self {
            ArticlePart::Line(s, None) => s.span,
            ArticlePart::Line(s, Some(e)) => Span::new(s.span.start, e.span.end),
            ArticlePart::Facts { span, .. } | ArticlePart::Section { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuestionsDecl {
    pub depth: Option<Lit>,
    pub per_template: Option<Lit>,
    /// Share of questions asked with an empty answer set: a float literal or `$param`.
    pub unanswerable: Option<Lit>,
    pub max_answers: Option<Lit>,
    /// A bank name or a `$param` of type bank.
    pub hops: Option<Lit>,
    /// `number singular;` or `number agree;`.
    pub number: Option<Name>,
    /// `allow backtrack, start_in_answer, every_value;`: walk filters switched off.
    pub allow: Vec<Name>,
    pub starts: Vec<StartDecl>,
    pub templates: Vec<TemplateDecl>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum StartDecl {
    Name { span: Span },
    Whose { attrs: Vec<AttrPath>, span: Span },
}

impl StartDecl {
    pub fn span(&self) -> Span {
        match self {
            StartDecl::Name { span } | StartDecl::Whose { span, .. } => *span,
        }
    }
}

/// `type.attribute`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttrPath {
    pub entity: Name,
    pub attr: Name,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TemplateDecl {
    pub name: Name,
    pub text: Str,
    pub when: Option<Lit>,
    /// Walk filters this template switches off, besides the block's.
    pub allow: Vec<Name>,
    pub slots: Vec<SlotDecl>,
    pub answer: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlotDecl {
    pub name: Name,
    pub kind: SlotKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum SlotKind {
    /// A composed noun phrase denoting entities of a type: a name, a `whose` start, or hops.
    Chain(Name),
    /// The name of one entity of a type.
    Name(Name),
    /// One of the listed attributes.
    Attr(Vec<AttrPath>),
    /// A hop relation: any of the listed relations/banks, or any hop relation when empty.
    Relation(Vec<Name>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Expr {
    Ref(Name),
    Call {
        callee: Name,
        role: Option<Name>,
        args: Vec<Expr>,
        span: Span,
    },
    /// `a & b`, `a | b` or `a - b`: one operator over all parts.
    Intersect {
        op: SetOp,
        parts: Vec<Expr>,
        span: Span,
    },
}

/// A set operator of answer expressions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SetOp {
    /// `&`: the entities in every part.
    And,
    /// `|`: the entities in any part.
    Or,
    /// `-`: the entities of the left part that are not in the right one.
    Minus,
}

impl SetOp {
    pub fn symbol(self) -> &'static str {
        match self {
            SetOp::And => "&",
            SetOp::Or => "|",
            SetOp::Minus => "-",
        }
    }
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Ref(n) => n.span,
            Expr::Call { span, .. } | Expr::Intersect { span, .. } => *span,
        }
    }
}
