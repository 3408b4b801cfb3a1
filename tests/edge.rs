//! The edge (CONTRACT section 4), tried as an attacker would, with raw bytes (HTTP clients
//! normalise paths themselves): paths are normalised before matching and forwarded as matched,
//! so every route bypass the hardening issue found reaches the route its normalised path names; a
//! path that climbs above the root or hides a slash is refused with 400 before any upstream; and
//! `x-ficus-*` headers from a client are dropped before routing.

mod support;

use support::{raw_exchange, Echoed, Ficus, Upstream};

const TABLE: &str = r#"
[proxy]
default = "legacy"

[upstreams.legacy]
url = "${legacy}"

[upstreams.admin]
url = "${admin}"

[upstreams.public]
url = "${public}"

[[routes]]
name = "admin"
path = "/admin/*"
upstream = "admin"

[[routes]]
name = "public"
path = "/public/*"
upstream = "public"
"#;

/// The three echo upstreams of [`TABLE`] and a ficus serving `table` in front of them.
async fn start(table: &str) -> (Upstream, Upstream, Upstream, Ficus) {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let admin = Upstream::builder("admin").echo().start().await;
    let public = Upstream::builder("public").echo().start().await;
    let vars = [
        ("legacy", legacy.base()),
        ("admin", admin.base()),
        ("public", public.base()),
    ];
    let ficus = Ficus::start(table, &vars).await;
    (legacy, admin, public, ficus)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn bypasses_reach_the_route_their_normalised_path_names_and_are_forwarded_normalised() {
    let (legacy, _admin, public, ficus) = start(TABLE).await;
    for (sent, forwarded) in [
        ("/public/../admin/x", "/admin/x"),
        ("/public/%2e%2e/admin/x", "/admin/x"),
        ("//admin/x", "/admin/x"),
        ("/./admin/x", "/admin/x"),
        ("/%61dmin/x", "/admin/x"),
        ("/admin;jsessionid=1/x?q=1", "/admin;jsessionid=1/x"),
    ] {
        let resp = raw_exchange(ficus.addr, &get(sent)).await;
        assert_eq!(resp.status, 200, "{sent}");
        assert_eq!(resp.header("x-served-by"), Some("admin"), "{sent}");
        let echoed = Echoed::parse(&resp.body);
        assert_eq!(
            echoed.path, forwarded,
            "{sent}: the upstream gets what was matched"
        );
    }
    assert_eq!(public.hits(), 0);
    assert_eq!(legacy.hits(), 0);
}

#[tokio::test]
async fn paths_that_climb_out_or_hide_a_slash_are_refused_before_any_upstream() {
    let (legacy, admin, public, ficus) = start(TABLE).await;
    for (sent, reason) in [
        ("/public/..%2fadmin", "encoded slash"),
        ("/admin%2fx", "encoded slash"),
        ("/a%5Cb", "encoded slash"),
        ("/public/..\\admin\\x", "backslash"),
        ("/../etc/passwd", "above the root"),
        ("/a%00b", "NUL"),
        ("/a%zz", "percent-encoding"),
    ] {
        let resp = raw_exchange(ficus.addr, &get(sent)).await;
        assert_eq!(resp.status, 400, "{sent}");
        let body = String::from_utf8_lossy(&resp.body);
        assert!(body.contains(reason), "{sent}: {body}");
    }
    assert_eq!(legacy.hits() + admin.hits() + public.hits(), 0);
}

/// `x-ficus-*` belongs to ficus: a client's copy neither steers routing nor reaches the upstream.
#[tokio::test]
async fn client_sent_x_ficus_headers_neither_match_routes_nor_reach_the_upstream() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let admin = Upstream::builder("admin").echo().start().await;
    let table = r#"
[proxy]
default = "legacy"

[upstreams.legacy]
url = "${legacy}"

[upstreams.admin]
url = "${admin}"

[[routes]]
name = "shadowed-only"
path = "/x"
headers = { "x-ficus-shadow" = "1" }
upstream = "admin"
"#;
    let ficus = Ficus::start(table, &[("legacy", legacy.base()), ("admin", admin.base())]).await;
    let request = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Ficus-Shadow: 1\r\nx-ficus-debug: yes\r\nConnection: close\r\n\r\n";
    let resp = raw_exchange(ficus.addr, request).await;
    assert_eq!(
        resp.header("x-served-by"),
        Some("legacy"),
        "the forged header matched nothing"
    );
    let echoed = Echoed::parse(&resp.body);
    assert!(
        echoed.headers.keys().all(|k| !k.starts_with("x-ficus-")),
        "{:?}",
        echoed.headers.keys().collect::<Vec<_>>()
    );
    assert_eq!(admin.hits(), 0);
}

