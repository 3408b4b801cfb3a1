//! The h1 engine on the wire, with raw upstreams that do exactly one odd thing each: a client that
//! leaves while the upstream thinks is a 499 at once (never a timeout or a fallback on its
//! behalf); an upgraded connection half-closed by one side still carries what the other sends;
//! a body the upstream ends by closing is re-framed so the client's connection stays usable;
//! informational responses go only to clients that can take them. Pingora's engine differs on
//! these, so under `FICUS_TEST_ENGINE=pingora` the tests return early.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use support::{engine_is_pingora, read_response, read_to_close, Ficus, Upstream};

/// A raw upstream: for each connection, reads one request head, then runs `then`.
async fn raw_upstream<F, Fut>(then: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let then = std::sync::Arc::new(then);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let then = then.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                then(conn).await;
            });
        }
    });
    addr
}

async fn ficus_before(upstream: SocketAddr) -> Ficus {
    let table = "[proxy]\ndefault = \"raw\"\n\n[upstreams.raw]\nurl = \"${raw}\"\n";
    Ficus::start(table, &[("raw", format!("http://{upstream}"))]).await
}

#[tokio::test]
async fn a_client_that_leaves_while_the_upstream_thinks_is_a_499_and_no_fallback() {
    if engine_is_pingora() {
        return;
    }
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let thinking = raw_upstream(move |conn| {
        let arrived = arrived.clone();
        async move {
            let _held = conn;
            let _ = arrived.send(());
            // Holds the connection and never answers.
            std::future::pending::<()>().await;
        }
    })
    .await;
    let legacy = Upstream::builder("legacy").echo().start().await;
    let table = "[proxy]\ndefault = \"legacy\"\n\n[upstreams.legacy]\nurl = \"${legacy}\"\n\n\
                 [upstreams.slow]\nurl = \"${slow}\"\nread_timeout = \"60s\"\n\n\
                 [[routes]]\nname = \"slow\"\npath = \"/slow\"\nupstream = \"slow\"\nfallback = \"legacy\"\n";
    let ficus = Ficus::start(
        table,
        &[
            ("legacy", legacy.base()),
            ("slow", format!("http://{thinking}")),
        ],
    )
    .await;
    let mut s = TcpStream::connect(ficus.addr).await.expect("connect");
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    arrivals
        .recv()
        .await
        .expect("the request reached the upstream");
    drop(s);
    // Well inside the upstream's 60 s read timeout.
    let counted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let v = ficus
                .metric("ficus_requests_total{route=\"slow\",status=\"499\",upstream=\"slow\"}");
            if v >= 1.0 {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the client's leaving was not counted before the upstream's timeout:\n{}",
            ficus.metrics_text()
        )
    });
    assert_eq!(counted, 1.0);
    assert_eq!(legacy.hits(), 0, "a request whose client left was replayed");
    assert_eq!(ficus.metric("ficus_fallbacks_total{route=\"slow\"}"), 0.0);
}

#[tokio::test]
async fn an_upgraded_connection_half_closed_by_the_client_still_carries_the_upstreams_reply() {
    if engine_is_pingora() {
        return;
    }
    let up = raw_upstream(|mut conn| async move {
        let _ = conn
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
            .await;
        // Everything the client sends, until it stops sending; then one last message.
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = conn.read(&mut buf).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let mut tail = b"got:".to_vec();
        tail.extend_from_slice(&got);
        tail.extend_from_slice(b";tail-after-half-close");
        let _ = conn.write_all(&tail).await;
    })
    .await;
    let ficus = ficus_before(up).await;
    let mut s = TcpStream::connect(ficus.addr).await.expect("connect");
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nping",
    )
    .await
    .expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.expect("the 101");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    s.shutdown().await.expect("half-close");
    let rest = read_to_close(&mut s).await;
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "got:ping;tail-after-half-close"
    );
}

#[tokio::test]
async fn a_body_ended_by_closing_is_reframed_and_the_connection_stays_usable() {
    if engine_is_pingora() {
        return;
    }
    let up = raw_upstream(|mut conn| async move {
        let _ = conn
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nclose-delimited")
            .await;
    })
    .await;
    let ficus = ficus_before(up).await;
    let mut s = TcpStream::connect(ficus.addr).await.expect("connect");
    for _ in 0..2 {
        s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("send on the same connection");
        let resp = read_response(&mut s).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
        assert_eq!(resp.header("connection"), Some("keep-alive"));
        assert_eq!(support::dechunk(&resp.body), b"close-delimited");
    }
}

#[tokio::test]
async fn informational_responses_go_only_to_clients_that_can_take_them() {
    if engine_is_pingora() {
        return;
    }
    let up = raw_upstream(|mut conn| async move {
        let mut out = Vec::new();
        for _ in 0..3 {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        out.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n");
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        let _ = conn.write_all(&out).await;
    })
    .await;
    let ficus = ficus_before(up).await;

    // HTTP/1.0: no 1xx at all.
    let mut s = TcpStream::connect(ficus.addr).await.expect("connect");
    s.write_all(b"GET /x HTTP/1.0\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    let all = String::from_utf8_lossy(&read_to_close(&mut s).await).into_owned();
    assert!(all.starts_with("HTTP/1.1 200"), "{all}");
    assert!(!all.contains(" 100 ") && !all.contains(" 103 "), "{all}");

    // HTTP/1.1 asking for 100-continue: one 100, the 103, then the answer.
    let mut s = TcpStream::connect(ficus.addr).await.expect("connect");
    s.write_all(
        b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .await
    .expect("send");
    let all = String::from_utf8_lossy(&read_to_close(&mut s).await).into_owned();
    assert_eq!(all.matches("HTTP/1.1 100").count(), 1, "{all}");
    assert_eq!(all.matches("HTTP/1.1 103").count(), 1, "{all}");
    assert!(all.contains("HTTP/1.1 200"), "{all}");
}

#[tokio::test]
async fn an_upstream_that_never_stops_sending_informational_responses_is_a_502() {
    if engine_is_pingora() {
        return;
    }
    let up = raw_upstream(|mut conn| async move {
        loop {
            if conn
                .write_all(b"HTTP/1.1 103 Early Hints\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
        }
    })
    .await;
    let ficus = ficus_before(up).await;
    let mut s = TcpStream::connect(ficus.addr).await.expect("connect");
    s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let all = String::from_utf8_lossy(&read_to_close(&mut s).await).into_owned();
    assert!(all.contains("HTTP/1.1 502"), "{all}");
}
