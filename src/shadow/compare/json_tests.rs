//! CONTRACT section 8, JSON bodies: compared as values (order, whitespace, escapes and number
//! spelling do not matter; types, null versus missing, exact numbers and array order do), and the
//! route's `ignore`, `unordered` and `tolerance` rules.

use http::HeaderName;

use super::tests::{answers, at, headers, json_diff, none, rules, JSON};
use super::*;

#[test]
fn json_ignores_key_order_whitespace_escapes_and_number_spelling() {
    let a = r#"{"a": 100, "b": "A/é", "c": [1.5, {"x": null, "y": true}]}"#;
    let b = "{\n  \"c\" : [ 15e-1 , {\"y\":true,\"x\":null} ],\n  \"b\":\"\\u0041\\/\\u00e9\",\"a\":1e2\n}";
    assert_eq!(json_diff(a, b, &none()), Vec::<String>::new());
    assert_eq!(json_diff("100", "100.0", &none()), Vec::<String>::new());
}

#[test]
fn json_types_matter() {
    let values = ["1", "\"1\"", "true", "null", "[1]", "{\"1\":1}"];
    for a in values {
        for b in values {
            let expected: &[&str] = if a == b { &[] } else { &["/v"] };
            let d = json_diff(
                &format!("{{\"v\":{a}}}"),
                &format!("{{\"v\":{b}}}"),
                &none(),
            );
            assert_eq!(d, expected, "{a} against {b}");
        }
    }
}

