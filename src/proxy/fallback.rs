//! When a request is replayed to its route's fallback upstream.
//!
//! On a connect failure, a timeout, a broken or garbled answer, or a 5xx from the route's upstream,
//! a request is sent once more to `fallback`, provided nothing has reached the client yet, the
//! method is safe (GET, HEAD, OPTIONS) or the route says `fallback_unsafe = true`, and the body
//! still fits in Pingora's retry buffer (64 KiB) so it can be replayed whole.

use http::Method;
use pingora::{ErrorSource, ErrorType};

use crate::routing::{Route, UpstreamId};

/// What is known about the request when an attempt fails.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub route: Option<&'a Route>,
    pub method: &'a Method,
    /// The upstream of the attempt that failed.
    pub upstream: Option<UpstreamId>,
    /// The request is already on its fallback upstream.
    pub fell_back: bool,
    /// A response header has been sent to the client.
    pub response_started: bool,
    /// The request body outgrew the retry buffer.
    pub body_truncated: bool,
}

/// The fallback upstream to replay to, if this attempt may fall back at all.
pub fn fallback_for(a: &Attempt) -> Option<UpstreamId> {
    let route = a.route?;
    let fallback = route.action.fallback?;
    let safe = matches!(*a.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let allowed = (safe || route.action.fallback_unsafe)
        && !a.fell_back
        && !a.response_started
        && !a.body_truncated
        // A split side that is also the fallback would only be asked again.
        && a.upstream != Some(fallback);
    allowed.then_some(fallback)
}

/// Whether this error is one that fallback answers: the upstream failed, not the client.
pub fn is_upstream_failure(etype: &ErrorType, source: &ErrorSource) -> bool {
    match etype {
        ErrorType::HTTPStatus(code) => *code >= 500,
        _ => matches!(source, ErrorSource::Upstream),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    const TABLE: &str = r#"
[proxy]
default = "legacy"
[upstreams.legacy]
url = "http://127.0.0.1:1"
[upstreams.orders]
url = "http://127.0.0.1:2"
[[routes]]
name = "safe"
path = "/a"
upstream = "orders"
fallback = "legacy"
[[routes]]
name = "unsafe"
path = "/b"
upstream = "orders"
fallback = "legacy"
fallback_unsafe = true
[[routes]]
name = "none"
path = "/c"
upstream = "orders"
"#;

    #[test]
    fn only_safe_methods_fall_back_unless_the_route_allows_more() {
        let t = load_str(TABLE, "t.toml").unwrap();
        let legacy = t.upstream_ids["legacy"];
        let attempt = |route: usize, method: &Method| {
            fallback_for(&Attempt {
                route: Some(&t.routes[route]),
                method,
                upstream: Some(t.upstream_ids["orders"]),
                fell_back: false,
                response_started: false,
                body_truncated: false,
            })
        };
        assert_eq!(attempt(0, &Method::GET), Some(legacy));
        assert_eq!(attempt(0, &Method::POST), None);
        assert_eq!(attempt(1, &Method::POST), Some(legacy));
        assert_eq!(attempt(2, &Method::GET), None);
    }

    #[test]
    fn never_twice_never_after_the_response_started_never_with_a_lost_body() {
        let t = load_str(TABLE, "t.toml").unwrap();
        let base = Attempt {
            route: Some(&t.routes[1]),
            method: &Method::POST,
            upstream: Some(t.upstream_ids["orders"]),
            fell_back: false,
            response_started: false,
            body_truncated: false,
        };
        assert!(fallback_for(&base).is_some());
        assert!(fallback_for(&Attempt {
            fell_back: true,
            ..base
        })
        .is_none());
        assert!(fallback_for(&Attempt {
            response_started: true,
            ..base
        })
        .is_none());
        assert!(fallback_for(&Attempt {
            body_truncated: true,
            ..base
        })
        .is_none());
        assert!(fallback_for(&Attempt {
            route: None,
            ..base
        })
        .is_none());
    }

    #[test]
    fn client_errors_do_not_trigger_fallback() {
        assert!(is_upstream_failure(
            &ErrorType::ConnectRefused,
            &ErrorSource::Upstream
        ));
        assert!(is_upstream_failure(
            &ErrorType::HTTPStatus(503),
            &ErrorSource::Unset
        ));
        assert!(!is_upstream_failure(
            &ErrorType::HTTPStatus(404),
            &ErrorSource::Upstream
        ));
        assert!(!is_upstream_failure(
            &ErrorType::ConnectionClosed,
            &ErrorSource::Downstream
        ));
    }
}
