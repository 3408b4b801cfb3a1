//! The event a webhook route emits for one write (CONTRACT section 6), built from what the proxy
//! captured of the request and the response; pure, so every rule is tested without a socket.
//!
//! The payload is compact JSON with its fields in this order:
//!
//! ```json
//! {"type":"order.created","timestamp":"2026-01-02T03:04:05.678901Z",
//!  "data":{"route":"orders",
//!          "request":{"method":"POST","path":"/orders","query":null,"body":{"sku":"a1"}},
//!          "response":{"status":201,"body":{"id":7}}}}
//! ```
//!
//! - `timestamp` is when the response was seen, RFC 3339 in UTC with microseconds (as in the
//!   specification's examples). It is the event's time and stays the same on every attempt; the
//!   `webhook-timestamp` header is the attempt's.
//! - `query` is the raw query string as received (not decoded), or `null` when the request target
//!   had no `?`.
//! - A **body** has its content-encoding (gzip, deflate, br, stacked) removed by the shadow
//!   comparator's decoder, then goes in as JSON when serde_json parses it (whatever its
//!   content-type says, as the contract has it), else as a JSON string when it is UTF-8. A JSON body
//!   keeps its own text, only without the whitespace between tokens: serde_json's `Value` would
//!   reorder object keys and round numbers beyond 64 bits, and the legacy app should see what the
//!   new service wrote.
//! - A body that is not UTF-8 goes in as a base64 string (standard alphabet, padded), and its side
//!   gets `"body_encoding":"base64"` next to `body`; lossy UTF-8 would hand the legacy app bytes
//!   that are not the ones sent. This is the only field beyond the contract's besides `truncated`.
//! - An empty body (none at all, a HEAD or 204 answer) is `null`.
//! - A body longer than the route's `max_body` was not kept (the caller passes `None`), and one
//!   that decodes to more than `max_decoded` is not put in either: it is `null`, and `data` gets
//!   `"truncated":true` (present only then). One flag in `data` rather than one per side keeps the
//!   contract's shape; a `null` body beside it is the cut one unless that side had no body.
//! - A body whose content-encoding ficus cannot remove (unknown, corrupt, or stacked more than
//!   four deep) goes in as received, so by the rules above usually as base64.
//!
//! The event's **key** (`[routes.webhook] key`, see [`KeySpec`]) is read from the parsed body it
//! points into; it orders the deliveries of one key and is not part of the payload.

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use http::HeaderMap;
use serde_json::Value;

use crate::shadow::compare::{decoded_body, DecodeError};

/// What a route's events are made of, built once per route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// The event `type` (`[routes.webhook] event`), like `order.created`.
    pub event_type: String,
    /// The route's name, the event's `data.route`.
    pub route: String,
    pub key: Option<KeySpec>,
    /// Bytes a body may decode to once its content-encoding is removed; the route's `max_body`
    /// is the natural choice, so that a body the route keeps plain it keeps compressed too.
    pub max_decoded: usize,
}

/// What the proxy captured of the request. `headers` are the ones that describe `body` as it was
/// captured (only `content-encoding` is read).
#[derive(Debug, Clone, Copy)]
pub struct CapturedRequest<'a> {
    pub method: &'a str,
    /// The path as received, still percent-encoded.
    pub path: &'a str,
    /// The raw query string, without the `?`; `None` when the target had no `?`.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The body as received (still content-encoded); `None` when it was longer than the route's
    /// `max_body` and was not kept. A request without a body is `Some(b"")`.
    pub body: Option<&'a [u8]>,
}

/// What the proxy captured of the response; as for [`CapturedRequest`].
#[derive(Debug, Clone, Copy)]
pub struct CapturedResponse<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    pub body: Option<&'a [u8]>,
}

/// One event, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The body that is signed and delivered, compact JSON.
    pub payload: String,
    /// The ordering key; `None` when the route has none or this event's bodies lack it (then the
    /// event is unordered).
    pub key: Option<String>,
    /// A body was cut (`"truncated":true` in the payload).
    pub truncated: bool,
}

