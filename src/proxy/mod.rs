//! The Pingora layer: a switchboard that hands each phase to a module testable without sockets.
//!
//! ```text
//! request_filter            load the table once, decide the route (routing), set x-request-id
//!                           and traceparent
//!   upstream_peer           the decided upstream, or the route's fallback on a replay
//!   upstream_request_filter x-forwarded-* (headers)
//!   fail_to_connect ─┐
//!   error_while_proxy├──    replay to the fallback upstream? (fallback)
//!   upstream_response_filter  5xx → replay to the fallback; strip hop-by-hop headers
//!   response_filter         return x-request-id
//! fail_to_proxy             the status and short body for the error (errors)
//! ```

mod accounting;
pub mod errors;
pub mod fallback;
pub mod headers;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::access_log::AccessLog;
use crate::routing::{Decision, RequestHead, RouteTable, UpstreamId};
use fallback::Attempt;

/// The route table every request reads: swapped whole on reload, loaded once per request.
pub type SharedTable = Arc<ArcSwap<RouteTable>>;

/// The proxy service.
pub struct Ficus {
    table: SharedTable,
    access_log: AccessLog,
}

impl Ficus {
    pub fn new(table: SharedTable, access_log: AccessLog) -> Self {
        Ficus { table, access_log }
    }
}

/// Per-request state.
pub struct RequestCtx {
    table: Option<Arc<RouteTable>>,
    decision: Option<Decision>,
    request_id: Option<HeaderValue>,
    /// Set once the request is replayed: the route's fallback upstream.
    fallback: Option<UpstreamId>,
    response_started: bool,
    upstream: Option<UpstreamId>,
    /// Failed connects to the current upstream's endpoints.
    connect_failures: usize,
    started: Instant,
}

impl RequestCtx {
    fn attempt<'a>(&'a self, session: &'a Session) -> Attempt<'a> {
        Attempt {
            route: self
                .table
                .as_deref()
                .zip(self.decision.and_then(|d| d.route))
                .and_then(|(t, i)| t.routes.get(i)),
            method: &session.req_header().method,
            upstream: self.upstream,
            fell_back: self.fallback.is_some(),
            response_started: self.response_started,
            body_truncated: session.as_ref().retry_buffer_truncated(),
        }
    }
}

fn client_ip(session: &Session) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

#[async_trait]
impl ProxyHttp for Ficus {
    type CTX = RequestCtx;

