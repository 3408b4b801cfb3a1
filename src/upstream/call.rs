//! One whole request to an upstream and its whole answer, off every client's path: the shadow's
//! mirrored requests and noise probes. It uses the upstream's endpoints, connection cap and idle
//! connections as the h1 engine does, so a shadow upstream's TLS, timeouts and health apply.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use pingora::connectors::TransportConnector;
use pingora::http::RequestHeader;
use pingora::protocols::http::v1::client::HttpSession;
use pingora::RetryType;

use super::discovery::EndpointInfo;
use super::Upstream;

/// How an upstream answered: the head's status and headers, and the body as received (still
/// content-encoded).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no endpoint of upstream {0:?} can be tried (none is ready)")]
    NoEndpoint(String),
    #[error("upstream {0:?} has all its max_connections in use")]
    AtCapacity(String),
    #[error("connecting to {addr}: {error}")]
    Connect { addr: SocketAddr, error: String },
    #[error("exchanging with {addr}: {error}")]
    Exchange { addr: SocketAddr, error: String },
    #[error("the request head cannot be sent: {0}")]
    Head(String),
    #[error("the answer's body is larger than {0} bytes")]
    TooLarge(usize),
}

impl CallError {
    /// Whether the answer was there but too large to keep (not a failure of the upstream).
    pub fn is_too_large(&self) -> bool {
        matches!(self, CallError::TooLarge(_))
    }
}

/// An endpoint of `upstream` to send a call to, with what a filter's per-attempt phase needs of
/// it (its host).
pub fn pick(upstream: &Upstream) -> Result<(SocketAddr, Arc<EndpointInfo>), CallError> {
    upstream
        .pool
        .pick(&[])
        .ok_or_else(|| CallError::NoEndpoint(upstream.name.clone()))
}

/// Like [`pick`], but only an endpoint that is ready (healthy, not ejected): a copy that can be
/// given up is, rather than connect to an upstream known to be down.
pub fn pick_ready(upstream: &Upstream) -> Result<(SocketAddr, Arc<EndpointInfo>), CallError> {
    upstream
        .pool
        .pick_ready()
        .ok_or_else(|| CallError::NoEndpoint(upstream.name.clone()))
}

/// Sends `req` with `body` (whole; its framing is set here) to the endpoint `to` of `upstream`
/// (from [`pick`]) and reads the whole answer, keeping at most `max_body` bytes of its body. A pooled connection the
/// upstream had closed is tried once more on a fresh one. No deadline of its own beyond the
/// upstream's connect and read timeouts: the caller bounds the whole call.
pub async fn call(
    connector: &TransportConnector,
    upstream: &Upstream,
    to: (SocketAddr, Arc<EndpointInfo>),
    mut req: Box<RequestHeader>,
    body: Bytes,
    max_body: usize,
) -> Result<Reply, CallError> {
    let pool = &upstream.pool;
    let _permit = if pool.capped() {
        Some(
            pool.acquire()
                .ok_or_else(|| CallError::AtCapacity(upstream.name.clone()))?,
        )
    } else {
        None
    };
    req.remove_header(&http::header::TRANSFER_ENCODING);
    if !body.is_empty() || req.method == http::Method::POST || req.method == http::Method::PUT {
        let len = body.len().to_string();
        req.insert_header(http::header::CONTENT_LENGTH, len)
            .map_err(|e| CallError::Head(e.to_string()))?;
    } else {
        req.remove_header(&http::header::CONTENT_LENGTH);
    }
    let (addr, info) = to;
    let mut fresh_only = false;
    loop {
        let pooled = if fresh_only {
            None
        } else {
            pool.idle.take(addr)
        };
        let reused = pooled.is_some();
        let stream = match pooled {
            Some(s) => s,
            None => match connector.new_stream(&info.peer).await {
                Ok(s) => {
                    pool.connected(addr);
                    s
                }
                Err(e) => {
                    pool.connect_failed(addr);
                    return Err(CallError::Connect {
                        addr,
                        error: e.to_string(),
                    });
                }
            },
        };
        match exchange(stream, &info, req.clone(), &body, max_body).await {
            Ok((reply, reusable)) => {
                if let Some(stream) = reusable {
                    pool.idle.put(addr, stream);
                }
                return Ok(reply);
            }
            Err(Failure::Pingora(e)) if reused && matches!(e.retry, RetryType::ReusedOnly) => {
                fresh_only = true;
            }
            Err(Failure::Pingora(e)) => {
                return Err(CallError::Exchange {
                    addr,
                    error: e.to_string(),
                })
            }
            Err(Failure::TooLarge) => return Err(CallError::TooLarge(max_body)),
        }
    }
}

enum Failure {
    Pingora(Box<pingora::Error>),
    TooLarge,
}

impl From<Box<pingora::Error>> for Failure {
    fn from(e: Box<pingora::Error>) -> Self {
        Failure::Pingora(e)
    }
}

/// One exchange on one connection; the connection back when it can carry another request.
async fn exchange(
    stream: pingora::protocols::Stream,
    info: &Arc<EndpointInfo>,
    req: Box<RequestHeader>,
    body: &[u8],
    max_body: usize,
) -> Result<(Reply, Option<pingora::protocols::Stream>), Failure> {
    let head_only = req.method == http::Method::HEAD;
    let mut up = HttpSession::new_with_options(stream, &info.peer);
    up.read_timeout = info.peer.options.read_timeout;
    up.write_timeout = info.peer.options.write_timeout;
    up.write_request_header(req).await?;
    if !body.is_empty() {
        up.write_body(body).await?;
    }
    up.finish_body().await?;
    // Informational answers (100 Continue, 103) are read past: only the final one counts.
    let head = loop {
        up.read_response().await?;
        let Some(head) = up.take_resp_header() else {
            return Err(Failure::Pingora(pingora::Error::explain(
                pingora::ErrorType::InvalidHTTPHeader,
                "no response head",
            )));
        };
        if !(100..200).contains(&head.status.as_u16()) {
            break head;
        }
    };
    let status = head.status.as_u16();
    let headers = head.headers.clone();
    let mut kept = BytesMut::new();
    if !head_only && !matches!(status, 204 | 304) {
        while let Some(chunk) = up.read_body_bytes().await? {
            if kept.len() + chunk.len() > max_body {
                return Err(Failure::TooLarge);
            }
            kept.extend_from_slice(&chunk);
        }
    }
    up.respect_keepalive();
    let reusable = up.reuse().await;
    Ok((
        Reply {
            status,
            headers,
            body: kept.freeze(),
        },
        reusable,
    ))
}
