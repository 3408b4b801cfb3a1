//! What each request leaves behind once it is done: its metrics and its access-log line, and
//! the upstream failures counted as they happen.

use ficus_plugin::RequestEnd;
use pingora::{Error, ErrorType};

use super::{errors, RequestCtx};
use crate::access_log::{AccessLog, Entry};
use crate::metrics::Metrics;

/// Counts a failed connection or a timeout against the upstream of the current attempt.
pub(crate) fn count_upstream_failure(m: &Metrics, ctx: &RequestCtx, etype: &ErrorType) {
    let (Some(table), Some(id)) = (ctx.table.as_deref(), ctx.upstream) else {
        return;
    };
    let name = table.upstream_name(id);
    match etype {
        ErrorType::ConnectTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout
        | ErrorType::TLSHandshakeTimedout => m.upstream_timeouts.with_label_values(&[name]).inc(),
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::TLSHandshakeFailure
        | ErrorType::TLSWantX509Lookup
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError
        | ErrorType::SocketError
        | ErrorType::BindError
        | ErrorType::ConnectProxyFailure => {
            m.upstream_connect_errors.with_label_values(&[name]).inc()
        }
        // Failures after the connection was made, and errors that are not about reaching the
        // upstream: counted by status in ficus_requests_total.
        ErrorType::AcceptError
        | ErrorType::InvalidHTTPHeader
        | ErrorType::H1Error
        | ErrorType::H2Error
        | ErrorType::H2Downgrade
        | ErrorType::InvalidH2
        | ErrorType::ReadError
        | ErrorType::WriteError
        | ErrorType::ConnectionClosed
        | ErrorType::HTTPStatus(_)
        | ErrorType::FileOpenError
        | ErrorType::FileCreateError
        | ErrorType::FileReadError
        | ErrorType::FileWriteError
        | ErrorType::InternalError
        | ErrorType::UnknownError
        | ErrorType::Custom(_)
        | ErrorType::CustomCode(_, _) => {}
    }
}

/// The status of a request whose client left before it was answered.
const CLIENT_CLOSED: u16 = 499;

/// The request's metrics, counted once it is done. The request counter goes last, so a scrape
/// that sees a request counted also sees its duration and fallback.
fn count_request(
    m: &Metrics,
    route: &str,
    upstream: &str,
    status: u16,
    fell_back: bool,
    seconds: f64,
) {
    m.request_duration
        .with_label_values(&[route, upstream])
        .observe(seconds);
    if fell_back {
        m.fallbacks.with_label_values(&[route]).inc();
    }
    let code = http::StatusCode::from_u16(status).ok();
    let status = code.as_ref().map_or("499", |c| c.as_str());
    m.requests
        .with_label_values(&[route, upstream, status])
        .inc();
}

/// What the engine knows of a request once it is done.
pub(crate) struct Done<'a> {
    /// `-` when the head could not be read.
    pub method: &'a str,
    pub path: &'a str,
    /// The status of the response head written to the client, if one was.
    pub status_written: Option<u16>,
    /// Response body bytes sent to the client.
    pub bytes: usize,
}

/// Counts the finished request and writes its access-log line; with `describe`, also says how it
/// ended for the filters' request-end hook.
pub(crate) fn finish_request(
    done: &Done,
    e: Option<&Error>,
    ctx: &RequestCtx,
    access_log: &AccessLog,
    m: &Metrics,
    describe: bool,
) -> Option<RequestEnd> {
    let status = done.status_written.unwrap_or(0);
    let answered_by = ctx.filter.answered_by.as_deref();
    let (route, upstream) = match (ctx.table.as_deref(), ctx.decision) {
        // A request a filter answered itself reached no upstream.
        (Some(t), Some(d)) if answered_by.is_some() => (t.route_name(&d), ""),
        (Some(t), Some(d)) => (
            t.route_name(&d),
            ctx.upstream.map_or("none", |u| t.upstream_name(u)),
        ),
        _ => (crate::metrics::DEFAULT_ROUTE, "none"),
    };
    let status = match (status, e) {
        (0, Some(e)) => errors::status_for(e.etype(), e.esource()),
        (s, _) => s,
    };
    // No status: the client went away before its answer (nginx's 499).
    let status = if status == 0 { CLIENT_CLOSED } else { status };
    let duration = ctx.started.elapsed();
    count_request(
        m,
        route,
        upstream,
        status,
        ctx.fallback.is_some(),
        duration.as_secs_f64(),
    );
    if let Some(plugin) = answered_by {
        m.plugin_responses
            .with_label_values(&[route, plugin, &status.to_string()])
            .inc();
    }
    if access_log.is_on() {
        access_log.record(&Entry {
            request_id: ctx
                .filter
                .request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            method: done.method,
            path: done.path,
            route,
            upstream,
            status,
            fell_back: ctx.fallback.is_some(),
            duration,
            bytes: done.bytes,
            error: e.map(|e| e.etype().as_str()),
            answered_by,
        });
    }
    describe.then(|| RequestEnd {
        status,
        upstream: (!upstream.is_empty() && upstream != "none").then(|| upstream.to_string()),
        duration,
        error: e.map(|e| e.etype().as_str().to_string()),
    })
}
