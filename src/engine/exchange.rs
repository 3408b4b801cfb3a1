//! One request on the h1 engine, as a switchboard like `proxy/mod.rs`: the edge and routing, the
//! attempts with their retry and fallback rules, the response, and the accounting. The rules
//! are the ones Pingora's engine uses, from the same modules (`proxy::{ctx, edge, fallback,
//! errors, accounting}`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use ficus_plugin::Hooks;
use http::Version;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::v1::client::HttpSession as Upstream;
use pingora::protocols::http::v1::server::HttpSession as Downstream;
use pingora::{Error, ErrorType, Result, RetryType};

use super::answer::{client_fault, refuse_head, write_whole};
use super::{body, H1};
use crate::proxy::accounting::{self, Done};
use crate::proxy::respond::{error_head, failure_head, filter_response_head};
use crate::proxy::{ctx, edge, errors, fallback, heads, RequestCtx};
use crate::routing::RouteTable;
use crate::upstream::pool::Pool;

/// Serves the request whose head `down` has read, and accounts for it. `closing`: the server is
/// stopping, so the response says `connection: close`.
pub(super) async fn serve(app: &H1, down: &mut Downstream, closing: bool) {
    if closing {
        down.set_server_keepalive(None);
    }
    if down.req_header().method == http::Method::CONNECT {
        // Tunnels are not proxied (nor by Pingora's engine): 405, and the connection closes.
        refuse_head(app, down, 405, "connect").await;
        return;
    }
    let mut ctx = RequestCtx::new();
    let result = run(app, down, &mut ctx).await;
    let e = result.err();
    if let Some(e) = &e {
        if let Some(reason) = client_fault(e) {
            app.metrics.client_errors.with_label_values(&[reason]).inc();
        }
        let code = errors::status_for(e.etype(), e.esource());
        if code > 0 && !ctx.response_started {
            let page = errors::body_for(code);
            if let Err(w) = write_whole(
                down,
                failure_head(code, page.len(), ctx.filter.request_id.clone(), ctx.chain()),
                Bytes::from_static(page.as_bytes()),
                true,
            )
            .await
            {
                tracing::debug!("could not send the error response: {w}");
            }
        }
        // After an error the connection's state is unknown: it is not reused.
        down.set_server_keepalive(None);
    }
    ctx.permit = None;
    let wants_end = ctx.chain().is_some_and(|(c, _)| c.uses(Hooks::REQUEST_END));
    let req = down.req_header();
    let done = Done {
        method: req.method.as_str(),
        path: req.uri.path(),
        status_written: down
            .response_written()
            .map(|r| r.status.as_u16())
            .filter(|s| *s >= 200),
        bytes: down.body_bytes_sent(),
    };
    let end = accounting::finish_request(
        &done,
        e.as_deref(),
        &ctx,
        &app.access_log,
        &app.metrics,
        wants_end,
    );
    if let (Some(end), Some((chain, cx))) = (end, ctx.chain()) {
        chain.on_request_end(&end, cx).await;
    }
}

async fn run(app: &H1, down: &mut Downstream, ctx: &mut RequestCtx) -> Result<()> {
    let table = app.table.load_full();
    let peer = ctx::peer_ip(down.client_addr());
    let normalized = match edge::prepare(down.req_header_mut(), peer, &table, &mut ctx.filter) {
        Ok(n) => n,
        Err(e) => {
            ctx.response_started = true;
            app.metrics
                .client_errors
                .with_label_values(&[e.reason()])
                .inc();
            let page = Bytes::from(e.page());
            let head = error_head(e.status(), page.len(), None);
            return write_whole(down, head, page, true).await;
        }
    };
    if let Some(answer) = ctx.route(table.clone(), down.req_header_mut(), normalized.as_ref()) {
        // Set first: should the write fail halfway, no error page may follow it.
        ctx.response_started = true;
        let Some((chain, cx)) = ctx.chain() else {
            return Error::e_explain(ErrorType::InternalError, "no filter chain");
        };
        let head =
            filter_response_head(answer.status, &answer.headers, answer.body.len(), chain, cx);
        return write_whole(down, head, answer.body, false).await;
    }
    let upgrade = down.is_upgrade_req();
    if !down.is_body_empty() {
        down.enable_retry_buffering();
    }
    let Forwarded {
        mut up,
        head,
        endpoint,
        pool,
        request_done,
    } = forward(app, down, ctx, &table, upgrade).await?;
    respond(down, &mut up, head, ctx, upgrade, app.is_closing()).await?;
    if request_done && !up.was_upgraded() {
        if let Some(stream) = up.reuse().await {
            pool.idle.put(endpoint, stream);
        }
    }
    Ok(())
}