#[test]
fn null_differs_from_a_missing_key() {
    let c = {
        let h = headers(JSON);
        answers((200, &h, br#"{"a":null}"#), (200, &h, b"{}"), &none())
    };
    assert_eq!(at(&c), ["/a"]);
    assert_eq!(c.differences[0].primary.as_deref(), Some("null"));
    assert_eq!(c.differences[0].shadow, None);
}

#[test]
fn numbers_are_compared_exactly() {
    let big = json_diff(
        "[12345678901234567890123]",
        "[12345678901234567890124]",
        &none(),
    );
    assert_eq!(big, ["/0"], "equal as f64, not as numbers");
    assert_eq!(json_diff("[0.30000000000000004]", "[0.3]", &none()), ["/0"]);
    assert!(json_diff("[1e400, -0, 0.10]", "[10e399, 0, 1e-1]", &none()).is_empty());
}

#[test]
fn arrays_are_ordered_unless_listed_as_unordered() {
    assert_eq!(json_diff("[1,2]", "[2,1]", &none()), ["/0", "/1"]);
    assert_eq!(json_diff("[1,2]", "[1,2,3]", &none()), ["/2"]);
    assert!(json_diff("[1,2]", "[2,1]", &rules(&[], &[""], &[])).is_empty());
}

#[test]
fn ignored_paths_are_skipped_present_or_not() {
    let r = rules(
        &["/created_at", "/items/*/id", "/*/etag", "/a~1b"],
        &[],
        &[],
    );
    let a = r#"{"created_at": 1, "items": [{"id": 1, "n": 1}], "x": {"etag": "a"}, "a/b": 1}"#;
    let b = r#"{"items": [{"id": 2, "n": 1}], "x": {"etag": "b"}, "a/b": 2}"#;
    assert!(json_diff(a, b, &r).is_empty(), "{:?}", json_diff(a, b, &r));
    let b = r#"{"items": [{"n": 2}], "x": {}, "a/b": 2, "created_at": "now"}"#;
    assert_eq!(json_diff(a, b, &r), ["/items/0/n"]);
    assert!(
        json_diff("[1]", "{}", &rules(&[""], &[], &[])).is_empty(),
        "the whole document"
    );
}

#[test]
fn unordered_arrays_are_multisets_reported_at_the_array() {
    let r = rules(&[], &["/tags"], &[]);
    assert!(json_diff(r#"{"tags":["a","b","b"]}"#, r#"{"tags":["b","a","b"]}"#, &r).is_empty());
    let h = headers(JSON);
    let (a, b) = (br#"{"tags":["a","b","b"]}"#, br#"{"tags":["a","a","b"]}"#);
    let c = answers((200, &h, a), (200, &h, b), &r);
    assert_eq!(at(&c), ["/tags"], "element counts matter");
    let d = &c.differences[0];
    assert_eq!(d.kind, Kind::Multiset);
    assert_eq!(
        (d.primary.as_deref(), d.shadow.as_deref()),
        (Some(r#"["b"]"#), Some(r#"["a"]"#))
    );
}

#[test]
fn elements_of_unordered_arrays_are_compared_under_the_same_rules() {
    let r = rules(
        &["/items/*/id"],
        &["/items", "/items/*/tags"],
        &[("/items/*/price", 0.01)],
    );
    let a = r#"{"items":[{"id":1,"price":1.00,"tags":[1,2]},{"id":2,"price":5,"tags":[]}]}"#;
    let b = r#"{"items":[{"id":9,"price":5.001,"tags":[]},{"price":0.999,"tags":[2,1]}]}"#;
    assert!(json_diff(a, b, &r).is_empty(), "{:?}", json_diff(a, b, &r));
    let b = r#"{"items":[{"id":9,"price":5.1,"tags":[]},{"price":0.999,"tags":[2,1]}]}"#;
    assert_eq!(json_diff(a, b, &r), ["/items"]);
    let r = rules(&[], &["", "/*", "/*/*"], &[]);
    assert!(
        json_diff("[[1,[2,3]],[4]]", "[[4],[[3,2],1]]", &r).is_empty(),
        "nested"
    );
    assert_eq!(
        json_diff("[[1,[2,3]],[4]]", "[[4],[[3,2],2]]", &r),
        ["body"]
    );
}

#[test]
fn tolerance_makes_numbers_equal_within_an_absolute_difference() {
    let r = rules(&[], &[], &[("/total", 0.01)]);
    assert!(json_diff(r#"{"total":10.00}"#, r#"{"total":10.009}"#, &r).is_empty());
    assert_eq!(
        json_diff(r#"{"total":10.00}"#, r#"{"total":10.02}"#, &r),
        ["/total"]
    );
    assert_eq!(
        json_diff(r#"{"total":10}"#, r#"{"total":"10"}"#, &r),
        ["/total"]
    );
    assert_eq!(
        json_diff(r#"{"other":1}"#, r#"{"other":1.001}"#, &r),
        ["/other"]
    );
}

#[test]
fn differences_are_named_by_json_pointer_and_generalised_per_route() {
    let h = headers(JSON);
    let (a, b) = (
        br#"{"items":[0,0,0,{"price":1}],"a/b~":1}"#,
        br#"{"items":[0,0,0,{"price":2}],"a/b~":2}"#,
    );
    let c = answers((200, &h, a), (200, &h, b), &none());
    let names: Vec<_> = c
        .differences
        .iter()
        .map(|d| (d.at.to_string(), d.at.generalised()))
        .collect();
    let expect = [("/a~1b~0", "/a~1b~0"), ("/items/3/price", "/items/*/price")];
    assert_eq!(names, expect.map(|(x, y)| (x.to_string(), y.to_string())));
    assert_eq!(Location::Status.generalised(), "status");
    assert_eq!(
        Location::Header(HeaderName::from_static("etag")).generalised(),
        "header:etag"
    );
}

#[test]
fn a_difference_at_the_root_of_the_document_is_the_body() {
    assert_eq!(json_diff("[]", "{}", &none()), ["body"]);
    assert_eq!(json_diff("1", "2", &none()), ["body"]);
}

#[test]
fn patterns_are_json_pointers() {
    assert!(Pattern::parse("").is_ok());
    assert!(Pattern::parse("/a~0~1b/*/0").is_ok());
    assert_eq!(
        Pattern::parse("a"),
        Err(PatternError::NoLeadingSlash("a".into()))
    );
    assert_eq!(
        Pattern::parse("/a~2"),
        Err(PatternError::BadEscape("/a~2".into()))
    );
    // "/items/01" names a key, never index 1.
    let r = rules(&["/items/01"], &[], &[]);
    assert_eq!(
        json_diff("{\"items\":[0,1]}", "{\"items\":[0,2]}", &r),
        ["/items/1"]
    );
}
