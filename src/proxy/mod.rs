//! The Pingora layer: a switchboard that hands each phase to a module testable without sockets.
//!
//! ```text
//! request_filter            load the table once, decide the route (routing), run the route's
//!                           filter chain's request phase (filters: request id, trace context,
//!                           plugins); a plugin may answer the request itself
//!   upstream_peer           the decided upstream, or the route's fallback on a replay; a place
//!                           under its max_connections; an endpoint this request has not failed on
//!   connected_to_upstream   a fresh connect succeeded: the endpoint's run of failures is over
//!   upstream_request_filter the chain's per-attempt phase (x-forwarded-*, per-upstream rewrites)
//!   request_body_filter     the chain's request body hook
//!   fail_to_connect ─┐      another endpoint, or replay to the fallback upstream? (fallback);
//!   error_while_proxy├──    a failed endpoint counts towards its ejection
//!   upstream_response_filter  5xx → replay to the fallback
//!   response_filter         the chain's response phase (hop-by-hop headers, x-request-id)
//!   response_body_filter    the chain's response body hook; the upstream's place is freed at the end
//! fail_to_proxy             the status and short body for the error (errors)
//! logging                   metrics and the access-log line (accounting); the chain's async
//!                           request-end hook
//! ```
//!
//! Filters see the heads through `heads`, never as Pingora types.

pub(crate) mod accounting;
pub(crate) mod ctx;
pub(crate) mod edge;
pub mod errors;
pub mod fallback;
pub(crate) mod heads;
pub(crate) mod respond;
pub mod target;

pub use ctx::RequestCtx;
use respond::{write_error, write_filter_response};

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use ficus_plugin::Hooks;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::access_log::AccessLog;
use crate::metrics::Metrics;
use crate::routing::RouteTable;

/// The route table every request reads: swapped whole on reload, loaded once per request.
pub type SharedTable = Arc<ArcSwap<RouteTable>>;

/// The proxy service.
pub struct Ficus {
    table: SharedTable,
    access_log: AccessLog,
    metrics: Arc<Metrics>,
}

impl Ficus {
    pub fn new(table: SharedTable, access_log: AccessLog, metrics: Arc<Metrics>) -> Self {
        Ficus {
            table,
            access_log,
            metrics,
        }
    }
}

#[async_trait]
impl ProxyHttp for Ficus {
    type CTX = RequestCtx;

