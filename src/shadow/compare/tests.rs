//! CONTRACT section 8, rule by rule (status, headers, bodies and bounds here; JSON values in
//! `json_tests.rs`): each test names the rule it pins.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::decode::tests::encode;
use super::headers::NEVER_COMPARED;
use super::*;

pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.append(name, HeaderValue::from_str(value).unwrap());
    }
    map
}

pub(super) const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

pub(super) fn rules(ignore: &[&str], unordered: &[&str], tolerance: &[(&str, f64)]) -> Rules {
    let parse = |p: &str| Pattern::parse(p).unwrap();
    Rules {
        ignore: ignore.iter().map(|p| parse(p)).collect(),
        unordered: unordered.iter().map(|p| parse(p)).collect(),
        tolerance: tolerance.iter().map(|(p, d)| (parse(p), *d)).collect(),
        ..Rules::default()
    }
}

pub(super) fn answers(
    a: (u16, &HeaderMap, &[u8]),
    b: (u16, &HeaderMap, &[u8]),
    rules: &Rules,
) -> Comparison {
    let answer = |(status, headers, body)| Answer {
        status,
        headers,
        body,
    };
    compare(&answer(a), &answer(b), rules)
}

/// Where two JSON bodies differ under `rules`, as reported.
pub(super) fn json_diff(a: &str, b: &str, rules: &Rules) -> Vec<String> {
    let h = headers(JSON);
    let c = answers((200, &h, a.as_bytes()), (200, &h, b.as_bytes()), rules);
    at(&c)
}

pub(super) fn at(c: &Comparison) -> Vec<String> {
    c.differences.iter().map(|d| d.at.to_string()).collect()
}

pub(super) fn none() -> Rules {
    Rules::default()
}

#[test]
fn equal_answers_match() {
    let h = headers(&[("content-type", "text/plain"), ("x-a", "1")]);
    let c = answers((200, &h, b"hi"), (200, &h, b"hi"), &none());
    assert!(c.is_match(), "{c:?}");
}

#[test]
fn status_must_be_equal() {
    let h = HeaderMap::new();
    let c = answers((200, &h, b""), (201, &h, b""), &none());
    assert_eq!(at(&c), ["status"]);
    assert_eq!(c.differences[0].primary.as_deref(), Some("200"));
    assert_eq!(c.differences[0].shadow.as_deref(), Some("201"));
}

#[test]
fn headers_compare_by_name_in_any_case_with_repeated_values_in_order() {
    let a = headers(&[
        ("X-Thing", "1"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
    ]);
    let same = headers(&[
        ("x-thing", "1"),
        ("Set-Cookie", "a=1"),
        ("SET-COOKIE", "b=2"),
    ]);
    assert!(answers((200, &a, b""), (200, &same, b""), &none()).is_match());

    let swapped = headers(&[
        ("x-thing", "1"),
        ("set-cookie", "b=2"),
        ("set-cookie", "a=1"),
    ]);
    let c = answers((200, &a, b""), (200, &swapped, b""), &none());
    assert_eq!(at(&c), ["header:set-cookie"]);
    assert_eq!(c.differences[0].primary.as_deref(), Some("a=1, b=2"));
}

#[test]
fn a_header_on_one_side_only_is_a_difference() {
    let a = headers(&[("x-a", "1")]);
    let b = headers(&[("x-b", "2")]);
    let c = answers((200, &a, b""), (200, &b, b""), &none());
    assert_eq!(at(&c), ["header:x-a", "header:x-b"]);
    assert_eq!(c.differences[0].shadow, None);
    assert_eq!(c.differences[1].primary, None);
}

#[test]
fn hop_by_hop_and_transfer_headers_never_count() {
    for name in NEVER_COMPARED {
        let a = headers(&[(name, "one")]);
        let c = answers((200, &a, b""), (200, &HeaderMap::new(), b""), &none());
        // content-encoding "one" is an unknown coding, but an empty body has nothing to decode.
        assert!(c.is_match(), "{name}: {c:?}");
    }
    let a = headers(&[("connection", "close, X-Hop"), ("x-hop", "1")]);
    let b = headers(&[("x-hop", "2")]);
    assert!(
        answers((200, &a, b""), (200, &b, b""), &none()).is_match(),
        "a header that Connection lists is hop-by-hop"
    );
}

#[test]
fn ignore_headers_are_not_compared() {
    let a = headers(&[("x-request-time", "12ms"), ("etag", "1")]);
    let b = headers(&[("x-request-time", "40ms"), ("etag", "2")]);
    let r = Rules {
        ignore_headers: vec![HeaderName::from_static("x-request-time")],
        ..none()
    };
    assert_eq!(
        at(&answers((200, &a, b""), (200, &b, b""), &r)),
        ["header:etag"]
    );
}

#[test]
fn bodies_compare_after_their_content_encoding_is_removed() {
    let text = br#"{"id": 7, "name": "seven"}"#;
    let plain = headers(JSON);
    for coding in ["gzip", "deflate", "br", "gzip, br"] {
        let h = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", coding),
        ]);
        let mut body = text.to_vec();
        for c in coding.split(", ") {
            body = encode(c, &body);
        }
        let c = answers((200, &plain, text), (200, &h, &body), &none());
        assert!(c.is_match(), "{coding}: {c:?}");
    }
    let identity = headers(&[
        ("content-type", "application/json"),
        ("content-encoding", "identity"),
    ]);
    assert!(answers((200, &plain, text), (200, &identity, text), &none()).is_match());
}

