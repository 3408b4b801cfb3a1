//! What crosses the proxy (CONTRACT section 4): the same request sent directly to an upstream and
//! through ficus gives the same response, and the upstream sees the same request, except for what
//! ficus adds (x-request-id, x-forwarded-*, traceparent) and removes (hop-by-hop headers).

mod support;

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use support::{body_hash, client, raw_exchange, Echoed, Ficus, Upstream, ECHO_CUSTOM, ECHO_STATUS};

/// One upstream named `app` behind ficus, with no routes: everything goes to the default.
const DEFAULT_ONLY: &str = r#"
[proxy]
default = "app"

[upstreams.app]
url = "${app}"
"#;

async fn echo_behind_ficus() -> (Upstream, Ficus) {
    let app = Upstream::builder("app").echo().start().await;
    let ficus = Ficus::start(DEFAULT_ONLY, &[app.var()]).await;
    (app, ficus)
}

/// A request of the transparency table.
struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Option<Vec<u8>>,
}

impl Case {
    fn new(name: &'static str, method: Method, path: &'static str) -> Case {
        Case {
            name,
            method,
            path,
            headers: Vec::new(),
            body: None,
        }
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Case {
        self.headers.push((name, value));
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Case {
        self.body = Some(body.into());
        self
    }

    async fn send(&self, base: &str) -> Seen {
        let mut req = client().request(self.method.clone(), format!("{base}{}", self.path));
        for (name, value) in &self.headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = &self.body {
            req = req.body(body.clone());
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().expect("ascii header").to_string())
        };
        let content_type = header("content-type");
        let custom = header(ECHO_CUSTOM);
        let served_by = header(support::SERVED_BY);
        let content_length = header("content-length");
        let body = resp.bytes().await.expect("response body").to_vec();
        Seen {
            status,
            content_type,
            custom,
            served_by,
            content_length,
            body,
        }
    }
}

/// What a client sees of a response, minus what legitimately differs.
#[derive(Debug)]
struct Seen {
    status: StatusCode,
    content_type: Option<String>,
    custom: Option<String>,
    served_by: Option<String>,
    content_length: Option<String>,
    body: Vec<u8>,
}

/// The part of what the echo upstream received that must not change across ficus.
#[derive(Debug, PartialEq)]
struct Received {
    method: String,
    path: String,
    query: Option<String>,
    body_len: usize,
    body_hash: String,
    /// Every header the test case set itself (and content-type/length), by name.
    headers: Vec<(String, Option<Vec<String>>)>,
}

fn received(case: &Case, echoed: &Echoed) -> Received {
    let mut names: Vec<String> = case
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.extend(["content-type".to_string(), "content-length".to_string()]);
    names.sort();
    names.dedup();
    Received {
        method: echoed.method.clone(),
        path: echoed.path.clone(),
        query: echoed.query.clone(),
        body_len: echoed.body_len,
        body_hash: echoed.body_hash.clone(),
        headers: names
            .into_iter()
            .map(|n| {
                let v = echoed.headers.get(&n).cloned();
                (n, v)
            })
            .collect(),
    }
}

fn transparency_cases() -> Vec<Case> {
    let mib: Vec<u8> = (0..1024 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    vec![
        Case::new(
            "GET with a query",
            Method::GET,
            "/api/orders?status=open&page=2&q=a%20b",
        ),
        Case::new("HEAD", Method::HEAD, "/api/orders/7"),
        Case::new("POST JSON", Method::POST, "/api/orders")
            .header("content-type", "application/json")
            .body(r#"{"item":"book","qty":2}"#),
        Case::new("PUT", Method::PUT, "/api/orders/7")
            .header("content-type", "text/plain")
            .body("replace me"),
        Case::new("DELETE", Method::DELETE, "/api/orders/7"),
        Case::new("OPTIONS", Method::OPTIONS, "/api/orders"),
        Case::new("PATCH", Method::PATCH, "/api/orders/7")
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"qty":3}"#),
        Case::new("custom headers", Method::GET, "/profile")
            .header("x-custom-one", "alpha")
            .header("x-custom-two", "beta gamma")
            .header("authorization", "Bearer abc.def")
            .header("accept-language", "fr-CH, fr;q=0.9"),
        Case::new("1 MiB upload", Method::POST, "/upload")
            .header("content-type", "application/octet-stream")
            .body(mib),
        Case::new("404 from upstream", Method::GET, "/missing").header(ECHO_STATUS, "404"),
        Case::new("500 from upstream", Method::GET, "/broken").header(ECHO_STATUS, "500"),
        Case::new("503 POST from upstream", Method::POST, "/busy")
            .header(ECHO_STATUS, "503")
            .body("x"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_responses_cross_ficus_unchanged() {
    let (app, ficus) = echo_behind_ficus().await;
    let direct_base = app.base();
    let proxied_base = ficus.url("");
    let cases = transparency_cases();
    for case in &cases {
        let direct = case.send(&direct_base).await;
        let proxied = case.send(&proxied_base).await;
        let name = case.name;
        assert_eq!(direct.status, proxied.status, "{name}: status");
        assert_eq!(
            direct.content_type, proxied.content_type,
            "{name}: content-type"
        );
        assert_eq!(
            direct.custom, proxied.custom,
            "{name}: custom response header"
        );
        assert_eq!(direct.served_by, proxied.served_by, "{name}: x-served-by");
        assert_eq!(
            direct.custom.as_deref(),
            Some("yes"),
            "{name}: the echo answered"
        );
        if case.method == Method::HEAD {
            assert!(
                proxied.body.is_empty(),
                "{name}: a HEAD response has no body"
            );
            // The echo body (and so its length) differs with the headers ficus adds.
            assert_eq!(
                direct.content_length.is_some(),
                proxied.content_length.is_some(),
                "{name}: content-length"
            );
            continue;
        }
        let (d, p) = (Echoed::parse(&direct.body), Echoed::parse(&proxied.body));
        assert_eq!(
            received(case, &d),
            received(case, &p),
            "{name}: what the upstream received"
        );
        if let Some(body) = &case.body {
            assert_eq!(
                p.body_len,
                body.len(),
                "{name}: body length at the upstream"
            );
            assert_eq!(p.body_hash, body_hash(body), "{name}: body at the upstream");
        }
    }
    // Each case reached the upstream twice: once directly, once through ficus.
    assert_eq!(app.hits(), 2 * cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_response_crosses_unchanged() {
    let chunks = vec!["first chunk\n", "second chunk\n", "third and last chunk\n"];
    let app = Upstream::builder("app")
        .chunked(chunks.clone())
        .start()
        .await;
    let ficus = Ficus::start(DEFAULT_ONLY, &[app.var()]).await;
    let case = Case::new("chunked", Method::GET, "/stream");
    let direct = case.send(&app.base()).await;
    let proxied = case.send(&ficus.url("")).await;
    assert_eq!(proxied.status, StatusCode::OK);
    assert_eq!(direct.body, chunks.concat().as_bytes());
    assert_eq!(proxied.body, direct.body);
    assert_eq!(proxied.content_type, direct.content_type);
    assert_eq!(proxied.custom.as_deref(), Some("yes"));
    assert_eq!(direct.content_length, None);
    assert_eq!(
        proxied.content_length, None,
        "a streamed body is not buffered into a length"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_response_reaches_the_client_before_the_upstream_finishes() {
    let gate = Arc::new(Notify::new());
    let app = Upstream::builder("app")
        .gated_chunks(vec!["early\n", "late\n"], gate.clone())
        .start()
        .await;
    let ficus = Ficus::start(DEFAULT_ONLY, &[app.var()]).await;
    let mut resp = client()
        .get(ficus.url("/stream"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    // The upstream holds back "late" until the client has read "early" through ficus.
    let first = resp
        .chunk()
        .await
        .expect("first chunk")
        .expect("a first chunk");
    assert_eq!(&first[..], b"early\n");
    gate.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = resp.chunk().await.expect("next chunk") {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"late\n");
}

/// A chunked request's trailers follow its body upstream, except those that would restate a head
/// field (an identity the client could not set in the head) or carry forwarding or credentials.
#[tokio::test]
async fn request_trailers_reach_the_upstream_but_never_restate_the_head() {
    if support::engine_is_pingora() {
        return; // Pingora 0.9.1's proxy path discards HTTP/1 trailers.
    }
    let app = Upstream::builder("app").echo().start().await;
    let ficus = Ficus::start(
        "[proxy]\ndefault = \"app\"\n[upstreams.app]\nurl = \"${app}\"\n",
        &[app.var()],
    )
    .await;
    let request = b"POST /t HTTP/1.1\r\nhost: example.test\r\nx-user-id: alice\r\n\
        transfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\
        x-checksum: 900150983cd24fb0\r\nx-user-id: admin\r\nx-forwarded-for: 6.6.6.6\r\n\
        authorization: Bearer forged\r\n\r\n";
    let resp = raw_exchange(ficus.addr, request).await;
    assert_eq!(resp.status, 200);
    let echoed = Echoed::parse(&resp.body);
    assert_eq!(echoed.body_len, 3);
    assert_eq!(echoed.header("x-user-id"), Some("alice"));
    let names: Vec<&str> = echoed.trailers.keys().map(String::as_str).collect();
    assert_eq!(names, ["x-checksum"], "{:?}", echoed.trailers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_trailers_reach_the_client() {
    if support::engine_is_pingora() {
        return; // Pingora 0.9.1's proxy path discards HTTP/1 trailers.
    }
    let app = Upstream::builder("app").trailers().start().await;
    let ficus = Ficus::start(DEFAULT_ONLY, &[app.var()]).await;
    let request =
        b"GET /t HTTP/1.1\r\nhost: example.test\r\nte: trailers\r\nconnection: close\r\n\r\n";
    let direct = raw_exchange(app.addr, request).await;
    let direct_body = String::from_utf8_lossy(&direct.body).into_owned();
    assert!(
        direct_body.contains("x-checksum: abc123"),
        "the upstream sends the trailer: {direct_body:?}"
    );
    let proxied = raw_exchange(ficus.addr, request).await;
    assert_eq!(proxied.status, 200);
    assert_eq!(support::dechunk(&proxied.body), b"part one;part two");
    let proxied_body = String::from_utf8_lossy(&proxied.body).to_ascii_lowercase();
    assert!(
        proxied_body.contains("x-checksum: abc123"),
        "the trailer crossed ficus: {:?}",
        String::from_utf8_lossy(&proxied.raw)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_added_when_absent_and_the_same_value_reaches_the_upstream() {
    let (_app, ficus) = echo_behind_ficus().await;
    let resp = client().get(ficus.url("/id")).send().await.expect("send");
    let returned = resp
        .headers()
        .get("x-request-id")
        .expect("ficus returns an x-request-id")
        .to_str()
        .expect("ascii")
        .to_string();
    let echoed = Echoed::parse(&resp.bytes().await.expect("body"));
    assert!(!returned.is_empty());
    assert_eq!(echoed.header("x-request-id"), Some(returned.as_str()));

    let resp = client().get(ficus.url("/id")).send().await.expect("send");
    let second = resp
        .headers()
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(second, returned, "each request gets its own id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_own_request_id_is_kept() {
    let (_app, ficus) = echo_behind_ficus().await;
    let resp = client()
        .get(ficus.url("/id"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.headers().get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"client-chosen-42"[..])
    );
    let echoed = Echoed::parse(&resp.bytes().await.expect("body"));
    assert_eq!(echoed.header("x-request-id"), Some("client-chosen-42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_reach_the_upstream() {
    let (_app, ficus) = echo_behind_ficus().await;
    let host = ficus.addr.to_string();
    let resp = client().get(ficus.url("/fwd")).send().await.expect("send");
    let echoed = Echoed::parse(&resp.bytes().await.expect("body"));
    assert_eq!(echoed.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(echoed.header("x-forwarded-proto"), Some("http"));
    assert_eq!(echoed.header("x-forwarded-host"), Some(host.as_str()));

    // An earlier proxy's x-forwarded-for is extended, not replaced.
    let resp = client()
        .get(ficus.url("/fwd"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .expect("send");
    let echoed = Echoed::parse(&resp.bytes().await.expect("body"));
    assert_eq!(
        echoed.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );

    // A peer that is not a trusted proxy cannot claim TLS or another host: replaced.
    let resp = client()
        .get(ficus.url("/fwd"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "shop.example.com")
        .send()
        .await
        .expect("send");
    let echoed = Echoed::parse(&resp.bytes().await.expect("body"));
    assert_eq!(echoed.header("x-forwarded-proto"), Some("http"));
    assert_eq!(echoed.header("x-forwarded-host"), Some(host.as_str()));

    // Nor say where it came from or what it asked for in another proxy's words: removed.
    let overrides = [
        ("forwarded", "for=6.6.6.6;proto=https"),
        ("x-real-ip", "6.6.6.6"),
        ("x-forwarded-port", "443"),
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
    ];
    let mut request = client().get(ficus.url("/fwd"));
    for (name, value) in overrides {
        request = request.header(name, value);
    }
    let resp = request.send().await.expect("send");
    let echoed = Echoed::parse(&resp.bytes().await.expect("body"));
    for (name, _) in overrides {
        assert_eq!(echoed.header(name), None, "{name} reached the upstream");
    }
}

/// Behind a trusted proxy (`trusted_proxies`), its X-Forwarded-* are believed: the scheme and
/// host it wrote are kept, every X-Forwarded-For line is kept in order with the peer appended,
/// and the client address (what `sticky = "ip"` hashes) is the right-most untrusted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_forwarding_headers_are_believed() {
    let app = Upstream::builder("app").echo().start().await;
    let other = Upstream::builder("other").echo().start().await;
    let table = r#"
[proxy]
default = "app"
trusted_proxies = ["127.0.0.0/8"]

[upstreams.app]
url = "${app}"

[upstreams.other]
url = "${other}"

[[routes]]
name = "by-ip"
path = "/ip"
split = { app = 1, other = 1 }
sticky = "ip"
"#;
    let ficus = Ficus::start(table, &[app.var(), other.var()]).await;
    let request = b"GET /fwd HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example.com\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.9\r\nX-Forwarded-For: 127.0.0.2\r\nX-Real-IP: 203.0.113.9\r\nConnection: close\r\n\r\n";
    let resp = support::raw_exchange(ficus.addr, request).await;
    let echoed = Echoed::parse(&resp.body);
    assert_eq!(echoed.header("x-forwarded-proto"), Some("https"));
    assert_eq!(echoed.header("x-forwarded-host"), Some("shop.example.com"));
    assert_eq!(echoed.header("x-real-ip"), Some("203.0.113.9"));
    assert_eq!(
        echoed.header("x-forwarded-for"),
        Some("6.6.6.6, 203.0.113.9, 127.0.0.2, 127.0.0.1")
    );
    // The sticky side follows the believed client address, not the forged left part.
    let url = ficus.url("/ip");
    let side = |xff: &'static str| {
        let url = url.clone();
        async move {
            let resp = client()
                .get(url)
                .header("x-forwarded-for", xff)
                .send()
                .await
                .expect("send");
            support::served_by(&resp)
        }
    };
    let base = side("203.0.113.9").await;
    for forged in [
        "1.1.1.1, 203.0.113.9",
        "8.8.8.8, 203.0.113.9",
        "9.9.9.9,203.0.113.9",
    ] {
        assert_eq!(side(forged).await, base, "{forged}");
    }
}

fn is_valid_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && [2, 32, 16, 2]
            .iter()
            .zip(&parts)
            .all(|(&len, p)| p.len() == len && hex(p))
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_traceparent_passes_unchanged_and_one_is_created_when_absent() {
    let (_app, ficus) = echo_behind_ficus().await;
    let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let resp = client()
        .get(ficus.url("/trace"))
        .header("traceparent", given)
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .expect("send");
    let echoed = Echoed::parse(&resp.bytes().await.expect("body"));
    assert_eq!(echoed.header("traceparent"), Some(given));
    assert_eq!(echoed.header("tracestate"), Some("vendor=opaque"));

    let resp = client()
        .get(ficus.url("/trace"))
        .send()
        .await
        .expect("send");
    let echoed = Echoed::parse(&resp.bytes().await.expect("body"));
    let created = echoed
        .header("traceparent")
        .expect("ficus creates a traceparent");
    assert!(
        is_valid_traceparent(created),
        "not a W3C traceparent: {created}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_request_headers_do_not_reach_the_upstream() {
    let (app, ficus) = echo_behind_ficus().await;
    // reqwest manages Connection itself, so the request is written by hand.
    let request = "GET /hop HTTP/1.1\r\n\
                   host: example.test\r\n\
                   connection: close, x-secret\r\n\
                   x-secret: 1\r\n\
                   keep-alive: timeout=5\r\n\
                   proxy-authorization: Basic Zm9vOmJhcg==\r\n\
                   x-end-to-end: kept\r\n\
                   \r\n";
    let echoed_via = |resp: support::RawResponse| {
        assert_eq!(resp.status, 200, "{:?}", String::from_utf8_lossy(&resp.raw));
        let body = match resp.header("transfer-encoding") {
            Some(_) => support::dechunk(&resp.body),
            None => resp.body.clone(),
        };
        Echoed::parse(&body)
    };
    // Control: sent directly, the echo reports the nominated header, so its absence means something.
    let direct = echoed_via(raw_exchange(app.addr, request.as_bytes()).await);
    assert_eq!(direct.header("x-secret"), Some("1"));
    let echoed = echoed_via(raw_exchange(ficus.addr, request.as_bytes()).await);
    assert_eq!(echoed.header("x-end-to-end"), Some("kept"));
    for hop in ["x-secret", "keep-alive", "proxy-authorization"] {
        assert!(
            !echoed.headers.contains_key(hop),
            "hop-by-hop header {hop} reached the upstream: {:?}",
            echoed.headers
        );
    }
    let connection = echoed
        .headers
        .get("connection")
        .cloned()
        .unwrap_or_default()
        .join(",");
    assert!(
        !connection.contains("x-secret"),
        "connection header forwarded: {connection}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_crosses_ficus() {
    let app = Upstream::builder("app").websocket().start().await;
    let ficus = Ficus::start(DEFAULT_ONLY, &[app.var()]).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(ficus.ws_url("/ws"))
        .await
        .expect("websocket handshake through ficus");
    assert_eq!(resp.status(), 101);
    for text in ["hello", "through the fig", "third"] {
        ws.send(Message::Text(text.to_string()))
            .await
            .expect("send a text message");
        let back = ws.next().await.expect("an answer").expect("a message");
        assert_eq!(back, Message::Text(text.to_string()));
    }
    ws.send(Message::Binary(vec![0, 1, 2, 255]))
        .await
        .expect("send binary");
    let back = ws.next().await.expect("an answer").expect("a message");
    assert_eq!(back, Message::Binary(vec![0, 1, 2, 255]));
    ws.close(None).await.expect("close");
    assert_eq!(app.hits(), 1);
}
