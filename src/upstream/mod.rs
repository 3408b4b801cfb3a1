//! Upstreams: named groups of endpoints, balanced round robin, kept healthy in the background.
//!
//! An upstream's urls may name hosts: every address a name resolves to is an endpoint. Names are
//! resolved when the table compiles (a name that does not resolve is a config error) and again
//! every `resolve_interval` by [`discovery::DnsDiscovery`], off the request path: `HttpPeer::new`
//! would resolve with blocking DNS on the request path and panic when that fails. Balancing and
//! health are Pingora's load-balancing crate; what ficus adds is in [`pool::Pool`], the part of an
//! upstream that outlives a table ([`crate::state`]): the balancer with its health, passive
//! ejection after consecutive connect failures, and the cap on requests in flight.

pub mod call;
pub mod discovery;
pub mod idle;
pub mod pool;
pub mod upkeep;

use std::time::Duration;

pub use pool::{EndpointStatus, Permit, Pool};

/// Why an upstream URL cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("invalid upstream url {url:?}: {reason}")]
    Invalid { url: String, reason: String },
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
}

/// A parsed (not yet resolved) upstream URL: `http://host:port` or `https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointUrl {
    pub url: String,
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
            url: url.to_string(),
            tls,
            host: host.to_string(),
            port,
        })
    }

    /// Every address the host resolves to (blocking DNS: call this off the request path).
    pub fn resolve_blocking(&self) -> Result<Vec<std::net::SocketAddr>, EndpointError> {
        use std::net::ToSocketAddrs;
        let fail = |reason: String| EndpointError::Resolve {
            host: self.host.clone(),
            reason,
        };
        let addrs: Vec<_> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| fail(e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(fail("no address found".to_string()));
        }
        Ok(addrs)
    }
}

/// Per-upstream settings (`[upstreams.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamOptions {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Verify the certificate of https endpoints (default true).
    pub tls_verify: bool,
    /// How often the urls' names are resolved again.
    pub resolve_interval: Duration,
    pub health_check: Option<HealthCheckSpec>,
    /// At most this many requests in flight to the upstream; beyond it, 503 at once.
    pub max_connections: Option<usize>,
    /// An endpoint that failed this many connects in a row is skipped for `eject_for`; 0: never.
    pub eject_after: u32,
    pub eject_for: Duration,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(30),
            tls_verify: true,
            resolve_interval: Duration::from_secs(30),
            health_check: None,
            max_connections: None,
            eject_after: 5,
            eject_for: Duration::from_secs(10),
        }
    }
}

/// `health_check = { path = "/healthz", interval = "5s", timeout = "1s", unhealthy_after = 3,
/// healthy_after = 2 }`: an active check of every endpoint; a 200 is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthCheckSpec {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_after: usize,
    pub healthy_after: usize,
}

impl Default for HealthCheckSpec {
    fn default() -> Self {
        HealthCheckSpec {
            path: "/".to_string(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            unhealthy_after: 3,
            healthy_after: 2,
        }
    }
}

/// A named upstream of a table: its urls and settings, and the [`Pool`] it shares with every
/// other table that has the same upstream with the same settings.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub urls: Vec<EndpointUrl>,
    pub options: UpstreamOptions,
    pub pool: std::sync::Arc<Pool>,
}

impl Upstream {
    /// The upstream `name`: its pool is found again in [`crate::state`] when a table with the
    /// same upstream and settings holds it, else made with the `resolved` addresses.
    pub fn new(
        name: &str,
        urls: Vec<EndpointUrl>,
        options: UpstreamOptions,
        resolved: &[(usize, std::net::SocketAddr)],
    ) -> Self {
        let key = crate::state::StateKey::new("upstream", name, &(&urls, &options));
        let pool = crate::state::get_or_make(key, || {
            Ok::<_, std::convert::Infallible>(Pool::new(name, &urls, &options, resolved))
        })
        .unwrap_or_else(|never| match never {});
        Upstream {
            name: name.to_string(),
            urls,
            options,
            pool,
        }
    }
}

#[cfg(test)]
mod tests;
