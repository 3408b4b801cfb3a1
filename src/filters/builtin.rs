//! What ficus does to every request, as filters at the head of every chain (CONTRACT section 4):
//! a request id, W3C trace context, the `x-forwarded-*` headers, and no hop-by-hop headers in
//! responses. The header rules themselves are pure functions in [`super::headers`].

use std::sync::Arc;

use ficus_plugin::http::header::{HeaderValue, CONNECTION, HOST, TE, UPGRADE};
use ficus_plugin::{
    Attempt, Filter, FilterCtx, FilterError, Flow, Hooks, RequestHead, ResponseHead,
};

use super::headers::{self, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};

/// The built-ins, in the order they run. `HopByHop` comes first so that, at the response phase,
/// it strips what the upstream's `Connection` header names before anything is added: an
/// upstream saying `Connection: x-request-id` cannot take the request id away.
pub fn all() -> Vec<Arc<dyn Filter>> {
    vec![
        Arc::new(HopByHop),
        Arc::new(RequestId),
        Arc::new(TraceContext),
        Arc::new(ForwardedHeaders),
    ]
}

/// Keeps the client's `x-request-id` or adds a new one, and returns it on the response.
pub struct RequestId;

impl Filter for RequestId {
    fn name(&self) -> &str {
        "request-id"
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST | Hooks::RESPONSE
    }

    fn on_request(&self, req: &mut dyn RequestHead, cx: &mut FilterCtx) -> Flow {
        let id = match headers::incoming_request_id(req.headers()) {
            Some(id) => id,
            None => {
                let id = headers::new_request_id();
                req.insert_header(X_REQUEST_ID, id.clone());
                id
            }
        };
        cx.request_id = Some(id);
        Flow::Continue
    }

    fn on_response(&self, resp: &mut dyn ResponseHead, cx: &mut FilterCtx) {
        if let Some(id) = &cx.request_id {
            if !resp.headers().contains_key(X_REQUEST_ID) {
                resp.insert_header(X_REQUEST_ID, id.clone());
            }
        }
    }
}

/// Passes a valid W3C `traceparent` on and starts a new trace otherwise. Decided once at the
/// request phase, so a fallback replay (and a mirrored copy) carries the same trace.
pub struct TraceContext;

impl Filter for TraceContext {
    fn name(&self) -> &str {
        "trace-context"
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }

    fn on_request(&self, req: &mut dyn RequestHead, _cx: &mut FilterCtx) -> Flow {
        if let Some(tp) = headers::traceparent(req.headers().get(headers::TRACEPARENT)) {
            // The old tracestate belongs to the trace that was replaced.
            req.remove_header(&headers::TRACESTATE);
            req.insert_header(headers::TRACEPARENT, tp);
        }
        Flow::Continue
    }
}

/// `x-forwarded-for` (the peer appended), and `x-forwarded-proto` and `-host`: kept when a
/// trusted proxy set them, else set by ficus (a client cannot tell the upstream it came over TLS).
pub struct ForwardedHeaders;

impl Filter for ForwardedHeaders {
    fn name(&self) -> &str {
        "forwarded-headers"
    }

    fn hooks(&self) -> Hooks {
        Hooks::UPSTREAM_REQUEST
    }

    fn on_upstream_request(
        &self,
        req: &mut dyn RequestHead,
        _attempt: &Attempt,
        cx: &mut FilterCtx,
    ) -> Result<(), FilterError> {
        if let Some(ip) = cx.peer_ip {
            let xff = headers::forwarded_for(req.headers(), ip);
            req.insert_header(X_FORWARDED_FOR, xff);
        }
        // A trusted edge in front of ficus (a TLS-terminating load balancer) knows the client's
        // scheme and host better than ficus: keep what it wrote. Anyone else's are replaced.
        let trusted = cx.peer_trusted;
        if !(trusted && req.headers().contains_key(X_FORWARDED_PROTO)) {
            req.insert_header(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        }
        if !(trusted && req.headers().contains_key(X_FORWARDED_HOST)) {
            let host = req.headers().get(HOST).cloned().or_else(|| {
                let authority = req.uri().authority()?;
                HeaderValue::from_str(authority.as_str()).ok()
            });
            match host {
                Some(host) => req.insert_header(X_FORWARDED_HOST, host),
                None => req.remove_header(&X_FORWARDED_HOST),
            }
        }
        Ok(())
    }
}

/// Removes a request's hop-by-hop headers on each attempt (a websocket upgrade keeps its
/// `Connection: Upgrade` and `Upgrade: websocket`, and a client that accepts trailers says so
/// upstream with `TE: trailers`), and a response's.
pub struct HopByHop;

impl Filter for HopByHop {
    fn name(&self) -> &str {
        "hop-by-hop"
    }

    fn hooks(&self) -> Hooks {
        Hooks::UPSTREAM_REQUEST | Hooks::RESPONSE
    }

    fn on_upstream_request(
        &self,
        req: &mut dyn RequestHead,
        _attempt: &Attempt,
        _cx: &mut FilterCtx,
    ) -> Result<(), FilterError> {
        let websocket = headers::is_websocket_upgrade(req.version(), req.headers());
        let trailers = headers::accepts_trailers(req.headers());
        for name in headers::request_hop_by_hop(req.headers()) {
            req.remove_header(&name);
        }
        if trailers {
            req.insert_header(TE, HeaderValue::from_static("trailers"));
        }
        if websocket {
            req.insert_header(CONNECTION, HeaderValue::from_static("Upgrade"));
            req.insert_header(UPGRADE, HeaderValue::from_static("websocket"));
        }
        Ok(())
    }

    fn on_response(&self, resp: &mut dyn ResponseHead, _cx: &mut FilterCtx) {
        for name in headers::response_hop_by_hop(resp.headers()) {
            resp.remove_header(&name);
        }
    }
}
