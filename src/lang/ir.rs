//! The checked, typed intermediate representation of a rule file: what generation uses.
//!
//! Everything here is resolved and validated: references to entity types, attributes,
//! relations, banks and pools are ids (`Ref`, `AttrRef`) that index the IR's own tables, and
//! operators are enums, so generation never looks a name up. Types agree, rules are safe and
//! stratified. It carries no spans, so formatting and comments never change it, and its
//! canonical JSON is what cache keys hash (`Ir::digest`). Order follows the source's
//! declaration order; maps are `BTreeMap`s, so the encoding is deterministic.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::{Serialize, Serializer};

pub use super::ast::CmpOp;

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

    /// The entity type a checked reference names.
    pub fn entity_of(&self, r: &EntityRef) -> &EntityType {
        &self.entities[r.id()]
    }
    pub fn relation_of(&self, r: &RelationRef) -> &Relation {
        &self.relations[r.id()]
    }
    pub fn bank_of(&self, r: &BankRef) -> &Bank {
        &self.banks[r.id()]
    }
    pub fn pool_of(&self, r: &PoolRef) -> &Pool {
        &self.pools[r.id()]
    }
    pub fn attr_of(&self, r: &AttrRef) -> &Attribute {
        &self.entities[r.owner()].attrs[r.index()]
    }

    /// Whether entity type `a` is `b` or extends it, directly or not.
    pub fn is_a(&self, a: usize, b: usize) -> bool {
        let mut t = Some(a);
        while let Some(x) = t {
            if x == b {
                return true;
            }
            t = self.entities[x].extends.as_ref().map(Ref::id);
        }
        false
    }

    /// The most specific type both `a` and `b` are (players and managers: persons).
    pub fn join(&self, a: usize, b: usize) -> Option<usize> {
        let mut t = Some(a);
        while let Some(x) = t {
            if self.is_a(b, x) {
                return Some(x);
            }
            t = self.entities[x].extends.as_ref().map(Ref::id);
        }
        None
    }

    /// Whether sets of types `a` and `b` can meet: one extends the other, so they share
    /// entities (a hop from people along a players' relation reaches from the players).
    pub fn meets(&self, a: usize, b: usize) -> bool {
        self.is_a(a, b) || self.is_a(b, a)
    }

    /// Look-ups by name, for what arrives as text: a dataset's records, a parameter's
    /// value (a bank parameter names its bank at generation time).
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

/// Marker types naming the table a `Ref` indexes.
macro_rules! tables {
    ($($kind:ident: $what:literal),*) => {$(
        #[doc = concat!("Marks a `Ref` to ", $what, ".")]
        pub enum $kind {}
    )*};
}
tables!(
    EntityTable: "an entity type (`Ir::entities`)",
    RelationTable: "a relation (`Ir::relations`)",
    BankTable: "a bank (`Ir::banks`)",
    PoolTable: "a pool (`Ir::pools`)"
);

/// A checked reference to a declaration: its index in the IR's table, which generation uses,
/// and its name, which messages print. It serialises as the name, so the canonical JSON — and
/// every digest and cache key made from it — reads as the rule file does.
pub struct Ref<T> {
    id: usize,
    name: String,
    table: PhantomData<T>,
}

/// The id of a reference the checker has not linked yet (only ever seen inside the checker).
const UNLINKED: usize = usize::MAX;

impl<T> Ref<T> {
    /// A reference by name, linked to its id when checking ends (`Ir::link`).
    pub fn named(name: impl Into<String>) -> Self {
        Ref {
            id: UNLINKED,
            name: name.into(),
            table: PhantomData,
        }
    }
    pub fn id(&self) -> usize {
        self.id
    }
    pub fn name(&self) -> &str {
        &self.name
    }
}

pub type EntityRef = Ref<EntityTable>;
pub type RelationRef = Ref<RelationTable>;
pub type BankRef = Ref<BankTable>;
pub type PoolRef = Ref<PoolTable>;

