//! The demo's apps: tiny hyper servers that answer JSON naming themselves. Legacy also takes the
//! webhooks ficus delivers ([`super::receiver`]).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::receiver::{Receiver, SYNC_PATH};
use super::{ORDERS, PRODUCTS, SERVED_BY};

/// One app, shared by its connections.
struct App {
    name: &'static str,
    /// How many requests it has answered: its `answer_no`.
    answered: AtomicU64,
    /// How many orders it has created.
    created: AtomicU64,
    /// Legacy's webhook endpoint, under [`SYNC_PATH`]; `None` for the other apps.
    receiver: Option<Receiver>,
}

/// Serves app `name` on a free loopback port, on `runtime`; with `receiver`, it also takes
/// webhook deliveries.
pub(super) fn serve(
    runtime: &tokio::runtime::Runtime,
    name: &'static str,
    receiver: Option<Receiver>,
) -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind("127.0.0.1:0").with_context(|| format!("cannot start {name}"))?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let app = Arc::new(App {
        name,
        answered: AtomicU64::new(0),
        created: AtomicU64::new(0),
        receiver,
    });
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| answer(Arc::clone(&app), req));
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
/// number (the mismatch the shadow finds), and the app's `answer_no` (its noise). A `POST
/// /api/orders` creates an order: 201 with its `id` and `item`.
async fn answer(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let answer_no = app.answered.fetch_add(1, Ordering::Relaxed) + 1;
    let name = app.name;
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    if let Some(receiver) = &app.receiver {
        if parts.uri.path().starts_with(SYNC_PATH) {
            let (status, json) =
                receiver.handle(&parts.method, parts.uri.path(), &parts.headers, &body);
            return Ok(respond(name, status, &json));
        }
    }
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
    let mut status = StatusCode::OK;
    if parts.method == Method::POST && parts.uri.path() == "/api/orders" {
        // Ids from 1001 on legacy and 5001 on the new service, so a log line tells them apart.
        let first = if name == ORDERS { 5001 } else { 1001 };
        json["id"] = (first + app.created.fetch_add(1, Ordering::Relaxed)).into();
        let order: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        json["item"] = order["item"].clone();
        status = StatusCode::CREATED;
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
    if name == ORDERS && parts.uri.path().starts_with("/api/invoices") {
        json["error"] = "invoices are not migrated yet".into();
        status = StatusCode::SERVICE_UNAVAILABLE;
    }
    Ok(respond(name, status, &json))
}

/// `json` and a newline, with the app's `x-served-by`.
fn respond(
    name: &'static str,
    status: StatusCode,
    json: &serde_json::Value,
) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(SERVED_BY, name)
        .body(Full::new(Bytes::from(format!("{json}\n"))))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{}\n"))))
}
