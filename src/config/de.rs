//! Reading the file with toml's own spanned tree, one section at a time.
//!
//! [`parse`] has toml 0.9 read the whole file into a [`DeTable`] that keeps the span of every key
//! and value; only syntax errors stop here, with toml's own message and position. [`section`]
//! then deserializes one section (`[proxy]`, an upstream, a route) with toml's
//! [`ValueDeserializer`], so a problem in one section does not hide the problems in the others:
//!
//! - an unknown key is reported at the key, with a "did you mean" (`strsim`) or the keys that
//!   were expected, and is then skipped by serde, so the rest of its section is still read;
//! - a value of the wrong type rejects only its own section, reported at the value.
//!
//! Unknown keys are found on the tree rather than with `serde_ignored`, because serde_ignored
//! gives the path of an ignored key but not its span (dtolnay/serde-ignored#11), and it cannot
//! read map keys deserialized as `toml::Spanned` (it fails with "non-string key"), which the
//! header, query and split tables need. The keys a section accepts are serde's own list for its
//! struct ([`keys_of`]), so they cannot drift from the struct.

use std::fmt;
use std::ops::Range;

use serde::de::{DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::diagnostics::{Problem, Problems};

/// A value of the file with its span.
pub(crate) type Node<'i> = Spanned<DeValue<'i>>;

/// Reads `text` into toml's spanned tree; fails only on TOML syntax (toml's message and position).
pub(crate) fn parse(text: &str) -> Result<Spanned<DeTable<'_>>, Problem> {
    DeTable::parse(text).map_err(|e| Problem::new(e.span().unwrap_or(0..0), one_line(e.message())))
}

/// toml's messages can span lines ("invalid table header\nexpected `.`, `]`").
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// The keys a section's struct accepts, and which of them hold a nested section (`shadow` in a
/// route) whose keys are checked the same way.
pub(crate) struct Shape {
    pub keys: fn() -> &'static [&'static str],
    pub nested: &'static [(&'static str, Shape)],
}

/// Deserializes one section. Its unknown keys are reported and skipped; `None` when a value has
/// the wrong type (reported at the value) and the section cannot be read.
pub(crate) fn section<T: DeserializeOwned>(
    node: Node<'_>,
    shape: &Shape,
    problems: &mut Problems,
) -> Option<Spanned<T>> {
    report_unknown_keys(&node, shape, problems);
    let span = node.span();
    match Spanned::<T>::deserialize(ValueDeserializer::from(node)) {
        Ok(value) => Some(value),
        Err(e) => {
            let at = e.span().unwrap_or(span);
            problems.push(Problem::new(at, one_line(e.message())));
            None
        }
    }
}

/// Reports every key of `node` (a table; anything else is left to the deserializer) that its
/// shape does not know, and remembers the known key it was probably meant as.
fn report_unknown_keys(node: &Node<'_>, shape: &Shape, problems: &mut Problems) {
    let DeValue::Table(table) = node.get_ref() else {
        return;
    };
    let keys = (shape.keys)();
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        if let Some((_, nested)) = shape.nested.iter().find(|(k, _)| *k == name) {
            report_unknown_keys(value, nested, problems);
        } else if !keys.contains(&name) {
            problems.push(unknown_key(name, key.span(), keys));
            if let Some(meant) = closest_key(name, keys) {
                problems.misspelt(node.span(), meant);
            }
        }
    }
}

/// `unknown key "x"` at the key, with a hint from the keys that were expected.
pub(crate) fn unknown_key(name: &str, span: Range<usize>, expected: &[&str]) -> Problem {
    Problem::new(span, format!("unknown key {name:?}")).with_hint(unknown_key_hint(name, expected))
}

/// `did you mean "methods"?` when a known key is close, else the list of known keys.
pub(crate) fn unknown_key_hint(field: &str, expected: &[&str]) -> String {
    match closest_key(field, expected) {
        Some(k) => format!("did you mean {k:?}?"),
        None if expected.is_empty() => "no keys are allowed here".to_string(),
        None => format!("expected one of: {}", expected.join(", ")),
    }
}

/// The expected key `field` is probably a misspelling of: the nearest by edit distance, if it
/// is within 2 edits (or a third of the key, for long keys).
fn closest_key<'k>(field: &str, expected: &[&'k str]) -> Option<&'k str> {
    expected
        .iter()
        .map(|k| (strsim::levenshtein(field, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The keys serde's derive accepts for the struct `T`: `T` is asked to deserialize itself from a
/// deserializer that only records the field list it is offered, then stops.
pub(crate) fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut keys: &'static [&'static str] = &[];
    let _ = T::deserialize(KeysProbe(&mut keys));
    keys
}

struct KeysProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for KeysProbe<'_> {
    type Error = Probed;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probed> {
        Err(Probed)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Probed> {
        *self.0 = fields;
        Err(Probed)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// How [`KeysProbe`] stops a deserialization once it has seen the fields; never shown.
#[derive(Debug)]
struct Probed;

impl fmt::Display for Probed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probed")
    }
}

impl std::error::Error for Probed {}

impl serde::de::Error for Probed {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Probed
    }
}

#[cfg(test)]
#[path = "de_tests.rs"]
mod tests;
