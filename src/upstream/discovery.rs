//! DNS discovery for Pingora's load balancer: every address each url's host resolves to.
//!
//! The crate has no DNS discovery of its own; this is it. The first answer is the set resolved
//! when the table compiled (so a new balancer has its endpoints at once, without I/O); later
//! ones resolve again with tokio's resolver. A failed resolution keeps the endpoints the
//! balancer already has (the update fails, the membership stays) and is logged.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::Backend;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use super::{EndpointUrl, UpstreamOptions};

/// What ficus keeps with each endpoint, in its [`Backend`]'s extensions.
#[derive(Debug)]
pub struct EndpointInfo {
    /// The url it was resolved from.
    pub url: String,
    /// The host as written in the url (what a `Host` rewrite for this endpoint uses).
    pub host: String,
    /// The peer a request clones: resolved address, timeouts and TLS settings, built once.
    pub peer: HttpPeer,
}

/// The balancer's backend for `addr`, resolved from `url`.
pub fn backend(url: &EndpointUrl, addr: SocketAddr, options: &UpstreamOptions) -> Backend {
    let mut peer = HttpPeer::new(addr, url.tls, url.host.clone());
    peer.options.connection_timeout = Some(options.connect_timeout);
    peer.options.read_timeout = Some(options.read_timeout);
    peer.options.write_timeout = Some(options.read_timeout);
    peer.options.idle_timeout = Some(std::time::Duration::from_secs(60));
    peer.options.verify_cert = options.tls_verify;
    peer.options.verify_hostname = options.tls_verify;
    let mut b = Backend {
        addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
        weight: 1,
        ext: Default::default(),
    };
    b.ext.insert(Arc::new(EndpointInfo {
        url: url.url.clone(),
        host: url.host.clone(),
        peer,
    }));
    b
}

pub struct DnsDiscovery {
    upstream: String,
    urls: Vec<EndpointUrl>,
    options: UpstreamOptions,
    /// The set resolved at compile time, handed out by the first `discover`.
    initial: Mutex<Option<BTreeSet<Backend>>>,
}

impl DnsDiscovery {
    pub fn new(
        upstream: &str,
        urls: &[EndpointUrl],
        options: &UpstreamOptions,
        initial: BTreeSet<Backend>,
    ) -> Self {
        DnsDiscovery {
            upstream: upstream.to_string(),
            urls: urls.to_vec(),
            options: options.clone(),
            initial: Mutex::new(Some(initial)),
        }
    }
}

#[async_trait]
impl ServiceDiscovery for DnsDiscovery {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let first = self
            .initial
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(initial) = first {
            return Ok((initial, HashMap::new()));
        }
        let mut found = BTreeSet::new();
        for url in &self.urls {
            let addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
                .await
                .map_err(|e| {
                    tracing::warn!(
                        upstream = self.upstream,
                        host = url.host,
                        "cannot resolve, keeping the endpoints known so far: {e}"
                    );
                    Error::explain(
                        ErrorType::ConnectNoRoute,
                        format!("resolve {}: {e}", url.host),
                    )
                })?;
            found.extend(addrs.map(|addr| backend(url, addr, &self.options)));
        }
        if found.is_empty() {
            return Error::e_explain(ErrorType::ConnectNoRoute, "no address found");
        }
        Ok((found, HashMap::new()))
    }
}
