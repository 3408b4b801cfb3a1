//! `ficus demo` does what it prints: every curl line is answered by the upstream its comment
//! names, the sticky split keeps each user on one side, the shadowed route's report shows the
//! difference the demo plants and the noise it learns, and an order the new service creates
//! reaches the legacy app as a webhook that legacy verifies.

#[path = "support/admin.rs"]
mod admin_support;
mod support;

use std::net::{SocketAddr, TcpListener};

use admin_support::eventually;
use ficus::demo::{
    Demo, DemoStep, JWT_ROUTE, RECEIVED_PATH, SERVED_BY, SHADOWED_ROUTE, SYNC_PATH, TOKEN_SUBJECT,
    WEBHOOK_ROUTE,
};
use serde_json::Value;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts the demo on a port that was free a moment ago. Tests run side by side in their own
/// processes, so another may take that port first: then it tries another, a few times.
async fn start_demo() -> Demo {
    let mut last = String::new();
    for _ in 0..5 {
        match tokio::task::spawn_blocking(|| ficus::demo::start(free_addr()))
            .await
            .unwrap()
        {
            Ok(demo) => return demo,
            Err(e) if format!("{e:#}").contains("Address already in use") => {
                last = format!("{e:#}")
            }
            Err(e) => panic!("the demo starts: {e:#}"),
        }
    }
    panic!("the demo starts: {last}")
}

