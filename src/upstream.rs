//! Upstreams: named groups of endpoints, resolved once when the table is built.
//!
//! `HttpPeer::new` would resolve names with blocking DNS on the request path (and panic when that
//! fails), so every address is resolved by [`Endpoint::resolve`] while the table is compiled, and
//! each endpoint keeps a ready-made peer that a request only clones.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;

/// Why an upstream URL cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("invalid upstream url {url:?}: {reason}")]
    Invalid { url: String, reason: String },
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
}

/// A parsed (not yet resolved) upstream URL: `http://host:port` or `https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl EndpointUrl {
    /// Parses `http(s)://host[:port]`; a path other than `/`, a query or user info are refused,
    /// since ficus forwards the client's own path unchanged.
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        let invalid = |reason: &str| EndpointError::Invalid {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|_| invalid("expected http://host:port or https://host:port"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(_) => return Err(invalid("the scheme must be http or https")),
            None => return Err(invalid("missing scheme: write http://host:port")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user info is not supported"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid(
                "an upstream url has no path or query; ficus forwards the client's path as is",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(EndpointUrl {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

/// One resolved endpoint of an upstream, with its peer built once.
#[derive(Debug)]
pub struct Endpoint {
    pub url: String,
    /// The host as written in the url (what a `Host` rewrite for this endpoint uses).
    pub host: String,
    pub addr: SocketAddr,
    peer: HttpPeer,
}

/// Per-upstream connection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamOptions {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Verify the certificate of https endpoints (default true).
    pub tls_verify: bool,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(30),
            tls_verify: true,
        }
    }
}

impl Endpoint {
    /// Resolves `url` (blocking DNS: call this off the request path) and builds its peer.
    pub fn resolve(url: &str, options: UpstreamOptions) -> Result<Self, EndpointError> {
        let parsed = EndpointUrl::parse(url)?;
        let addr = (parsed.host.as_str(), parsed.port)
            .to_socket_addrs()
            .map_err(|e| EndpointError::Resolve {
                host: parsed.host.clone(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| EndpointError::Resolve {
                host: parsed.host.clone(),
                reason: "no address found".to_string(),
            })?;
        let mut peer = HttpPeer::new(addr, parsed.tls, parsed.host.clone());
        peer.options.connection_timeout = Some(options.connect_timeout);
        peer.options.read_timeout = Some(options.read_timeout);
        peer.options.write_timeout = Some(options.read_timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        peer.options.verify_cert = options.tls_verify;
        peer.options.verify_hostname = options.tls_verify;
        Ok(Endpoint {
            url: url.to_string(),
            host: parsed.host,
            addr,
            peer,
        })
    }
}

/// A named upstream: one or more endpoints used round robin.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub options: UpstreamOptions,
    next: AtomicUsize,
}

impl Upstream {
    /// `endpoints` must not be empty (the config compiler guarantees it).
    pub fn new(name: String, endpoints: Vec<Endpoint>, options: UpstreamOptions) -> Self {
        Upstream {
            name,
            endpoints,
            options,
            next: AtomicUsize::new(0),
        }
    }

    /// The endpoint for the next request, round robin: an index for [`Upstream::peer_at`].
    pub fn next_index(&self) -> usize {
        match self.endpoints.len() {
            0 | 1 => 0,
            n => self.next.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    /// The endpoint `tries` places after `first` (wrapping), so that a request retrying after
    /// connect failures visits each endpoint once, whatever other requests do meanwhile.
    pub fn after(&self, first: usize, tries: usize) -> usize {
        first.wrapping_add(tries) % self.endpoints.len().max(1)
    }

    /// The peer of endpoint `i`, with its own copy of the options.
    pub fn peer_at(&self, i: usize) -> Option<Box<HttpPeer>> {
        self.endpoints.get(i).map(|e| Box::new(e.peer.clone()))
    }

    /// The peer for the next request, round robin over the endpoints.
    pub fn next_peer(&self) -> Option<Box<HttpPeer>> {
        self.peer_at(self.next_index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_and_https_with_default_ports() {
        let u = EndpointUrl::parse("http://127.0.0.1:8001").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 8001));
        let u = EndpointUrl::parse("https://example.com").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (true, "example.com", 443));
        let u = EndpointUrl::parse("http://[::1]:81/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 81));
    }

    #[test]
    fn refuses_paths_schemes_and_garbage() {
        for bad in [
            "ftp://x:1",
            "127.0.0.1:80",
            "http://x:1/base",
            "http://x:1/?a=b",
            "http://u@x:1",
            "::",
        ] {
            assert!(EndpointUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn round_robin_visits_every_endpoint_in_turn() {
        let opts = UpstreamOptions::default();
        let eps = [
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "http://127.0.0.1:3",
        ]
        .iter()
        .map(|u| Endpoint::resolve(u, opts).unwrap())
        .collect();
        let up = Upstream::new("x".into(), eps, opts);
        let ports: Vec<u16> = (0..6)
            .map(|_| up.next_peer().unwrap()._address.as_inet().unwrap().port())
            .collect();
        assert_eq!(ports, vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn retries_visit_every_endpoint_once_from_the_first() {
        let opts = UpstreamOptions::default();
        let eps = [
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "http://127.0.0.1:3",
        ]
        .iter()
        .map(|u| Endpoint::resolve(u, opts).unwrap())
        .collect();
        let up = Upstream::new("x".into(), eps, opts);
        // Whatever other requests take meanwhile, one request's tries do not repeat.
        let first = up.next_index();
        let mut seen: Vec<usize> = (0..3).map(|t| up.after(first, t)).collect();
        up.next_index();
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2]);
    }
}