#[test]
fn a_body_that_cannot_be_decoded_differs_unless_both_sent_the_same_bytes() {
    let gz = headers(&[("content-encoding", "gzip")]);
    let good = encode("gzip", b"hello");
    let c = answers((200, &gz, &good), (200, &gz, b"garbage"), &none());
    assert_eq!(at(&c), ["body"]);
    assert_eq!(c.differences[0].kind, Kind::Undecodable);
    assert_eq!(c.differences[0].primary.as_deref(), Some("hello"));
    assert!(c.differences[0]
        .shadow
        .as_deref()
        .unwrap_or("")
        .contains("gzip"));

    assert!(answers((200, &gz, b"garbage"), (200, &gz, b"garbage"), &none()).is_match());
    let head = answers((200, &gz, b""), (200, &HeaderMap::new(), b""), &none());
    assert!(
        head.is_match(),
        "a HEAD answer carries the codings of a body it does not send"
    );
    let zstd = headers(&[("content-encoding", "zstd")]);
    assert!(answers(
        (200, &zstd, b"\x28\xb5"),
        (200, &zstd, b"\x28\xb5"),
        &none()
    )
    .is_match());
    let c = answers(
        (200, &zstd, b"\x28\xb5"),
        (200, &HeaderMap::new(), b"\x28\xb5"),
        &none(),
    );
    assert_eq!(
        c.differences[0].kind,
        Kind::Undecodable,
        "same bytes, other codings"
    );
}

#[test]
fn a_body_decoding_past_the_bound_is_a_difference_not_a_crash() {
    let gz = headers(&[("content-encoding", "gzip")]);
    let bomb = encode("gzip", &vec![b'a'; 4 << 20]);
    let other = encode("gzip", &vec![b'b'; 4 << 20]);
    let mut r = none();
    r.limits.max_decoded = 1 << 20;
    let c = answers((200, &gz, &bomb), (200, &gz, &other), &r);
    assert_eq!(c.differences[0].kind, Kind::Undecodable);
    assert_eq!(
        c.differences[0].primary.as_deref(),
        Some("the body decodes to more than 1048576 bytes")
    );
}

