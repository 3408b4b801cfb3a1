use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::CONTENT_ENCODING;
use http::HeaderMap;
use serde_json::{json, Value};

use super::*;

/// 2021-02-25T15:02:10.123456Z
fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(1_614_265_330_123_456)
}

fn spec(key: Option<&str>) -> EventSpec {
    EventSpec {
        event_type: "order.created".into(),
        route: "orders".into(),
        key: key.map(|k| KeySpec::parse(k).unwrap()),
        max_decoded: 1 << 20,
    }
}

fn encoded(coding: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_ENCODING, coding.parse().unwrap());
    h
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
    }
    out
}

/// The event for a request and a response, each given as (headers, body).
fn event(
    spec: &EventSpec,
    query: Option<&str>,
    request: (&HeaderMap, Option<&[u8]>),
    response: (&HeaderMap, Option<&[u8]>),
) -> Event {
    Event::new(
        spec,
        at(),
        &CapturedRequest {
            method: "POST",
            path: "/orders",
            query,
            headers: request.0,
            body: request.1,
        },
        &CapturedResponse {
            status: 201,
            headers: response.0,
            body: response.1,
        },
    )
}

fn parsed(event: &Event) -> Value {
    serde_json::from_str(&event.payload)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", event.payload))
}

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    keys
}