/// An attempt that got its answer's head.
struct Forwarded {
    up: Upstream,
    head: Box<ResponseHeader>,
    endpoint: SocketAddr,
    pool: Arc<Pool>,
    /// The whole request body went upstream (else the connection cannot be reused).
    request_done: bool,
}

/// Attempts until one gets a response head worth passing on: another endpoint after a failed
/// connect, a fresh connection after a pooled one the upstream had closed, the route's fallback
/// after a failure or a 5xx (`fallback::fallback_for`).
async fn forward(
    app: &H1,
    down: &mut Downstream,
    ctx: &mut RequestCtx,
    table: &RouteTable,
    upgrade: bool,
) -> Result<Forwarded> {
    let Some(decision) = ctx.decision else {
        return Error::e_explain(ErrorType::InternalError, "no routing decision");
    };
    let method = down.req_header().method.clone();
    let mut fresh_only = false;
    let mut replay = false;
    loop {
        let id = ctx.fallback.unwrap_or(decision.upstream);
        let upstream = table
            .upstream(id)
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "unknown upstream"))?;
        let pool = Arc::clone(&upstream.pool);
        if ctx.upstream != Some(id) {
            // A new upstream (the first attempt, or the fallback): its own endpoints and cap.
            ctx.upstream = Some(id);
            ctx.tried.clear();
            ctx.permit = None;
            fresh_only = false;
            if pool.capped() {
                ctx.permit = Some(pool.acquire().ok_or_else(|| {
                    Error::explain(
                        errors::AT_CAPACITY,
                        "the upstream's max_connections are in use",
                    )
                })?);
            }
        }
        let (addr, info) = pool
            .pick(&ctx.tried)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no endpoint left to try"))?;
        ctx.endpoint = Some((addr, Arc::clone(&info)));
        let pooled = if fresh_only {
            None
        } else {
            pool.idle.take(addr)
        };
        let reused = pooled.is_some();
        let stream = match pooled {
            Some(s) => s,
            None => match app.connector.new_stream(&info.peer).await {
                Ok(s) => {
                    pool.connected(addr);
                    s
                }
                Err(e) => {
                    let e = e.into_up();
                    accounting::count_upstream_failure(&app.metrics, ctx, e.etype());
                    pool.connect_failed(addr);
                    ctx.tried.push(addr);
                    ctx.endpoint = None;
                    // Nothing reached the upstream, so any method may try again: first the
                    // upstream's endpoints this request has not tried, then the route's fallback.
                    if pool.worth_retrying(&ctx.tried) {
                        continue;
                    }
                    let truncated = down.retry_buffer_truncated();
                    if let Some(to) = fallback::fallback_for(&ctx.attempt(&method, truncated)) {
                        ctx.fallback = Some(to);
                        replay = true;
                        continue;
                    }
                    return Err(e);
                }
            },
        };
        let mut up = Upstream::new_with_options(stream, &info.peer);
        // An upgraded connection (websocket) may rightly stay idle far longer than a response
        // may take: a read timeout would cut it after its first quiet spell.
        up.read_timeout = if upgrade {
            None
        } else {
            info.peer.options.read_timeout
        };
        up.write_timeout = info.peer.options.write_timeout;
        let attempt = ficus_plugin::Attempt {
            upstream: upstream.name.as_str(),
            host: info.host.as_str(),
            fallback: ctx.fallback.is_some(),
        };
        let sent = match upstream_head(down, ctx, &attempt) {
            Ok(req) => body::exchange(down, &mut up, req, ctx, replay).await,
            Err(e) => Err(e),
        };
        replay = true;
        let e = match sent.and_then(|(head, done)| check_answer(head, upgrade).map(|h| (h, done))) {
            Ok((head, request_done)) => {
                let status = head.status.as_u16();
                let truncated = down.retry_buffer_truncated();
                let to = fallback::fallback_for(&ctx.attempt(&method, truncated));
                match to {
                    Some(to) if status >= 500 => {
                        // A 5xx with a fallback: replayed there; this answer is dropped unread.
                        ctx.fallback = Some(to);
                        continue;
                    }
                    _ => {
                        return Ok(Forwarded {
                            up,
                            head,
                            endpoint: addr,
                            pool,
                            request_done,
                        })
                    }
                }
            }
            Err(e) => e,
        };
        if matches!(e.esource(), pingora::ErrorSource::Upstream) {
            accounting::count_upstream_failure(&app.metrics, ctx, e.etype());
        }
        // A pooled connection the upstream had already closed is not a failure of the upstream:
        // an idempotent request tries it again on a fresh connection before any fallback.
        let stale = reused
            && matches!(e.retry, RetryType::ReusedOnly)
            && method.is_idempotent()
            && !down.retry_buffer_truncated();
        if stale {
            fresh_only = true;
            continue;
        }
        let truncated = down.retry_buffer_truncated();
        let to = fallback::fallback_for(&ctx.attempt(&method, truncated))
            .filter(|_| fallback::is_upstream_failure(e.etype(), e.esource()));
        match to {
            Some(to) => ctx.fallback = Some(to),
            None => return Err(e),
        }
    }
}

