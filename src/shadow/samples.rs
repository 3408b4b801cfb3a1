//! A mismatch as `GET /api/shadow/samples` shows it: the request, both answers and the diff, with
//! credentials redacted before anything is stored. Bodies are kept as received (within the
//! route's `max_body`): as text when they are UTF-8, else in base64.

use base64::Engine;
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE};
use http::HeaderMap;
use serde_json::{json, Map, Value};

use super::compare::{Comparison, Kind};

/// What replaces a redacted header's value.
pub const REDACTED: &str = "[redacted]";

/// The request of a sample.
pub struct SampledRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// One answer of a sample.
pub struct SampledAnswer<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// One mismatched request, as far as a sample shows it.
pub struct Mismatch<'a> {
    pub route: &'a str,
    pub request_id: &'a str,
    pub at: std::time::SystemTime,
    pub request: SampledRequest<'a>,
    pub primary: SampledAnswer<'a>,
    pub shadow: SampledAnswer<'a>,
    pub comparison: &'a Comparison,
}

/// The sample's JSON document; `is_noise` tells learned noise (by generalised path).
pub fn sample(m: &Mismatch<'_>, is_noise: impl Fn(&str) -> bool) -> Value {
    let Mismatch {
        route,
        request_id,
        at,
        request,
        primary,
        shadow,
        comparison,
    } = m;
    let at = *at;
    let differences: Vec<Value> = comparison
        .differences
        .iter()
        .map(|d| {
            json!({
                "path": d.at.to_string(),
                "kind": kind(d.kind),
                "primary": d.primary,
                "shadow": d.shadow,
                // Learned noise: shown, but not why the request is a mismatch.
                "noise": is_noise(&d.at.generalised()),
            })
        })
        .collect();
    json!({
        "route": route,
        "request_id": request_id,
        "at": humantime::format_rfc3339_millis(at).to_string(),
        "request": {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": headers(request.headers),
            "body": body(request.body),
        },
        "primary": answer(primary),
        "shadow": answer(shadow),
        "differences": differences,
        "more_differences": comparison.more,
    })
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::Differs => "differs",
        Kind::Multiset => "multiset",
        Kind::NotJson => "not_json",
        Kind::Undecodable => "undecodable",
    }
}

fn answer(a: &SampledAnswer<'_>) -> Value {
    json!({
        "status": a.status,
        "headers": headers(a.headers),
        "body": body(a.body),
    })
}

/// Names to their values in order; credentials redacted.
fn headers(map: &HeaderMap) -> Value {
    let mut out = Map::new();
    for (name, value) in map {
        let secret = [&AUTHORIZATION, &PROXY_AUTHORIZATION, &COOKIE, &SET_COOKIE].contains(&name);
        let shown = if secret {
            REDACTED.to_string()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        if let Value::Array(values) = out
            .entry(name.as_str())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            values.push(Value::String(shown));
        }
    }
    Value::Object(out)
}

/// `{"text": ...}` for a UTF-8 body, `{"base64": ...}` otherwise; `null` when empty.
fn body(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => json!({ "text": text }),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shadow::compare::{compare, Answer, Rules};

    #[test]
    fn credentials_are_redacted_and_bodies_kept_as_text_or_base64() {
        let mut req_headers = HeaderMap::new();
        req_headers.insert("authorization", "Bearer secret".parse().unwrap());
        req_headers.insert("cookie", "session=abc".parse().unwrap());
        req_headers.insert("proxy-authorization", "Basic eA==".parse().unwrap());
        req_headers.insert("x-user", "42".parse().unwrap());
        let mut set_cookie = HeaderMap::new();
        set_cookie.append("set-cookie", "a=1".parse().unwrap());
        set_cookie.append("set-cookie", "b=2".parse().unwrap());
        set_cookie.insert("content-type", "application/json".parse().unwrap());
        let p = Answer {
            status: 200,
            headers: &set_cookie,
            body: br#"{"a":1}"#,
        };
        let s = Answer {
            status: 200,
            headers: &set_cookie,
            body: br#"{"a":2}"#,
        };
        let comparison = compare(&p, &s, &Rules::default());
        let doc = sample(
            &Mismatch {
                route: "items",
                request_id: "req-1",
                at: std::time::UNIX_EPOCH,
                request: SampledRequest {
                    method: "POST",
                    path: "/items",
                    query: Some("x=1"),
                    headers: &req_headers,
                    body: &[0xff, 0x00],
                },
                primary: SampledAnswer {
                    status: 200,
                    headers: &set_cookie,
                    body: p.body,
                },
                shadow: SampledAnswer {
                    status: 200,
                    headers: &set_cookie,
                    body: s.body,
                },
                comparison: &comparison,
            },
            |path| path == "/b",
        );
        let text = doc.to_string();
        for secret in ["secret", "session=abc", "eA==", "a=1", "b=2"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(doc["request"]["headers"]["x-user"], json!(["42"]));
        assert_eq!(
            doc["primary"]["headers"]["set-cookie"],
            json!([REDACTED, REDACTED])
        );
        assert_eq!(doc["request"]["body"], json!({"base64": "/wA="}));
        assert_eq!(doc["shadow"]["body"], json!({"text": "{\"a\":2}"}));
        assert_eq!(doc["differences"][0]["path"], "/a");
        assert_eq!(doc["differences"][0]["noise"], false);
        assert_eq!(doc["at"], "1970-01-01T00:00:00.000Z");
    }
}
