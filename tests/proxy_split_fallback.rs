//! Weighted sticky splits and fallback (CONTRACT section 2): a split sends its share of users to
//! each side and keeps every user on one side; a route whose upstream fails replays the request
//! to its fallback when the method allows it.

mod support;

use futures_util::StreamExt;
use reqwest::StatusCode;

use support::{body_hash, client, closed_url, served_by, Echoed, Ficus, Upstream};

const USERS: usize = 2000;

fn split_table(sticky: &str) -> String {
    format!(
        r#"
[proxy]
default = "legacy"

[upstreams.legacy]
url = "${{legacy}}"

[upstreams.orders]
url = "${{orders}}"

[[routes]]
name = "orders-canary"
path = "/api/orders"
split = {{ orders = 10, legacy = 90 }}
sticky = "{sticky}"
"#
    )
}

/// Sends every user's request twice and returns, per user, the two sides that answered.
async fn ask_every_user_twice(
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> Vec<(String, String)> {
    futures_util::stream::iter(0..USERS)
        .map(|user| {
            let first = request(user);
            let second = request(user);
            async move {
                let a = served_by(&first.send().await.expect("first request"));
                let b = served_by(&second.send().await.expect("second request"));
                (a, b)
            }
        })
        .buffered(16)
        .collect()
        .await
}

/// The share of users that reached `orders` is 10% within 3 points, every user stayed on one
/// side, and the upstreams' own counters agree with what the clients saw.
fn assert_sticky_ten_percent(sides: &[(String, String)], orders: &Upstream, legacy: &Upstream) {
    for (user, (a, b)) in sides.iter().enumerate() {
        assert!(
            a == "orders" || a == "legacy",
            "user {user} answered by {a}"
        );
        assert_eq!(a, b, "user {user} moved between sides");
    }
    let to_orders = sides.iter().filter(|(a, _)| a == "orders").count();
    let share = to_orders as f64 / USERS as f64;
    assert!(
        (0.07..=0.13).contains(&share),
        "share of users on orders: {share:.3}"
    );
    assert_eq!(orders.hits(), 2 * to_orders);
    assert_eq!(legacy.hits(), 2 * (USERS - to_orders));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_sticky_split_sends_ten_percent_of_users_and_keeps_each_on_one_side() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let orders = Upstream::builder("orders").echo().start().await;
    let ficus = Ficus::start(
        &split_table("header:x-user-id"),
        &[legacy.var(), orders.var()],
    )
    .await;
    let c = client();
    let url = ficus.url("/api/orders");
    let sides = ask_every_user_twice(|user| {
        c.post(&url)
            .header("x-user-id", format!("user-{user}"))
            .body("{}")
    })
    .await;
    assert_sticky_ten_percent(&sides, &orders, &legacy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_sticky_split_sends_ten_percent_of_users_and_keeps_each_on_one_side() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let orders = Upstream::builder("orders").echo().start().await;
    let ficus = Ficus::start(&split_table("cookie:uid"), &[legacy.var(), orders.var()]).await;
    let c = client();
    let url = ficus.url("/api/orders");
    let sides = ask_every_user_twice(|user| {
        c.get(&url)
            .header("cookie", format!("theme=dark; uid=u{user}x"))
    })
    .await;
    assert_sticky_ten_percent(&sides, &orders, &legacy);
}

/// `orders` is `orders_url`; `/api/orders/*` goes there and falls back to legacy; `/unsafe/*`
/// likewise with `fallback_unsafe = true`.
fn fallback_table(read_timeout: Option<&str>) -> String {
    let timeout = read_timeout
        .map(|t| format!("read_timeout = \"{t}\""))
        .unwrap_or_default();
    format!(
        r#"
[proxy]
default = "legacy"

[upstreams.legacy]
url = "${{legacy}}"

[upstreams.orders]
url = "${{orders}}"
{timeout}

[[routes]]
name = "orders"
path = "/api/orders/*"
upstream = "orders"
fallback = "legacy"

[[routes]]
name = "orders-writes"
path = "/unsafe/*"
upstream = "orders"
fallback = "legacy"
fallback_unsafe = true
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_falls_back_when_the_upstream_refuses_connections() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let ficus = Ficus::start(
        &fallback_table(None),
        &[legacy.var(), ("orders", closed_url())],
    )
    .await;
    let resp = client()
        .get(ficus.url("/api/orders/7?x=1"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(served_by(&resp), "legacy");
    let echoed = Echoed::parse(&resp.bytes().await.expect("body"));
    assert_eq!(
        (echoed.method.as_str(), echoed.path.as_str()),
        ("GET", "/api/orders/7")
    );
    assert_eq!(echoed.query.as_deref(), Some("x=1"));
    assert_eq!(legacy.hits(), 1);
}

/// With `urls = [...]`, a connect failure on one endpoint is retried on the next one (nothing was
/// sent, so even a POST is safe), before any fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_endpoint_is_retried_on_the_next_one_before_falling_back() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let orders = Upstream::builder("orders").echo().start().await;
    let table = r#"
[proxy]
default = "legacy"
[upstreams.legacy]
url = "${legacy}"
[upstreams.orders]
urls = ["${dead}", "${orders}"]
[[routes]]
name = "orders"
path = "/api/orders/*"
upstream = "orders"
fallback = "legacy"
"#;
    let ficus = Ficus::start(table, &[legacy.var(), orders.var(), ("dead", closed_url())]).await;
    for i in 0..6 {
        let resp = client()
            .post(ficus.url(&format!("/api/orders/{i}")))
            .body("{}")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(served_by(&resp), "orders", "request {i}");
    }
    assert_eq!(
        legacy.hits(),
        0,
        "the live endpoint answered; no fallback was needed"
    );
}

/// A split side that is also the route's fallback is not asked twice: its own 503 goes to the
/// client, since a replay would only ask the failing upstream again. Whichever side a request
/// lands on (orders is down, so its requests fall back to legacy), legacy sees it exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_fallback_upstream_is_not_replayed_to_itself() {
    let legacy = Upstream::builder("legacy").status(503).start().await;
    let table = r#"
[proxy]
default = "legacy"
[upstreams.legacy]
url = "${legacy}"
[upstreams.orders]
url = "${orders}"
[[routes]]
name = "split"
path = "/s"
split = { legacy = 100, orders = 1 }
fallback = "legacy"
"#;
    let ficus = Ficus::start(table, &[legacy.var(), ("orders", closed_url())]).await;
    for i in 1..=5 {
        let resp = client().get(ficus.url("/s")).send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(legacy.hits(), i, "request {i} reached legacy once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_does_not_fall_back_without_fallback_unsafe() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let ficus = Ficus::start(
        &fallback_table(None),
        &[legacy.var(), ("orders", closed_url())],
    )
    .await;
    let resp = client()
        .post(ficus.url("/api/orders/7"))
        .header("content-type", "application/json")
        .body(r#"{"qty":1}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        legacy.hits(),
        0,
        "a POST was replayed without fallback_unsafe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_falls_back_with_fallback_unsafe_and_the_whole_body_is_replayed() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let ficus = Ficus::start(
        &fallback_table(None),
        &[legacy.var(), ("orders", closed_url())],
    )
    .await;
    let body: Vec<u8> = (0..20_000u32)
        .flat_map(|i| i.to_le_bytes())
        .take(30_000)
        .collect();
    let resp = client()
        .post(ficus.url("/unsafe/orders"))
        .header("content-type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(served_by(&resp), "legacy");
    let echoed = Echoed::parse(&resp.bytes().await.expect("body"));
    assert_eq!(echoed.method, "POST");
    assert_eq!(echoed.body_len, body.len());
    assert_eq!(echoed.body_hash, body_hash(&body));
    assert_eq!(legacy.hits(), 1);
}

/// GET /api/orders/7 on the fallback route whose upstream answers `status`: the response, the
/// two upstreams, and ficus (kept alive until the caller has read the body).
async fn get_with_orders_answering(status: u16) -> (reqwest::Response, Upstream, Upstream, Ficus) {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let orders = Upstream::builder("orders").status(status).start().await;
    let ficus = Ficus::start(&fallback_table(None), &[legacy.var(), orders.var()]).await;
    let resp = client()
        .get(ficus.url("/api/orders/7"))
        .send()
        .await
        .expect("send");
    (resp, legacy, orders, ficus)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_falls_back_when_the_upstream_answers_503() {
    let (resp, legacy, orders, _ficus) = get_with_orders_answering(503).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(served_by(&resp), "legacy");
    let echoed = Echoed::parse(&resp.bytes().await.expect("body"));
    assert_eq!(echoed.path, "/api/orders/7");
    assert_eq!((orders.hits(), legacy.hits()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_from_the_upstream_is_not_a_reason_to_fall_back() {
    let (resp, legacy, _orders, _ficus) = get_with_orders_answering(404).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(served_by(&resp), "orders");
    assert_eq!(resp.text().await.expect("body"), "orders answers 404\n");
    assert_eq!(legacy.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_falls_back_when_the_upstream_does_not_answer_in_time() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let orders = Upstream::builder("orders").hang().start().await;
    let ficus = Ficus::start(
        &fallback_table(Some("300ms")),
        &[legacy.var(), orders.var()],
    )
    .await;
    let resp = client()
        .get(ficus.url("/api/orders/7"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(served_by(&resp), "legacy");
    assert_eq!((orders.hits(), legacy.hits()), (1, 1));
}

/// A response that has started to reach the client is never replayed: the upstream sends its
/// header and part of its body, then drops the connection. The client gets that truncated
/// response, and the fallback never sees the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_reached_the_client_is_never_replayed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let legacy = Upstream::builder("legacy").echo().start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let orders = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nx-served-by: orders\r\n\r\npartial",
                )
                .await;
            // Dropping the connection cuts the body short.
        }
    });
    let ficus = Ficus::start(&fallback_table(None), &[legacy.var(), ("orders", orders)]).await;
    let resp = client()
        .get(ficus.url("/api/orders/7"))
        .send()
        .await
        .expect("the response head arrives");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(served_by(&resp), "orders");
    assert!(
        resp.bytes().await.is_err(),
        "the body is cut short, as the upstream cut it"
    );
    assert_eq!(legacy.hits(), 0, "nothing was replayed to the fallback");
}

/// A body larger than the 64 KiB replay buffer cannot be replayed: with `fallback_unsafe`, a
/// small POST whose upstream answers 503 is replayed to the fallback, a 1 MiB one is not (the
/// client gets the upstream's 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bodies_that_fit_the_replay_buffer_are_replayed() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let orders = Upstream::builder("orders").echo().start().await;
    let ficus = Ficus::start(&fallback_table(None), &[legacy.var(), orders.var()]).await;
    let post = |body: Vec<u8>| {
        client()
            .post(ficus.url("/unsafe/upload"))
            // The echo upstream reads the whole body, then answers with this status.
            .header("x-echo-status", "503")
            .body(body)
            .send()
    };
    let small = post(vec![b'a'; 1024]).await.expect("send");
    assert_eq!(served_by(&small), "legacy", "a 1 KiB body is replayed");
    assert_eq!(legacy.hits(), 1);

    let large = post(vec![b'b'; 1024 * 1024]).await.expect("send");
    assert_eq!(large.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(served_by(&large), "orders", "a 1 MiB body is not replayed");
    assert_eq!(legacy.hits(), 1, "the fallback saw only the small body");
}
