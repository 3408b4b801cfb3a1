//! The shadow comparator: whether the shadow answered a request like the primary did, and where
//! not (CONTRACT section 8). Pure: two answers and a route's rules in, differences out; no I/O,
//! so every rule is tested without a socket.
//!
//! - **Status** must be equal.
//! - **Headers** are compared by name (the `http` crate lower-cases names) with repeated values
//!   in order, except hop-by-hop ones (those of RFC 9110 section 7.6.1 and any that `Connection`
//!   lists), `date`, `content-length`, `content-encoding` and the route's `ignore_headers`.
//! - **Bodies** are compared after removing their content-encoding (`decode.rs`; an empty body,
//!   as in a HEAD, 204 or 304 answer, has nothing to decode). When both sides' content-type is
//!   JSON they are compared as JSON values (`walk.rs`), else byte for byte; equal bytes are equal
//!   either way, and are not parsed. A body whose encoding cannot be removed (unknown, corrupt,
//!   or past [`Limits::max_decoded`]) is a [`Kind::Undecodable`] difference unless both sides
//!   sent the same bytes with the same codings; a body said to be JSON that is not (or nests
//!   past [`Limits::max_depth`]) is a [`Kind::NotJson`] difference unless both sides sent the
//!   same bytes. Neither is an error of the comparison: the shadow did answer, and its answer is
//!   not the primary's.
//!
//! Differences are named as the report names them: `status`, `header:NAME`, `body` (which
//! includes a difference at the root of a JSON document) or a JSON Pointer, with
//! [`Location::generalised`] for the per-route form (`/items/*/price`).

mod decimal;
mod decode;
mod headers;
mod json;
mod pointer;
mod walk;

#[cfg(test)]
mod json_tests;
#[cfg(test)]
mod props_tests;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName};

pub use pointer::{JsonPath, Pattern, PatternError, Step};

use super::ShadowSpec;
pub(crate) use decode::DecodeError;
use json::{render, shorten};
use pointer::At;
use walk::Sink;

/// How long an example of a value may be, in characters (a cut one ends with `…`).
pub const EXAMPLE_CHARS: usize = 200;

/// One side's answer: the primary's (the one the client got) or the shadow's.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    /// As received, still content-encoded.
    pub body: &'a [u8],
}

/// Bounds on the work of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes a body may decode to (after each content-encoding is removed): 16 MiB.
    pub max_decoded: usize,
    /// How deep arrays and objects may nest in a JSON body: 128, as in `serde_json`.
    pub max_depth: usize,
    /// Differences kept; past them [`Comparison::more`] is set and the comparison stops: 100.
    pub max_differences: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decoded: 16 << 20,
            max_depth: 128,
            max_differences: 100,
        }
    }
}

/// A route's comparison rules (`[routes.shadow]`), with their patterns parsed once.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub ignore_headers: Vec<HeaderName>,
    /// Values never compared, nor whether they are there at all.
    pub ignore: Vec<Pattern>,
    /// Arrays compared as multisets: element counts matter, positions do not. Inside them only a
    /// `*` segment matches an element.
    pub unordered: Vec<Pattern>,
    /// Numbers equal within an absolute difference; the first pattern that matches applies.
    pub tolerance: Vec<(Pattern, f64)>,
    pub limits: Limits,
}