/// With `allow_encoded_slash = true` an encoded slash is kept, encoded: it is one segment's
/// character, never a separator, for matching and for the upstream.
#[tokio::test]
async fn an_allowed_encoded_slash_stays_encoded_and_inside_its_segment() {
    let table = TABLE.replace(
        "default = \"legacy\"",
        "default = \"legacy\"\nallow_encoded_slash = true",
    );
    let (_legacy, _admin, _public, ficus) = start(&table).await;
    let resp = raw_exchange(ficus.addr, &get("/admin%2fx")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("x-served-by"),
        Some("legacy"),
        "not the /admin/* route"
    );
    assert_eq!(Echoed::parse(&resp.body).path, "/admin%2Fx");
}

/// A raw upstream that answers every request with `head` (and closes).
async fn raw_upstream(head: &'static str) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(head.as_bytes()).await;
            });
        }
    });
    addr
}

/// A status HTTP does not define, or a 101 the client did not ask for, is a broken answer: 502.
#[tokio::test]
async fn an_upstream_status_above_599_or_an_unasked_101_becomes_502() {
    for head in [
        "HTTP/1.1 999 Weird\r\ncontent-length: 0\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
    ] {
        let up = raw_upstream(head).await;
        let table = "[proxy]\ndefault = \"odd\"\n\n[upstreams.odd]\nurl = \"${odd}\"\n";
        let ficus = Ficus::start(table, &[("odd", format!("http://{up}"))]).await;
        let resp = raw_exchange(ficus.addr, &get("/x")).await;
        assert_eq!(resp.status, 502, "{head:?}");
    }
}

/// Strict request targets: origin-form, absolute-form turned into origin-form (its authority the
/// `Host`), `*` for OPTIONS only; HTTP/1.1 needs a valid `Host`; only `chunked` is a transfer
/// coding; identical duplicate lengths become one. Refusals reach no upstream.
#[tokio::test]
async fn request_targets_hosts_and_framing_are_strict() {
    let (legacy, admin, public, ficus) = start(TABLE).await;
    for (request, status) in [
        (&b"GET admin/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"[..], 400),
        (b"GET /admin/x HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
        (b"GET /public/x HTTP/1.1\r\nHost: evil.example/admin\r\nConnection: close\r\n\r\n", 400),
        (b"GET * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 400),
        (b"POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    ] {
        let resp = raw_exchange(ficus.addr, request).await;
        assert_eq!(resp.status, status, "{:?}", String::from_utf8_lossy(request));
    }
    assert_eq!(legacy.hits() + admin.hits() + public.hits(), 0);

    let resp = raw_exchange(
        ficus.addr,
        b"GET http://shop.example/admin/x?y=1 HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200);
    let echoed = Echoed::parse(&resp.body);
    assert_eq!(echoed.path, "/admin/x");
    assert_eq!(echoed.header("host"), Some("shop.example"));
    assert_eq!(
        admin.hits(),
        1,
        "the absolute-form target was routed by its path"
    );

    let resp = raw_exchange(
        ficus.addr,
        b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(resp.status, 200);
    let echoed = Echoed::parse(&resp.body);
    assert_eq!(echoed.headers["content-length"], ["5"]);
    assert_eq!(echoed.body_len, 5);
    let resp = raw_exchange(
        ficus.addr,
        b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\nConnection: close\r\n\r\nabc",
    )
    .await;
    assert_eq!(resp.status, 200, "a list of one length is one length");
    assert_eq!(Echoed::parse(&resp.body).headers["content-length"], ["3"]);
}
