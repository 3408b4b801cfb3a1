//! A route's filter chain on the wire: a filter that answers itself keeps the request from its
//! upstream and is counted and logged as the answerer; the per-attempt phase runs again on a
//! fallback with that attempt; body hooks see every byte each way; the request-end hook hears how
//! the request ended. The filters here are the tests' own, put in a route's chain through the
//! `ficus-plugin` interface, exactly as a plugin crate would be.

#[path = "support/admin.rs"]
mod admin_support;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ficus::filters::FilterChain;
use ficus::routing::RouteTable;
use ficus_plugin::http::{header, HeaderName, HeaderValue, StatusCode as Status};
use ficus_plugin::{
    Attempt, BoxFuture, Bytes, Filter, FilterCtx, FilterError, Flow, Hooks, RequestEnd,
    RequestHead, Response,
};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use admin_support::Scrape;
use support::{client, served_by, Echoed, Ficus, Upstream};

const TABLE: &str = r#"
[proxy]
default = "legacy"

[upstreams.legacy]
url = "${legacy}"

[upstreams.orders]
url = "${orders}"

[[routes]]
name = "orders"
path = "/api/orders/{id}"
upstream = "orders"
fallback = "legacy"
"#;

/// Puts `filters` after the built-ins of route 0.
fn with_filters(filters: Vec<Arc<dyn Filter>>) -> impl Fn(&mut RouteTable) + Send + 'static {
    move |table: &mut RouteTable| {
        table.routes[0].action.filters = FilterChain::with_plugins(filters.clone());
    }
}

/// Answers 401 to a request without `authorization`.
struct Gate;

impl Filter for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }
    fn on_request(&self, req: &mut dyn RequestHead, _cx: &mut FilterCtx) -> Flow {
        if req.headers().contains_key(header::AUTHORIZATION) {
            return Flow::Continue;
        }
        let mut answer = Response::new(Status::UNAUTHORIZED).with_body("text/plain", "no token\n");
        answer
            .headers
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Flow::Respond(answer)
    }
}

async fn upstreams() -> (Upstream, Upstream) {
    (
        Upstream::builder("legacy").echo().start().await,
        Upstream::builder("orders").echo().start().await,
    )
}

#[tokio::test]
async fn a_filter_that_answers_keeps_the_request_from_every_upstream_and_is_counted() {
    let (legacy, orders) = upstreams().await;
    let ficus = Ficus::start_edited(
        TABLE,
        &[("legacy", legacy.base()), ("orders", orders.base())],
        with_filters(vec![Arc::new(Gate)]),
    )
    .await;

    let refused = client()
        .post(ficus.url("/api/orders/7"))
        .body("{\"item\":\"book\"}")
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    assert!(
        refused.headers().contains_key("x-request-id"),
        "the built-ins' response phase ran on the filter's answer"
    );
    assert_eq!(refused.text().await.expect("body"), "no token\n");
    assert_eq!(
        (orders.hits(), legacy.hits()),
        (0, 0),
        "nothing went upstream"
    );

    let allowed = client()
        .get(ficus.url("/api/orders/7"))
        .bearer_auth("t")
        .send()
        .await
        .expect("request");
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(served_by(&allowed), "orders");

    let scrape = Scrape::parse(&ficus.metrics_text());
    assert_eq!(
        scrape.value(
            "ficus_plugin_responses_total",
            &[("route", "orders"), ("plugin", "gate"), ("status", "401")]
        ),
        1.0
    );
    assert_eq!(
        scrape.value(
            "ficus_requests_total",
            &[("route", "orders"), ("upstream", ""), ("status", "401")]
        ),
        1.0
    );
}

/// Tags each attempt with its upstream and whether it is the fallback, and records the route's
/// template parameter it was given.
struct Tag {
    params: Mutex<Vec<String>>,
}

impl Filter for Tag {
    fn name(&self) -> &str {
        "tag"
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST | Hooks::UPSTREAM_REQUEST
    }
    fn on_request(&self, _req: &mut dyn RequestHead, cx: &mut FilterCtx) -> Flow {
        if let Ok(mut seen) = self.params.lock() {
            seen.push(format!("{:?}", cx.param("id")));
        }
        Flow::Continue
    }
    fn on_upstream_request(
        &self,
        req: &mut dyn RequestHead,
        attempt: &Attempt,
        _cx: &mut FilterCtx,
    ) -> Result<(), FilterError> {
        let tag = format!("{}/{}", attempt.upstream, attempt.fallback);
        let value = HeaderValue::from_str(&tag).map_err(|e| FilterError(e.to_string()))?;
        req.insert_header(HeaderName::from_static("x-attempt"), value);
        Ok(())
    }
}

