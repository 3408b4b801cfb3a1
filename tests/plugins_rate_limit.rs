//! The `rate_limit` plugin on the wire, with real upstreams: a client over its limit gets a 429
//! with `Retry-After` and its request never reaches the upstream; every answer of the route
//! carries the `RateLimit-*` headers of the client's own bucket; keys are isolated; and a reload
//! that keeps the plugin's section keeps its buckets, while one that changes it starts afresh.
//!
//! Time-dependent behaviour is made deterministic by the rate: at `"1/m"` with `burst = 2` the
//! third request within a minute is refused, whatever the machine's speed.
//!
//! The plugins' state registry is process-wide (and `cargo test` runs a binary's tests in one
//! process), so each test names its instance differently.

#[path = "support/admin.rs"]
mod admin_support;
mod support;

use reqwest::StatusCode;

use admin_support::{with_urls, write_in_place, Scrape, Served};
use support::{client, served_by, Ficus, Upstream};

/// A table whose route `orders` (`/api/orders/{id}`) is limited by plugin `NAME` with `KEY`;
/// everything else goes to `legacy` unlimited.
fn table(name: &str, key: &str, rate: &str) -> String {
    format!(
        r#"
[proxy]
default = "legacy"

[upstreams.legacy]
url = "${{legacy}}"

[upstreams.orders]
url = "${{orders}}"

[plugins.{name}]
use = "rate_limit"
key = "{key}"
rate = "{rate}"
burst = 2

[[routes]]
name = "orders"
path = "/api/orders/{{id}}"
upstream = "orders"
plugins = ["{name}"]
"#
    )
}

async fn upstreams() -> (Upstream, Upstream) {
    (
        Upstream::builder("legacy").echo().start().await,
        Upstream::builder("orders").echo().start().await,
    )
}

/// The `RateLimit-*` headers of a response as (limit, remaining, reset).
fn quota(resp: &reqwest::Response) -> (u64, u64, u64) {
    let n = |name: &str| -> u64 {
        resp.headers()
            .get(name)
            .unwrap_or_else(|| panic!("no {name} on a {} answer", resp.status()))
            .to_str()
            .expect("ASCII")
            .parse()
            .expect("a number")
    };
    (
        n("ratelimit-limit"),
        n("ratelimit-remaining"),
        n("ratelimit-reset"),
    )
}

#[tokio::test]
async fn over_the_limit_a_client_gets_429_with_retry_after_and_the_upstream_is_not_called() {
    let (legacy, orders) = upstreams().await;
    let ficus = Ficus::start(
        &table("per-ip", "ip", "1/m"),
        &[("legacy", legacy.base()), ("orders", orders.base())],
    )
    .await;
    let get = || client().get(ficus.url("/api/orders/7")).send();

    let first = get().await.expect("request");
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(served_by(&first), "orders");
    let (limit, remaining, reset) = quota(&first);
    assert_eq!((limit, remaining), (2, 1));
    assert!(
        (59..=60).contains(&reset),
        "full again in a minute: {reset}"
    );
    let second = get().await.expect("request");
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(
        quota(&second).1,
        0,
        "the upstream's answer carries the quota"
    );

    let third = get().await.expect("request");
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = third.headers()["retry-after"]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("whole seconds");
    assert!(
        (59..=60).contains(&retry),
        "a token is a minute away: {retry}"
    );
    let (limit, remaining, reset) = quota(&third);
    assert_eq!((limit, remaining), (2, 0));
    assert!((119..=120).contains(&reset), "{reset}");
    assert!(third
        .text()
        .await
        .expect("body")
        .starts_with("too many requests"));
    assert_eq!(orders.hits(), 2, "the refused request never reached orders");

    // Routes without the plugin are neither limited nor labelled.
    let other = client()
        .get(ficus.url("/elsewhere"))
        .send()
        .await
        .expect("request");
    assert_eq!(served_by(&other), "legacy");
    assert!(!other.headers().contains_key("ratelimit-limit"));

    let scrape = Scrape::parse(&ficus.metrics_text());
    assert_eq!(
        scrape.value(
            "ficus_plugin_responses_total",
            &[("route", "orders"), ("plugin", "per-ip"), ("status", "429")]
        ),
        1.0
    );
}

#[tokio::test]
async fn each_api_key_has_its_own_bucket() {
    let (legacy, orders) = upstreams().await;
    let ficus = Ficus::start(
        &table("per-key", "header:x-api-key", "1/m"),
        &[("legacy", legacy.base()), ("orders", orders.base())],
    )
    .await;
    let get = |key: &'static str| {
        client()
            .get(ficus.url("/api/orders/7"))
            .header("x-api-key", key)
            .send()
    };
    for expected in [
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        assert_eq!(get("alpha").await.expect("request").status(), expected);
    }
    let beta = get("beta").await.expect("request");
    assert_eq!(beta.status(), StatusCode::OK, "beta's bucket is its own");
    assert_eq!(quota(&beta).1, 1, "and beta's numbers are beta's");
    // Without the header the client's address is the key: a bucket neither key touched.
    let keyless = client()
        .get(ficus.url("/api/orders/7"))
        .send()
        .await
        .expect("request");
    assert_eq!(keyless.status(), StatusCode::OK);
    assert_eq!(quota(&keyless).1, 1);
    assert_eq!(orders.hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_keeps_the_plugin_section_keeps_its_buckets() {
    let (legacy, orders) = upstreams().await;
    let ups = [&legacy, &orders];
    let limited = with_urls(&table("kept", "ip", "1/m"), &ups);
    let served = Served::start(&limited).await;
    for expected in [
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        assert_eq!(served.get("/api/orders/1").await.status(), expected);
    }

    // Another route added, the plugin's section untouched: the empty bucket stays empty.
    let grown =
        format!("{limited}\n[[routes]]\nname = \"new\"\npath = \"/new\"\nupstream = \"orders\"\n");
    write_in_place(&served.path, &served.render(&grown));
    let (status, body) = served.reload().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        served.who("/new").await,
        "orders",
        "the new table is serving"
    );
    assert_eq!(
        served.get("/api/orders/1").await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the reload did not refill the bucket"
    );

    // A changed rate is a new limit: fresh buckets.
    let faster = grown.replace("rate = \"1/m\"", "rate = \"2/m\"");
    write_in_place(&served.path, &served.render(&faster));
    let (status, body) = served.reload().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp = served.get("/api/orders/1").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(quota(&resp).1, 1);
}

/// The error page ficus writes when the route's upstream cannot be reached carries the quota
/// too (and what a `headers` plugin puts on every answer), as every answer of the route does.
#[tokio::test]
async fn ficus_s_own_error_page_carries_the_quota_and_the_route_s_response_headers() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    // A port that was free a moment ago and that nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let table = table("rl-errorpage", "ip", "1/m")
        .replace("${orders}", &format!("http://{closed}"))
        .replace(
            "plugins = [\"rl-errorpage\"]",
            "plugins = [\"rl-errorpage\", \"cors\"]\n\n[plugins.cors]\nuse = \"headers\"\n\
             response = { set = { \"access-control-allow-origin\" = \"https://shop.example\" } }",
        );
    let ficus = Ficus::start(&table, &[legacy.var()]).await;
    let resp = client()
        .get(ficus.url("/api/orders/7"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(quota(&resp), (2, 1, 60));
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    assert!(resp.headers().contains_key("x-request-id"));
}
