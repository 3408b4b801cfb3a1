//! Webhooks with real receivers on loopback: what emits, what a receiver gets and how it checks
//! it, retries, dead events and replays, per-key order, pausing, and an outbox that cannot be
//! written (CONTRACT sections 2, 5, 6 and 7).

#[path = "support/admin.rs"]
mod admin_support;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

use admin_support::{eventually, with_urls, Served};
use support::{Answer, Seen, Upstream};

/// The published Standard Webhooks test secret (see src/webhook/sign_tests.rs).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const TABLE: &str = r#"[proxy]
default = "legacy"

[upstreams.legacy]
url = "${legacy}"

[upstreams.orders]
url = "${orders}"

[[routes]]
name = "orders"
path = "/orders"
methods = ["POST"]
upstream = "orders"

  [routes.webhook]
  url = "${receiver}/sync/orders?from=ficus"
  event = "order.created"
  secret_env = "FICUS_TEST_WEBHOOK_SECRET"
  key = "/customer"
  retries = ["50ms", "50ms"]
  timeout = "2s"

[[routes]]
name = "legacy-orders"
path = "/legacy/orders"
upstream = "legacy"

  [routes.webhook]
  url = "${receiver}/sync/orders"
  event = "order.created"
  secret_env = "FICUS_TEST_WEBHOOK_SECRET"
"#;

/// The new service: 201 with the order it made from the request's JSON body.
fn orders_app(seen: &Seen) -> Answer {
    let mut answer = Answer::json(String::from_utf8_lossy(&seen.body).into_owned());
    answer.status = 201;
    answer
}

/// Webhooks need the h1 engine (a table with one is refused under Pingora's; see
/// `webhooks_need_the_h1_engine`), so these tests have nothing to run there.
fn skip() -> bool {
    support::engine_is_pingora()
}

async fn start(receiver: &Upstream) -> (Served, Upstream, Upstream) {
    std::env::set_var("FICUS_TEST_WEBHOOK_SECRET", SECRET);
    let legacy = Upstream::builder("legacy").app(orders_app).start().await;
    let orders = Upstream::builder("orders").app(orders_app).start().await;
    let ficus = Served::start(&with_urls(TABLE, &[&legacy, &orders, receiver])).await;
    (ficus, legacy, orders)
}

async fn post(ficus: &Served, path: &str, body: &str) -> reqwest::Response {
    ficus
        .http
        .post(ficus.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST through ficus")
}

/// Checks a delivery's signature as a receiver would, with its own HMAC (ring), not ficus's.
fn verify(seen: &Seen) {
    let id = seen.header("webhook-id").expect("webhook-id");
    let ts = seen.header("webhook-timestamp").expect("webhook-timestamp");
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let signed = [id.as_bytes(), b".", ts.as_bytes(), b".", &seen.body].concat();
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
        &signed,
    );
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    );
    let header = seen.header("webhook-signature").expect("webhook-signature");
    assert!(
        header.split(' ').any(|s| s == expected),
        "{header} != {expected}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - ts.parse::<i64>().unwrap()).abs() < 300,
        "a fresh timestamp"
    );
}

async fn webhooks_json(ficus: &Served) -> Value {
    ficus.admin_json("/api/webhooks").await
}