#[tokio::test]
async fn the_per_attempt_phase_runs_again_for_the_fallback() {
    let (legacy, orders) = upstreams().await;
    let tag = Arc::new(Tag {
        params: Mutex::new(Vec::new()),
    });
    let ficus = Ficus::start_edited(
        TABLE,
        &[("legacy", legacy.base()), ("orders", orders.base())],
        with_filters(vec![tag.clone()]),
    )
    .await;

    // orders echoes with status 503, so the GET is replayed to legacy.
    let resp = client()
        .get(ficus.url("/api/orders/42"))
        .header(support::ECHO_STATUS, "503")
        .send()
        .await
        .expect("request");
    assert_eq!(served_by(&resp), "legacy");
    let echoed = Echoed::parse(&resp.bytes().await.expect("body"));
    assert_eq!(
        echoed.headers["x-attempt"],
        ["legacy/true"],
        "the fallback attempt was tagged as such, once"
    );
    assert_eq!(orders.hits(), 1);
    let seen = tag.params.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(
        seen,
        ["Some(\"42\")"],
        "the request phase ran once, with {{id}}"
    );
}

/// Counts body bytes each way and reports, at the request's end, what it saw.
struct Meter {
    up: AtomicUsize,
    down: AtomicUsize,
    ends: mpsc::UnboundedSender<(u16, Option<String>, usize, usize)>,
}

impl Filter for Meter {
    fn name(&self) -> &str {
        "meter"
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_BODY | Hooks::RESPONSE_BODY | Hooks::REQUEST_END
    }
    fn on_request_body(&self, chunk: Option<&Bytes>, _end: bool, _cx: &mut FilterCtx) {
        self.up
            .fetch_add(chunk.map_or(0, |c| c.len()), Ordering::Relaxed);
    }
    fn on_response_body(&self, chunk: Option<&Bytes>, _end: bool, _cx: &mut FilterCtx) {
        self.down
            .fetch_add(chunk.map_or(0, |c| c.len()), Ordering::Relaxed);
    }
    fn on_request_end<'a>(
        &'a self,
        end: &'a RequestEnd,
        _cx: &'a mut FilterCtx,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self.ends.send((
                end.status,
                end.upstream.clone(),
                self.up.swap(0, Ordering::Relaxed),
                self.down.swap(0, Ordering::Relaxed),
            ));
        })
    }
}

