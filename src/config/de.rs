//! A serde deserializer over the spanned tree, one section at a time.
//!
//! [`from_node`] deserializes a section (`[proxy]`, an upstream, a route) into its raw struct.
//! Unlike a whole-file `toml::from_str`, it does not stop at the first problem:
//!
//! - an unknown key is reported (with the keys that were expected) and skipped, so every unknown
//!   key of every section is reported and the rest of the section is still read and checked;
//! - any other error (a value of the wrong type) rejects only its own section.
//!
//! Errors carry the span of the key or value they are about, the way toml's own deserializer does
//! it, and `toml::Spanned` fields get their spans, so the raw structs use `toml::Spanned` as usual.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;

use super::diagnostics::{Problem, Problems};
use super::tree::{spanned_shape, Key, Node, SpannedShape, Value};

/// Deserializes one section of the tree. Every problem goes to `problems`; `None` when the
/// section could not be read at all.
pub(crate) fn from_node<'de, T: Deserialize<'de>>(
    node: &'de Node,
    problems: &mut Problems,
) -> Option<T> {
    let unknown = RefCell::new(Unknown::default());
    let result = T::deserialize(NodeDe {
        node,
        unknown: &unknown,
    });
    let Unknown { keys, misspelt } = unknown.into_inner();
    for problem in keys {
        problems.push(problem);
    }
    for (table, key) in misspelt {
        problems.misspelt(table, key);
    }
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            problems.push(e.into_problem(node.span.clone()));
            None
        }
    }
}

