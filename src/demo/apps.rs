//! The demo's apps: tiny hyper servers that answer JSON naming themselves.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::{ORDERS, PRODUCTS, SERVED_BY};

/// Serves app `name` on a free loopback port, on `runtime`.
pub(super) fn serve(
    runtime: &tokio::runtime::Runtime,
    name: &'static str,
) -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind("127.0.0.1:0").with_context(|| format!("cannot start {name}"))?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    // How many requests this app has answered: its `answer_no`.
    let answered = Arc::new(AtomicU64::new(0));
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answered = Arc::clone(&answered);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    answer(name, answered.fetch_add(1, Ordering::Relaxed) + 1, req)
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// `{"served_by", "method", "path", ...}`; the orders service answers 503 for invoices. A
/// product also has a `price`, which legacy writes as a string and the products service as a
/// number (the mismatch the shadow finds), and the app's `answer_no` (its noise).
async fn answer(
    name: &'static str,
    answer_no: u64,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut json = serde_json::json!({
        "served_by": name,
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        "body_bytes": body.len(),
    });
    for header in ["x-request-id", "x-client-version", "x-user-id"] {
        if let Some(value) = parts.headers.get(header).and_then(|v| v.to_str().ok()) {
            json[header] = value.into();
        }
    }
    if parts.uri.path().starts_with("/api/products/") {
        json["name"] = "The Strangler Fig, paperback".into();
        json["price"] = if name == PRODUCTS {
            12.5.into()
        } else {
            "12.50".into()
        };
        json["answer_no"] = answer_no.into();
    }
    let failing = name == ORDERS && parts.uri.path().starts_with("/api/invoices");
    if failing {
        json["error"] = "invoices are not migrated yet".into();
    }
    let status = if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let response = Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(SERVED_BY, name)
        .body(Full::new(Bytes::from(format!("{json}\n"))))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{}\n"))));
    Ok(response)
}
