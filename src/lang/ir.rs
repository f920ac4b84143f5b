//! The checked, typed intermediate representation of a rule file: what generation uses.
//!
//! Everything here is resolved and validated: names refer to declarations that exist, types
//! agree, rules are safe and stratified. It carries no spans, so formatting and comments never
//! change it, and its canonical JSON is what cache keys hash (`Ir::digest`). Order follows the
//! source's declaration order; maps are `BTreeMap`s, so the encoding is deterministic.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ir {
    pub params: Vec<Param>,
    pub pools: Vec<Pool>,
    pub entities: Vec<EntityType>,
    pub relations: Vec<Relation>,
    pub banks: Vec<Bank>,
    pub articles: Vec<Article>,
    pub questions: Option<Questions>,
}

impl Ir {
    /// Canonical JSON of the IR, pool contents included.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(&CanonicalIr {
            ir: self,
            pool_values: self.pools.iter().map(|p| &p.values).collect(),
        })
        .expect("the IR is plain data and always serialises")
    }

    /// Content digest of the checked rules (`b3:<hex>`): the cache identity of a rule file.
    pub fn digest(&self) -> String {
        format!(
            "b3:{}",
            blake3::hash(self.canonical_json().as_bytes()).to_hex()
        )
    }

    pub fn entity(&self, name: &str) -> Option<&EntityType> {
        self.entities.iter().find(|e| e.name == name)
    }
    pub fn relation(&self, name: &str) -> Option<&Relation> {
        self.relations.iter().find(|r| r.name == name)
    }
    pub fn bank(&self, name: &str) -> Option<&Bank> {
        self.banks.iter().find(|b| b.name == name)
    }
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

#[derive(Serialize)]
struct CanonicalIr<'a> {
    ir: &'a Ir,
    pool_values: Vec<&'a Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    Int,
    Float,
    Bool,
    String,
    Date,
    Bank,
}