// Written out rather than derived: a derive would bound them on the marker type.
impl<T> Clone for Ref<T> {
    fn clone(&self) -> Self {
        Ref {
            id: self.id,
            name: self.name.clone(),
            table: PhantomData,
        }
    }
}
impl<T> PartialEq for Ref<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.name == other.name
    }
}
impl<T> Eq for Ref<T> {}
impl<T> Default for Ref<T> {
    fn default() -> Self {
        Ref::named("")
    }
}
impl<T> fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.name, self.id)
    }
}
impl<T> fmt::Display for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}
// Names compare with names while the checker works, before ids exist.
impl<T> PartialEq<str> for Ref<T> {
    fn eq(&self, other: &str) -> bool {
        self.name == other
    }
}
impl<T> PartialEq<String> for Ref<T> {
    fn eq(&self, other: &String) -> bool {
        self.name == *other
    }
}
impl<T> PartialEq<Ref<T>> for String {
    fn eq(&self, other: &Ref<T>) -> bool {
        *self == other.name
    }
}
impl<T> Serialize for Ref<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

/// A checked reference to an attribute: the entity type it belongs to and its index among
/// that type's attributes. Serialises as the attribute's name, like `Ref`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AttrRef {
    owner: EntityRef,
    index: usize,
    name: String,
}

impl AttrRef {
    /// The attribute `name` of entity type `owner`, linked when checking ends.
    pub fn named(owner: impl Into<String>, name: impl Into<String>) -> Self {
        AttrRef {
            owner: Ref::named(owner),
            index: UNLINKED,
            name: name.into(),
        }
    }
    /// The entity type's id.
    pub fn owner(&self) -> usize {
        self.owner.id
    }
    /// The index in that type's `attrs`.
    pub fn index(&self) -> usize {
        self.index
    }
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for AttrRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}.{}#{}", self.owner, self.name, self.index)
    }
}
impl fmt::Display for AttrRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}
impl PartialEq<str> for AttrRef {
    fn eq(&self, other: &str) -> bool {
        self.name == other
    }
}
impl PartialEq<String> for AttrRef {
    fn eq(&self, other: &String) -> bool {
        self.name == *other
    }
}
impl PartialEq<AttrRef> for String {
    fn eq(&self, other: &AttrRef) -> bool {
        *self == other.name
    }
}
impl Serialize for AttrRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

/// Operators keep the spelling the rule file uses in the canonical JSON.
fn op_str<S: Serializer>(op: &CmpOp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(op.as_str())
}