impl Rules {
    /// The rules of a compiled `[routes.shadow]`, with default [`Limits`] except that a body may
    /// decode to the route's `max_body` when that is more (a body the route takes plain, it takes
    /// compressed). The config compiler has checked the patterns already; this checks them again
    /// rather than trust a hand-made spec.
    pub fn from_spec(spec: &ShadowSpec) -> Result<Rules, PatternError> {
        // Field by field, so that a new comparison setting cannot be left out unnoticed.
        let ShadowSpec {
            upstream: _,
            percent: _,
            sticky: _,
            methods: _,
            max_body,
            ignore_headers,
            ignore,
            unordered,
            tolerance,
            learn_noise: _,
            timeout: _,
            max_in_flight: _,
        } = spec;
        let patterns = |list: &[String]| -> Result<Vec<Pattern>, PatternError> {
            list.iter().map(|p| Pattern::parse(p)).collect()
        };
        Ok(Rules {
            ignore_headers: ignore_headers.clone(),
            ignore: patterns(ignore)?,
            unordered: patterns(unordered)?,
            tolerance: tolerance
                .iter()
                .map(|(p, d)| Ok((Pattern::parse(p)?, *d)))
                .collect::<Result<_, PatternError>>()?,
            limits: Limits {
                max_decoded: usize::try_from(*max_body)
                    .unwrap_or(usize::MAX)
                    .max(Limits::default().max_decoded),
                ..Limits::default()
            },
        })
    }

    fn is_ignored(&self, at: &[At<'_>]) -> bool {
        self.ignore.iter().any(|p| p.matches(at))
    }

    fn is_unordered(&self, at: &[At<'_>]) -> bool {
        self.unordered.iter().any(|p| p.matches(at))
    }

    fn tolerance_at(&self, at: &[At<'_>]) -> Option<f64> {
        self.tolerance
            .iter()
            .find(|(p, _)| p.matches(at))
            .map(|(_, d)| *d)
    }
}

/// The outcome: a match when there is no difference.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// In order: status, headers by name, then the body (JSON paths in key and index order).
    pub differences: Vec<Difference>,
    /// More differences were found than [`Limits::max_differences`]; they were not collected.
    pub more: bool,
}

impl Comparison {
    pub fn is_match(&self) -> bool {
        self.differences.is_empty() && !self.more
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub at: Location,
    pub kind: Kind,
    /// The primary's side, at most [`EXAMPLE_CHARS`] characters (a JSON value compact, a
    /// header's values joined with `, `, a body's start, or why it could not be read); `None`
    /// where that side has nothing (a missing key or header).
    pub primary: Option<String>,
    pub shadow: Option<String>,
}

/// Where two answers differ.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    Status,
    Header(HeaderName),
    /// The whole body, including a difference at the root of a JSON document.
    Body,
    Json(JsonPath),
}

impl Location {
    /// The name reported per route: a JSON path with array indices as `*`.
    pub fn generalised(&self) -> String {
        match self {
            Location::Json(path) => path.generalised(),
            other => other.to_string(),
        }
    }
}

/// `status`, `header:NAME`, `body`, or a JSON Pointer (`/items/3/price`).
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Status => f.write_str("status"),
            Location::Header(name) => write!(f, "header:{name}"),
            Location::Body => f.write_str("body"),
            Location::Json(path) => write!(f, "{path}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The values differ, or one side lacks the value (its example is `None`).
    Differs,
    /// An `unordered` array holds different elements; the examples list the elements found on
    /// that side only.
    Multiset,
    /// Both sides say JSON, their bodies differ, and one is not JSON (or nests too deep); the
    /// example says why.
    NotJson,
    /// A content-encoding could not be removed and the encoded bodies differ; the example says
    /// why.
    Undecodable,
}

/// Compares the shadow's answer with the primary's under `rules`.
pub fn compare(primary: &Answer<'_>, shadow: &Answer<'_>, rules: &Rules) -> Comparison {
    let mut sink = Sink::new(rules.limits.max_differences);
    if primary.status != shadow.status {
        sink.add(|| Difference {
            at: Location::Status,
            kind: Kind::Differs,
            primary: Some(primary.status.to_string()),
            shadow: Some(shadow.status.to_string()),
        });
    }
    headers::compare(primary.headers, shadow.headers, rules, &mut sink);
    bodies(primary, shadow, rules, &mut sink);
    Comparison {
        differences: sink.found,
        more: sink.more,
    }
}

fn bodies(p: &Answer<'_>, s: &Answer<'_>, rules: &Rules, sink: &mut Sink) {
    let max = rules.limits.max_decoded;
    let (codings_p, codings_s) = (decode::codings(p.headers), decode::codings(s.headers));
    // The same bytes under the same codings are the same answer, readable or not (and the
    // common case: no need to decode or parse).
    if p.body == s.body && codings_p == codings_s {
        return;
    }
    match (
        decoded(&codings_p, p.body, max),
        decoded(&codings_s, s.body, max),
    ) {
        (Ok(a), Ok(b)) => decoded_bodies(p.headers, s.headers, &a, &b, rules, sink),
        (a, b) => {
            let why = |side: Result<Cow<'_, [u8]>, DecodeError>| match side {
                Ok(body) => excerpt(&body),
                Err(e) => e.to_string(),
            };
            sink.add(|| Difference {
                at: Location::Body,
                kind: Kind::Undecodable,
                primary: Some(why(a)),
                shadow: Some(why(b)),
            });
        }
    }
}

/// `body` with the content-encodings that `headers` name removed, decoding to at most `max` bytes,
/// as the comparator reads it (an empty body is left as it is). Webhook events read their bodies
/// this way too.
pub(crate) fn decoded_body<'b>(
    headers: &HeaderMap,
    body: &'b [u8],
    max: usize,
) -> Result<Cow<'b, [u8]>, DecodeError> {
    decoded(&decode::codings(headers), body, max)
}