#[tokio::test]
async fn body_hooks_see_every_byte_and_the_end_hook_hears_the_outcome() {
    let (legacy, orders) = upstreams().await;
    let (tx, mut ends) = mpsc::unbounded_channel();
    let meter = Arc::new(Meter {
        up: AtomicUsize::new(0),
        down: AtomicUsize::new(0),
        ends: tx,
    });
    let ficus = Ficus::start_edited(
        TABLE,
        &[("legacy", legacy.base()), ("orders", orders.base())],
        with_filters(vec![meter]),
    )
    .await;

    let body = vec![b'x'; 200_000];
    let resp = client()
        .post(ficus.url("/api/orders/1"))
        .body(body.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let answer = resp.bytes().await.expect("body");
    assert_eq!(Echoed::parse(&answer).body_len, body.len());

    let (status, upstream, up, down) = ends.recv().await.expect("the end hook ran");
    assert_eq!(status, 200);
    assert_eq!(upstream.as_deref(), Some("orders"));
    assert_eq!(up, body.len(), "every request body byte passed the hook");
    assert_eq!(
        down,
        answer.len(),
        "every response body byte passed the hook"
    );
}

/// The `respond` plugin, configured in the table: `[proxy] plugins` run on every request (also
/// those that match no route), a route's own after them.
#[tokio::test]
async fn plugins_from_the_table_run_in_order_proxy_level_first() {
    let (legacy, orders) = upstreams().await;
    let table = r#"
[proxy]
default = "legacy"
plugins = []

[plugins.retired]
use = "respond"
status = 410
body = "orders v1 is retired\n"
headers = { "cache-control" = "no-store" }

[upstreams.legacy]
url = "${legacy}"

[upstreams.orders]
url = "${orders}"

[[routes]]
name = "orders-v1"
path = "/api/v1/orders/*"
upstream = "orders"
plugins = ["retired"]
"#;
    let ficus = Ficus::start(
        table,
        &[("legacy", legacy.base()), ("orders", orders.base())],
    )
    .await;
    let gone = client()
        .get(ficus.url("/api/v1/orders/7"))
        .send()
        .await
        .expect("request");
    assert_eq!(gone.status(), StatusCode::GONE);
    assert_eq!(gone.headers()["cache-control"], "no-store");
    assert!(gone.headers().contains_key("x-request-id"));
    assert_eq!(gone.text().await.expect("body"), "orders v1 is retired\n");
    assert_eq!(orders.hits(), 0);
    let other = client()
        .get(ficus.url("/elsewhere"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        served_by(&other),
        "legacy",
        "routes without the plugin are untouched"
    );

    let scrape = Scrape::parse(&ficus.metrics_text());
    assert_eq!(
        scrape.value(
            "ficus_plugin_responses_total",
            &[
                ("route", "orders-v1"),
                ("plugin", "retired"),
                ("status", "410")
            ]
        ),
        1.0
    );

    // A proxy-level instance answers even requests that match no route.
    let maintenance = table
        .replace("plugins = []", "plugins = [\"retired\"]")
        .replace(
            "upstream = \"orders\"\nplugins = [\"retired\"]",
            "upstream = \"orders\"",
        );
    let ficus = Ficus::start(
        &maintenance,
        &[("legacy", legacy.base()), ("orders", orders.base())],
    )
    .await;
    let resp = client()
        .get(ficus.url("/elsewhere"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::GONE);
    assert_eq!(
        legacy.hits(),
        1,
        "only the first instance's request reached legacy"
    );
}

/// Holds the response's end until released, and says when it started holding it: what a webhook
/// does while it commits its event.
struct HoldEnd {
    holding: mpsc::UnboundedSender<()>,
    release: Arc<Notify>,
}

impl Filter for HoldEnd {
    fn name(&self) -> &str {
        "hold-end"
    }
    fn hooks(&self) -> Hooks {
        Hooks::RESPONSE_END
    }
    fn on_response_end<'a>(
        &'a self,
        _cx: &'a mut FilterCtx,
    ) -> BoxFuture<'a, Result<(), FilterError>> {
        Box::pin(async move {
            let _ = self.holding.send(());
            self.release.notified().await;
            Ok(())
        })
    }
}

/// A response-end hook that fails, as a webhook filter whose outbox cannot be written does.
struct FailEnd;

impl Filter for FailEnd {
    fn name(&self) -> &str {
        "fail-end"
    }
    fn hooks(&self) -> Hooks {
        Hooks::RESPONSE_END
    }
    fn on_response_end<'a>(
        &'a self,
        _cx: &'a mut FilterCtx,
    ) -> BoxFuture<'a, Result<(), FilterError>> {
        Box::pin(std::future::ready(Err(FilterError(
            "the outbox is full".into(),
        ))))
    }
}

/// Everything the socket has right now, without waiting for more.
fn available(s: &TcpStream, into: &mut Vec<u8>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = s.try_read(&mut buf) {
        if n == 0 {
            break;
        }
        into.extend_from_slice(&buf[..n]);
    }
}

/// The body length a response's head announces, and the body bytes received so far.
fn announced_and_received(resp: &[u8]) -> Option<(usize, usize)> {
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&resp[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))?
        .trim()
        .parse()
        .ok()?;
    Some((length, resp.len() - end))
}

