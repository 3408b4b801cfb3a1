//! The edge of the request phase, before routing: the path normalised (and forwarded so), the
//! client's `x-ficus-*` headers dropped, and the client's address worked out from the peer and
//! `trusted_proxies`. The rules themselves are pure functions in [`crate::routing::normalize`]
//! and [`crate::filters::headers`].

use ficus_plugin::FilterCtx;
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType, Result};

use super::target::{self, Target, TargetError};
use crate::filters::headers;
use crate::routing::normalize::{normalize, PathError};
use crate::routing::RouteTable;

/// Why the edge refuses a request before routing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EdgeError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Path(#[from] PathError),
}

impl EdgeError {
    /// The status the client gets: 501 for a transfer coding ficus does not implement, else 400.
    pub(crate) fn status(&self) -> u16 {
        match self {
            EdgeError::Target(t) => t.status(),
            EdgeError::Path(_) => 400,
        }
    }

    /// The `ficus_client_errors_total` reason.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            EdgeError::Target(TargetError::UnknownCoding(_)) => "unknown_coding",
            EdgeError::Target(_) => "bad_target",
            EdgeError::Path(_) => "bad_path",
        }
    }

    /// The short plain-text page.
    pub(crate) fn page(&self) -> String {
        match self.status() {
            501 => format!("501 Not Implemented: {self}\n"),
            _ => format!("400 Bad Request: {self}\n"),
        }
    }
}

/// Prepares the request head for routing. Returns the (forward, matching) paths when
/// normalisation changed anything (`None`, the common case, allocates nothing), or why the
/// request is refused.
pub(crate) fn prepare(
    req: &mut RequestHeader,
    peer: Option<std::net::IpAddr>,
    table: &RouteTable,
    cx: &mut FilterCtx,
) -> std::result::Result<Option<(String, String)>, EdgeError> {
    let normalized = match target::check(req)? {
        // `OPTIONS *` names no path: routed as the unmatched request it is.
        Target::Asterisk => None,
        Target::Origin => match normalize(req.uri.path(), table.allow_encoded_slash)? {
            p if matches!(p.matching, std::borrow::Cow::Borrowed(_)) => None,
            p => Some((p.forward.into_owned(), p.matching.into_owned())),
        },
    };
    if let Some((forward, _)) = &normalized {
        if forward != req.uri.path() {
            // A path that does not parse back is not forwarded: refused like a malformed escape.
            set_path(req, forward).map_err(|_| PathError::BadEscape)?;
        }
    }
    // x-ficus-* is ficus's namespace: a client's copy would steer routing or pose as ficus (a
    // forged x-ficus-shadow) upstream.
    for name in headers::ficus_namespace(&req.headers) {
        req.remove_header(&name);
    }
    // What the client's Connection header nominates goes now, before any filter runs: later, it
    // would take away headers the filters set (a jwt's x-user-id).
    if req.headers.contains_key(http::header::CONNECTION) {
        for name in headers::connection_nominees(&req.headers) {
            req.remove_header(&name);
        }
        match headers::connection_kept(&req.headers) {
            Some(kept) => {
                if req.insert_header(http::header::CONNECTION, kept).is_err() {
                    req.remove_header(&http::header::CONNECTION);
                }
            }
            None => {
                req.remove_header(&http::header::CONNECTION);
            }
        }
    }
    cx.peer_ip = peer;
    cx.peer_trusted = peer.is_some_and(|p| table.trusted_proxies.iter().any(|n| n.contains(&p)));
    // Only a trusted proxy may say where a request came from or what it asked for. One pass over
    // the request's few header names first: most requests carry none of these.
    let overrides = |n: &http::HeaderName| headers::UNTRUSTED_OVERRIDES.contains(n);
    if !cx.peer_trusted && req.headers.keys().any(overrides) {
        for name in &headers::UNTRUSTED_OVERRIDES {
            req.remove_header(name);
        }
    }
    cx.client_ip = peer.map(|p| headers::client_address(p, &req.headers, &table.trusted_proxies));
    Ok(normalized)
}

/// Replaces the request target's path, keeping its query.
fn set_path(req: &mut RequestHeader, path: &str) -> Result<()> {
    let target = match req.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let uri = http::Uri::try_from(target)
        .or_else(|e| Error::e_explain(ErrorType::InvalidHTTPHeader, format!("path: {e}")))?;
    req.set_uri(uri);
    Ok(())
}