/// Unknown keys found while deserializing a section.
#[derive(Default)]
struct Unknown {
    keys: Vec<Problem>,
    /// (table span, the known key an unknown one is close to)
    misspelt: Vec<(Range<usize>, &'static str)>,
}

/// `unknown key "x"` at the key, with a hint from the keys that were expected.
pub(crate) fn unknown_key(key: &Key, expected: &[&str]) -> Problem {
    Problem::new(key.span.clone(), format!("unknown key {:?}", key.name))
        .with_hint(unknown_key_hint(&key.name, expected))
}

/// `did you mean "methods"?` when a known key is close, else the list of known keys.
pub(crate) fn unknown_key_hint(field: &str, expected: &[&str]) -> String {
    match closest_key(field, expected) {
        Some(k) => format!("did you mean {k:?}?"),
        None if expected.is_empty() => "no keys are allowed here".to_string(),
        None => format!("expected one of: {}", expected.join(", ")),
    }
}

/// The expected key `field` is probably a misspelling of, if any.
fn closest_key<'k>(field: &str, expected: &[&'k str]) -> Option<&'k str> {
    expected
        .iter()
        .map(|k| (edit_distance(field, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// An error while deserializing a section, with the span of what it is about when known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TreeError {
    message: String,
    hint: Option<String>,
    span: Option<Range<usize>>,
}

impl TreeError {
    /// Keeps the innermost span: the first one set is the most precise.
    fn at(mut self, span: &Range<usize>) -> Self {
        self.span.get_or_insert_with(|| span.clone());
        self
    }

    fn into_problem(self, fallback: Range<usize>) -> Problem {
        Problem {
            span: self.span.unwrap_or(fallback),
            message: self.message,
            hint: self.hint,
        }
    }
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TreeError {}

impl de::Error for TreeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TreeError {
            message: msg.to_string(),
            hint: None,
            span: None,
        }
    }

    /// Not reached for structs (their unknown keys are skipped before serde sees them); kept so
    /// the message is the same wherever it comes from.
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        TreeError {
            message: format!("unknown key {field:?}"),
            hint: Some(unknown_key_hint(field, expected)),
            span: None,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        TreeError::custom(format!("missing key {field:?}"))
    }
}

/// A node being deserialized, and where skipped unknown keys are collected.
#[derive(Clone, Copy)]
struct NodeDe<'de, 'c> {
    node: &'de Node,
    unknown: &'c RefCell<Unknown>,
}

impl<'de> Deserializer<'de> for NodeDe<'de, '_> {
    type Error = TreeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TreeError> {
        match &self.node.value {
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Integer(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Boolean(b) => visitor.visit_bool(*b),
            Value::Datetime(_) => Err(de::Error::invalid_type(
                de::Unexpected::Other("datetime"),
                &visitor,
            )),
            Value::Array(items) => visitor.visit_seq(Items {
                items: items.iter(),
                unknown: self.unknown,
            }),
            Value::Table(entries) => visitor.visit_map(Entries {
                entries: entries.iter().collect::<Vec<_>>().into_iter(),
                value: None,
                unknown: self.unknown,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TreeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, TreeError> {
        visitor.visit_newtype_struct(self)
    }

    /// A `toml::Spanned` gets the node's span; a struct gets only the keys it knows, the others
    /// are reported and skipped.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TreeError> {
        if let Some(shape) = spanned_shape().filter(|s| s.is(name, fields)) {
            return visitor.visit_map(SpannedAccess::new(shape, self.node.span.clone(), self));
        }
        let Value::Table(entries) = &self.node.value else {
            // serde would name the Rust struct ("expected struct RawShadow").
            return Err(de::Error::custom(format!(
                "invalid type: {}, expected a table",
                self.node.value.kind()
            )));
        };
        let mut known = Vec::with_capacity(entries.len());
        for entry in entries {
            if fields.contains(&entry.0.name.as_str()) {
                known.push(entry);
            } else {
                let mut unknown = self.unknown.borrow_mut();
                unknown.keys.push(unknown_key(&entry.0, fields));
                if let Some(meant) = closest_key(&entry.0.name, fields) {
                    unknown.misspelt.push((self.node.span.clone(), meant));
                }
            }
        }
        visitor.visit_map(Entries {
            entries: known.into_iter(),
            value: None,
            unknown: self.unknown,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TreeError> {
        match &self.node.value {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TreeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct Items<'de, 'c> {
    items: std::slice::Iter<'de, Node>,
    unknown: &'c RefCell<Unknown>,
}

impl<'de> SeqAccess<'de> for Items<'de, '_> {
    type Error = TreeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, TreeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let de = NodeDe {
            node,
            unknown: self.unknown,
        };
        seed.deserialize(de).map(Some).map_err(|e| e.at(&node.span))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Entries<'de, 'c> {
    entries: std::vec::IntoIter<&'de (Key, Node)>,
    value: Option<&'de Node>,
    unknown: &'c RefCell<Unknown>,
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = TreeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TreeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(key).map(Some).map_err(|e| e.at(&key.span))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, TreeError> {
        let Some(node) = self.value.take() else {
            return Err(de::Error::custom("a value was read before its key"));
        };
        let de = NodeDe {
            node,
            unknown: self.unknown,
        };
        seed.deserialize(de).map_err(|e| e.at(&node.span))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

impl<'de> Deserializer<'de> for &'de Key {
    type Error = TreeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TreeError> {
        visitor.visit_borrowed_str(&self.name)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TreeError> {
        match spanned_shape() {
            Some(shape) if shape.is(name, fields) => {
                let value = BorrowedStrDeserializer::new(self.name.as_str());
                visitor.visit_map(SpannedAccess::new(shape, self.span.clone(), value))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// Hands a `toml::Spanned` its start, its end, then the value.
struct SpannedAccess<D> {
    shape: SpannedShape,
    span: Range<usize>,
    value: Option<D>,
    step: usize,
}

impl<D> SpannedAccess<D> {
    fn new(shape: SpannedShape, span: Range<usize>, value: D) -> Self {
        SpannedAccess {
            shape,
            span,
            value: Some(value),
            step: 0,
        }
    }
}

impl<'de, D: Deserializer<'de, Error = TreeError>> MapAccess<'de> for SpannedAccess<D> {
    type Error = TreeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TreeError> {
        match self.shape.fields.get(self.step) {
            Some(field) => seed
                .deserialize(BorrowedStrDeserializer::new(field))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, TreeError> {
        self.step += 1;
        match self.step {
            1 => seed.deserialize(self.span.start.into_deserializer()),
            2 => seed.deserialize(self.span.end.into_deserializer()),
            _ => match self.value.take() {
                Some(value) => seed.deserialize(value),
                None => Err(de::Error::custom("a spanned value was read twice")),
            },
        }
    }
}

#[cfg(test)]
#[path = "de_tests.rs"]
mod tests;