impl Event {
    /// The event for one exchange whose response was seen at `at`.
    pub fn new(
        spec: &EventSpec,
        at: SystemTime,
        request: &CapturedRequest<'_>,
        response: &CapturedResponse<'_>,
    ) -> Event {
        let request_body = Body::read(request.headers, request.body, spec.max_decoded);
        let response_body = Body::read(response.headers, response.body, spec.max_decoded);
        let truncated = request_body.is_truncated() || response_body.is_truncated();

        let mut out = String::with_capacity(256 + request_body.len() + response_body.len());
        out.push_str("{\"type\":");
        push_string(&mut out, &spec.event_type);
        out.push_str(",\"timestamp\":");
        push_string(&mut out, &rfc3339(at));
        out.push_str(",\"data\":{\"route\":");
        push_string(&mut out, &spec.route);
        out.push_str(",\"request\":{\"method\":");
        push_string(&mut out, request.method);
        out.push_str(",\"path\":");
        push_string(&mut out, request.path);
        out.push_str(",\"query\":");
        match request.query {
            Some(query) => push_string(&mut out, query),
            None => out.push_str("null"),
        }
        request_body.push_to(&mut out);
        let _ = write!(out, "}},\"response\":{{\"status\":{}", response.status);
        response_body.push_to(&mut out);
        out.push('}');
        if truncated {
            out.push_str(",\"truncated\":true");
        }
        out.push_str("}}");

        let key = spec
            .key
            .as_ref()
            .and_then(|k| event_key(k, request_body.json(), response_body.json()));
        Event {
            payload: out,
            key,
            truncated,
        }
    }
}

/// Which body a key is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// `[routes.webhook] key`: a JSON Pointer (RFC 6901) into the response body (`/id`), or into the
/// request body when written `request:/pointer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub side: Side,
    /// Empty (the whole document) or starting with `/`.
    pub pointer: String,
}

/// Why a `key` is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "invalid webhook key {0:?}: it is a JSON Pointer into the response body, starting with \
         '/' like \"/id\", or into the request body, written \"request:/id\""
    )]
    NotAPointer(String),
    #[error("invalid webhook key {0:?}: write '~' as \"~0\" and a '/' inside a name as \"~1\"")]
    BadEscape(String),
}

/// The prefix that points a key into the request body.
const REQUEST_PREFIX: &str = "request:";

impl KeySpec {
    pub fn parse(text: &str) -> Result<KeySpec, KeyError> {
        let (side, pointer) = match text.strip_prefix(REQUEST_PREFIX) {
            Some(pointer) => (Side::Request, pointer),
            None => (Side::Response, text),
        };
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(KeyError::NotAPointer(text.to_string()));
        }
        let mut escapes = pointer.split('~').skip(1);
        if escapes.any(|after| !after.starts_with(['0', '1'])) {
            return Err(KeyError::BadEscape(text.to_string()));
        }
        Ok(KeySpec {
            side,
            pointer: pointer.to_string(),
        })
    }
}

/// As written in `routes.toml`.
impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.side {
            Side::Request => write!(f, "{REQUEST_PREFIX}{}", self.pointer),
            Side::Response => f.write_str(&self.pointer),
        }
    }
}

