//! Where a difference sits in a JSON body (a JSON Pointer, RFC 6901), and the patterns of
//! `[routes.shadow]` (`ignore`, `unordered`, `tolerance`) that pick such places out.

use std::fmt;

/// One step into a JSON value, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// The place of a value in a JSON body: `/items/3/price`. Never the root: a difference of the
/// whole document is reported as `body`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JsonPath(pub(super) Vec<Step>);

impl JsonPath {
    pub fn steps(&self) -> &[Step] {
        &self.0
    }

    /// The form reported per route: array indices become `*` (`/items/*/price`), so one field of
    /// every element counts as one path.
    pub fn generalised(&self) -> String {
        let mut out = String::new();
        for step in &self.0 {
            out.push('/');
            match step {
                Step::Key(key) => escape_into(&mut out, key),
                Step::Index(_) => out.push('*'),
            }
        }
        out
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for step in &self.0 {
            out.push('/');
            match step {
                Step::Key(key) => escape_into(&mut out, key),
                Step::Index(i) => out.push_str(&i.to_string()),
            }
        }
        f.write_str(&out)
    }
}

/// `~` is written `~0` and `/` is written `~1` inside a key (RFC 6901 section 3).
fn escape_into(out: &mut String, key: &str) {
    for c in key.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

/// One step of the walk over a body, borrowing its keys so that walking allocates nothing.
#[derive(Debug, Clone, Copy)]
pub(super) enum At<'a> {
    Key(&'a str),
    Index(usize),
    /// An element of an `unordered` array: it has no position, so only a `*` segment matches it.
    Member,
}

/// The reported form of a walk's position.
pub(super) fn reported(at: &[At<'_>]) -> JsonPath {
    JsonPath(
        at.iter()
            .map(|step| match step {
                At::Key(key) => Step::Key((*key).to_string()),
                At::Index(i) => Step::Index(*i),
                // Never reached in practice: members are compared through probes that record
                // nothing; a multiset difference is reported at its array's path.
                At::Member => Step::Key("*".to_string()),
            })
            .collect(),
    )
}

/// A JSON Pointer pattern, parsed once: `/items/*/id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `*`: any one key or index.
    Any,
    /// A key, unescaped, and the array index it also names when it is one (`3`, not `03`).
    Key(String, Option<usize>),
}

/// Why a pattern is not a JSON Pointer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("invalid JSON Pointer {0:?}; it starts with '/', like \"/items/*/id\"")]
    NoLeadingSlash(String),
    #[error("invalid JSON Pointer {0:?}; write '~' as \"~0\" and '/' inside a key as \"~1\"")]
    BadEscape(String),
}

impl Pattern {
    /// The empty pattern is the whole document; a `*` segment matches any one key or index (so a
    /// key named `*` cannot be picked out alone).
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        if text.is_empty() {
            return Ok(Pattern(Vec::new()));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PatternError::NoLeadingSlash(text.to_string()));
        };
        rest.split('/')
            .map(|raw| {
                if raw == "*" {
                    return Ok(Segment::Any);
                }
                let key = unescape(raw).ok_or_else(|| PatternError::BadEscape(text.to_string()))?;
                let index = array_index(&key);
                Ok(Segment::Key(key, index))
            })
            .collect::<Result<_, _>>()
            .map(Pattern)
    }

    pub(super) fn matches(&self, at: &[At<'_>]) -> bool {
        self.0.len() == at.len()
            && self
                .0
                .iter()
                .zip(at)
                .all(|(segment, step)| match (segment, step) {
                    (Segment::Any, _) => true,
                    (Segment::Key(k, _), At::Key(key)) => k == key,
                    (Segment::Key(_, index), At::Index(i)) => *index == Some(*i),
                    (Segment::Key(..), At::Member) => false,
                })
    }
}

fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '~' => match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out)
}

/// RFC 6901's array-index: `0`, or digits without a leading zero.
fn array_index(key: &str) -> Option<usize> {
    let digits = !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit());
    if !digits || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    key.parse().ok()
}