impl Ir {
    /// Gives every reference the id of the declaration it names, the checker's last step.
    /// Returns what resolves to nothing, as (kind, name): nothing once checking found no
    /// error, since the checker reports every unknown name itself.
    pub(crate) fn link(&mut self) -> Vec<(&'static str, String)> {
        let index = |names: Vec<&String>| -> BTreeMap<String, usize> {
            let mut m = BTreeMap::new();
            for (i, n) in names.into_iter().enumerate() {
                m.entry(n.clone()).or_insert(i);
            }
            m
        };
        let mut l = Linker {
            entities: index(self.entities.iter().map(|e| &e.name).collect()),
            attrs: self
                .entities
                .iter()
                .map(|e| index(e.attrs.iter().map(|a| &a.name).collect()))
                .collect(),
            relations: index(self.relations.iter().map(|r| &r.name).collect()),
            rel_attrs: self
                .relations
                .iter()
                .map(|r| index(r.attrs.iter().map(|a| &a.name).collect()))
                .collect(),
            banks: index(self.banks.iter().map(|b| &b.name).collect()),
            pools: index(self.pools.iter().map(|p| &p.name).collect()),
            missing: Vec::new(),
        };
        for (ei, e) in self.entities.iter_mut().enumerate() {
            if let Some(s) = &mut e.extends {
                l.entity(s);
            }
            l.attr(&mut e.key);
            for a in &mut e.attrs {
                l.source(ei, &mut a.source);
            }
        }
        for r in &mut self.relations {
            for role in &mut r.roles {
                l.entity(&mut role.ty);
            }
            let rules: Vec<&mut RuleIr> = match &mut r.def {
                RelationDef::Derived(rules) => rules.iter_mut().collect(),
                RelationDef::Base(g) => g.given.iter_mut().collect(),
            };
            {
                for rule in rules {
                    for (_, ty) in &mut rule.vars {
                        l.entity(ty);
                    }
                    for b in &mut rule.body {
                        match b {
                            BodyIr::Atom { relation, .. } => l.relation(relation),
                            BodyIr::AttrTest { attr, value, .. } => {
                                l.attr(attr);
                                if let TestValueIr::Attr { attr, .. } = value {
                                    l.attr(attr);
                                }
                            }
                            BodyIr::VarTest { .. } => {}
                        }
                    }
                }
            }
            for say in &mut r.says {
                for w in &mut say.when {
                    l.attr(&mut w.attr);
                }
            }
            for a in &mut r.attrs {
                if let AttrSource::Pool(p) = &mut a.source {
                    l.pool(p);
                }
            }
        }
        for b in &mut self.banks {
            for r in &mut b.relations {
                l.relation(r);
            }
        }
        for a in &mut self.articles {
            l.entity(&mut a.entity);
            let owner = a.entity.id;
            l.holes(owner, &mut a.title, false);
            for p in &mut a.parts {
                l.article_part(owner, p);
            }
        }
        if let Some(q) = &mut self.questions {
            if let Some(HopSet::Bank(b)) = &mut q.hops {
                l.bank(b);
            }
            for s in &mut q.starts {
                if let Start::Whose { entity, attr } = s {
                    l.entity(entity);
                    l.attr(attr);
                }
            }
            for t in &mut q.templates {
                for slot in &mut t.slots {
                    match &mut slot.kind {
                        SlotKindIr::Chain(e) | SlotKindIr::Name(e) => l.entity(e),
                        SlotKindIr::Attr(list) => {
                            for (e, a) in list {
                                l.entity(e);
                                l.attr(a);
                            }
                        }
                        SlotKindIr::Relation(list) => {
                            for r in list {
                                l.relation(r);
                            }
                        }
                    }
                }
                l.answer(&mut t.answer);
                if let AnswerType::Entities(e) = &mut t.answer_type {
                    l.entity(e);
                }
            }
        }
        l.missing
    }
}