async fn stop_demo(demo: Demo) {
    tokio::task::spawn_blocking(move || drop(demo))
        .await
        .unwrap();
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Sends the request `step.curl` describes and checks its status; returns who answered
/// (`x-served-by`, or `ficus` when no app did) and the JSON body.
async fn send(
    client: &reqwest::Client,
    demo: &Demo,
    step: &DemoStep,
) -> (String, serde_json::Value) {
    let mut request = client.request(
        step.method.clone(),
        format!("{}{}", demo.proxy_url, step.path),
    );
    if let Some((name, value)) = &step.header {
        request = request.header(*name, value);
    }
    if let Some(body) = step.body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", step.curl));
    assert_eq!(response.status(), step.expect_status, "{}", step.curl);
    let served_by = response
        .headers()
        .get(SERVED_BY)
        .map(|v| v.to_str().expect("a text x-served-by").to_string())
        .unwrap_or_else(|| "ficus".to_string());
    let body = response.bytes().await.unwrap();
    (served_by, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_printed_curl_line_is_answered_by_the_upstream_it_names() {
    let demo = start_demo().await;
    let client = client();
    assert!(
        demo.steps.len() >= 8,
        "the demo shows routing, a split, fallback and the default"
    );
    for step in &demo.steps {
        assert!(
            step.curl
                .contains(&format!("{}{}", demo.proxy_url, step.path)),
            "{}",
            step.curl
        );
        let (served_by, body) = send(&client, &demo, step).await;
        assert_eq!(
            served_by, step.expect_served_by,
            "{}: {}",
            step.what, step.curl
        );
        if served_by == "ficus" {
            // A plugin's own answer: the jwt's JSON error.
            assert!(body["error"].is_string(), "{}: {body}", step.curl);
            continue;
        }
        assert_eq!(body["served_by"], step.expect_served_by, "{}", step.curl);
        assert_eq!(body["method"], step.method.as_str(), "{}", step.curl);
        assert!(
            body["x-request-id"].is_string(),
            "ficus adds x-request-id: {}",
            step.curl
        );
    }
    let sides: Vec<&str> = demo
        .steps
        .iter()
        .filter(|s| s.path == "/api/orders" && s.method == "POST")
        .map(|s| s.expect_served_by)
        .collect();
    assert_eq!(
        sides,
        ["orders", "legacy"],
        "the split shows one user on each side"
    );
    assert!(demo.banner().contains(&demo.steps[0].curl));
    stop_demo(demo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_user_always_lands_on_the_same_side_of_the_split() {
    let demo = start_demo().await;
    let client = client();
    let split = demo
        .steps
        .iter()
        .find(|s| s.path == "/api/orders" && s.method == "POST")
        .expect("a split step")
        .clone();
    let mut seen = std::collections::HashSet::new();
    for n in 0..24 {
        let user = format!("someone-{n}");
        let step = DemoStep {
            header: Some(("x-user-id", user.clone())),
            ..split.clone()
        };
        let (first, _) = send(&client, &demo, &step).await;
        for _ in 0..4 {
            let (again, _) = send(&client, &demo, &step).await;
            assert_eq!(again, first, "{user} moved from {first} to {again}");
        }
        seen.insert(first);
    }
    assert_eq!(
        seen.len(),
        2,
        "24 users at 50/50 reach both sides: {seen:?}"
    );
    stop_demo(demo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_checked_route_passes_a_valid_token_at_the_new_path_and_refuses_an_expired_one() {
    let demo = start_demo().await;
    let client = client();
    let account: Vec<&DemoStep> = demo
        .steps
        .iter()
        .filter(|s| s.path.starts_with("/api/account/"))
        .collect();
    let [valid, expired] = account[..] else {
        panic!("two steps on the {JWT_ROUTE} route: {account:?}");
    };

    let (served_by, body) = send(&client, &demo, valid).await;
    assert_eq!(served_by, "orders");
    assert_eq!(body["path"], "/v2/account/profile", "rewritten: {body}");
    assert_eq!(
        body["x-user-id"], TOKEN_SUBJECT,
        "from the token's sub: {body}"
    );

    // A client's own x-user-id never gets through, with a valid token or without one.
    let forged = client
        .get(format!("{}{}", demo.proxy_url, valid.path))
        .header("authorization", &valid.header.as_ref().expect("a token").1)
        .header("x-user-id", "admin")
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&forged.bytes().await.unwrap()).unwrap();
    assert_eq!(body["x-user-id"], TOKEN_SUBJECT, "{body}");
    let anonymous = client
        .get(format!("{}{}", demo.proxy_url, valid.path))
        .header("x-user-id", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");

    let (served_by, body) = send(&client, &demo, expired).await;
    assert_eq!(served_by, "ficus", "the service never saw it");
    assert_eq!(body["error"], "invalid_token", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("expired")),
        "{body}"
    );
    assert!(
        demo.banner().contains(&demo.expired_token),
        "the banner's explain line carries the expired token"
    );
    stop_demo(demo).await;
}

#[test]
fn a_taken_port_is_reported_in_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = match ficus::demo::start(taken.local_addr().unwrap()) {
        Ok(_) => panic!("the demo started on a taken port"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("cannot listen on"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

/// GETs `path` on the demo's admin port as JSON.
async fn admin_json(client: &reqwest::Client, demo: &Demo, path: &str) -> Result<Value, String> {
    let url = format!("{}{path}", demo.admin_url);
    let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadowed_route_reports_the_planted_difference_and_learns_the_noise() {
    let demo = start_demo().await;
    let client = client();
    let step = demo
        .steps
        .iter()
        .find(|s| s.path.starts_with("/api/products/"))
        .expect("a shadowed step")
        .clone();
    let (served_by, body) = send(&client, &demo, &step).await;
    assert_eq!(served_by, "legacy", "the client gets the primary's answer");
    assert_eq!(body["price"], "12.50", "legacy's price, as a string");

    // The comparison runs after the client is answered; /api/shadow is where it shows.
    let report = eventually("the shadowed request's outcome", || async {
        let v = admin_json(&client, &demo, "/api/shadow").await?;
        let r = v["routes"][SHADOWED_ROUTE].clone();
        let done: u64 = ["compared", "errors", "skipped", "dropped"]
            .iter()
            .filter_map(|k| r[k].as_u64())
            .sum();
        if done >= 1 {
            Ok(r)
        } else {
            Err(v.to_string())
        }
    })
    .await;
    assert_eq!(report["compared"], 1, "{report}");
    assert_eq!(report["mismatched"], 1, "{report}");
    let paths: Vec<&str> = report["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert_eq!(paths, ["/price"], "only the planted difference: {report}");
    assert_eq!(
        report["noise"],
        serde_json::json!(["/answer_no"]),
        "learned from two answers of legacy on the first request: {report}"
    );

    let samples = eventually("the stored sample", || async {
        let path = format!("/api/shadow/samples?route={SHADOWED_ROUTE}");
        let v = admin_json(&client, &demo, &path).await?;
        match v["samples"].as_array() {
            Some(list) if !list.is_empty() => Ok(list.clone()),
            _ => Err(v.to_string()),
        }
    })
    .await;
    let differences = samples[0]["differences"].to_string();
    assert!(differences.contains("\"/price\""), "{differences}");

    // The banner prints the curl lines that show all of this, and the dashboard shows it too.
    let banner = demo.banner();
    assert!(banner.contains(&step.curl), "{banner}");
    assert!(
        banner.contains(&format!("curl -s {}/api/shadow\n", demo.admin_url)),
        "{banner}"
    );
    assert!(
        banner.contains(&format!(
            "curl -s '{}/api/shadow/samples?route={SHADOWED_ROUTE}'",
            demo.admin_url
        )),
        "{banner}"
    );
    let page = client
        .get(format!("{}/", demo.admin_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("0.0% (0 of 1)"), "{page}");
    assert!(page.contains("<code>/price</code> ×1"), "{page}");
    assert!(page.contains("<code>/answer_no</code>"), "{page}");
    assert!(
        page.contains(&format!("/api/shadow/samples?route={SHADOWED_ROUTE}")),
        "{page}"
    );
    stop_demo(demo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_keeps_its_data_dir_out_of_the_repository_and_removes_it() {
    let demo = start_demo().await;
    let dir = demo.table_file.parent().expect("a data_dir").to_path_buf();
    assert!(dir.starts_with(std::env::temp_dir()), "{}", dir.display());
    assert!(dir.is_dir());
    stop_demo(demo).await;
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

/// The order step whose user the split sends to `side`.
fn order_step(demo: &Demo, side: &str) -> DemoStep {
    demo.steps
        .iter()
        .find(|s| s.method == "POST" && s.expect_served_by == side)
        .unwrap_or_else(|| panic!("an order step answered by {side}"))
        .clone()
}

/// What the demo's legacy app says it accepted at its webhook endpoint.
async fn received(client: &reqwest::Client, demo: &Demo) -> Vec<Value> {
    let url = format!("{}{RECEIVED_PATH}", demo.legacy_url);
    let body = client.get(url).send().await.unwrap().bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["received"].as_array().expect("a received list").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_the_new_service_creates_reaches_legacy_as_a_verified_webhook() {
    let demo = start_demo().await;
    let client = client();
    let (served_by, order) = send(&client, &demo, &order_step(&demo, "orders")).await;
    assert_eq!(served_by, "orders");
    let order_id = order["id"].clone();
    assert!(order_id.is_u64(), "the created order has an id: {order}");
    assert_eq!(order["item"], "book", "{order}");

    let counts = eventually("the event delivered", || async {
        let v = admin_json(&client, &demo, "/api/webhooks").await?;
        if v["routes"][WEBHOOK_ROUTE]["delivered"] == 1 {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    })
    .await;
    assert_eq!(counts["pending"], 0, "{counts}");
    assert_eq!(counts["dead"], 0, "legacy accepted the signature: {counts}");

    // Legacy verified it with its own HMAC; it lists what it accepted.
    let accepted = received(&client, &demo).await;
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0]["type"], "order.created");
    assert_eq!(accepted[0]["order_id"], order_id);
    assert!(accepted[0]["webhook_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("msg_")));

    // An order legacy creates itself is not sent back to it.
    let (served_by, _) = send(&client, &demo, &order_step(&demo, "legacy")).await;
    assert_eq!(served_by, "legacy");
    let counts = admin_json(&client, &demo, "/api/webhooks").await.unwrap();
    assert_eq!(
        counts["pending"].as_u64().unwrap_or(1) + counts["delivered"].as_u64().unwrap_or(0),
        1,
        "{counts}"
    );

    // The banner prints the lines to see all of this, and the dashboard shows the counts.
    let banner = demo.banner();
    assert!(
        banner.contains(&format!("{}\n", demo.webhooks_curl())),
        "{banner}"
    );
    assert!(banner.contains(&demo.received_curl()), "{banner}");
    let page = client
        .get(format!("{}/", demo.admin_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<h2>Webhooks</h2>"), "{page}");
    assert!(
        page.contains(&format!(
            "<tr><td>{WEBHOOK_ROUTE}</td><td>order.created to "
        )),
        "{page}"
    );
    assert!(
        page.contains("<td>0</td><td>—</td><td>1</td><td>0</td><td>no</td>"),
        "{page}"
    );
    stop_demo(demo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_app_refuses_a_delivery_whose_signature_is_not_ficus_s() {
    let demo = start_demo().await;
    let client = client();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = client
        .post(format!("{}{SYNC_PATH}", demo.legacy_url))
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        )
        .body(r#"{"type":"order.created"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let unsigned = client
        .post(format!("{}{SYNC_PATH}", demo.legacy_url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(received(&client, &demo).await.is_empty());
    stop_demo(demo).await;
}