#[tokio::test]
async fn the_response_end_hook_runs_before_the_client_has_the_whole_answer() {
    if support::engine_is_pingora() {
        return; // Pingora's body filters are synchronous: it has no such hook.
    }
    let (legacy, orders) = upstreams().await;
    let created = Upstream::builder("created").status(204).start().await;
    let (tx, mut holding) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let hold: Arc<dyn Filter> = Arc::new(HoldEnd {
        holding: tx,
        release: release.clone(),
    });
    let table = TABLE.replace(
        "[[routes]]",
        "[upstreams.created]\nurl = \"${created}\"\n\n[[routes]]\nname = \"created\"\npath = \"/api/created\"\nupstream = \"created\"\n\n[[routes]]",
    );
    let ficus = Ficus::start_edited(
        &table,
        &[
            ("legacy", legacy.base()),
            ("orders", orders.base()),
            ("created", created.base()),
        ],
        move |t: &mut RouteTable| {
            for route in &mut t.routes {
                route.action.filters = FilterChain::with_plugins(vec![hold.clone()]);
            }
        },
    )
    .await;

    // A response with a body: its last bytes wait for the hook.
    let mut s = TcpStream::connect(ficus.addr).await.expect("connect");
    s.write_all(b"GET /api/orders/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    holding.recv().await.expect("the hook ran");
    let mut got = Vec::new();
    available(&s, &mut got);
    if let Some((length, received)) = announced_and_received(&got) {
        assert!(
            received < length,
            "the whole body ({length} bytes) reached the client while the hook held its end"
        );
    }
    release.notify_one();
    loop {
        if let Some((length, received)) = announced_and_received(&got) {
            if received >= length {
                assert_eq!(received, length);
                break;
            }
        }
        let mut buf = [0u8; 8192];
        let n = s.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before the whole answer: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }

    // A response without a body (204): its head waits for the hook.
    let mut s = TcpStream::connect(ficus.addr).await.expect("connect");
    s.write_all(b"POST /api/created HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n")
        .await
        .expect("send");
    holding.recv().await.expect("the hook ran");
    let mut early = Vec::new();
    available(&s, &mut early);
    assert!(
        early.is_empty(),
        "a bodiless answer went out while the hook held it: {:?}",
        String::from_utf8_lossy(&early)
    );
    release.notify_one();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.expect("the answer");
    assert_eq!(&head, b"HTTP/1.1 204");
}

#[tokio::test]
async fn a_failed_response_end_never_tells_the_client_the_request_succeeded() {
    if support::engine_is_pingora() {
        return; // Pingora's body filters are synchronous: it has no such hook.
    }
    let (legacy, orders) = upstreams().await;
    let created = Upstream::builder("created").status(204).start().await;
    let table = TABLE.replace(
        "[[routes]]",
        "[upstreams.created]\nurl = \"${created}\"\n\n[[routes]]\nname = \"created\"\npath = \"/api/created\"\nupstream = \"created\"\n\n[[routes]]",
    );
    let fail: Arc<dyn Filter> = Arc::new(FailEnd);
    let ficus = Ficus::start_edited(
        &table,
        &[
            ("legacy", legacy.base()),
            ("orders", orders.base()),
            ("created", created.base()),
        ],
        move |t: &mut RouteTable| {
            for route in &mut t.routes {
                route.action.filters = FilterChain::with_plugins(vec![fail.clone()]);
            }
        },
    )
    .await;
    // Without a body: nothing went out yet, so the client hears 503.
    let resp = client()
        .post(ficus.url("/api/created"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    // With a body: the head is out, so the body is cut short and the connection closes.
    let mut s = TcpStream::connect(ficus.addr).await.expect("connect");
    s.write_all(b"GET /api/orders/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.expect("read until the close");
    let (length, received) = announced_and_received(&got).expect("a head with a length");
    assert!(
        received < length,
        "the whole body arrived: {}",
        String::from_utf8_lossy(&got)
    );
}

/// Sets `x-user-id` as a verifying plugin would, replacing whatever the client sent.
struct SetUser(&'static str);

impl Filter for SetUser {
    fn name(&self) -> &str {
        "set-user"
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }
    fn on_request(&self, req: &mut dyn RequestHead, _cx: &mut FilterCtx) -> Flow {
        req.insert_header(
            HeaderName::from_static("x-user-id"),
            HeaderValue::from_static(self.0),
        );
        Flow::Continue
    }
}

#[tokio::test]
async fn a_split_side_is_chosen_from_the_headers_the_request_phase_left() {
    let (legacy, orders) = upstreams().await;
    let table = TABLE.replace(
        "upstream = \"orders\"\nfallback = \"legacy\"",
        "split = { orders = 50, legacy = 50 }\nsticky = \"header:x-user-id\"",
    );
    // Two users on different sides, found with the table's own split.
    let compiled = ficus::config::load_str(
        &table
            .replace("${legacy}", &legacy.base())
            .replace("${orders}", &orders.base()),
        "t.toml",
    )
    .unwrap();
    let ficus::routing::Target::Split(split) = &compiled.routes[0].action.target else {
        panic!("a split");
    };
    let side = |user: &str| {
        let mut h = http::HeaderMap::new();
        h.insert("x-user-id", user.parse().unwrap());
        compiled
            .upstream_name(split.choose(&h, None).upstream)
            .to_string()
    };
    let users: Vec<String> = (0..100).map(|i| format!("user-{i}")).collect();
    let verified = users.iter().find(|u| side(u) == "orders").unwrap().clone();
    let forged = users.iter().find(|u| side(u) == "legacy").unwrap().clone();
    let verified: &'static str = Box::leak(verified.into_boxed_str());
    let ficus = Ficus::start_edited(
        &table,
        &[("legacy", legacy.base()), ("orders", orders.base())],
        with_filters(vec![Arc::new(SetUser(verified))]),
    )
    .await;
    // The client's forged id lands on legacy; the plugin's lands on orders, and decides.
    let resp = client()
        .get(ficus.url("/api/orders/1"))
        .header("x-user-id", forged.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(served_by(&resp), "orders");
}
