//! The file as a tree of spanned values.
//!
//! A single `toml::from_str::<RawFile>` stops at the first error (serde's `deny_unknown_fields`
//! included), so the file is read in two steps. First [`parse`]: toml reads the whole file into a
//! [`Node`] tree that keeps the byte span of every key and value; only syntax errors can fail here,
//! with toml's own message and position. Then [`super::de`] deserializes each section of the tree
//! on its own.
//!
//! `toml::Spanned` and toml datetimes are recognised by the struct name and field names they ask a
//! deserializer for; those names are learnt from the types themselves at run time (see
//! [`SpannedShape`]) rather than copied here.

use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::diagnostics::Problem;

/// A value of the file with the byte span it was written at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub span: Range<usize>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime(String),
    Array(Vec<Node>),
    /// Entries in file order.
    Table(Vec<(Key, Node)>),
}

/// A table key with the span it was written at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub span: Range<usize>,
}

impl Value {
    /// What kind of value this is, for messages ("expected a table, found a string").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a datetime",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// Reads `text` into a spanned tree; fails only on TOML syntax (toml's message and position).
pub(crate) fn parse(text: &str) -> Result<Node, Problem> {
    let mut root: Node = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        // toml's parse messages can span lines ("invalid table header\nexpected `.`, `]`").
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        Problem::new(span, message)
    })?;
    fill_spans(&mut root, 0..0);
    Ok(root)
}

/// A span not known yet; [`fill_spans`] replaces it with the enclosing key's or value's span.
const NO_SPAN: Range<usize> = usize::MAX..usize::MAX;

/// Tables created implicitly (`upstreams` in `[upstreams.legacy]`, `shadow` in `shadow.percent = 1`)
/// have no span of their own; they take the span of the key that names them.
fn fill_spans(node: &mut Node, inherited: Range<usize>) {
    if node.span == NO_SPAN {
        node.span = inherited;
    }
    match &mut node.value {
        Value::Array(items) => {
            for item in items {
                fill_spans(item, node.span.clone());
            }
        }
        Value::Table(entries) => {
            for (key, value) in entries {
                if key.span == NO_SPAN {
                    key.span = node.span.clone();
                }
                fill_spans(value, key.span.clone());
            }
        }
        _ => {}
    }
}

/// The struct name and field names a type asks a deserializer for (`toml::Spanned` asks for a
/// struct with fields start, end, value; a toml datetime for a struct with one private field).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpannedShape {
    pub name: &'static str,
    pub fields: &'static [&'static str],
}

impl SpannedShape {
    pub fn is(&self, name: &str, fields: &[&str]) -> bool {
        self.name == name && self.fields == fields
    }
}

pub(crate) fn spanned_shape() -> Option<SpannedShape> {
    static SHAPE: OnceLock<Option<SpannedShape>> = OnceLock::new();
    *SHAPE.get_or_init(|| {
        probe(|d| toml::Spanned::<bool>::deserialize(d).map(drop)).filter(|s| s.fields.len() == 3)
    })
}

fn datetime_field() -> Option<&'static str> {
    static FIELD: OnceLock<Option<&'static str>> = OnceLock::new();
    *FIELD.get_or_init(|| {
        probe(|d| toml::value::Datetime::deserialize(d).map(drop))
            .and_then(|s| s.fields.first().copied())
    })
}

/// Runs `deserialize` against a deserializer that only records which struct it was asked for.
fn probe(
    deserialize: impl FnOnce(Probe<'_>) -> Result<(), de::value::Error>,
) -> Option<SpannedShape> {
    let seen = std::cell::Cell::new(None);
    let _ = deserialize(Probe(&seen));
    seen.get()
}

struct Probe<'a>(&'a std::cell::Cell<Option<SpannedShape>>);

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("probe"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.set(Some(SpannedShape { name, fields }));
        Err(de::Error::custom("probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

// ---- Reading the tree from toml ----------------------------------------------------------------

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        match spanned_shape() {
            Some(shape) => d.deserialize_struct(shape.name, shape.fields, NodeVisitor),
            None => d.deserialize_any(NodeVisitor),
        }
    }
}

/// Receives either toml's spanned wrapper (start, end, value) or, for a table without a span,
/// the table itself.
struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let Some(first) = map.next_key_seed(KeySeed)? else {
            return Ok(unspanned(Value::Table(Vec::new())));
        };
        match spanned_shape() {
            Some(shape) if first.name == shape.fields[0] => {
                let start: usize = map.next_value()?;
                let _: Option<String> = map.next_key()?;
                let end: usize = map.next_value()?;
                let _: Option<String> = map.next_key()?;
                let value = map.next_value_seed(ValueSeed)?;
                Ok(Node {
                    span: start..end,
                    value,
                })
            }
            _ => read_table(first, map).map(unspanned),
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        ValueVisitor.visit_bool(v).map(unspanned)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        ValueVisitor.visit_i64(v).map(unspanned)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        ValueVisitor.visit_u64(v).map(unspanned)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        ValueVisitor.visit_f64(v).map(unspanned)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        ValueVisitor.visit_str(v).map(unspanned)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Node, A::Error> {
        ValueVisitor.visit_seq(seq).map(unspanned)
    }
}

fn unspanned(value: Value) -> Node {
    Node {
        span: NO_SPAN,
        value,
    }
}

struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Boolean(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        match map.next_key_seed(KeySeed)? {
            Some(first) => read_table(first, map),
            None => Ok(Value::Table(Vec::new())),
        }
    }
}