impl ParamType {
    pub const ALL: [(&'static str, ParamType); 6] = [
        ("int", ParamType::Int),
        ("float", ParamType::Float),
        ("bool", ParamType::Bool),
        ("string", ParamType::String),
        ("date", ParamType::Date),
        ("bank", ParamType::Bank),
    ];
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("?", |(n, _)| n)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Date(String),
    Bank(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Param {
    pub name: String,
    pub ty: ParamType,
    pub default: Value,
    pub range: Option<(Value, Value)>,
    pub doc: Option<String>,
}

/// A number written literally or as a parameter (resolved at generation time).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Num {
    Int(i64),
    Float(f64),
    Param(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DateBound {
    Date(String),
    Param(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pool {
    pub name: String,
    /// The path as written (relative to the rule file), or `None` for an inline list.
    pub file: Option<String>,
    pub len: usize,
    pub digest: String,
    #[serde(skip)]
    pub values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EntityType {
    pub name: String,
    /// How many to create; `None` when a generator (family trees) creates them.
    pub count: Option<Num>,
    /// The attribute that names an entity (unique).
    pub key: String,
    pub attrs: Vec<Attribute>,
}

impl EntityType {
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrType {
    Enum(Vec<String>),
    Text,
    Int,
    Date,
}

impl AttrType {
    pub fn describe(&self) -> String {
        match self {
            AttrType::Enum(v) => format!("enum {{ {} }}", v.join(", ")),
            AttrType::Text => "text".into(),
            AttrType::Int => "int".into(),
            AttrType::Date => "date".into(),
        }
    }
    pub fn is_ordered(&self) -> bool {
        matches!(self, AttrType::Int | AttrType::Date)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attribute {
    pub name: String,
    pub ty: AttrType,
    pub source: AttrSource,
    pub unique: bool,
    /// Noun: singular and plural ("date of birth", "dates of birth").
    pub say: Option<(String, String)>,
    /// Chain start phrase with `{value}`, e.g. "the person whose job is {value}".
    pub whose: Option<Vec<TextPart>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrSource {
    Enum(Vec<String>),
    Pool(String),
    Int(Num, Num),
    Date(DateBound, DateBound),
    Match {
        on: String,
        arms: Vec<(String, AttrSource)>,
    },
    Text(Vec<TextPart>),
}

/// A piece of a text template: literal text or a `{placeholder}` (optionally `{name.form}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextPart {
    Lit(String),
    Hole { name: String, form: Option<String> },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Role {
    pub name: String,
    pub ty: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Card {
    /// Role index (0 or 1) whose every entity has `lo..=hi` partners.
    pub role: usize,
    pub lo: u64,
    /// `None` is unbounded.
    pub hi: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Relation {
    pub name: String,
    pub roles: [Role; 2],
    pub symmetric: bool,
    pub irreflexive: bool,
    pub cards: Vec<Card>,
    pub def: RelationDef,
    pub says: Vec<Say>,
    pub weight: i64,
    /// Evaluation stratum: every relation a rule negates lies in a lower stratum.
    pub stratum: usize,
    pub recursive: bool,
}

impl Relation {
    pub fn role_index(&self, name: &str) -> Option<usize> {
        self.roles.iter().position(|r| r.name == name)
    }
    /// The surface form reading the entity in `answer_role` from the other one.
    pub fn say_for(&self, answer_role: usize) -> Option<&Say> {
        self.says.iter().find(|s| s.role == answer_role)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationDef {
    Base(Generator),
    Derived(Vec<RuleIr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GenKind {
    FamilyTree,
    RandomGraph,
    Function,
    Assign,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GenArg {
    Num(Num),
    Bool(bool),
    Str(String),
    /// An attribute or role name, resolved.
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Generator {
    pub kind: GenKind,
    pub args: BTreeMap<String, GenArg>,
}

/// One alternative of a derived relation: head roles are variables 0 and 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleIr {
    /// Variable names and entity types; the first two are the head roles.
    pub vars: Vec<(String, String)>,
    pub body: Vec<BodyIr>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyIr {
    /// `args[i]` is the variable in role `i` of the relation.
    Atom {
        relation: String,
        negated: bool,
        args: [usize; 2],
    },
    AttrTest {
        var: usize,
        attr: String,
        op: String,
        value: TestValueIr,
    },
    VarTest {
        left: usize,
        op: String,
        right: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestValueIr {
    Value(Value),
    Param(String),
    Attr { var: usize, attr: String },
}

/// How the entity in role `role` reads, seen from the entity in role `of`:
/// "the {singular} of X" / "the {plural} of X".
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Say {
    pub role: usize,
    pub of: usize,
    pub singular: String,
    pub plural: String,
    /// Forms chosen by an enum attribute of the entity in `role` (e.g. wife/husband).
    pub when: Vec<SayWhenIr>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SayWhenIr {
    pub attr: String,
    pub value: String,
    pub singular: String,
    pub plural: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bank {
    pub name: String,
    /// Relations in first-mention order, banks expanded, no duplicates.
    pub relations: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Article {
    pub entity: String,
    pub title: Vec<TextPart>,
    pub parts: Vec<ArticlePartIr>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArticlePartIr {
    /// A line; when one of its placeholders has no value (no partners, an empty attribute),
    /// `otherwise` is said instead, or without it the line is left out.
    Line {
        text: Vec<TextPart>,
        otherwise: Option<Vec<TextPart>>,
    },
    Facts(Vec<FactRef>),
    Section {
        heading: String,
        parts: Vec<ArticlePartIr>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FactRef {
    Attr(String),
    /// The relation's facts where the article's entity is in role `of`, read by `say`.
    Relation {
        relation: String,
        role: usize,
        of: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HopSet {
    Bank(String),
    Param(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Questions {
    /// The deepest question, measured like PhantomWiki's grammar depth (see docs/rules.md).
    pub depth: Num,
    pub per_template: Num,
    /// Share of questions asked so that their answer set is empty (a float).
    pub unanswerable: Num,
    /// The largest answer set, final or intermediate, a question may have.
    pub max_answers: Num,
    /// Relations chains may hop along; `None` means every relation with a surface form.
    pub hops: Option<HopSet>,
    pub starts: Vec<Start>,
    pub templates: Vec<Template>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    Name,
    Whose { entity: String, attr: String },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Template {
    pub name: String,
    pub text: Vec<TextPart>,
    /// A bool parameter that switches this template on.
    pub when: Option<String>,
    pub slots: Vec<Slot>,
    pub answer: AnswerExpr,
    pub answer_type: AnswerType,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Slot {
    pub name: String,
    pub kind: SlotKindIr,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotKindIr {
    Chain(String),
    Name(String),
    Attr(Vec<(String, String)>),
    /// Candidate relations, banks expanded; empty means "the hop relations".
    Relation(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerExpr {
    Slot(String),
    /// Follow a relation from the argument's entities to role `to`.
    Hop {
        relation: String,
        to: usize,
        arg: Box<AnswerExpr>,
    },
    /// Follow the relation chosen for a relation slot.
    HopSlot {
        slot: String,
        arg: Box<AnswerExpr>,
    },
    Attr {
        attr: String,
        arg: Box<AnswerExpr>,
    },
    AttrSlot {
        slot: String,
        arg: Box<AnswerExpr>,
    },
    /// The size of the argument's set.
    Count(Box<AnswerExpr>),
    /// For each entity the argument (a relation or attribute read) starts from, the number of
    /// entities or values it gives that one entity: PhantomWiki's "How many".
    CountEach(Box<AnswerExpr>),
    Intersect(Vec<AnswerExpr>),
    ArgMin {
        attr: String,
        args: Vec<AnswerExpr>,
    },
    ArgMax {
        attr: String,
        args: Vec<AnswerExpr>,
    },
    Same(Box<AnswerExpr>, Box<AnswerExpr>),
    Related(Box<AnswerExpr>, Box<AnswerExpr>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerType {
    Entities(String),
    Values(AttrType),
    Count,
    YesNo,
    RelationNames,
}

impl AnswerType {
    pub fn describe(&self) -> String {
        match self {
            AnswerType::Entities(t) => format!("a set of `{t}`"),
            AnswerType::Values(t) => format!("{} values", t.describe()),
            AnswerType::Count => "a count".into(),
            AnswerType::YesNo => "yes/no".into(),
            AnswerType::RelationNames => "relation names".into(),
        }
    }
}
