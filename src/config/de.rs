//! Reading the file with toml's own spanned tree, one section at a time.
//!
//! [`parse`] has toml 0.9 read the whole file into a [`DeTable`] that keeps the span of every key
//! and value; only syntax errors stop here, with toml's own message and position. [`section`]
//! then deserializes one section (`[proxy]`, an upstream, a route) so a problem in one section
//! does not hide the problems in the others: an unknown key is reported at the key with a "did
//! you mean" and skipped; a value of the wrong type rejects only its own section.
//!
//! The reader itself is `ficus_plugin::config`, which plugin kinds use for their own sections, so
//! a plugin's errors read exactly like ficus's; this module turns what it finds into [`Problem`]s.

use std::ops::Range;

use ficus_plugin::config::{self as reader, ConfigError, Diagnostics};
pub(crate) use ficus_plugin::config::{keys_of, Node, Shape};
use serde::de::DeserializeOwned;
#[cfg(test)]
use serde::Deserialize;
use toml::de::DeTable;
#[cfg(test)]
use toml::de::DeValue;
use toml::Spanned;

use super::diagnostics::{Problem, Problems};

/// Reads `text` into toml's spanned tree; fails only on TOML syntax (toml's message and position).
pub(crate) fn parse(text: &str) -> Result<Spanned<DeTable<'_>>, Problem> {
    DeTable::parse(text)
        .map_err(|e| Problem::new(e.span().unwrap_or(0..0), reader::one_line(e.message())))
}

/// Deserializes one section. Its unknown keys are reported and skipped; `None` when a value has
/// the wrong type (reported at the value) and the section cannot be read.
pub(crate) fn section<T: DeserializeOwned>(
    node: Node<'_>,
    shape: &Shape,
    problems: &mut Problems,
) -> Option<Spanned<T>> {
    let mut diags = Diagnostics::default();
    let read = reader::read(node, shape, &mut diags);
    absorb(problems, diags);
    read
}

/// What `ficus_plugin::config` found, as problems of this file.
pub(crate) fn absorb(problems: &mut Problems, diags: Diagnostics) {
    let Diagnostics { errors, misspelt } = diags;
    for e in errors {
        problems.push(problem(e));
    }
    for (table, key) in misspelt {
        problems.misspelt(table, key);
    }
}

fn problem(e: ConfigError) -> Problem {
    let ConfigError {
        span,
        message,
        hint,
    } = e;
    match hint {
        Some(hint) => Problem::new(span, message).with_hint(hint),
        None => Problem::new(span, message),
    }
}

/// `unknown key "x"` at the key, with a hint from the keys that were expected.
pub(crate) fn unknown_key(name: &str, span: Range<usize>, expected: &[&str]) -> Problem {
    problem(reader::unknown_key(name, span, expected))
}

#[cfg(test)]
use reader::unknown_key_hint;

#[cfg(test)]
#[path = "de_tests.rs"]
mod tests;
