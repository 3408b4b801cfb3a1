//! The `headers` and `rewrite` plugins configured in a route table, on the wire with real
//! upstreams: a rewrite reaches only the upstreams it lists (a fallback to legacy gets the path
//! the client sent), keeps the query and sets `Host`; headers set, added and removed reach the
//! upstream and the client, filled from the matched template's parameters and the client version.

mod support;

use reqwest::StatusCode;

use support::{client, closed_url, served_by, Answer, Echoed, Ficus, Upstream};

/// GETs `path` through `ficus` and returns who answered and what the echo upstream saw.
async fn echoed(ficus: &Ficus, path: &str) -> (String, Echoed) {
    let resp = client().get(ficus.url(path)).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    let who = served_by(&resp);
    (who, Echoed::parse(&resp.bytes().await.expect("body")))
}

const REWRITES: &str = r#"
[proxy]
default = "legacy"

[plugins.orders-v2]
use = "rewrite"
upstreams = ["orders"]
strip_prefix = "/api"
add_prefix = "/v2"
host = "upstream"

[plugins.catalog]
use = "rewrite"
regex = "^/shop/([a-z]+)/([0-9]+)$"
replacement = "/catalog/$1/items/$2"
host = "catalog.internal"

[upstreams.legacy]
url = "${legacy}"

[upstreams.orders]
url = "${orders}"

[[routes]]
name = "orders"
path = "/api/orders/{id}"
upstream = "orders"
plugins = ["orders-v2"]

[[routes]]
name = "shop"
path = "/shop/*"
upstream = "orders"
plugins = ["catalog"]
"#;

#[tokio::test]
async fn the_upstream_receives_the_rewritten_path_and_host_with_the_query_kept() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let orders = Upstream::builder("orders").echo().start().await;
    let ficus = Ficus::start(
        REWRITES,
        &[("legacy", legacy.base()), ("orders", orders.base())],
    )
    .await;

    let (who, seen) = echoed(&ficus, "/api/orders/7?expand=items&q=a%20b").await;
    assert_eq!(who, "orders");
    assert_eq!(seen.path, "/v2/orders/7");
    assert_eq!(seen.query.as_deref(), Some("expand=items&q=a%20b"));
    assert_eq!(
        seen.header("host"),
        Some("127.0.0.1"),
        "the upstream's own host"
    );
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(ficus.addr.to_string().as_str()),
        "the client's Host is still told to the upstream"
    );

    let (_, seen) = echoed(&ficus, "/shop/books/42").await;
    assert_eq!(seen.path, "/catalog/books/items/42");
    assert_eq!(seen.query, None);
    assert_eq!(seen.header("host"), Some("catalog.internal"));

    // A path the regex does not match goes as it came.
    let (_, seen) = echoed(&ficus, "/shop/books").await;
    assert_eq!(seen.path, "/shop/books");
    assert_eq!(seen.header("host"), Some("catalog.internal"));

    // Routes without the plugin are untouched.
    let (who, seen) = echoed(&ficus, "/api/other/1").await;
    assert_eq!(
        (who.as_str(), seen.path.as_str()),
        ("legacy", "/api/other/1")
    );
}

#[tokio::test]
async fn a_fallback_to_an_upstream_the_rewrite_does_not_list_gets_the_original_path() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let table = r#"
[proxy]
default = "legacy"

[plugins.orders-only]
use = "rewrite"
upstreams = ["orders"]
strip_prefix = "/api"
host = "upstream"

[plugins.everywhere]
use = "rewrite"
add_prefix = "/base"

[upstreams.legacy]
url = "${legacy}"

[upstreams.orders]
url = "${orders}"

[[routes]]
name = "orders"
path = "/api/orders/{id}"
upstream = "orders"
fallback = "legacy"
plugins = ["orders-only"]

[[routes]]
name = "all"
path = "/all/{id}"
upstream = "orders"
fallback = "legacy"
plugins = ["everywhere"]
"#;
    let ficus = Ficus::start(
        table,
        &[("legacy", legacy.base()), ("orders", closed_url())],
    )
    .await;

    let (who, seen) = echoed(&ficus, "/api/orders/7?x=1").await;
    assert_eq!(who, "legacy", "orders is down: the fallback answered");
    assert_eq!(seen.path, "/api/orders/7", "legacy gets the legacy path");
    assert_eq!(seen.query.as_deref(), Some("x=1"));
    assert_eq!(
        seen.header("host"),
        Some(ficus.addr.to_string().as_str()),
        "and the client's Host"
    );

    // Without `upstreams`, the rewrite applies to the fallback as well.
    let (who, seen) = echoed(&ficus, "/all/7").await;
    assert_eq!(who, "legacy");
    assert_eq!(seen.path, "/base/all/7");
}