#[tokio::test]
async fn a_write_through_the_new_service_is_delivered_signed_with_the_contract_s_body() {
    if skip() {
        return;
    }
    let receiver = Upstream::builder("receiver")
        .app(|_| Answer::json("{}"))
        .start()
        .await;
    let (ficus, _legacy, _orders) = start(&receiver).await;
    let resp = post(
        &ficus,
        "/orders?src=app",
        r#"{"customer": "c-1", "total": 12.50}"#,
    )
    .await;
    assert_eq!(resp.status(), 201);
    // The event was durable before the client had its answer.
    let w = webhooks_json(&ficus).await;
    assert_eq!(
        w["pending"].as_u64().unwrap() + w["delivered"].as_u64().unwrap(),
        1,
        "{w}"
    );

    let got = receiver.next_request().await;
    assert_eq!(got.method, http::Method::POST);
    assert_eq!(got.path, "/sync/orders");
    assert_eq!(got.query.as_deref(), Some("from=ficus"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert!(got.header("webhook-id").unwrap().starts_with("msg_"));
    verify(&got);
    let event: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(event["type"], "order.created");
    assert!(event["timestamp"].as_str().unwrap().ends_with('Z'));
    let data = &event["data"];
    assert_eq!(data["route"], "orders");
    assert_eq!(data["request"]["method"], "POST");
    assert_eq!(data["request"]["path"], "/orders");
    assert_eq!(data["request"]["query"], "src=app");
    assert_eq!(data["request"]["body"]["customer"], "c-1");
    assert_eq!(data["response"]["status"], 201);
    assert_eq!(data["response"]["body"]["total"], 12.50);

    let w = eventually("the delivery recorded", || async {
        let w = webhooks_json(&ficus).await;
        if w["delivered"] == 1 {
            Ok(w)
        } else {
            Err(w.to_string())
        }
    })
    .await;
    assert_eq!(w["routes"]["orders"]["delivered"], 1);
    let metrics = ficus.metrics().await;
    assert_eq!(
        metrics.value(
            "ficus_webhook_events_total",
            &[("route", "orders"), ("result", "delivered")]
        ),
        1.0
    );
    let emitted = [
        ("route", "orders"),
        ("truncated", "no"),
        ("key_missing", "no"),
    ];
    assert_eq!(metrics.value("ficus_webhook_emitted_total", &emitted), 1.0);
}

#[tokio::test]
async fn the_legacy_app_is_never_told_about_its_own_writes() {
    if skip() {
        return;
    }
    let receiver = Upstream::builder("receiver")
        .app(|_| Answer::json("{}"))
        .start()
        .await;
    let (ficus, legacy, _orders) = start(&receiver).await;
    // The route's upstream is proxy.default: by default it emits nothing.
    let resp = post(&ficus, "/legacy/orders", r#"{"customer": "c-1"}"#).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(legacy.hits(), 1);
    // Then a write that does emit: the only event the outbox ever holds.
    assert_eq!(
        post(&ficus, "/orders", r#"{"customer": "c-2"}"#)
            .await
            .status(),
        201
    );
    let got = receiver.next_request().await;
    let event: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(event["data"]["route"], "orders");
    let w = webhooks_json(&ficus).await;
    assert_eq!(w["routes"]["legacy-orders"]["pending"], 0, "{w}");
    assert_eq!(w["routes"]["legacy-orders"]["delivered"], 0, "{w}");
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_the_same_id_and_a_410_is_dead_until_replayed() {
    if skip() {
        return;
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    // 500 first, then 204; for the customer "gone", always 410.
    let receiver = Upstream::builder("receiver")
        .app(move |seen| {
            let body = String::from_utf8_lossy(&seen.body);
            let n = c.fetch_add(1, Ordering::SeqCst);
            let status = if body.contains("\"gone\"") && n < 4 {
                410
            } else if n == 0 {
                500
            } else {
                204
            };
            let mut a = Answer::json("");
            a.status = status;
            a
        })
        .start()
        .await;
    let (ficus, _legacy, _orders) = start(&receiver).await;
    assert_eq!(
        post(&ficus, "/orders", r#"{"customer": "c-1"}"#)
            .await
            .status(),
        201
    );
    let first = receiver.next_request().await;
    let second = receiver.next_request().await;
    assert_eq!(first.header("webhook-id"), second.header("webhook-id"));
    verify(&second);

    assert_eq!(
        post(&ficus, "/orders", r#"{"customer": "gone"}"#)
            .await
            .status(),
        201
    );
    let gone = receiver.next_request().await;
    let id = gone.header("webhook-id").unwrap().to_string();
    let dead = eventually("the dead event", || async {
        let d = ficus.admin_json("/api/webhooks/dead").await;
        if d["dead"].as_array().is_some_and(|l| !l.is_empty()) {
            Ok(d)
        } else {
            Err(d.to_string())
        }
    })
    .await;
    assert_eq!(dead["dead"][0]["id"], id.as_str());
    assert_eq!(
        dead["dead"][0]["attempts"], 1,
        "410 is dead at once: {dead}"
    );
    assert!(dead["dead"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("410"));

    let replay = ficus
        .admin(reqwest::Method::POST, &format!("/api/webhooks/{id}/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    // Still 410 on the replay (the receiver's fourth call), then a replay of all the route's dead.
    let again = receiver.next_request().await;
    assert_eq!(again.header("webhook-id"), Some(id.as_str()));
    eventually("dead again", || async {
        let d = ficus.admin_json("/api/webhooks/dead").await;
        if d["dead"].as_array().is_some_and(|l| l.len() == 1) {
            Ok(())
        } else {
            Err(d.to_string())
        }
    })
    .await;
    let r = ficus
        .admin(
            reqwest::Method::POST,
            "/api/webhooks/dead/replay?route=orders",
        )
        .send()
        .await
        .unwrap();
    let r: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(r["replayed"], 1);
    assert_eq!(
        receiver.next_request().await.header("webhook-id"),
        Some(id.as_str())
    );
    eventually("delivered after the replay", || async {
        let w = webhooks_json(&ficus).await;
        if w["delivered"] == 2 && w["dead"] == 0 {
            Ok(())
        } else {
            Err(w.to_string())
        }
    })
    .await;
}

#[tokio::test]
async fn a_failing_event_holds_back_its_own_key_only() {
    if skip() {
        return;
    }
    let failed_once = Arc::new(AtomicUsize::new(0));
    let f = failed_once.clone();
    // The first delivery for customer "a" fails once.
    let receiver = Upstream::builder("receiver")
        .app(move |seen| {
            let body = String::from_utf8_lossy(&seen.body).into_owned();
            let mut a = Answer::json("");
            if body.contains("\"n\":1") && f.fetch_add(1, Ordering::SeqCst) == 0 {
                a.status = 503;
            } else {
                a.status = 200;
            }
            a
        })
        .start()
        .await;
    let (ficus, _legacy, _orders) = start(&receiver).await;
    for body in [
        r#"{"customer": "a", "n":1}"#,
        r#"{"customer": "a", "n":2}"#,
        r#"{"customer": "b", "n":3}"#,
    ] {
        assert_eq!(post(&ficus, "/orders", body).await.status(), 201);
    }
    let mut order = Vec::new();
    while order.len() < 4 {
        let seen = receiver.next_request().await;
        let event: Value = serde_json::from_slice(&seen.body).unwrap();
        order.push(event["data"]["request"]["body"]["n"].as_u64().unwrap());
    }
    // n=1 failed and was retried before n=2 (same key); n=3 (another key) did not wait for it.
    let pos = |n| order.iter().rposition(|x| *x == n).unwrap();
    assert!(pos(1) < pos(2), "{order:?}");
    assert_eq!(order.iter().filter(|n| **n == 2).count(), 1, "{order:?}");
    assert!(
        order.iter().position(|x| *x == 3).unwrap() < pos(2),
        "{order:?}"
    );
}

#[tokio::test]
async fn a_paused_route_keeps_recording_and_delivers_once_resumed() {
    if skip() {
        return;
    }
    let receiver = Upstream::builder("receiver")
        .app(|_| Answer::json("{}"))
        .start()
        .await;
    let (ficus, _legacy, _orders) = start(&receiver).await;
    let paused = ficus
        .admin(reqwest::Method::POST, "/api/webhooks/pause?route=orders")
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), 200);
    assert_eq!(
        post(&ficus, "/orders", r#"{"customer": "c-1"}"#)
            .await
            .status(),
        201
    );
    let w = webhooks_json(&ficus).await;
    assert_eq!(
        (
            w["routes"]["orders"]["pending"].as_u64(),
            w["routes"]["orders"]["paused"].as_bool()
        ),
        (Some(1), Some(true)),
        "{w}"
    );
    let resumed = ficus
        .admin(reqwest::Method::POST, "/api/webhooks/resume?route=orders")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    receiver.next_request().await;
    assert_eq!(receiver.hits(), 1, "nothing was delivered while paused");
    // Unknown routes are clear errors.
    let unknown = ficus
        .admin(reqwest::Method::POST, "/api/webhooks/pause?route=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn webhooks_need_the_h1_engine() {
    std::env::set_var("FICUS_TEST_WEBHOOK_SECRET", SECRET);
    let receiver = Upstream::builder("receiver").start().await;
    let legacy = Upstream::builder("legacy").start().await;
    let orders = Upstream::builder("orders").start().await;
    let text = with_urls(TABLE, &[&legacy, &orders, &receiver])
        .replace("[proxy]\n", "[proxy]\nengine = \"pingora\"\n");
    let table = ficus::config::load_str(&text, "routes.toml").expect("a valid table");
    let Err(e) = ficus::server::build(table, None, false, ficus::server::Host::Shared) else {
        panic!("a webhook table started under Pingora's engine");
    };
    assert!(
        format!("{e:#}").contains("webhooks need engine = \"h1\""),
        "{e:#}"
    );
}

#[tokio::test]
async fn a_write_whose_answer_never_reached_the_client_still_emits() {
    if skip() {
        return;
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    std::env::set_var("FICUS_TEST_WEBHOOK_SECRET", SECRET);
    let receiver = Upstream::builder("receiver")
        .app(|_| Answer::json("{}"))
        .start()
        .await;
    let legacy = Upstream::builder("legacy").app(orders_app).start().await;
    // The new service makes the write, then answers with a body far larger than any socket buffer.
    let orders = Upstream::builder("orders")
        .app(|_| {
            let mut a = Answer::json(format!(
                r#"{{"customer": "c-9", "pad": "{}"}}"#,
                "x".repeat(8 << 20)
            ));
            a.status = 201;
            a
        })
        .start()
        .await;
    let ficus = Served::start(&with_urls(TABLE, &[&legacy, &orders, &receiver])).await;
    let mut s = tokio::net::TcpStream::connect(ficus.settings.listen)
        .await
        .unwrap();
    let body = r#"{"customer": "c-9"}"#;
    let req = format!(
        "POST /orders HTTP/1.1\r\nHost: a\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 201");
    // The client leaves with most of the answer unread.
    drop(s);
    let got = receiver.next_request().await;
    verify(&got);
    let event: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(event["data"]["request"]["body"]["customer"], "c-9");
    assert_eq!(event["data"]["response"]["status"], 201);
    assert_eq!(
        event["data"]["truncated"], true,
        "the answer was not read whole: {event}"
    );
}

#[tokio::test]
async fn a_request_a_plugin_answers_is_not_sent_upstream_shadowed_or_emitted() {
    if skip() {
        return;
    }
    // The orders route, rate-limited per x-key to one request an hour, and shadowed.
    let table = TABLE
        .replacen(
            "methods = [\"POST\"]\nupstream = \"orders\"\n",
            "methods = [\"POST\"]\nupstream = \"orders\"\nplugins = [\"limit\"]\n\n  \
             [routes.shadow]\n  upstream = \"shadow\"\n  percent = 100\n  methods = [\"POST\"]\n",
            1,
        )
        .replace(
            "[upstreams.orders]",
            "[upstreams.shadow]\nurl = \"${shadow}\"\n\n[plugins.limit]\nuse = \"rate_limit\"\n\
             key = \"header:x-key\"\nrate = \"1/h\"\nburst = 1\n\n[upstreams.orders]",
        );
    assert!(table.contains("plugins = [\"limit\"]"), "{table}");
    std::env::set_var("FICUS_TEST_WEBHOOK_SECRET", SECRET);
    let receiver = Upstream::builder("receiver")
        .app(|_| Answer::json("{}"))
        .start()
        .await;
    let legacy = Upstream::builder("legacy").app(orders_app).start().await;
    let orders = Upstream::builder("orders").app(orders_app).start().await;
    let shadow = Upstream::builder("shadow").app(orders_app).start().await;
    let ficus = Served::start(&with_urls(&table, &[&legacy, &orders, &receiver, &shadow])).await;
    let send = |key: &'static str, customer: &'static str| {
        ficus
            .http
            .post(ficus.url("/orders"))
            .header("x-key", key)
            .header("content-type", "application/json")
            .body(format!(r#"{{"customer": "{customer}"}}"#))
            .send()
    };
    let outbox = |w: &Value| w["pending"].as_u64().unwrap() + w["delivered"].as_u64().unwrap();

    let first = send("a", "c-1").await.expect("first request");
    assert_eq!(first.status(), 201);
    assert_eq!(outbox(&webhooks_json(&ficus).await), 1);

    let refused = send("a", "c-2").await.expect("second request");
    assert_eq!(refused.status(), 429, "over the limit");
    let refused_id = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    // An event is committed before its answer goes out: none was, for the refused request.
    assert_eq!(orders.hits(), 1, "the refused request never went upstream");
    let w = webhooks_json(&ficus).await;
    assert_eq!(outbox(&w), 1, "no event for the refused request: {w}");

    let third = send("b", "c-3").await.expect("third request");
    assert_eq!(third.status(), 201);
    // The shadow gets the first and the third request's copies, sent after each was answered;
    // the refused one, answered between them, has none.
    let copies = [shadow.next_request().await, shadow.next_request().await];
    let ids: Vec<&str> = copies
        .iter()
        .filter_map(|s| s.header("x-request-id"))
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(
        !ids.contains(&refused_id.as_str()),
        "{ids:?} has {refused_id}"
    );
    let customers: Vec<String> = copies
        .iter()
        .map(|s| String::from_utf8_lossy(&s.body).into_owned())
        .collect();
    assert!(
        customers.iter().all(|b| !b.contains("c-2")),
        "{customers:?}"
    );
    assert_eq!(
        ficus.metrics().await.value(
            "ficus_plugin_responses_total",
            &[("route", "orders"), ("plugin", "limit"), ("status", "429")]
        ),
        1.0
    );
    assert_eq!(outbox(&webhooks_json(&ficus).await), 2);
}