/// The request head for one attempt: the client's (after the request phase), as HTTP/1.1, after
/// the chain's per-attempt phase, framed for the body it carries.
fn upstream_head(
    down: &mut Downstream,
    ctx: &mut RequestCtx,
    attempt: &ficus_plugin::Attempt,
) -> Result<Box<RequestHeader>> {
    let has_body = !down.is_body_empty();
    let mut req = Box::new(down.req_header().clone());
    req.set_version(Version::HTTP_11);
    let Some((chain, cx)) = ctx.chain() else {
        return Error::e_explain(ErrorType::InternalError, "no filter chain");
    };
    chain
        .on_upstream_request(&mut heads::Req(&mut req), attempt, cx)
        .or_else(|e| Error::e_explain(ErrorType::InternalError, format!("filter: {e}")))?;
    if has_body
        && !req.headers.contains_key(http::header::CONTENT_LENGTH)
        && !req.headers.contains_key(http::header::TRANSFER_ENCODING)
    {
        req.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(req)
}

/// A status HTTP does not define, or a switch of protocols the client never asked for, is a
/// broken answer: 502 (or the fallback), never passed on.
fn check_answer(head: Box<ResponseHeader>, upgrade: bool) -> Result<Box<ResponseHeader>> {
    let status = head.status.as_u16();
    if status >= 600 || (status == 101 && !upgrade) {
        return Err(Error::explain(
            errors::BROKEN_ANSWER,
            format!("upstream answered with status {status}"),
        )
        .into_up());
    }
    Ok(head)
}

/// Passes the answer on: the chain's response phase, the head, then the body (or, after a 101,
/// the upgraded connection both ways).
async fn respond(
    down: &mut Downstream,
    up: &mut Upstream,
    mut head: Box<ResponseHeader>,
    ctx: &mut RequestCtx,
    upgrade: bool,
    closing: bool,
) -> Result<()> {
    up.respect_keepalive();
    if let Some((chain, cx)) = ctx.chain() {
        chain.on_response(&mut heads::Resp(&mut head), cx);
    }
    let switching = head.status.as_u16() == 101 && upgrade;
    if closing {
        // The server began stopping while this request was served: the answer says so.
        down.set_server_keepalive(None);
    }
    if !switching && !framed(&head, &down.req_header().method) {
        // The upstream ends its body by closing: re-framed as chunked for an HTTP/1.1 client (so
        // its connection stays usable), else the client's connection closes after it too.
        if down.req_header().version >= Version::HTTP_11 {
            head.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        } else {
            down.set_server_keepalive(None);
        }
    }
    let mut end_hook = !switching
        && ctx
            .chain()
            .is_some_and(|(c, _)| c.uses(Hooks::RESPONSE_END));
    if end_hook && bodiless(&head, &down.req_header().method) {
        // Nothing follows the head: the client has the whole answer once the head is out.
        if let Some((chain, cx)) = ctx.chain() {
            // Nothing has reached the client yet: a failure here is answered with a 503.
            chain
                .on_response_end(cx)
                .await
                .or_else(|e| Error::e_explain(errors::END_FAILED, format!("filter: {e}")))?;
        }
        end_hook = false;
    }
    ctx.response_started = true;
    down.write_response_header(head)
        .await
        .map_err(|e| e.into_down())?;
    if switching {
        down.set_read_timeout(None);
        up.maybe_upgrade_body_writer();
        return body::tunnel(down, up).await;
    }
    body::response(down, up, ctx, end_hook).await
}

/// Whether a response says where its body ends (a length, chunked, or no body at all).
fn framed(head: &ResponseHeader, method: &http::Method) -> bool {
    bodiless(head, method)
        || head.headers.contains_key(http::header::CONTENT_LENGTH)
        || head.headers.contains_key(http::header::TRANSFER_ENCODING)
}

/// Whether a response has no body: by its status, the request's method, or `content-length: 0`.
fn bodiless(head: &ResponseHeader, method: &http::Method) -> bool {
    matches!(head.status.as_u16(), 204 | 304)
        || *method == http::Method::HEAD
        || head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
}
