use ficus_plugin::config::{Diagnostics, Node, Section};
use ficus_plugin::http::request::Parts;
use ficus_plugin::http::Request;
use ficus_plugin::toml::de::{DeTable, DeValue};
use ficus_plugin::toml::Spanned;

use super::*;

/// Builds the kind from `text`, a section body without `use`.
fn build(text: &str) -> (Option<Arc<dyn Filter>>, Diagnostics) {
    let root = DeTable::parse(text).expect("valid TOML");
    let node: Node<'_> = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut diags = Diagnostics::default();
    let built = Kind.build(Section::new("orders-v2", node), &mut diags);
    (built, diags)
}

fn built(text: &str) -> Arc<dyn Filter> {
    let (filter, diags) = build(text);
    assert!(diags.is_empty(), "{:?}", diags.errors);
    filter.expect("built")
}

fn head(target: &str) -> Parts {
    Request::get(target)
        .header("host", "shop.example")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

/// The head `filter` sends to `upstream` for a request to `target`.
fn sent(filter: &Arc<dyn Filter>, target: &str, upstream: &str) -> Parts {
    let mut req = head(target);
    let attempt = Attempt {
        upstream,
        host: "orders.internal",
        fallback: false,
    };
    filter
        .on_upstream_request(&mut req, &attempt, &mut FilterCtx::default())
        .expect("rewritten");
    req
}

#[test]
fn the_path_is_rewritten_for_the_listed_upstreams_with_its_query_kept() {
    let filter = built(
        r#"upstreams = ["orders"]
strip_prefix = "/api"
regex = "^/orders/(?<id>[0-9]+)$"
replacement = "/o/${id}"
add_prefix = "/v2"
host = "upstream""#,
    );
    assert_eq!(filter.hooks(), Hooks::UPSTREAM_REQUEST);
    let req = sent(&filter, "/api/orders/7?expand=items&x=%20", "orders");
    assert_eq!(req.uri, "/v2/o/7?expand=items&x=%20");
    assert_eq!(req.headers["host"], "orders.internal");

    let legacy = sent(&filter, "/api/orders/7?expand=items", "legacy");
    assert_eq!(
        legacy.uri, "/api/orders/7?expand=items",
        "not listed: as sent"
    );
    assert_eq!(legacy.headers["host"], "shop.example");
}

#[test]
fn parameters_do_not_steer_the_rules_and_a_rewritten_path_goes_without_them() {
    let filter = built(
        "strip_prefix = \"/api\"\nregex = \"^/ro/([0-9]+)$\"\nreplacement = \"/o/$1\"\nadd_prefix = \"/v2\"",
    );
    assert_eq!(sent(&filter, "/api;x/ro/7?q=1", "any").uri, "/v2/o/7?q=1");
    assert_eq!(sent(&filter, "/api/ro/7;", "any").uri, "/v2/o/7");
    // A path the rules leave alone keeps its parameters.
    let only_strip = built("strip_prefix = \"/api\"");
    assert_eq!(
        sent(&only_strip, "/other;jsessionid=1/x", "any").uri,
        "/other;jsessionid=1/x"
    );
}

#[test]
fn a_path_outside_the_rules_is_only_prefixed() {
    let filter = built("strip_prefix = \"/api\"\nadd_prefix = \"/v2\"");
    assert_eq!(sent(&filter, "/apix/1", "any").uri, "/v2/apix/1");
    assert_eq!(sent(&filter, "/api", "any").uri, "/v2/");
}

#[test]
fn a_fixed_host_is_set_and_the_path_left_alone() {
    let filter = built("host = \"orders.internal:8080\"");
    let req = sent(&filter, "/a?b", "orders");
    assert_eq!(req.uri, "/a?b");
    assert_eq!(req.headers["host"], "orders.internal:8080");
}

#[test]
fn a_rewrite_that_cannot_be_sent_fails_the_attempt() {
    let attempt = Attempt {
        upstream: "orders",
        host: "h",
        fallback: false,
    };
    // Config time cannot see that $1 lacks the leading slash, nor that a regex makes up a dot
    // segment (normalised paths hold none): the attempt fails instead.
    for (text, target) in [
        ("regex = \"^/x/(.*)$\"\nreplacement = \"$1\"", "/x/y"),
        ("regex = \"^/d/(.*)$\"\nreplacement = \"/$1/..\"", "/d/a"),
    ] {
        let filter = built(text);
        let mut req = head(target);
        let e = filter
            .on_upstream_request(&mut req, &attempt, &mut FilterCtx::default())
            .expect_err("not sendable");
        assert!(e.0.contains("orders-v2"), "{e}");
        assert_eq!(req.uri, target, "the head is left as it was");
    }
}

#[test]
fn explain_says_what_the_upstream_would_get() {
    let filter = built("upstreams = [\"orders\"]\nstrip_prefix = \"/api\"\nhost = \"upstream\"");
    assert_eq!(
        filter.explain(&head("/api/orders/7")).as_deref(),
        Some("for orders: path /api/orders/7 -> /orders/7; Host: the upstream's host")
    );
}

#[test]
fn problems_are_reported_at_their_value() {
    let text = r#"upstreams = ["orders", "orders"]
strip_prefix = "api"
add_prefix = "/v2/"
regex = "^/old/(.*)$"
replacement = "/new/$2"
host = "user@h"
add_prefx = "/x""#;
    let (filter, diags) = build(text);
    assert!(filter.is_none());
    let at = |needle: &str| text.rfind(needle).unwrap();
    let starts: Vec<usize> = diags.errors.iter().map(|e| e.span.start).collect();
    for needle in [
        "\"orders\"]",
        "\"api\"",
        "\"/v2/\"",
        "\"/new/$2\"",
        "\"user@h\"",
        "add_prefx =",
    ] {
        assert!(starts.contains(&at(needle)), "{needle}: {:?}", diags.errors);
    }
    let unknown = diags
        .errors
        .iter()
        .find(|e| e.message.contains("add_prefx"))
        .unwrap();
    assert_eq!(
        unknown.hint.as_deref(),
        Some("did you mean \"add_prefix\"?")
    );
}

#[test]
fn a_bad_or_huge_regex_is_reported_at_the_regex() {
    for regex in ["^/v[", "\\\\w{100}\\\\w{100}\\\\w{100}"] {
        let text = format!("regex = \"{regex}\"\nreplacement = \"/x\"");
        let (filter, diags) = build(&text);
        assert!(filter.is_none());
        assert_eq!(diags.errors.len(), 1, "{:?}", diags.errors);
        assert_eq!(diags.errors[0].span.start, text.find('"').unwrap());
    }
    let (_, diags) = build("regex = \"\\\\w{100}\\\\w{100}\\\\w{100}\"\nreplacement = \"/x\"");
    assert!(
        diags.errors[0].message.contains("1024 KiB"),
        "{:?}",
        diags.errors
    );
}

#[test]
fn a_regex_without_a_replacement_and_an_empty_section_are_refused() {
    let (filter, diags) = build("regex = \"^/a\"");
    assert!(filter.is_none());
    assert!(diags.errors[0].message.contains("needs a replacement"));
    let (filter, diags) = build("upstreams = [\"orders\"]");
    assert!(filter.is_none());
    assert!(diags.errors[0].message.contains("rewrites nothing"));
    let (filter, diags) = build("upstreams = []\nhost = \"upstream\"");
    assert!(filter.is_none());
    assert!(diags.errors[0].message.contains("no upstream"));
}
