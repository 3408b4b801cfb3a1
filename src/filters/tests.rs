//! The chain's rules, without sockets: hooks skip filters, an early answer ends the chain and is
//! recorded, and the built-ins do to a plain `http` head what they do on the wire.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ficus_plugin::http::{self, HeaderValue, Request, StatusCode};
use ficus_plugin::{Attempt, Filter, FilterCtx, Flow, Hooks, RequestHead, Response};

use super::FilterChain;

/// Counts its calls and answers 401 when the request has no `authorization`.
struct Gate {
    calls: AtomicUsize,
}

impl Filter for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }
    fn on_request(&self, req: &mut dyn RequestHead, _cx: &mut FilterCtx) -> Flow {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if req.headers().contains_key(http::header::AUTHORIZATION) {
            Flow::Continue
        } else {
            Flow::Respond(Response::new(StatusCode::UNAUTHORIZED))
        }
    }
}

/// Marks the request, at the request phase and on each upstream attempt.
struct Mark;

impl Filter for Mark {
    fn name(&self) -> &str {
        "mark"
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST | Hooks::UPSTREAM_REQUEST
    }
    fn on_request(&self, req: &mut dyn RequestHead, _cx: &mut FilterCtx) -> Flow {
        req.insert_header(
            http::HeaderName::from_static("x-marked"),
            HeaderValue::from_static("1"),
        );
        Flow::Continue
    }
    fn on_upstream_request(
        &self,
        req: &mut dyn RequestHead,
        attempt: &Attempt,
        _cx: &mut FilterCtx,
    ) -> Result<(), ficus_plugin::FilterError> {
        let value = HeaderValue::from_str(attempt.upstream)
            .map_err(|e| ficus_plugin::FilterError(e.to_string()))?;
        req.insert_header(http::HeaderName::from_static("x-attempt"), value);
        Ok(())
    }
}

fn request(auth: bool) -> http::request::Parts {
    let mut b = Request::builder()
        .uri("/orders/7")
        .header("host", "shop.example");
    if auth {
        b = b.header("authorization", "Bearer t");
    }
    b.body(()).unwrap().into_parts().0
}

#[test]
fn an_early_answer_ends_the_chain_and_names_its_filter() {
    let gate = Arc::new(Gate {
        calls: AtomicUsize::new(0),
    });
    let chain = FilterChain::with_plugins(vec![gate.clone(), Arc::new(Mark)]);
    let mut cx = FilterCtx::default();
    let mut req = request(false);
    let answer = chain
        .on_request(&mut req, &mut cx)
        .expect("the gate answers");
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(cx.answered_by.as_deref(), Some("gate"));
    assert!(
        !req.headers.contains_key("x-marked"),
        "later filters did not run"
    );
    // The built-ins ahead of the plugins ran: the request has its id.
    assert!(cx.request_id.is_some());

    let mut cx = FilterCtx::default();
    let mut req = request(true);
    assert!(chain.on_request(&mut req, &mut cx).is_none());
    assert_eq!(req.headers["x-marked"], "1");
    assert_eq!(cx.answered_by, None);
    assert_eq!(gate.calls.load(Ordering::Relaxed), 2);
}

#[test]
fn the_upstream_phase_runs_once_per_attempt_with_that_attempt() {
    let chain = FilterChain::with_plugins(vec![Arc::new(Mark)]);
    let mut cx = FilterCtx {
        peer_ip: "10.0.0.9".parse().ok(),
        ..FilterCtx::default()
    };
    for (upstream, fallback) in [("orders", false), ("legacy", true)] {
        let mut req = request(true);
        let attempt = Attempt {
            upstream,
            host: "127.0.0.1",
            fallback,
        };
        chain
            .on_upstream_request(&mut req, &attempt, &mut cx)
            .unwrap();
        assert_eq!(req.headers["x-attempt"], upstream);
        assert_eq!(req.headers["x-forwarded-for"], "10.0.0.9");
        assert_eq!(req.headers["x-forwarded-host"], "shop.example");
        assert_eq!(req.headers["x-forwarded-proto"], "http");
    }
}

#[test]
fn the_builtin_chain_has_no_plugins_and_lists_none() {
    let chain = FilterChain::builtin();
    assert!(!chain.has_plugins());
    assert_eq!(chain.plugin_names().count(), 0);
    let with = FilterChain::with_plugins(vec![Arc::new(Mark)]);
    assert_eq!(with.plugin_names().collect::<Vec<_>>(), ["mark"]);
}

#[test]
fn responses_get_the_request_id_and_lose_hop_by_hop_headers() {
    let chain = FilterChain::builtin();
    let mut cx = FilterCtx::default();
    let mut req = request(true);
    assert!(chain.on_request(&mut req, &mut cx).is_none());
    let id = req.headers["x-request-id"].clone();
    let mut resp = http::Response::builder()
        .header("connection", "x-secret")
        .header("x-secret", "1")
        .header("trailer", "x-checksum")
        .header("content-type", "text/plain")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    chain.on_response(&mut resp, &mut cx);
    assert_eq!(resp.headers["x-request-id"], id);
    assert!(!resp.headers.contains_key("x-secret"));
    assert_eq!(
        resp.headers["trailer"], "x-checksum",
        "trailers are forwarded, so their announcement stays"
    );
    assert_eq!(resp.headers["content-type"], "text/plain");
}

#[test]
fn an_upstream_cannot_strip_the_request_id_through_its_connection_header() {
    let chain = FilterChain::builtin();
    let mut cx = FilterCtx::default();
    let mut req = request(true);
    assert!(chain.on_request(&mut req, &mut cx).is_none());
    let mut resp = http::Response::builder()
        .header("connection", "x-request-id")
        .header("x-request-id", "forged")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    chain.on_response(&mut resp, &mut cx);
    assert_eq!(resp.headers["x-request-id"], req.headers["x-request-id"]);
}