/// Name → id tables of one IR, for `Ir::link`.
struct Linker {
    entities: BTreeMap<String, usize>,
    /// Per entity type, attribute name → index.
    attrs: Vec<BTreeMap<String, usize>>,
    relations: BTreeMap<String, usize>,
    /// Per relation, fact attribute name → index.
    rel_attrs: Vec<BTreeMap<String, usize>>,
    banks: BTreeMap<String, usize>,
    pools: BTreeMap<String, usize>,
    missing: Vec<(&'static str, String)>,
}

impl Linker {
    fn find<T>(
        table: &BTreeMap<String, usize>,
        r: &mut Ref<T>,
        what: &'static str,
        missing: &mut Vec<(&'static str, String)>,
    ) {
        match table.get(&r.name) {
            Some(&id) => r.id = id,
            None => missing.push((what, r.name.clone())),
        }
    }
    fn entity(&mut self, r: &mut EntityRef) {
        Self::find(&self.entities, r, "entity type", &mut self.missing);
    }
    fn relation(&mut self, r: &mut RelationRef) {
        Self::find(&self.relations, r, "relation", &mut self.missing);
    }
    fn bank(&mut self, r: &mut BankRef) {
        Self::find(&self.banks, r, "bank", &mut self.missing);
    }
    fn pool(&mut self, r: &mut PoolRef) {
        Self::find(&self.pools, r, "pool", &mut self.missing);
    }
    fn attr(&mut self, a: &mut AttrRef) {
        self.entity(&mut a.owner);
        match self.attrs.get(a.owner.id).and_then(|m| m.get(&a.name)) {
            Some(&i) => a.index = i,
            None => self
                .missing
                .push(("attribute", format!("{}.{}", a.owner.name, a.name))),
        }
    }
    /// Placeholders of an attribute template (attributes of `owner`) or of an article about
    /// an `owner` (its attributes first, then relations read from it).
    fn holes(&mut self, owner: usize, parts: &mut [TextPart], relations: bool) {
        for p in parts {
            let TextPart::Hole { name, to, form } = p else {
                continue;
            };
            let attr = self.attrs.get(owner).and_then(|m| m.get(name.as_str()));
            let rel = self.relations.get(name.as_str()).copied();
            let fact_attr = match (rel, form.as_ref()) {
                (Some(r), Some(f)) => self.rel_attrs.get(r).and_then(|m| m.get(f.as_str())),
                _ => None,
            };
            *to = match (attr, rel) {
                (None, Some(r)) if relations && form.is_some() => match fact_attr {
                    Some(&a) => Hole::FactAttr(r, a),
                    None => {
                        self.missing.push(("placeholder", name.clone()));
                        continue;
                    }
                },
                (Some(&i), _) => Hole::Attr(i),
                (None, Some(r)) if relations => Hole::Relation(r),
                _ => {
                    self.missing.push(("placeholder", name.clone()));
                    continue;
                }
            };
        }
    }
    fn source(&mut self, owner: usize, s: &mut AttrSource) {
        match s {
            AttrSource::Pool(p) => self.pool(p),
            AttrSource::Match { on, arms } => {
                self.attr(on);
                for (_, arm) in arms {
                    self.source(owner, arm);
                }
            }
            // A relation placeholder names the entity's one partner ("{based_in} United").
            AttrSource::Text(parts) => self.holes(owner, parts, true),
            AttrSource::Enum(_) | AttrSource::Int(..) | AttrSource::Date(..) => {}
        }
    }
    fn article_part(&mut self, owner: usize, p: &mut ArticlePartIr) {
        match p {
            ArticlePartIr::Line { text, otherwise } => {
                self.holes(owner, text, true);
                if let Some(o) = otherwise {
                    self.holes(owner, o, true);
                }
            }
            ArticlePartIr::Facts(facts) => {
                for f in facts {
                    match f {
                        FactRef::Attr(a) => self.attr(a),
                        FactRef::Relation { relation, .. } => self.relation(relation),
                    }
                }
            }
            ArticlePartIr::Section { parts, .. } => {
                for p in parts {
                    self.article_part(owner, p);
                }
            }
        }
    }
    fn answer(&mut self, e: &mut AnswerExpr) {
        match e {
            AnswerExpr::Slot(_) => {}
            AnswerExpr::Hop { relation, arg, .. } => {
                self.relation(relation);
                self.answer(arg);
            }
            AnswerExpr::Attr { attr, arg } => {
                self.attr(attr);
                self.answer(arg);
            }
            AnswerExpr::HopSlot { arg, .. }
            | AnswerExpr::AttrSlot { arg, .. }
            | AnswerExpr::Count(arg)
            | AnswerExpr::CountEach(arg) => self.answer(arg),
            AnswerExpr::Intersect(args)
            | AnswerExpr::Union(args)
            | AnswerExpr::Difference(args) => {
                for a in args {
                    self.answer(a);
                }
            }
            AnswerExpr::ArgMin { attr, args } | AnswerExpr::ArgMax { attr, args } => {
                self.attr(attr);
                for a in args {
                    self.answer(a);
                }
            }
            AnswerExpr::ArgCount { relation, args, .. }
            | AnswerExpr::FactAttr { relation, args, .. } => {
                self.relation(relation);
                for a in args {
                    self.answer(a);
                }
            }
            AnswerExpr::Same(a, b) | AnswerExpr::Related(a, b) => {
                self.answer(a);
                self.answer(b);
            }
        }
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
    /// The supertype this type extends: its entities are entities of the supertype too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extends: Option<EntityRef>,
    /// How many to create, besides those of its subtypes; `None` when a generator (family
    /// trees) creates them, or when only subtypes have members.
    pub count: Option<Num>,
    /// The attribute that names an entity (unique).
    pub key: AttrRef,
    /// Own attributes after the inherited ones: the first `inherited` are the supertype's,
    /// in its order, and read the same values.
    pub attrs: Vec<Attribute>,
    #[serde(skip_serializing_if = "is_zero")]
    pub inherited: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
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
    /// The `whose` form for several entities; absent in files that give none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whose_plural: Option<Vec<TextPart>>,
    /// How values read in text, where not the default (ISO dates, plain digits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
}

/// How an int or date attribute's values read in questions, answers and articles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// "4 March 1921".
    Long,
    /// "March 4, 1921".
    Us,
    /// "2,826,880".
    Grouped,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrSource {
    Enum(Vec<String>),
    Pool(PoolRef),
    Int(Num, Num),
    Date(DateBound, DateBound),
    Match {
        on: AttrRef,
        arms: Vec<(String, AttrSource)>,
    },
    Text(Vec<TextPart>),
}

/// A piece of a text template: literal text or a `{placeholder}` (optionally `{name.form}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextPart {
    Lit(String),
    Hole {
        name: String,
        form: Option<String>,
        /// What the placeholder reads; the name alone spells it in the canonical JSON.
        #[serde(skip)]
        to: Hole,
    },
    /// `{is/are}` or `{does/do:x}`: words that agree in number with the answer, or with
    /// slot `of` (question templates only).
    Agree {
        singular: String,
        plural: String,
        of: Option<String>,
    },
}

/// What a placeholder reads, linked after checking: an attribute (by index among its
/// entity type's) or a relation in an article or attribute template, or a value filled by
/// name while writing (question slots, `{value}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hole {
    #[default]
    Filled,
    Attr(usize),
    Relation(usize),
    /// `{rel.attr}` in an article: relation, fact attribute.
    FactAttr(usize, usize),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Role {
    pub name: String,
    pub ty: EntityRef,
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
    /// Attributes of each fact (base relations only): a signing's year, a transfer's fee.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attrs: Vec<Attribute>,
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
    /// Each `from` entity gets its own partner, never shared: each partner has at most one.
    OneToOne,
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
    /// `where BODY`: the rule a drawn pair must satisfy, over base relations generated
    /// before this one (head variables 0 and 1 are the roles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given: Option<RuleIr>,
}

/// One alternative of a derived relation: head roles are variables 0 and 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleIr {
    /// Variable names and entity types; the first two are the head roles.
    pub vars: Vec<(String, EntityRef)>,
    pub body: Vec<BodyIr>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyIr {
    /// `args[i]` is the variable in role `i` of the relation.
    Atom {
        relation: RelationRef,
        negated: bool,
        args: [usize; 2],
    },
    AttrTest {
        var: usize,
        attr: AttrRef,
        #[serde(serialize_with = "op_str")]
        op: CmpOp,
        value: TestValueIr,
    },
    VarTest {
        left: usize,
        #[serde(serialize_with = "op_str")]
        op: CmpOp,
        right: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestValueIr {
    Value(Value),
    Param(String),
    Attr { var: usize, attr: AttrRef },
}

/// How the entity in role `role` reads, seen from the entity in role `of`:
/// "the {singular} of X" / "the {plural} of X".
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Say {
    pub role: usize,
    pub of: usize,
    pub singular: String,
    pub plural: String,
    /// A hop phrase of its own, singular and plural, whose one placeholder is the chain
    /// read from: "the players managed by {manager}".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phrase: Option<[Vec<TextPart>; 2]>,
    /// Forms chosen by an enum attribute of the entity in `role` (e.g. wife/husband).
    pub when: Vec<SayWhenIr>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SayWhenIr {
    pub attr: AttrRef,
    pub value: String,
    pub singular: String,
    pub plural: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bank {
    pub name: String,
    /// Relations in first-mention order, banks expanded, no duplicates.
    pub relations: Vec<RelationRef>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Article {
    pub entity: EntityRef,
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
    Attr(AttrRef),
    /// The relation's facts where the article's entity is in role `of`, read by `say`.
    Relation {
        relation: RelationRef,
        role: usize,
        of: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HopSet {
    Bank(BankRef),
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
    /// Chains and verbs agree in number with the sets they denote (`number agree`, the
    /// default); false keeps PhantomWiki's always-singular wording. Left out of the JSON when
    /// false, the wording every file had before the choice existed, so such files keep
    /// their digest.
    #[serde(skip_serializing_if = "is_false")]
    pub agree: bool,
    /// Walk filters in force for every template (see [`Filter`]); empty in the JSON of a
    /// file that allows them all, as every file did before they existed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    pub starts: Vec<Start>,
    pub templates: Vec<Template>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What a clean walk leaves out; `allow NAME;` switches one off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// A hop whose set lies within the set two steps back ("the tenant club of the home
    /// ground of X").
    Backtrack,
    /// An answer set that holds an entity the question names, or an attribute answer that
    /// holds the value its `whose` start names.
    StartInAnswer,
    /// An attribute answer that lists every value the attribute takes (two or more).
    EveryValue,
}

impl Filter {
    pub const ALL: [Filter; 3] = [Filter::Backtrack, Filter::StartInAnswer, Filter::EveryValue];

    pub fn name(self) -> &'static str {
        match self {
            Filter::Backtrack => "backtrack",
            Filter::StartInAnswer => "start_in_answer",
            Filter::EveryValue => "every_value",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    Name,
    Whose { entity: EntityRef, attr: AttrRef },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Template {
    pub name: String,
    pub text: Vec<TextPart>,
    /// A bool parameter that switches this template on.
    pub when: Option<String>,
    /// Filters of the block this template switches off (`allow` in the template).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Filter>,
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
    Chain(EntityRef),
    Name(EntityRef),
    Attr(Vec<(EntityRef, AttrRef)>),
    /// Candidate relations, banks expanded; empty means "the hop relations".
    Relation(Vec<RelationRef>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerExpr {
    Slot(String),
    /// Follow a relation from the argument's entities to role `to`.
    Hop {
        relation: RelationRef,
        to: usize,
        arg: Box<AnswerExpr>,
    },
    /// Follow the relation chosen for a relation slot.
    HopSlot {
        slot: String,
        arg: Box<AnswerExpr>,
    },
    Attr {
        attr: AttrRef,
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
    /// The entities in any of the parts.
    Union(Vec<AnswerExpr>),
    /// The entities of the first part that are not in the second.
    Difference(Vec<AnswerExpr>),
    ArgMin {
        attr: AttrRef,
        args: Vec<AnswerExpr>,
    },
    ArgMax {
        attr: AttrRef,
        args: Vec<AnswerExpr>,
    },
    Same(Box<AnswerExpr>, Box<AnswerExpr>),
    Related(Box<AnswerExpr>, Box<AnswerExpr>),
    /// The values of fact attribute `attr` (an index into the relation's `attrs`) over the
    /// facts from the first argument's entities in role `from`, and with the second's in
    /// the other role when there is one: "When did X sign for Y?".
    FactAttr {
        relation: RelationRef,
        attr: usize,
        from: usize,
        args: Vec<AnswerExpr>,
    },
    /// The candidate(s) with the most (`max`) or fewest partners along a relation, read to
    /// role `to`: "Which club has more players, X or Y?".
    ArgCount {
        relation: RelationRef,
        to: usize,
        max: bool,
        args: Vec<AnswerExpr>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerType {
    Entities(EntityRef),
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