#[test]
fn the_payload_has_exactly_the_contracts_fields_in_order() {
    let plain = HeaderMap::new();
    let e = event(
        &spec(None),
        None,
        (&plain, Some(br#"{"sku": "a1"}"#)),
        (&plain, Some(br#"{"id": 7}"#)),
    );
    assert_eq!(
        e.payload,
        concat!(
            r#"{"type":"order.created","timestamp":"2021-02-25T15:02:10.123456Z","#,
            r#""data":{"route":"orders","#,
            r#""request":{"method":"POST","path":"/orders","query":null,"body":{"sku":"a1"}},"#,
            r#""response":{"status":201,"body":{"id":7}}}}"#
        )
    );
    let v = parsed(&e);
    assert_eq!(keys(&v), ["data", "timestamp", "type"]);
    assert_eq!(keys(&v["data"]), ["request", "response", "route"]);
    assert_eq!(
        keys(&v["data"]["request"]),
        ["body", "method", "path", "query"]
    );
    assert_eq!(keys(&v["data"]["response"]), ["body", "status"]);
    assert!(!e.truncated);
    assert_eq!(e.key, None, "no key configured");
}

#[test]
fn json_bodies_keep_their_tokens_and_lose_only_whitespace() {
    let plain = HeaderMap::new();
    let body = b"{ \"z\" : 123456789012345678901234567890,\n \"a\" : [1.10, 1e2],\n \"s\": \"x \\\" y  \\\\\" }\n";
    let e = event(
        &spec(None),
        None,
        (&plain, Some(body)),
        (&plain, Some(b"[]")),
    );
    assert!(
        e.payload.contains(
            r#""body":{"z":123456789012345678901234567890,"a":[1.10,1e2],"s":"x \" y  \\"}}"#
        ),
        "{}",
        e.payload
    );
    assert_eq!(parsed(&e)["data"]["response"]["body"], json!([]));
}

#[test]
fn bodies_that_are_not_json_are_strings_and_empty_ones_null() {
    let plain = HeaderMap::new();
    let e = event(
        &spec(None),
        None,
        (&plain, Some(b"a=1&b=\"two\"\n")),
        (&plain, Some(b"")),
    );
    let v = parsed(&e);
    assert_eq!(v["data"]["request"]["body"], json!("a=1&b=\"two\"\n"));
    assert_eq!(v["data"]["response"]["body"], Value::Null);
    assert_eq!(
        v["data"].get("truncated"),
        None,
        "an empty body is not a cut one"
    );
    // What serde_json refuses is text, even when it looks like JSON.
    let e = event(
        &spec(None),
        None,
        (&plain, Some(br#"{"a": 1,}"#)),
        (&plain, Some(br#"{"s": "\ud800"}"#)),
    );
    let v = parsed(&e);
    assert_eq!(v["data"]["request"]["body"], json!(r#"{"a": 1,}"#));
    assert_eq!(v["data"]["response"]["body"], json!(r#"{"s": "\ud800"}"#));
}

#[test]
fn encoded_bodies_are_decoded_before_they_are_read() {
    let doc = br#"{"id": "ord_1", "items": [1, 2]}"#;
    let (gz, br) = (gzip(doc), brotli(doc));
    let e = event(
        &spec(Some("/id")),
        None,
        (&encoded("gzip"), Some(&gz)),
        (&encoded("br"), Some(&br)),
    );
    let v = parsed(&e);
    let want = json!({"id": "ord_1", "items": [1, 2]});
    assert_eq!(v["data"]["request"]["body"], want);
    assert_eq!(v["data"]["response"]["body"], want);
    assert_eq!(e.key.as_deref(), Some("ord_1"));
}

#[test]
fn a_body_past_max_body_or_max_decoded_is_null_and_marks_the_event_truncated() {
    let plain = HeaderMap::new();
    let e = event(&spec(None), None, (&plain, None), (&plain, Some(b"{}")));
    let v = parsed(&e);
    assert!(e.truncated);
    assert_eq!(v["data"]["truncated"], json!(true));
    assert_eq!(v["data"]["request"]["body"], Value::Null);
    assert_eq!(v["data"]["response"]["body"], json!({}));

    // Small on the wire, past the bound once decoded.
    let bomb = gzip(&[b' '; 4096]);
    let small = EventSpec {
        max_decoded: 1024,
        ..spec(None)
    };
    let e = event(
        &small,
        None,
        (&plain, Some(b"")),
        (&encoded("gzip"), Some(&bomb)),
    );
    let v = parsed(&e);
    assert!(e.truncated);
    assert_eq!(v["data"]["response"]["body"], Value::Null);
    assert_eq!(
        keys(&v["data"]),
        ["request", "response", "route", "truncated"]
    );
}

#[test]
fn binary_bodies_are_base64_with_a_marker() {
    let plain = HeaderMap::new();
    let bytes = [0xff, 0x00, 0xfe, b'a'];
    let e = event(
        &spec(None),
        None,
        (&plain, Some(&bytes)),
        (&plain, Some(b"ok")),
    );
    let v = parsed(&e);
    assert_eq!(v["data"]["request"]["body"], json!("/wD+YQ=="));
    assert_eq!(v["data"]["request"]["body_encoding"], json!("base64"));
    assert_eq!(v["data"]["response"]["body"], json!("ok"));
    assert_eq!(v["data"]["response"].get("body_encoding"), None);
}

#[test]
fn a_body_whose_encoding_cannot_be_removed_goes_in_as_received() {
    let e = event(
        &spec(None),
        None,
        (&encoded("zstd"), Some(&[0x28, 0xb5, 0x2f, 0xfd])),
        // Mislabelled: said to be gzip, sent plain.
        (&encoded("gzip"), Some(br#"{"id": 1}"#)),
    );
    let v = parsed(&e);
    assert_eq!(v["data"]["request"]["body"], json!("KLUv/Q=="));
    assert_eq!(v["data"]["request"]["body_encoding"], json!("base64"));
    assert_eq!(v["data"]["response"]["body"], json!({"id": 1}));
    assert!(!e.truncated);
}

#[test]
fn query_is_null_without_a_question_mark_else_raw() {
    let plain = HeaderMap::new();
    let query = |q: Option<&str>| {
        let e = event(&spec(None), q, (&plain, Some(b"")), (&plain, Some(b"")));
        parsed(&e)["data"]["request"]["query"].clone()
    };
    assert_eq!(query(None), Value::Null);
    assert_eq!(query(Some("")), json!(""));
    assert_eq!(query(Some("a=1&b=%20x+y")), json!("a=1&b=%20x+y"));
}

#[test]
fn strings_are_escaped() {
    let plain = HeaderMap::new();
    let spec = EventSpec {
        event_type: "a\"b".into(),
        route: "r\\\n".into(),
        ..spec(None)
    };
    let e = Event::new(
        &spec,
        at(),
        &CapturedRequest {
            method: "PUT",
            path: "/caf\u{e9}/\u{1}",
            query: Some("q=\"x\""),
            headers: &plain,
            body: Some(b""),
        },
        &CapturedResponse {
            status: 200,
            headers: &plain,
            body: Some(b"line\n\ttab \x07"),
        },
    );
    let v = parsed(&e);
    assert_eq!(v["type"], json!("a\"b"));
    assert_eq!(v["data"]["route"], json!("r\\\n"));
    assert_eq!(v["data"]["request"]["path"], json!("/caf\u{e9}/\u{1}"));
    assert_eq!(v["data"]["request"]["query"], json!("q=\"x\""));
    assert_eq!(v["data"]["response"]["body"], json!("line\n\ttab \u{7}"));
}

#[test]
fn keys_come_from_the_response_or_the_request() {
    let plain = HeaderMap::new();
    let request = br#"{"customer": {"id": "c-9"}, "n": null, "flag": true}"#;
    let response = br#"{"id": 42, "tags": {"b": 1, "a": [2]}, "a/b": "slash"}"#;
    let key = |k: &str| {
        event(
            &spec(Some(k)),
            None,
            (&plain, Some(request)),
            (&plain, Some(response)),
        )
        .key
    };
    assert_eq!(key("/id").as_deref(), Some("42"));
    assert_eq!(key("request:/customer/id").as_deref(), Some("c-9"));
    assert_eq!(key("/a~1b").as_deref(), Some("slash"));
    assert_eq!(key("/tags").as_deref(), Some(r#"{"a":[2],"b":1}"#));
    assert_eq!(key("request:/flag").as_deref(), Some("true"));
    assert_eq!(key("/missing"), None);
    assert_eq!(key("request:/id"), None, "the request has no /id");
    assert_eq!(key("request:/n"), None, "null is no key");
}

#[test]
fn a_key_in_a_body_that_is_not_json_or_not_kept_is_missing() {
    let plain = HeaderMap::new();
    let s = spec(Some("/id"));
    assert_eq!(
        event(&s, None, (&plain, Some(b"")), (&plain, Some(b"id=1"))).key,
        None
    );
    assert_eq!(
        event(&s, None, (&plain, Some(b"")), (&plain, None)).key,
        None
    );
}

#[test]
fn key_specs_parse_and_print_as_written() {
    for text in ["/id", "", "request:/customer/id", "request:", "/a~0b/~1"] {
        let k = KeySpec::parse(text).unwrap();
        assert_eq!(k.to_string(), text);
    }
    assert_eq!(
        KeySpec::parse("request:/x").unwrap(),
        KeySpec {
            side: Side::Request,
            pointer: "/x".into()
        }
    );
    for bad in ["id", "request:id", "response:/id", "/a~2", "/a~"] {
        assert!(KeySpec::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn timestamps_outside_humantimes_range_are_held_at_its_ends() {
    assert_eq!(rfc3339(at()), "2021-02-25T15:02:10.123456Z");
    assert_eq!(
        rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
        "1970-01-01T00:00:00.000000Z"
    );
    assert_eq!(
        rfc3339(UNIX_EPOCH + Duration::from_secs(300_000_000_000)),
        "9999-12-31T23:59:59.000000Z"
    );
}
