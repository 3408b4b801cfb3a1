//! Upstream endpoints on the wire (issue 8, point 6): an endpoint that fails its active health
//! check gets no traffic until it passes again; one that refuses connections is ejected after
//! consecutive failures and no longer tried; `max_connections` caps the requests in flight to a
//! fragile upstream; `ficus_upstream_endpoint_healthy` says which endpoint is which.

#[path = "support/admin.rs"]
mod admin_support;
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use admin_support::{eventually, Scrape};
use support::{client, closed_port, served_by, Ficus, Upstream};

/// A minimal HTTP/1 server whose `/healthz` answers 200 while `healthy` is set and 503
/// otherwise; every other path answers 200 with `x-served-by: NAME`. It counts the requests
/// that were not health checks.
struct Checked {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
}

impl Checked {
    async fn start(name: &'static str) -> Checked {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let healthy = Arc::new(AtomicBool::new(true));
        let served = Arc::new(AtomicUsize::new(0));
        let (h, s) = (healthy.clone(), served.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (h, s) = (h.clone(), s.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let status = if head.starts_with(b"GET /healthz ") {
                        if h.load(Ordering::SeqCst) {
                            "200 OK"
                        } else {
                            "503 Service Unavailable"
                        }
                    } else {
                        s.fetch_add(1, Ordering::SeqCst);
                        "200 OK"
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nx-served-by: {name}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        Checked {
            addr,
            healthy,
            served,
        }
    }
}

fn healthy_gauge(ficus: &Ficus, endpoint: SocketAddr) -> Option<f64> {
    Scrape::parse(&ficus.metrics_text()).get(
        "ficus_upstream_endpoint_healthy",
        &[("upstream", "app"), ("endpoint", &endpoint.to_string())],
    )
}

/// Waits until `ficus_upstream_endpoint_healthy` of `endpoint` is `value` (the upkeep service
/// exports it within a second; a scrape is the only way to see it).
async fn wait_for_gauge(ficus: &Ficus, endpoint: SocketAddr, value: f64, what: &str) {
    eventually(what, || async {
        match healthy_gauge(ficus, endpoint) {
            Some(v) if v == value => Ok(()),
            other => Err(format!("gauge {other:?}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_its_health_check_gets_no_traffic_until_it_passes_again() {
    let (a, b) = (Checked::start("a").await, Checked::start("b").await);
    let table = format!(
        r#"
[proxy]
default = "app"

[upstreams.app]
urls = ["http://{}", "http://{}"]
health_check = {{ path = "/healthz", interval = "50ms", timeout = "500ms", unhealthy_after = 1, healthy_after = 1 }}
"#,
        a.addr, b.addr
    );
    let ficus = Ficus::start(&table, &[]).await;

    b.healthy.store(false, Ordering::SeqCst);
    wait_for_gauge(&ficus, b.addr, 0.0, "b is marked unhealthy").await;
    let before = b.served.load(Ordering::SeqCst);
    for _ in 0..10 {
        let resp = client().get(ficus.url("/x")).send().await.expect("request");
        assert_eq!(served_by(&resp), "a");
    }
    assert_eq!(
        b.served.load(Ordering::SeqCst),
        before,
        "no request reached b"
    );

    b.healthy.store(true, Ordering::SeqCst);
    wait_for_gauge(&ficus, b.addr, 1.0, "b is back").await;
    let mut sides = Vec::new();
    for _ in 0..4 {
        let resp = client().get(ficus.url("/x")).send().await.expect("request");
        sides.push(served_by(&resp));
    }
    assert!(sides.iter().any(|s| s == "b"), "b serves again: {sides:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_refuses_connections_is_ejected_and_not_tried_again() {
    let good = Upstream::builder("good").echo().start().await;
    let dead = closed_port();
    let table = format!(
        r#"
[proxy]
default = "app"

[upstreams.app]
urls = ["http://{dead}", "${{good}}"]
eject_after = 2
eject_for = "10m"
"#
    );
    let ficus = Ficus::start(&table, &[("good", good.base())]).await;
    for i in 0..8 {
        let resp = client().get(ficus.url("/x")).send().await.expect("request");
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "request {i} retried on the good endpoint"
        );
        assert_eq!(served_by(&resp), "good");
    }
    let scrape = Scrape::parse(&ficus.metrics_text());
    assert_eq!(
        scrape.value(
            "ficus_upstream_connect_errors_total",
            &[("upstream", "app")]
        ),
        2.0,
        "after two refused connects the dead endpoint was never tried again"
    );
    wait_for_gauge(&ficus, dead, 0.0, "the dead endpoint is reported unhealthy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_connections_get_503_without_reaching_the_upstream() {
    let slow = Upstream::builder("slow").hang().start().await;
    let table = r#"
[proxy]
default = "app"

[upstreams.app]
url = "${slow}"
max_connections = 1
read_timeout = "30s"
"#;
    let ficus = Ficus::start(table, &[("slow", slow.base())]).await;
    let held = tokio::spawn({
        let url = ficus.url("/first");
        async move { client().get(url).send().await }
    });
    eventually("the first request reached the upstream", || async {
        if slow.hits() == 1 {
            Ok(())
        } else {
            Err(format!("{} hits", slow.hits()))
        }
    })
    .await;
    let refused = client()
        .get(ficus.url("/second"))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(slow.hits(), 1, "the second request was not sent upstream");
    held.abort();
}