#[tokio::test]
async fn headers_set_added_and_removed_reach_the_upstream_and_the_client() {
    let orders = Upstream::builder("orders")
        .app(|_| Answer {
            status: 200,
            headers: vec![
                ("cache-control", "max-age=60".to_string()),
                ("x-internal", "secret".to_string()),
            ],
            body: "{}".into(),
        })
        .start()
        .await;
    let legacy = Upstream::builder("legacy").echo().start().await;
    let table = r#"
[proxy]
default = "legacy"

[plugins.auth]
use = "jwt"
secret_env = "FICUS_TEST_HEADERS_JWT"

[plugins.order-headers]
use = "headers"
request.set = { "x-order-id" = "{id}", "x-client-version" = "v{client_version}", "x-user-id" = "{claim:sub}" }
request.add = { "x-tag" = "order-{id}" }
request.remove = ["x-debug"]
response.set = { "cache-control" = "no-store" }
response.add = { "x-order" = "{id}" }
response.remove = ["x-internal"]

[upstreams.legacy]
url = "${legacy}"

[upstreams.orders]
url = "${orders}"

[[routes]]
name = "orders"
path = "/api/orders/{id}"
upstream = "orders"
plugins = ["auth", "order-headers"]
"#;
    // A valid token without a `sub`: the x-user-id it would fill has no value.
    let secret = "a secret of thirty-two bytes or more";
    std::env::set_var("FICUS_TEST_HEADERS_JWT", secret);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign");
    let ficus = Ficus::start(
        table,
        &[("legacy", legacy.base()), ("orders", orders.base())],
    )
    .await;

    let resp = client()
        .get(ficus.url("/api/orders/42"))
        .bearer_auth(&token)
        .header("x-client-version", "2.4")
        .header("x-order-id", "forged")
        .header("x-user-id", "forged")
        .header("x-tag", "client")
        .header("x-debug", "1")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(served_by(&resp), "orders");
    let h = resp.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-order"], "42");
    assert!(!h.contains_key("x-internal"));

    let seen = orders.next_request().await;
    assert_eq!(seen.header("x-order-id"), Some("42"));
    assert_eq!(seen.header("x-client-version"), Some("v2.4.0"));
    assert_eq!(
        seen.header("x-user-id"),
        None,
        "no sub in the token: a set that cannot be filled removes the client's copy"
    );
    let tags: Vec<_> = seen.headers.get_all("x-tag").iter().collect();
    assert_eq!(tags, ["client", "order-42"]);
    assert_eq!(seen.header("x-debug"), None);

    // Without a client version, the add is skipped and the set removes the header.
    client()
        .get(ficus.url("/api/orders/43"))
        .bearer_auth(&token)
        .header("x-client-version", "forged")
        .send()
        .await
        .expect("request");
    let seen = orders.next_request().await;
    assert_eq!(seen.header("x-order-id"), Some("43"));
    assert_eq!(seen.header("x-client-version"), None);
}

/// Problems in either kind's section are reported with the file's line and column.
#[test]
fn a_bad_section_is_refused_at_its_line_and_column() {
    let table = "[proxy]\ndefault = \"legacy\"\n\n[upstreams.legacy]\nurl = \"http://127.0.0.1:1\"\n\n\
                 [plugins.tag]\nuse = \"headers\"\nrequest = { set = { \"x-a\" = \"{a-b}\" } }\n\n\
                 [plugins.move]\nuse = \"rewrite\"\nregex = \"^/old/(.*)$\"\nreplacement = \"/new/$2\"\n";
    // 1-based line and column of `needle`.
    let at = |needle: &str| {
        let i = table.find(needle).expect("needle");
        let line_start = table[..i].rfind('\n').map_or(0, |n| n + 1);
        (table[..i].matches('\n').count() + 1, i - line_start + 1)
    };
    let errors = match ficus::config::load_str(table, "routes.toml") {
        Ok(_) => panic!("the table was accepted"),
        Err(ficus::config::ConfigErrors(errors)) => errors,
    };
    let found: Vec<_> = errors
        .iter()
        .map(|d| ((d.line, d.column), d.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (at("\"{a-b}\""), "{a-b} is not a placeholder"),
            (at("\"/new/$2\""), "$2 names no group of the regex"),
        ]
    );
}
