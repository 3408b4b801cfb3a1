use ficus_plugin::config::{Diagnostics, Node, Section};
use ficus_plugin::toml::de::{DeTable, DeValue};
use ficus_plugin::toml::Spanned;

use super::*;

/// Builds the kind from `text`, a section body without `use`.
fn build(text: &str) -> (Option<Arc<dyn Filter>>, Diagnostics) {
    let root = DeTable::parse(text).expect("valid TOML");
    let node: Node<'_> = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut diags = Diagnostics::default();
    let built = Kind.build(Section::new("gone", node), &mut diags);
    (built, diags)
}

#[test]
fn answers_every_request_with_its_status_headers_and_body() {
    let (filter, diags) = build(
        "status = 410\nbody = \"retired\\n\"\nheaders = { \"cache-control\" = \"no-store\" }",
    );
    assert!(diags.is_empty(), "{:?}", diags.errors);
    let filter = filter.expect("built");
    let mut req = ficus_plugin::http::Request::get("/old")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let Flow::Respond(r) = filter.on_request(&mut req, &mut FilterCtx::default()) else {
        panic!("respond answers");
    };
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.body, "retired\n");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(filter.name(), "gone");
}

#[test]
fn problems_are_reported_at_their_value() {
    let text = "status = 99\nheaders = { \"bad name\" = \"x\" }\nstatsu = 1";
    let (filter, diags) = build(text);
    assert!(filter.is_none());
    let at = |needle: &str| text.find(needle).unwrap();
    let starts: Vec<usize> = diags.errors.iter().map(|e| e.span.start).collect();
    assert!(starts.contains(&at("99")), "{:?}", diags.errors);
    assert!(starts.contains(&at("\"bad name\"")), "{:?}", diags.errors);
    let unknown = diags
        .errors
        .iter()
        .find(|e| e.message.contains("statsu"))
        .unwrap();
    assert_eq!(unknown.hint.as_deref(), Some("did you mean \"status\"?"));
}

#[test]
fn a_missing_status_is_reported_at_the_section() {
    let (filter, diags) = build("body = \"x\"");
    assert!(filter.is_none());
    assert!(diags.errors[0].message.contains("no `status`"));
}

#[test]
fn headers_ficus_manages_are_refused() {
    let text = "status = 410\nheaders = { \"Transfer-Encoding\" = \"chunked\", \"x-ficus-shadow\" = \"1\", \"x-ok\" = \"1\" }";
    let (filter, diags) = build(text);
    assert!(filter.is_none());
    let starts: Vec<usize> = diags.errors.iter().map(|e| e.span.start).collect();
    let at = |needle: &str| text.find(needle).unwrap();
    assert_eq!(
        starts,
        [at("\"Transfer-Encoding\""), at("\"x-ficus-shadow\"")],
        "{:?}",
        diags.errors
    );
    assert!(diags.errors[0]
        .message
        .contains("\"transfer-encoding\" is a header ficus manages"));
}

#[test]
fn a_status_that_has_no_body_is_refused_with_one() {
    for status in [204, 304] {
        let (filter, diags) = build(&format!("status = {status}\nbody = \"x\""));
        assert!(filter.is_none());
        assert!(
            diags.errors[0]
                .message
                .contains(&format!("a {status} answer has no body")),
            "{:?}",
            diags.errors
        );
    }
    let (filter, diags) = build("status = 204");
    assert!(filter.is_some() && diags.is_empty());
}
