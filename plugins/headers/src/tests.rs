use ficus_plugin::config::{Diagnostics, Node, Section};
use ficus_plugin::http::{Request, Response as HttpResponse};
use ficus_plugin::toml::de::{DeTable, DeValue};
use ficus_plugin::toml::Spanned;
use ficus_plugin::Claims;

use super::*;

/// Builds the kind from `text`, a section body without `use`.
fn build(text: &str) -> (Option<Arc<dyn Filter>>, Diagnostics) {
    let root = DeTable::parse(text).expect("valid TOML");
    let node: Node<'_> = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut diags = Diagnostics::default();
    let built = Kind.build(Section::new("tag", node), &mut diags);
    (built, diags)
}

fn built(text: &str) -> Arc<dyn Filter> {
    let (filter, diags) = build(text);
    assert!(diags.is_empty(), "{:?}", diags.errors);
    filter.expect("built")
}

/// The start of every error's span.
fn starts(diags: &Diagnostics) -> Vec<usize> {
    diags.errors.iter().map(|e| e.span.start).collect()
}

fn order_ctx() -> FilterCtx {
    FilterCtx {
        params: vec![("id".into(), "42".to_string())],
        client_version: Some("2.4.0".to_string()),
        ..FilterCtx::default()
    }
}

#[test]
fn request_headers_are_removed_then_set_then_added_with_placeholders_filled() {
    let filter = built(
        r#"request = { set = { "x-order" = "order-{id}", "x-v" = "{client_version}" }, add = { "x-tag" = "b" }, remove = ["x-debug"] }"#,
    );
    assert_eq!(filter.hooks(), Hooks::REQUEST);
    let mut req = Request::get("/api/orders/42")
        .header("x-order", "forged")
        .header("x-tag", "a")
        .header("x-debug", "1")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert!(matches!(
        filter.on_request(&mut req, &mut order_ctx()),
        Flow::Continue
    ));
    assert_eq!(req.headers["x-order"], "order-42");
    assert_eq!(req.headers["x-v"], "2.4.0");
    let tags: Vec<_> = req.headers.get_all("x-tag").iter().collect();
    assert_eq!(tags, ["a", "b"], "add keeps the earlier values");
    assert!(!req.headers.contains_key("x-debug"));
}

#[test]
fn a_set_whose_placeholder_has_no_value_removes_the_clients_copy() {
    let filter = built(
        r#"request = { set = { "x-user-id" = "{claim:sub}" }, add = { "x-v" = "{client_version}" } }"#,
    );
    let mut req = Request::get("/")
        .header("x-user-id", "forged")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    filter.on_request(&mut req, &mut FilterCtx::default());
    assert!(!req.headers.contains_key("x-user-id"));
    assert!(!req.headers.contains_key("x-v"), "nothing to add");

    let mut cx = FilterCtx::default();
    let claims = Claims::new([("sub".to_string(), "u-7".to_string())].into());
    cx.extensions.insert(claims);
    filter.on_request(&mut req, &mut cx);
    assert_eq!(req.headers["x-user-id"], "u-7");
}

#[test]
fn response_headers_are_changed_on_the_way_to_the_client() {
    let filter = built(
        r#"response = { set = { "cache-control" = "no-store" }, add = { "x-order" = "{id}" }, remove = ["server"] }"#,
    );
    assert_eq!(filter.hooks(), Hooks::RESPONSE);
    let mut resp = HttpResponse::builder()
        .header("server", "legacy/1.0")
        .header("cache-control", "max-age=60")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    filter.on_response(&mut resp, &mut order_ctx());
    assert_eq!(resp.headers["cache-control"], "no-store");
    assert_eq!(resp.headers["x-order"], "42");
    assert!(!resp.headers.contains_key("server"));
}

#[test]
fn problems_are_reported_at_their_key_or_value() {
    let text = r#"request = { set = { "bad name" = "x", "x-a" = "{a-b}", "x-b" = "{id" }, remove = ["connection", "x-ficus-shadow"], sett = {} }
response = { add = { "host" = "h", "content-length" = "1" } }
respons = {}"#;
    let (filter, diags) = build(text);
    assert!(filter.is_none());
    let at = |needle: &str| text.find(needle).unwrap();
    let starts = starts(&diags);
    for needle in [
        "\"bad name\"",
        "\"{a-b}\"",
        "\"{id\"",
        "\"connection\"",
        "\"x-ficus-shadow\"",
        "\"host\"",
        "\"content-length\"",
    ] {
        assert!(starts.contains(&at(needle)), "{needle}: {:?}", diags.errors);
    }
    let hint = |word: &str| {
        diags
            .errors
            .iter()
            .find(|e| e.message.contains(word))
            .and_then(|e| e.hint.clone())
    };
    assert_eq!(hint("sett").as_deref(), Some("did you mean \"set\"?"));
    assert_eq!(
        hint("respons").as_deref(),
        Some("did you mean \"response\"?")
    );
    assert!(starts.contains(&at("sett")), "{:?}", diags.errors);
}

#[test]
fn a_wrong_type_is_reported_at_the_value() {
    let text = "request = { remove = \"x-a\" }";
    let (filter, diags) = build(text);
    assert!(filter.is_none());
    assert_eq!(
        starts(&diags),
        [text.find("\"x-a\"").unwrap()],
        "{:?}",
        diags.errors
    );
}

#[test]
fn a_section_that_changes_nothing_is_reported_at_the_section() {
    let (filter, diags) = build("request = {}");
    assert!(filter.is_none());
    assert!(diags.errors[0].message.contains("changes no header"));
}
