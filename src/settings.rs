//! Process-wide settings from `[proxy]`, compiled: where ficus listens, how it stops, how it logs,
//! which engine forwards requests.

use std::net::SocketAddr;
use std::time::Duration;

/// `[proxy]`: process-wide settings. Every one of them is read at start only: a reload that
/// changes one is rejected ([`crate::reload::restart_only_changes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    pub listen: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub admin_token_env: Option<String>,
    pub data_dir: std::path::PathBuf,
    pub grace_period: Duration,
    /// After SIGTERM, how long `/readyz` says 503 while ficus keeps serving, before it stops
    /// accepting and drains (spent inside `grace_period`).
    pub shutdown_delay: Duration,
    /// `None`: the number of cores.
    pub threads: Option<usize>,
    pub log_format: LogFormat,
    /// Which code forwards requests; one engine serves the whole process.
    pub engine: Engine,
    /// What a client connection may take: deadlines and sizes (the h1 engine applies them).
    pub limits: ClientLimits,
}

/// `[proxy]`'s limits on client connections, with defaults in line with nginx's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// A deadline for a whole request head, from its first byte (not reset by each byte).
    pub header_timeout: Duration,
    /// How long a client may leave a request body without sending more of it.
    pub body_timeout: Duration,
    /// How long a connection may sit idle between requests.
    pub keepalive_timeout: Duration,
    /// The largest request head accepted, in bytes.
    pub max_header_size: usize,
    /// Client connections open at once; new ones beyond it are closed at once and counted.
    pub max_connections: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            max_header_size: 32 * 1024,
            max_connections: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `[proxy] engine`: the code that forwards requests. Both must behave the same; while the
/// `H1` engine lands, the test suite runs under each (`./dev test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Pingora's generic proxy path (`pingora-proxy`): ficus fills in its `ProxyHttp` hooks.
    Pingora,
    /// ficus's own HTTP/1 forwarding loop on pingora-core's sessions.
    H1,
}
