//! What a client gets when nothing can answer (CONTRACT section 4): 502 on a connect failure, 504
//! on a timeout, each with a short plain-text body; a malformed request gets a 4xx and does not
//! stop ficus from serving the next one.

mod support;

use reqwest::StatusCode;

use support::{client, closed_url, raw_exchange, served_by, Ficus, Upstream};

const ONE_UPSTREAM: &str = r#"
[proxy]
default = "app"

[upstreams.app]
url = "${app}"
read_timeout = "300ms"
"#;

/// Asserts a short plain-text error body and returns it.
async fn short_text(resp: reqwest::Response) -> String {
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "content-type {content_type:?}"
    );
    let body = resp.text().await.expect("an error body");
    assert!(!body.trim().is_empty(), "the error body is empty");
    assert!(body.len() <= 200, "the error body is not short: {body:?}");
    assert!(
        !body.contains("panicked") && !body.contains("RUST_BACKTRACE"),
        "{body:?}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_without_fallback_is_502_with_a_short_text_body() {
    let ficus = Ficus::start(ONE_UPSTREAM, &[("app", closed_url())]).await;
    let resp = client()
        .get(ficus.url("/anything"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(
        resp.headers().contains_key("x-request-id"),
        "an error response still carries the request id"
    );
    let body = short_text(resp).await;
    assert!(body.contains("502"), "{body:?}");

    // A POST too, and ficus keeps answering.
    let resp = client()
        .post(ficus.url("/anything"))
        .body("x")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_does_not_answer_in_time_is_504() {
    let app = Upstream::builder("app").hang().start().await;
    let ficus = Ficus::start(ONE_UPSTREAM, &[app.var()]).await;
    let resp = client().get(ficus.url("/slow")).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let body = short_text(resp).await;
    assert!(body.contains("504"), "{body:?}");
    assert!(app.hits() >= 1, "the request reached the hanging upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_gets_a_4xx_and_ficus_keeps_serving() {
    let app = Upstream::builder("app").echo().start().await;
    let ficus = Ficus::start(ONE_UPSTREAM, &[app.var()]).await;
    let malformed: [&[u8]; 3] = [
        b"GARBAGE\r\n\r\n",
        b"GET /x HTTP/1.1\r\nhost: a\r\nthis line has no colon\r\n\r\n",
        b"GET /x HTTP/1.1\r\nhost: a\r\ncontent-length: nope\r\n\r\n",
    ];
    for request in malformed {
        let resp = raw_exchange(ficus.addr, request).await;
        assert!(
            (400..500).contains(&resp.status),
            "{:?} got {}",
            String::from_utf8_lossy(request),
            resp.status
        );
        let good = client()
            .get(ficus.url("/after"))
            .send()
            .await
            .expect("a good request after a bad one");
        assert_eq!(good.status(), StatusCode::OK);
        assert_eq!(served_by(&good), "app");
    }
    assert_eq!(app.hits(), 3, "no malformed request reached the upstream");
}

/// A connect that times out is a 504 (the upstream did not answer in time), with the request id
/// on the error response. The upstream is a listener that never accepts and whose accept queue
/// the test fills first: Linux then drops further SYNs, so ficus's connect hangs until
/// `connect_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_timeout_is_504_with_the_request_id() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Fill the accept queue: connects succeed until it is full, then hang (bounded by a timeout).
    let mut held = Vec::new();
    loop {
        match tokio::time::timeout(
            std::time::Duration::from_millis(100),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(e)) => panic!("connect failed before the queue filled: {e}"),
            Err(_) => break,
        }
        assert!(held.len() < 10_000, "the accept queue never filled");
    }
    let table = r#"
[proxy]
default = "app"

[upstreams.app]
url = "${app}"
connect_timeout = "300ms"
"#;
    let ficus = Ficus::start(table, &[("app", format!("http://{addr}"))]).await;
    let resp = client()
        .get(ficus.url("/never-connects"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(resp.headers().contains_key("x-request-id"));
    let body = short_text(resp).await;
    assert!(body.contains("504"), "{body}");
    drop(listener);
}