/// The key that `spec` finds in the bodies (each `None` when it is not JSON): a string as it is,
/// a number or a boolean as its JSON text, an object or an array as compact JSON (serde_json
/// sorts object keys, so equal objects give equal keys). A key that is missing, or `null`, is no
/// key: the event is unordered. Values that print alike (`7` and `"7"`) share a group, which
/// orders more events, never fewer.
pub fn event_key(
    spec: &KeySpec,
    request: Option<&Value>,
    response: Option<&Value>,
) -> Option<String> {
    let body = match spec.side {
        Side::Request => request,
        Side::Response => response,
    };
    match body?.pointer(&spec.pointer)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// One side's body as the event holds it.
enum Body<'a> {
    /// No body.
    Empty,
    /// Past `max_body` as captured, or past `max_decoded` once decoded.
    Truncated,
    /// A JSON document: its value (for the key) and its text.
    Json(Value, Cow<'a, str>),
    Text(Cow<'a, str>),
    /// Not UTF-8.
    Binary(Cow<'a, [u8]>),
}

impl<'a> Body<'a> {
    fn read(headers: &HeaderMap, captured: Option<&'a [u8]>, max_decoded: usize) -> Body<'a> {
        let Some(raw) = captured else {
            return Body::Truncated;
        };
        let bytes = match decoded_body(headers, raw, max_decoded) {
            Ok(bytes) => bytes,
            Err(DecodeError::TooLarge(_)) => return Body::Truncated,
            Err(
                DecodeError::Unknown(_) | DecodeError::TooManyCodings | DecodeError::Corrupt { .. },
            ) => Cow::Borrowed(raw),
        };
        if bytes.is_empty() {
            return Body::Empty;
        }
        let text = match bytes {
            Cow::Borrowed(b) => std::str::from_utf8(b)
                .map(Cow::Borrowed)
                .map_err(|_| Cow::Borrowed(b)),
            Cow::Owned(v) => String::from_utf8(v)
                .map(Cow::Owned)
                .map_err(|e| Cow::Owned(e.into_bytes())),
        };
        match text {
            Err(bytes) => Body::Binary(bytes),
            // serde_json's parse is the judge of what is JSON: strict (no lone surrogates, no
            // trailing commas) and at most 128 levels deep, which every receiver can read.
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(value) => Body::Json(value, text),
                Err(_) => Body::Text(text),
            },
        }
    }

    fn is_truncated(&self) -> bool {
        matches!(self, Body::Truncated)
    }

    fn json(&self) -> Option<&Value> {
        match self {
            Body::Json(value, _) => Some(value),
            _ => None,
        }
    }

    /// Roughly the bytes it takes in the payload.
    fn len(&self) -> usize {
        match self {
            Body::Empty | Body::Truncated => 0,
            Body::Json(_, text) | Body::Text(text) => text.len(),
            Body::Binary(bytes) => bytes.len() / 3 * 4 + 4,
        }
    }

    /// `,"body":...` and, for a binary body, `,"body_encoding":"base64"`.
    fn push_to(&self, out: &mut String) {
        out.push_str(",\"body\":");
        match self {
            Body::Empty | Body::Truncated => out.push_str("null"),
            Body::Json(_, text) => push_compact(out, text),
            Body::Text(text) => push_string(out, text),
            Body::Binary(bytes) => {
                // Base64 needs no JSON escaping.
                out.push('"');
                base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
                out.push_str("\",\"body_encoding\":\"base64\"");
            }
        }
    }
}

/// `text` as a JSON string, escaped by serde_json.
fn push_string(out: &mut String, text: &str) {
    // Writing to a String cannot fail, nor can serializing a string.
    let _ = write!(out, "{}", Value::from(text));
}

/// `json`, a document serde_json has parsed, without the whitespace between its tokens: the
/// tokens themselves (numbers' digits, strings' escapes, key order) are kept as written. Written
/// here because serde_json only re-serializes a parsed `Value`, which changes them.
fn push_compact(out: &mut String, json: &str) {
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        out.push(c);
    }
}

/// `at` in RFC 3339 with microseconds, UTC. humantime writes the years 1970 to 9999 only (and
/// panics outside them), so a clock outside them is held at their ends.
fn rfc3339(at: SystemTime) -> String {
    let at = at.max(UNIX_EPOCH);
    let at = match UNIX_EPOCH.checked_add(Duration::from_secs(253_402_300_799)) {
        Some(last) => at.min(last),
        None => at,
    };
    humantime::format_rfc3339_micros(at).to_string()
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