/// Reads the rest of a table whose first key is already read (or a datetime, which toml hands
/// over as a one-entry table with a private key).
fn read_table<'de, A: MapAccess<'de>>(first: Key, mut map: A) -> Result<Value, A::Error> {
    if Some(first.name.as_str()) == datetime_field() {
        let text: String = map.next_value()?;
        return Ok(Value::Datetime(text));
    }
    let mut entries = vec![(first, map.next_value::<Node>()?)];
    while let Some(key) = map.next_key_seed(KeySeed)? {
        let value = map.next_value::<Node>()?;
        entries.push((key, value));
    }
    Ok(Value::Table(entries))
}

/// Reads a key, with its span when toml has one.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        match spanned_shape() {
            Some(shape) => d.deserialize_struct(shape.name, shape.fields, KeyVisitor),
            None => d.deserialize_any(KeyVisitor),
        }
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key {
            name: v.to_string(),
            span: NO_SPAN,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
        let _: Option<String> = map.next_key()?;
        let start: usize = map.next_value()?;
        let _: Option<String> = map.next_key()?;
        let end: usize = map.next_value()?;
        let _: Option<String> = map.next_key()?;
        let name: String = map.next_value()?;
        Ok(Key {
            name,
            span: start..end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(node: &Node) -> &[(Key, Node)] {
        match &node.value {
            Value::Table(entries) => entries,
            other => panic!("expected a table, got {other:?}"),
        }
    }

    #[test]
    fn toml_spanned_shape_is_learnt_from_the_type() {
        let shape = spanned_shape().expect("toml::Spanned asks for a struct");
        assert_eq!(shape.fields.len(), 3);
        assert!(datetime_field().is_some());
    }

    #[test]
    fn every_key_and_value_keeps_its_span_including_implicit_tables() {
        let text =
            "[upstreams.legacy]\nurl = \"x\"\n[[routes]]\nname = \"a\"\nshadow.percent = 5\n";
        let root = parse(text).unwrap();
        let top = table(&root);
        let (upstreams_key, upstreams) = &top[0];
        assert_eq!(&text[upstreams_key.span.clone()], "upstreams");
        // `upstreams` is implicit: it takes its key's span.
        assert_eq!(upstreams.span, upstreams_key.span);
        let (legacy_key, legacy) = &table(upstreams)[0];
        assert_eq!(&text[legacy_key.span.clone()], "legacy");
        let (_, url) = &table(legacy)[0];
        assert_eq!(&text[url.span.clone()], "\"x\"");
        let Value::Array(routes) = &top[1].1.value else {
            panic!()
        };
        assert!(text[routes[0].span.clone()].starts_with("[[routes]]"));
        let (shadow_key, shadow) = &table(&routes[0])[1];
        assert_eq!(shadow_key.name, "shadow");
        let (_, percent) = &table(shadow)[0];
        assert_eq!(&text[percent.span.clone()], "5");
    }

    #[test]
    fn syntax_errors_keep_tomls_message_and_position() {
        let p = parse("a = 1\nb = = 2\n").unwrap_err();
        assert_eq!(
            super::super::diagnostics::line_col("a = 1\nb = = 2\n", p.span.start).0,
            2
        );
        assert!(!p.message.contains('\n'), "{}", p.message);
        let dup = parse("a = 1\na = 2\n").unwrap_err();
        assert!(dup.message.contains("duplicate key"), "{}", dup.message);
    }
}