#[test]
fn other_bodies_compare_byte_for_byte() {
    let text = headers(&[("content-type", "text/plain")]);
    let (a, b) = (br#"{"a":1,"b":2}"#, br#"{"b":2,"a":1}"#);
    let c = answers((200, &text, a), (200, &text, b), &none());
    assert_eq!(at(&c), ["body"]);
    assert_eq!(c.differences[0].kind, Kind::Differs);
    assert_eq!(c.differences[0].shadow.as_deref(), Some(r#"{"b":2,"a":1}"#));

    let json = headers(JSON);
    let c = answers((200, &json, a), (200, &text, b), &none());
    assert_eq!(
        at(&c),
        ["header:content-type", "body"],
        "JSON on one side only"
    );
}

#[test]
fn json_content_types_are_recognised_with_parameters_and_suffixes() {
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/problem+json",
        "application/vnd.api+json; ext=x",
    ] {
        assert!(is_json(&headers(&[("content-type", ct)])), "{ct}");
    }
    for ct in [
        "text/plain",
        "application/jsonx",
        "application/json-seq",
        "+json",
        "text/html",
    ] {
        assert!(!is_json(&headers(&[("content-type", ct)])), "{ct}");
    }
    assert!(!is_json(&HeaderMap::new()));
}

#[test]
fn a_body_said_to_be_json_that_is_not_differs_unless_the_bytes_are_equal() {
    let h = headers(JSON);
    let c = answers((200, &h, b"{}"), (200, &h, b"<html>"), &none());
    assert_eq!(at(&c), ["body"]);
    assert_eq!(c.differences[0].kind, Kind::NotJson);
    assert!(
        answers((200, &h, b""), (200, &h, b""), &none()).is_match(),
        "HEAD, 204"
    );
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let c = answers((200, &h, deep.as_bytes()), (200, &h, b"[]"), &none());
    assert_eq!(c.differences[0].kind, Kind::NotJson);
    assert_eq!(
        c.differences[0].primary.as_deref(),
        Some("JSON nested deeper than 128 levels")
    );
}

#[test]
fn differences_past_the_cap_set_more() {
    let a: String = format!(
        "{{{}}}",
        (0..150)
            .map(|i| format!("\"k{i:03}\":1"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let h = headers(JSON);
    let c = answers((500, &h, a.as_bytes()), (200, &h, b"{}"), &none());
    assert_eq!(c.differences.len(), 100);
    assert!(c.more && !c.is_match());
    assert_eq!(at(&c)[..2], ["status", "/k000"]);
}

#[test]
fn examples_are_bounded() {
    let long = format!("[\"{}\"]", "x".repeat(1000));
    let h = headers(JSON);
    let c = answers((200, &h, long.as_bytes()), (200, &h, b"[\"y\"]"), &none());
    let shown = c.differences[0].primary.as_deref().unwrap_or("");
    assert_eq!(shown.chars().count(), EXAMPLE_CHARS + 1);
    assert!(shown.ends_with('…'));
}

#[test]
fn rules_come_from_the_compiled_route_table() {
    let toml = r#"
[proxy]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"
default = "legacy"
[upstreams.legacy]
url = "http://127.0.0.1:8001"
[upstreams.v2]
url = "http://127.0.0.1:8002"
[[routes]]
name = "r"
path = "/r"
upstream = "legacy"
  [routes.shadow]
  upstream = "v2"
  ignore_headers = ["X-Trace"]
  ignore = ["/meta~1at", "/items/*/id"]
  unordered = ["/tags"]
  tolerance = { "/total" = 0.5 }
  max_body = "32MiB"
"#;
    let table = crate::config::load_str(toml, "routes.toml").unwrap_or_else(|e| panic!("{e:?}"));
    let spec = table.routes[0].action.shadow.as_ref().unwrap();
    let r = Rules::from_spec(spec).unwrap();
    assert_eq!(r.ignore_headers, [HeaderName::from_static("x-trace")]);
    assert_eq!(r.limits.max_decoded, 32 << 20, "at least max_body");
    let a = r#"{"meta/at":1,"items":[{"id":1}],"tags":[1,2],"total":1}"#;
    let b = r#"{"meta/at":2,"items":[{"id":2}],"tags":[2,1],"total":1.4}"#;
    assert!(json_diff(a, b, &r).is_empty());
}
