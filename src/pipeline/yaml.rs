//! YAML text → a tree of nodes that each remember their byte span, so that every later
//! diagnostic can point into the file. serde-saphyr does the parsing (and rejects duplicate
//! keys, bad indentation and the like); everything past syntax is validated by hand so that
//! all problems are reported at once.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::lang::ast::Span;

/// One YAML node and where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in file order (duplicates are a syntax error already).
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// How the value is described in "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// Where to point at this node: its own span, or for a block mapping or list (whose
    /// span can be empty) its first key or item.
    pub fn place(&self) -> Span {
        if !self.span.is_empty() {
            return self.span;
        }
        match &self.value {
            Value::Map(m) if !m.is_empty() => m[0].0.place(),
            Value::Seq(s) if !s.is_empty() => s[0].place(),
            _ => self.span,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    /// The scalar as the text a user would write (for `--set`-style values).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// A YAML syntax error: message and where.
#[derive(Debug)]
pub struct SyntaxError {
    pub message: String,
    pub span: Span,
}

/// Parses one YAML document. An empty file is a null node.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty() {
        return Ok(Node {
            span: Span::new(0, 0),
            value: Value::Null,
        });
    }
    match serde_saphyr::from_str::<Spanned<Raw>>(text) {
        Ok(s) => Ok(to_node(s, text.len())),
        Err(e) => {
            let span = e
                .location()
                .map(|l| {
                    let sp = l.span();
                    match sp.byte_offset().and_then(|b| usize::try_from(b).ok()) {
                        Some(start) => {
                            let len = sp
                                .byte_len()
                                .and_then(|b| usize::try_from(b).ok())
                                .unwrap_or(0);
                            let start = start.min(text.len());
                            Span::new(start, (start + len).min(text.len()))
                        }
                        None => at_line_column(text, l.line(), l.column()),
                    }
                })
                .unwrap_or(Span::new(0, 0));
            Err(SyntaxError {
                message: first_line(&e.to_string()),
                span,
            })
        }
    }
}

/// The byte offset of a 1-based line and (character) column, clamped to the text; a
/// one-character span there, so the diagnostic has something to underline.
fn at_line_column(text: &str, line: u64, column: u64) -> Span {
    let mut start = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i as u64 + 1 == line.max(1) {
            let col = column.max(1) as usize - 1;
            let off = l
                .char_indices()
                .nth(col)
                .map_or(l.trim_end_matches('\n').len(), |(b, _)| b);
            start += off;
            let end = text[start..].chars().next().map_or(start, |c| {
                if c == '\n' {
                    start
                } else {
                    start + c.len_utf8()
                }
            });
            return Span::new(start, end);
        }
        start += l.len();
    }
    Span::new(text.len(), text.len())
}

/// saphyr's messages carry their own snippet after the first line; the diagnostic draws its own.
fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string()
}

fn span_of<T>(s: &Spanned<T>, len: usize) -> Span {
    let sp = s.referenced.span();
    let start = sp
        .byte_offset()
        .and_then(|b| usize::try_from(b).ok())
        .unwrap_or(0)
        .min(len);
    let n = sp
        .byte_len()
        .and_then(|b| usize::try_from(b).ok())
        .unwrap_or(0);
    Span::new(start, (start + n).min(len))
}

fn to_node(s: Spanned<Raw>, len: usize) -> Node {
    let span = span_of(&s, len);
    let value = match s.value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::Float(f) => Value::Float(f),
        Raw::Str(t) => Value::Str(t),
        Raw::Seq(items) => Value::Seq(items.into_iter().map(|i| to_node(i, len)).collect()),
        Raw::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (to_node(k, len), to_node(v, len)))
                .collect(),
        ),
    };
    Node { span, value }
}

/// What serde hands us; converted to `Node` once spans are resolved.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Raw, E> {
        Ok(Raw::Int(i))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Raw, E> {
        Ok(match i64::try_from(u) {
            Ok(i) => Raw::Int(i),
            Err(_) => Raw::Float(u as f64),
        })
    }
    fn visit_i128<E: de::Error>(self, i: i128) -> Result<Raw, E> {
        Ok(match i64::try_from(i) {
            Ok(i) => Raw::Int(i),
            Err(_) => Raw::Float(i as f64),
        })
    }
    fn visit_u128<E: de::Error>(self, u: u128) -> Result<Raw, E> {
        Ok(match i64::try_from(u) {
            Ok(i) => Raw::Int(i),
            Err(_) => Raw::Float(u as f64),
        })
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Raw, E> {
        Ok(Raw::Float(f))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Raw, E> {
        Ok(Raw::Str(s.to_string()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Raw, E> {
        Ok(Raw::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(i) = seq.next_element::<Spanned<Raw>>()? {
            items.push(i);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Spanned<Raw>>()? {
            let v = map.next_value::<Spanned<Raw>>()?;
            entries.push((k, v));
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_keys_and_values() {
        let text = "name: demo\nstages:\n  gen:\n    kind: generate\n    seeds: [1, 2]\n";
        let n = parse(text).expect("valid");
        let m = n.as_map().expect("map");
        let show = |s: Span| &text[s.start..s.end];
        assert_eq!(show(m[0].0.span), "name");
        assert_eq!(show(m[0].1.span), "demo");
        let gen_ = &m[1].1.as_map().expect("map")[0];
        assert_eq!(show(gen_.0.span), "gen");
        let fields = gen_.1.as_map().expect("map");
        assert_eq!(show(fields[0].1.span), "generate");
        assert_eq!(fields[1].1.value.describe(), "a list");
        eprintln!("{:?}", fields[1].1);
    }

    #[test]
    fn syntax_errors_have_a_place() {
        let text = "name: a\nname: b\n";
        let e = parse(text).expect_err("duplicate key");
        assert!(e.span.start > 0, "{e:?}");
        let text = "a: 1\nb: {c: ${x}, d: 2}\n";
        let e = parse(text).expect_err("braces in a flow mapping");
        assert!(e.span.start > 5, "{e:?}");
        assert!(!e.message.is_empty());
    }
}
