//! A JSON body as a tree that keeps each number's own text, read with `jiter` (see Cargo.toml for
//! why not `serde_json::Value`), and its bounded rendering for the examples of a difference.

use std::collections::BTreeMap;

use jiter::{Jiter, Peek};

/// A JSON value. Objects keep the last of repeated keys, as `serde_json` does.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    Null,
    Bool(bool),
    /// The number as written (valid JSON number syntax); compared through `decimal`.
    Number(Box<str>),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

/// Why a body said to be JSON could not be read as JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum NotJson {
    #[error("not JSON: {0}")]
    Syntax(String),
    #[error("JSON nested deeper than {0} levels")]
    TooDeep(usize),
}

/// The whole of `bytes` as one JSON value, with arrays and objects nested at most `max_depth`
/// levels (the recursion below is bounded by it).
pub(super) fn parse(bytes: &[u8], max_depth: usize) -> Result<Json, NotJson> {
    let mut jiter = Jiter::new(bytes);
    let peek = jiter.peek().map_err(syntax)?;
    let value = value(&mut jiter, peek, max_depth).map_err(|e| match e {
        NotJson::TooDeep(_) => NotJson::TooDeep(max_depth),
        e => e,
    })?;
    jiter.finish().map_err(syntax)?;
    Ok(value)
}

fn syntax(e: jiter::JiterError) -> NotJson {
    NotJson::Syntax(e.to_string())
}

fn value(jiter: &mut Jiter<'_>, peek: Peek, depth_left: usize) -> Result<Json, NotJson> {
    Ok(match peek {
        Peek::Null => {
            jiter.known_null().map_err(syntax)?;
            Json::Null
        }
        Peek::True | Peek::False => Json::Bool(jiter.known_bool(peek).map_err(syntax)?),
        Peek::String => Json::String(jiter.known_str().map_err(syntax)?.to_string()),
        Peek::Array => {
            let inner = nested(depth_left)?;
            let mut items = Vec::new();
            let mut next = jiter.known_array().map_err(syntax)?;
            while let Some(peek) = next {
                items.push(value(jiter, peek, inner)?);
                next = jiter.array_step().map_err(syntax)?;
            }
            Json::Array(items)
        }
        Peek::Object => {
            let inner = nested(depth_left)?;
            let mut members = BTreeMap::new();
            let mut key = jiter.known_object().map_err(syntax)?.map(str::to_string);
            while let Some(k) = key {
                let peek = jiter.peek().map_err(syntax)?;
                members.insert(k, value(jiter, peek, inner)?);
                key = jiter.next_key().map_err(syntax)?.map(str::to_string);
            }
            Json::Object(members)
        }
        // Digits and '-'; jiter refuses NaN and Infinity unless asked to allow them.
        _ => {
            let text = jiter.known_number_bytes(peek).map_err(syntax)?;
            // The bytes of a number jiter accepted are ASCII.
            Json::Number(String::from_utf8_lossy(text).into())
        }
    })
}

fn nested(depth_left: usize) -> Result<usize, NotJson> {
    depth_left.checked_sub(1).ok_or(NotJson::TooDeep(0))
}

/// `value` as compact JSON, cut after `limit` characters (marked with `…`). Stops walking once
/// the limit is passed, so a huge value costs no more than a small one.
pub(super) fn render(value: &Json, limit: usize) -> String {
    let mut out = String::new();
    write(&mut out, value, limit);
    shorten(&out, limit)
}

/// `text` cut after `limit` characters, marked with `…` when cut.
pub(super) fn shorten(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Stops once `out` holds more than `limit` characters' worth of bytes (4 each), so that text
/// it did not finish is always long enough for [`shorten`] to cut and mark.
pub(super) fn write(out: &mut String, value: &Json, limit: usize) {
    if full(out, limit) {
        return;
    }
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(text) => out.push_str(text),
        Json::String(s) => quote(out, s),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item, limit);
                if full(out, limit) {
                    return;
                }
            }
            out.push(']');
        }
        Json::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quote(out, key);
                out.push(':');
                write(out, item, limit);
                if full(out, limit) {
                    return;
                }
            }
            out.push('}');
        }
    }
}

/// Past any text of `limit` characters: a character is at most 4 bytes.
pub(super) fn full(out: &str, limit: usize) -> bool {
    out.len() > limit.saturating_mul(4)
}

/// A JSON string literal. Written by hand because the only escapes JSON needs are five lines,
/// and serde_json's writer wants an `io::Write` and returns errors that cannot happen here.
pub(super) fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_text_and_strings_are_unescaped() {
        let v = parse(
            br#" {"a": [1e2, 100.0, -0], "b": "\u0041\n\ud83d\ude00"} "#,
            128,
        );
        let Ok(Json::Object(m)) = v else {
            panic!("{v:?}")
        };
        let n = |t: &str| Json::Number(t.into());
        assert_eq!(m["a"], Json::Array(vec![n("1e2"), n("100.0"), n("-0")]));
        assert_eq!(m["b"], Json::String("A\n😀".to_string()));
    }

    #[test]
    fn what_serde_json_refuses_is_not_json_here_either() {
        let bad: &[&[u8]] = &[
            b"",
            b"01",
            b"1.",
            b".5",
            b"+1",
            b"NaN",
            b"Infinity",
            b"[1,]",
            b"{\"a\":1,}",
            b"{a:1}",
            b"'a'",
            b"[1] [2]",
            b"\"\\ud800\"",
            b"\"\xff\"",
            b"\"a\tb\"",
            b"tru",
        ];
        for text in bad {
            assert!(
                serde_json::from_slice::<serde_json::Value>(text).is_err(),
                "{text:?}"
            );
            assert!(
                parse(text, 128).is_err(),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(deep(128).as_bytes(), 128).is_ok());
        assert_eq!(
            parse(deep(129).as_bytes(), 128),
            Err(NotJson::TooDeep(128)),
            "one level past the bound"
        );
        assert!(
            parse(deep(100_000).as_bytes(), 128).is_err(),
            "no stack overflow"
        );
    }

    #[test]
    fn rendering_is_compact_escaped_and_bounded() {
        let v = parse(br#"{"b": [1, "x\"y"], "a": null}"#, 128).unwrap();
        assert_eq!(render(&v, 200), r#"{"a":null,"b":[1,"x\"y"]}"#);
        let long = Json::Array((0..10_000).map(|_| Json::Bool(true)).collect());
        let shown = render(&long, 200);
        assert_eq!(shown.chars().count(), 201);
        assert!(shown.ends_with('…'));
        let wide = Json::Array((0..100).map(|_| Json::String("€".repeat(5))).collect());
        let shown = render(&wide, 200);
        assert_eq!(shown.chars().count(), 201, "cut by characters, not bytes");
        assert!(shown.ends_with('…'));
    }
}