fn decoded<'b>(
    codings: &Result<Vec<String>, DecodeError>,
    body: &'b [u8],
    max: usize,
) -> Result<Cow<'b, [u8]>, DecodeError> {
    match codings {
        // An empty body has nothing to decode: a HEAD, 204 or 304 answer names the codings of a
        // representation it does not carry.
        _ if body.is_empty() => Ok(Cow::Borrowed(body)),
        Ok(codings) => decode::decode(codings, body, max),
        Err(e) => Err(e.clone()),
    }
}

fn decoded_bodies(
    headers_p: &HeaderMap,
    headers_s: &HeaderMap,
    a: &[u8],
    b: &[u8],
    rules: &Rules,
    sink: &mut Sink,
) {
    // Equal bytes are equal values whatever the rules, so they are neither parsed nor walked.
    if a == b {
        return;
    }
    if !(is_json(headers_p) && is_json(headers_s)) {
        sink.add(|| Difference {
            at: Location::Body,
            kind: Kind::Differs,
            primary: Some(excerpt(a)),
            shadow: Some(excerpt(b)),
        });
        return;
    }
    let depth = rules.limits.max_depth;
    match (json::parse(a, depth), json::parse(b, depth)) {
        (Ok(x), Ok(y)) => walk::diff(rules, &x, &y, sink),
        (x, y) => {
            let why = |side: Result<json::Json, json::NotJson>| match side {
                Ok(v) => render(&v, EXAMPLE_CHARS),
                Err(e) => e.to_string(),
            };
            sink.add(|| Difference {
                at: Location::Body,
                kind: Kind::NotJson,
                primary: Some(why(x)),
                shadow: Some(why(y)),
            });
        }
    }
}

/// `application/json`, or any `+json` type, with or without parameters, in any case.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(Ok(value)) = headers.get(CONTENT_TYPE).map(|v| v.to_str()) else {
        return false;
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json"
        || media
            .split_once('/')
            .is_some_and(|(kind, sub)| !kind.is_empty() && sub.len() > 5 && sub.ends_with("+json"))
}

/// The start of a body as text, at most [`EXAMPLE_CHARS`] characters.
fn excerpt(body: &[u8]) -> String {
    // A character is at most 4 bytes, so this much is enough to fill an example.
    let head = &body[..body.len().min(EXAMPLE_CHARS * 4)];
    let text = shorten(&String::from_utf8_lossy(head), EXAMPLE_CHARS);
    if head.len() < body.len() && !text.ends_with('…') {
        return format!("{text}…");
    }
    text
}