    /// No downstream modules: Pingora's default adds a (disabled) response compression module,
    /// which cost an allocation and a filter call per request for nothing.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            table: None,
            decision: None,
            request_id: None,
            fallback: None,
            response_started: false,
            upstream: None,
            connect_failures: 0,
            started: Instant::now(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let table = self.table.load_full();
        let ip = client_ip(session);
        let req = session.req_header();
        let head = RequestHead {
            method: &req.method,
            path: req.uri.path(),
            query: req.uri.query(),
            headers: &req.headers,
            client_ip: ip,
        };
        ctx.decision = Some(table.decide(&head));
        ctx.table = Some(table);
        let id = match headers::incoming_request_id(&req.headers) {
            Some(id) => id,
            None => {
                let id = headers::new_request_id();
                session
                    .req_header_mut()
                    .insert_header(headers::X_REQUEST_ID, id.clone())?;
                id
            }
        };
        ctx.request_id = Some(id);
        // Decided once, so a fallback replay (and a mirrored copy) carries the same trace.
        let tp = headers::traceparent(session.req_header().headers.get(headers::TRACEPARENT));
        if let Some(tp) = tp {
            let req = session.req_header_mut();
            // The old tracestate belongs to the trace that was replaced.
            req.remove_header("tracestate");
            req.insert_header(headers::TRACEPARENT, tp)?;
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let (Some(table), Some(decision)) = (ctx.table.as_ref(), ctx.decision) else {
            return Error::e_explain(ErrorType::InternalError, "no routing decision");
        };
        let id = ctx.fallback.unwrap_or(decision.upstream);
        ctx.upstream = Some(id);
        let mut peer = table
            .upstream(id)
            .and_then(|u| u.next_peer())
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "upstream has no endpoint"))?;
        if session.is_upgrade_req() {
            // An upgraded connection (websocket) may rightly stay idle far longer than a response
            // may take: read_timeout would cut it after its first quiet spell.
            peer.options.read_timeout = None;
        }
        Ok(peer)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(ip) = client_ip(session) {
            let xff =
                headers::forwarded_for(upstream_request.headers.get(headers::X_FORWARDED_FOR), ip);
            upstream_request.insert_header(headers::X_FORWARDED_FOR, xff)?;
        }
        // An edge in front of ficus (a TLS-terminating load balancer) knows the client's scheme
        // and host better than ficus: keep what it wrote, and fill in what is missing.
        if !upstream_request
            .headers
            .contains_key(headers::X_FORWARDED_PROTO)
        {
            upstream_request
                .insert_header(headers::X_FORWARDED_PROTO, HeaderValue::from_static("http"))?;
        }
        if !upstream_request
            .headers
            .contains_key(headers::X_FORWARDED_HOST)
        {
            let host = session.req_header().headers.get(HOST).cloned().or_else(|| {
                let authority = session.req_header().uri.authority()?;
                HeaderValue::from_str(authority.as_str()).ok()
            });
            if let Some(host) = host {
                upstream_request.insert_header(headers::X_FORWARDED_HOST, host)?;
            }
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        accounting::count_upstream_failure(ctx, e.etype());
        ctx.connect_failures += 1;
        // Nothing reached the upstream, so any method may try again: first the upstream's other
        // endpoints (round robin picks the next), then the route's fallback.
        let endpoints = ctx
            .table
            .as_deref()
            .zip(ctx.upstream)
            .and_then(|(t, id)| t.upstream(id))
            .map_or(0, |u| u.endpoints.len());
        if ctx.connect_failures < endpoints {
            e.set_retry(true);
        } else if let Some(to) = fallback::fallback_for(&ctx.attempt(session)) {
            ctx.fallback = Some(to);
            ctx.connect_failures = 0;
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if matches!(e.esource(), pingora::ErrorSource::Upstream) {
            accounting::count_upstream_failure(ctx, e.etype());
        }
        let attempt = ctx.attempt(session);
        // A pooled connection the upstream had already closed is not a failure of the upstream:
        // an idempotent request tries it again on a fresh connection before any fallback.
        let stale_connection = client_reused
            && matches!(e.retry, pingora::RetryType::ReusedOnly)
            && attempt.method.is_idempotent();
        let replay_to = fallback::fallback_for(&attempt)
            .filter(|_| !stale_connection && fallback::is_upstream_failure(e.etype(), e.esource()));
        if let Some(to) = replay_to {
            ctx.fallback = Some(to);
            e.set_retry(true);
        } else if !attempt.method.is_idempotent() || attempt.body_truncated || ctx.response_started
        {
            e.set_retry(false);
        } else {
            // A pooled connection the upstream had closed: try again on a fresh one.
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        if status >= 500 && fallback::fallback_for(&ctx.attempt(session)).is_some() {
            return Error::e_explain(
                ErrorType::HTTPStatus(status),
                "upstream answered with a server error; replaying to the fallback",
            );
        }
        for name in headers::response_hop_by_hop(&upstream_response.headers) {
            upstream_response.remove_header(&name);
        }
        // Pingora 0.9 drops HTTP/1 trailers, so do not announce any.
        upstream_response.remove_header(&http::header::TRAILER);
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.response_started = true;
        if let Some(id) = &ctx.request_id {
            if !upstream_response
                .headers
                .contains_key(headers::X_REQUEST_ID)
            {
                upstream_response.insert_header(headers::X_REQUEST_ID, id.clone())?;
            }
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        accounting::finish_request(session, e, ctx, &self.access_log);
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = errors::status_for(e.etype(), e.esource());
        if code > 0 && !ctx.response_started {
            if let Err(write_err) = write_error(session, code, ctx.request_id.as_ref()).await {
                tracing::debug!("could not send the error response: {write_err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}

async fn write_error(
    session: &mut Session,
    code: u16,
    request_id: Option<&HeaderValue>,
) -> Result<()> {
    let body = errors::body_for(code);
    let mut resp = ResponseHeader::build(code, Some(4))?;
    resp.insert_header(CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(CONTENT_LENGTH, body.len())?;
    if let Some(id) = request_id {
        resp.insert_header(headers::X_REQUEST_ID, id.clone())?;
    }
    session.set_keepalive(None);
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from_static(body.as_bytes())), true)
        .await
}
