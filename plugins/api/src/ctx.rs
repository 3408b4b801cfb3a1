//! What a filter knows about the request beyond its head, and what filters hand each other.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Extensions, HeaderValue};

/// Per-request state shared by every filter of the chain, created when the request's route is
/// known and dropped when the request ends.
#[derive(Debug, Default)]
pub struct FilterCtx {
    /// The matched route's name; `None` when no route matched (the default upstream).
    pub route: Option<Arc<str>>,
    /// The client's address as ficus believes it (see `trusted_proxies`).
    pub client_ip: Option<IpAddr>,
    /// The address of the peer that sent the request (the client, or a proxy in front of ficus).
    pub peer_ip: Option<IpAddr>,
    /// Whether that peer is a trusted proxy, whose X-Forwarded-* headers are believed.
    pub peer_trusted: bool,
    /// The request's `x-request-id`, once the request-id filter has set it.
    pub request_id: Option<HeaderValue>,
    /// The matched path template's parameters (`/orders/{id}` gives `("id", "42")`), in order.
    pub params: Vec<(Arc<str>, String)>,
    /// The client version read for this request, when a filter or route needed it.
    pub client_version: Option<String>,
    /// Typed values one filter hands to a later one (`jwt` puts verified claims here for
    /// `rate_limit`). Empty, it costs nothing.
    pub extensions: Extensions,
    /// The name of the filter that answered the request itself, if one did.
    pub answered_by: Option<Arc<str>>,
}

impl FilterCtx {
    /// The value of template parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One attempt to reach an upstream, as [`crate::Filter::on_upstream_request`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The upstream's name in the route table.
    pub upstream: &'a str,
    /// The endpoint's host as written in its url (for a `Host` rewrite).
    pub host: &'a str,
    /// True when this attempt is a replay to the route's fallback upstream.
    pub fallback: bool,
}

/// How a request ended, for [`crate::Filter::on_request_end`].
#[derive(Debug, Clone)]
pub struct RequestEnd {
    /// The status the client got; 499 when it left before its answer.
    pub status: u16,
    /// The upstream that answered, if any did.
    pub upstream: Option<String>,
    pub duration: Duration,
    /// Set when the request failed, with a short reason.
    pub error: Option<String>,
}

/// The claims of a verified token, put in [`FilterCtx::extensions`] by the filter that verified it
/// (`jwt`) for later filters (`rate_limit` keyed by `claim:NAME`, `headers`). Each value as text:
/// a string as itself, anything else as its compact JSON. Shared, not copied: a cached token's
/// claims go into each of its requests' contexts for the price of a reference count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims(std::sync::Arc<std::collections::BTreeMap<String, String>>);

impl Claims {
    pub fn new(claims: std::collections::BTreeMap<String, String>) -> Claims {
        Claims(std::sync::Arc::new(claims))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every claim, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