    /// No downstream modules: Pingora's default adds a (disabled) response compression module,
    /// which cost an allocation and a filter call per request for nothing.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let table = self.table.load_full();
        // The edge: a path to normalise (or a 400), x-ficus-* to drop, the client's address.
        let peer = ctx::peer_ip(session.client_addr());
        let normalized =
            match edge::prepare(session.req_header_mut(), peer, &table, &mut ctx.filter) {
                Ok(n) => n,
                Err(e) => {
                    ctx.response_started = true;
                    write_error(session, e.status(), e.page(), None).await?;
                    return Ok(true);
                }
            };
        let answer = ctx.route(table, session.req_header_mut(), normalized.as_ref());
        match answer {
            None => Ok(false),
            Some(response) => {
                // Set first: should the write fail halfway, no error page may follow it.
                ctx.response_started = true;
                if let Some((chain, cx)) = ctx.chain() {
                    write_filter_response(session, response, chain, cx).await?;
                }
                Ok(true)
            }
        }
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
        let upstream = table
            .upstream(id)
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "unknown upstream"))?;
        if ctx.upstream != Some(id) {
            // A new upstream (the first attempt, or the fallback): its own endpoints and cap.
            ctx.upstream = Some(id);
            ctx.tried.clear();
            ctx.permit = None;
            if upstream.pool.capped() {
                ctx.permit = Some(upstream.pool.acquire().ok_or_else(|| {
                    Error::explain(
                        errors::AT_CAPACITY,
                        "the upstream's max_connections are in use",
                    )
                })?);
            }
        }
        // A retry after connect failures avoids the endpoints this request already failed on.
        let (addr, info) = upstream
            .pool
            .pick(&ctx.tried)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no endpoint left to try"))?;
        let mut peer = Box::new(info.peer.clone());
        ctx.endpoint = Some((addr, info));
        if session.is_upgrade_req() {
            // An upgraded connection (websocket) may rightly stay idle far longer than a response
            // may take: read_timeout would cut it after its first quiet spell.
            peer.options.read_timeout = None;
        }
        Ok(peer)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let fallback = ctx.fallback.is_some();
        ctx.body_seen.new_attempt();
        let endpoint = ctx.endpoint.as_ref().map(|(_, info)| Arc::clone(info));
        let (Some(id), Some((table, chain, cx))) = (ctx.upstream, ctx.with_table()) else {
            return Error::e_explain(ErrorType::InternalError, "no upstream chosen");
        };
        let upstream = table.upstream(id);
        let attempt = ficus_plugin::Attempt {
            upstream: upstream.map_or("", |u| u.name.as_str()),
            host: endpoint.as_deref().map_or("", |e| e.host.as_str()),
            fallback,
        };
        chain
            .on_upstream_request(&mut heads::Req(upstream_request), &attempt, cx)
            .or_else(|e| Error::e_explain(ErrorType::InternalError, format!("filter: {e}")))
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let wanted = ctx
            .chain()
            .is_some_and(|(c, _)| c.uses(Hooks::REQUEST_BODY));
        if wanted {
            // A retry replays the body sent so far through this phase: filters see it once.
            if let Some((fresh, end)) = ctx.body_seen.unseen(body.as_ref(), end_of_stream) {
                if let Some((chain, cx)) = ctx.chain() {
                    chain.on_request_body(fresh.as_ref(), end, cx);
                }
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
        accounting::count_upstream_failure(&self.metrics, ctx, e.etype());
        let pool = ctx
            .table
            .as_deref()
            .zip(ctx.upstream)
            .and_then(|(t, id)| t.upstream(id))
            .map(|u| Arc::clone(&u.pool));
        if let (Some(pool), Some((addr, _))) = (&pool, ctx.endpoint.take()) {
            pool.connect_failed(addr);
            ctx.tried.push(addr);
        }
        // Nothing reached the upstream, so any method may try again: first the upstream's
        // endpoints this request has not tried, then the route's fallback.
        if pool.is_some_and(|p| p.worth_retrying(&ctx.tried)) {
            e.set_retry(true);
        } else if let Some(to) = fallback::fallback_for(&attempt_of(ctx, session)) {
            ctx.fallback = Some(to);
            e.set_retry(true);
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if reused {
            return Ok(());
        }
        let (Some(table), Some(id), Some((addr, _))) =
            (ctx.table.as_deref(), ctx.upstream, ctx.endpoint.as_ref())
        else {
            return Ok(());
        };
        if let Some(u) = table.upstream(id) {
            u.pool.connected(*addr);
        }
        Ok(())
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
            accounting::count_upstream_failure(&self.metrics, ctx, e.etype());
        }
        let attempt = attempt_of(ctx, session);
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
        // A status HTTP does not define, or a switch of protocols the client never asked for, is
        // a broken answer: 502 (or the fallback), never passed on.
        let broken = status >= 600 || (status == 101 && !session.is_upgrade_req());
        if broken {
            return Error::e_explain(
                errors::BROKEN_ANSWER,
                format!("upstream answered with status {status}"),
            );
        }
        if status >= 500 && fallback::fallback_for(&attempt_of(ctx, session)).is_some() {
            return Error::e_explain(
                ErrorType::HTTPStatus(status),
                "upstream answered with a server error; replaying to the fallback",
            );
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.response_started = true;
        if let Some((chain, cx)) = ctx.chain() {
            chain.on_response(&mut heads::Resp(upstream_response), cx);
        }
        // Pingora 0.9.1's proxy path drops HTTP/1 trailers: none may be announced.
        upstream_response.remove_header(&http::header::TRAILER);
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if end_of_stream {
            // The upstream has answered in full: its place under max_connections is free.
            ctx.permit = None;
        }
        if let Some((chain, cx)) = ctx.chain().filter(|(c, _)| c.uses(Hooks::RESPONSE_BODY)) {
            chain.on_response_body(body.as_ref(), end_of_stream, cx);
        }
        Ok(None)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        ctx.permit = None;
        let wants_end = ctx.chain().is_some_and(|(c, _)| c.uses(Hooks::REQUEST_END));
        let req = session.req_header();
        let done = accounting::Done {
            method: req.method.as_str(),
            path: req.uri.path(),
            status_written: session.response_written().map(|r| r.status.as_u16()),
            bytes: session.body_bytes_sent(),
        };
        let end =
            accounting::finish_request(&done, e, ctx, &self.access_log, &self.metrics, wants_end);
        if let (Some(end), Some((chain, cx))) = (end, ctx.chain()) {
            chain.on_request_end(&end, cx).await;
        }
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = errors::status_for(e.etype(), e.esource());
        if code > 0 && !ctx.response_started {
            let page = Bytes::from_static(errors::body_for(code).as_bytes());
            let id = ctx.filter.request_id.clone();
            let written = match respond::failure_head(code, page.len(), id, ctx.chain()) {
                Ok(head) => respond::write_error_head(session, head, page).await,
                Err(e) => Err(e),
            };
            if let Err(write_err) = written {
                tracing::debug!("could not send the error response: {write_err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}

/// The fallback decision's view of the attempt in flight on `session`.
fn attempt_of<'a>(ctx: &'a RequestCtx, session: &'a Session) -> fallback::Attempt<'a> {
    ctx.attempt(
        &session.req_header().method,
        session.as_ref().retry_buffer_truncated(),
    )
}
