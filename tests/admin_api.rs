//! The admin API (CONTRACT section 5) and its metrics (section 7), over real HTTP against a ficus
//! started with `spawn_file`: the bearer token guards every endpoint but `/healthz`, `/api/routes`
//! and `/api/explain` have the documented JSON shapes, unknown endpoints and wrong methods get 404
//! and 405, and `/metrics`, scraped and parsed, counts proxied requests by route and upstream
//! names.
//!
//! Metrics are process-wide and tests of this binary may share a process (`cargo test`): each
//! test uses route and upstream names of its own, so its counters are its own.

mod support;

#[path = "support/admin.rs"]
mod admin_support;

use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use admin_support::{eventually, Scrape, Served, Settings, TempDir};
use support::{closed_url, Upstream};

fn table_with(upstreams: &[&Upstream], head: &str, routes: &str) -> String {
    let mut table = format!("[proxy]\n{head}\n");
    for up in upstreams {
        table.push_str(&format!(
            "[upstreams.{}]\nurl = \"{}\"\n\n",
            up.name,
            up.base()
        ));
    }
    table.push_str(routes);
    table
}

/// Every endpoint that needs the token, as (method, path).
const GUARDED: [(&str, &str); 5] = [
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/routes"),
    ("GET", "/api/explain?method=GET&url=/x"),
    ("POST", "/api/reload"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_admin_token_env_every_endpoint_but_healthz_needs_the_bearer_token() {
    const VAR: &str = "FICUS_TEST_ADMIN_TOKEN_GUARDED_4F1C";
    const TOKEN: &str = "t0ken-for-the-guarded-admin-test";
    std::env::set_var(VAR, TOKEN);
    let legacy = Upstream::builder("legacy").echo().start().await;
    let served = Served::start(&table_with(
        &[&legacy],
        &format!("default = \"legacy\"\nadmin_token_env = \"{VAR}\""),
        "",
    ))
    .await;
    let send = |method: &str, path: &str, auth: Option<&str>| {
        let mut req = served.http.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            served.admin_url(path),
        );
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let what = format!("{method} {path}");
        async move {
            req.send()
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"))
                .status()
        }
    };

    assert_eq!(send("GET", "/healthz", None).await, StatusCode::OK);
    assert_eq!(
        send("GET", "/healthz", Some("Bearer wrong")).await,
        StatusCode::OK
    );
    let refused = [
        None,
        Some("Bearer wrong".to_string()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(TOKEN.to_string()),
        Some(format!("Basic {TOKEN}")),
    ];
    for (method, path) in GUARDED {
        for auth in &refused {
            assert_eq!(
                send(method, path, auth.as_deref()).await,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with authorization {auth:?}"
            );
        }
        assert_eq!(
            send(method, path, Some(&format!("Bearer {TOKEN}"))).await,
            StatusCode::OK,
            "{method} {path} with the token"
        );
    }
    // The proxy itself is not guarded.
    assert_eq!(served.who("/anything").await, "legacy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_fails_with_a_clear_error_when_admin_token_env_is_unset() {
    const VAR: &str = "FICUS_TEST_ADMIN_TOKEN_NEVER_SET_8D2E";
    std::env::remove_var(VAR);
    let dir = TempDir::new("unset-token");
    let settings = Settings::fresh(dir.path().join("data"));
    let text = settings.render(&format!(
        "[proxy]\ndefault = \"legacy\"\nadmin_token_env = \"{VAR}\"\n\n[upstreams.legacy]\nurl = \"http://127.0.0.1:9\"\n"
    ));
    let path = dir.path().join("routes.toml");
    std::fs::write(&path, text).expect("write routes.toml");
    let error = match tokio::task::spawn_blocking(move || ficus::server::spawn_file(&path))
        .await
        .expect("spawn_file panicked")
    {
        Ok(_) => panic!("ficus started although {VAR} is not set"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains(VAR) && error.contains("not set"),
        "the error names the variable and says it is not set: {error}"
    );
    // Nothing was left listening.
    std::net::TcpListener::bind(settings.listen).expect("the listen port is still free");
    std::net::TcpListener::bind(settings.admin).expect("the admin port is still free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_routes_shows_the_version_load_time_routes_in_file_order_and_upstreams() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let orders = Upstream::builder("orders").echo().start().await;
    let routes = r#"
[[routes]]
name = "zeta"
path = "/z"
upstream = "orders"

[[routes]]
name = "alpha"
path = "/api/orders/*"
upstream = "orders"
fallback = "legacy"

[[routes]]
name = "mid"
path = "/m"
split = { orders = 1, legacy = 3 }
"#;
    let served = Served::start(&table_with(
        &[&legacy, &orders],
        "default = \"legacy\"",
        routes,
    ))
    .await;
    let text = std::fs::read_to_string(&served.path).expect("read the table");

    let json = served.admin_json("/api/routes").await;
    assert_eq!(
        json["version"].as_str(),
        Some(ficus::config::version_of(&text).as_str()),
        "{json:#}"
    );
    let loaded_at = json["loaded_at"].as_str().expect("loaded_at is a string");
    let loaded = humantime::parse_rfc3339(loaded_at)
        .unwrap_or_else(|e| panic!("loaded_at {loaded_at:?} is not RFC 3339: {e}"));
    let age = SystemTime::now()
        .duration_since(loaded)
        .unwrap_or(Duration::ZERO);
    assert!(
        age < Duration::from_secs(60),
        "loaded_at {loaded_at} is not now"
    );
    let names: Vec<&str> = json["routes"]
        .as_array()
        .expect("routes is an array")
        .iter()
        .map(|r| r["name"].as_str().expect("a route name"))
        .collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
    let upstreams = json["upstreams"]
        .as_object()
        .expect("upstreams is an object");
    let mut keys: Vec<&str> = upstreams.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["legacy", "orders"]);
    assert!(
        upstreams["orders"]
            .to_string()
            .contains(&orders.addr.to_string()),
        "{json:#}"
    );

    // /readyz answers with the same table loaded.
    let (status, body) = served.admin_get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_explain_returns_the_report_of_ficus_explain_json() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let orders = Upstream::builder("orders").echo().start().await;
    let routes = r#"
[[routes]]
name = "health"
path = "/healthz"
upstream = "legacy"

[[routes]]
name = "orders-read"
path = "/api/orders/*"
methods = ["GET", "HEAD"]
client_version = ">=2.3.0, <3"
upstream = "orders"
fallback = "legacy"
"#;
    let served = Served::start(&table_with(
        &[&legacy, &orders],
        "default = \"legacy\"",
        routes,
    ))
    .await;

    let api = served
        .admin_json("/api/explain?method=GET&url=/api/orders/7&header=x-client-version:2.5.0")
        .await;
    assert_eq!(api["route"], "orders-read", "{api:#}");
    assert_eq!(api["upstream"], "orders", "{api:#}");

    let config = served.path.display().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ficus"))
        .args([
            "explain",
            "--config",
            &config,
            "--json",
            "GET",
            "/api/orders/7",
            "-H",
            "x-client-version: 2.5.0",
        ])
        .output()
        .expect("run ficus explain");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).expect("explain --json prints JSON");
    assert_eq!(api, cli, "the admin API and `ficus explain --json` differ");

    // A request without a readable version falls through to the default.
    let api = served
        .admin_json("/api/explain?method=GET&url=/api/orders/7")
        .await;
    assert_eq!(api["route"], "default", "{api:#}");
    assert_eq!(api["upstream"], "legacy", "{api:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoints_get_404_and_wrong_methods_405() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let served = Served::start(&table_with(&[&legacy], "default = \"legacy\"", "")).await;
    let status = |method: Method, path: &'static str| {
        let req = served.admin(method, path);
        async move { req.send().await.expect("admin request").status() }
    };
    assert_eq!(status(Method::GET, "/nope").await, StatusCode::NOT_FOUND);
    assert_eq!(
        status(Method::GET, "/api/nope").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(Method::GET, "/api/reload").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        status(Method::POST, "/healthz").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        status(Method::DELETE, "/api/routes").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        status(Method::PUT, "/metrics").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

/// `GET /` is the migration dashboard: an HTML page listing every route, where it sends traffic,
/// and who served the requests so far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_routes_and_who_served_them() {
    let legacy = Upstream::builder("dlegacy").echo().start().await;
    let orders = Upstream::builder("dorders").echo().start().await;
    let routes = "[[routes]]\nname = \"dash-orders\"\npath = \"/orders/*\"\nupstream = \"dorders\"\nfallback = \"dlegacy\"\n";
    let served = Served::start(&table_with(
        &[&legacy, &orders],
        "default = \"dlegacy\"",
        routes,
    ))
    .await;
    assert_eq!(served.who("/orders/1").await, "dorders");
    let page = eventually("the request shows on the dashboard", || async {
        let (status, page) = served.admin_get("/").await;
        if status == StatusCode::OK && page.contains("dorders: 1") {
            Ok(page)
        } else {
            Err(format!("{status}: {page}"))
        }
    })
    .await;
    assert!(page.starts_with("<!doctype html>"), "{page}");
    for expected in ["dash-orders", "/orders/*", "dlegacy", ">default<"] {
        assert!(page.contains(expected), "{expected} missing from {page}");
    }
}

/// Requests through three kinds of route, then `/metrics` scraped and parsed: each counter holds
/// exactly what was sent, labelled with route and upstream names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_proxied_requests_by_route_and_upstream_name() {
    let legacy = Upstream::builder("mlegacy").echo().start().await;
    let orders = Upstream::builder("morders").echo().start().await;
    let routes = format!(
        r#"
[upstreams.mflaky]
url = "{}"

[[routes]]
name = "metrics-orders"
path = "/orders/*"
upstream = "morders"

[[routes]]
name = "metrics-flaky"
path = "/flaky"
upstream = "mflaky"
fallback = "mlegacy"
"#,
        closed_url()
    );
    let served = Served::start(&table_with(
        &[&legacy, &orders],
        "default = \"mlegacy\"",
        &routes,
    ))
    .await;
    let default_labels = [
        ("route", "default"),
        ("upstream", "mlegacy"),
        ("status", "200"),
    ];
    let default_before = served
        .metrics()
        .await
        .value("ficus_requests_total", &default_labels);

    for i in 0..3 {
        assert_eq!(served.who(&format!("/orders/{i}")).await, "morders");
    }
    for path in ["/unmatched", "/also/unmatched"] {
        assert_eq!(served.who(path).await, "mlegacy");
    }
    for _ in 0..2 {
        assert_eq!(served.who("/flaky").await, "mlegacy");
    }

    // A request is counted when it is done, which may be just after its client has the response.
    let orders_labels = [
        ("route", "metrics-orders"),
        ("upstream", "morders"),
        ("status", "200"),
    ];
    let scrape: Scrape = eventually("every request counted", || async {
        let scrape = served.metrics().await;
        let counted = (
            scrape.value("ficus_requests_total", &orders_labels),
            scrape.value("ficus_requests_total", &default_labels) - default_before,
            scrape.sum("ficus_requests_total", &[("route", "metrics-flaky")]),
            scrape.value("ficus_fallbacks_total", &[("route", "metrics-flaky")]),
        );
        if counted.0 >= 3.0 && counted.1 >= 2.0 && counted.2 >= 2.0 && counted.3 >= 2.0 {
            Ok(scrape)
        } else {
            Err(format!("(orders, default, flaky, fallbacks) = {counted:?}"))
        }
    })
    .await;

    let requests = scrape.named("ficus_requests_total");
    assert_eq!(
        scrape.get("ficus_requests_total", &orders_labels),
        Some(3.0),
        "{requests:#?}"
    );
    assert_eq!(
        scrape.value("ficus_requests_total", &default_labels) - default_before,
        2.0,
        "{requests:#?}"
    );
    assert_eq!(
        scrape.sum("ficus_requests_total", &[("route", "metrics-flaky")]),
        2.0,
        "{requests:#?}"
    );
    assert_eq!(
        scrape.get(
            "ficus_request_duration_seconds_count",
            &[("route", "metrics-orders"), ("upstream", "morders")]
        ),
        Some(3.0),
        "{:#?}",
        scrape.named("ficus_request_duration_seconds_count")
    );
    assert!(
        scrape.has("ficus_request_duration_seconds_bucket")
            && scrape.has("ficus_request_duration_seconds_sum"),
        "the duration is a histogram"
    );
    assert_eq!(
        scrape.get("ficus_fallbacks_total", &[("route", "metrics-flaky")]),
        Some(2.0),
        "{:#?}",
        scrape.named("ficus_fallbacks_total")
    );
    let connect_errors = scrape.value(
        "ficus_upstream_connect_errors_total",
        &[("upstream", "mflaky")],
    );
    assert!(
        connect_errors > 0.0,
        "{:#?}",
        scrape.named("ficus_upstream_connect_errors_total")
    );
    // Labels are names, never raw paths.
    for s in &scrape.samples {
        if let Some(route) = s.labels.get("route") {
            assert!(
                !route.starts_with('/'),
                "a raw path as a route label: {s:?}"
            );
        }
    }
    let rss = scrape
        .get("process_resident_memory_bytes", &[])
        .expect("process_resident_memory_bytes is exported");
    assert!(rss > 0.0);
}

#[test]
fn the_metrics_parser_reads_names_labels_escapes_and_values() {
    let scrape = Scrape::parse(
        "# HELP x_total Things.\n\
         # TYPE x_total counter\n\
         x_total{route=\"a\",upstream=\"b\",status=\"200\"} 3\n\
         \n\
         x_total{route=\"q\\\"uote\\\\d\",status=\"500\"} 1 1700000000000\n\
         y_bucket{le=\"+Inf\"} 7\n\
         z 2.5e-3\n",
    );
    assert_eq!(
        scrape.get(
            "x_total",
            &[("route", "a"), ("upstream", "b"), ("status", "200")]
        ),
        Some(3.0)
    );
    assert_eq!(scrape.get("x_total", &[("route", "a")]), None);
    assert_eq!(scrape.sum("x_total", &[]), 4.0);
    assert_eq!(
        scrape.get("x_total", &[("route", "q\"uote\\d"), ("status", "500")]),
        Some(1.0)
    );
    assert_eq!(scrape.get("y_bucket", &[("le", "+Inf")]), Some(7.0));
    assert_eq!(scrape.get("z", &[]), Some(0.0025));
    assert_eq!(scrape.value("absent", &[]), 0.0);
}
