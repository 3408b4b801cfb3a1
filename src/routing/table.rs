//! The compiled, immutable route table that the hot path reads.
//!
//! Built once by [`crate::config`] from `routes.toml`, then shared behind one `ArcSwap`; nothing in
//! here changes after it is built, so a request can keep its table for its whole life.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use regex::Regex;

use super::conditions::{HeaderCondition, KeyValueCondition};
use super::index::RouteIndex;
use super::path::PathPattern;
use super::split::Split;
use super::version::{VersionRequirement, VersionSource};
use crate::upstream::Upstream;

/// An upstream of a [`RouteTable`]: its place in [`RouteTable::upstreams`]. Only the config
/// compiler makes one, so an id always names an upstream of the table it was made for, and there is
/// no "upstream 0" to fall back on by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamId(u32);

impl UpstreamId {
    /// The id of the upstream at `index` in file order; `None` past `u32::MAX` upstreams.
    pub fn from_index(index: usize) -> Option<Self> {
        u32::try_from(index).ok().map(UpstreamId)
    }

    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The whole compiled table: settings, upstreams, routes in file order and the index over them.
#[derive(Debug)]
pub struct RouteTable {
    pub proxy: ProxySettings,
    pub client_version: VersionSource,
    /// Upstreams in the order they are written in the file.
    pub upstreams: Vec<Arc<Upstream>>,
    pub upstream_ids: HashMap<String, UpstreamId>,
    /// The upstream for requests that no route matches.
    pub default_upstream: UpstreamId,
    /// Routes in file order: the first that matches wins.
    pub routes: Vec<Route>,
    pub index: RouteIndex,
    /// A hash of the file's text (see [`crate::config::version_of`]).
    pub version: String,
    pub loaded_at: std::time::SystemTime,
}

/// `[proxy]`: process-wide settings. `listen`, `admin` and `threads` cannot change live.
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// One `[[routes]]` entry, compiled.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub path: PathPattern,
    /// `None`: any method.
    pub methods: Option<Vec<Method>>,
    pub client_version: Option<VersionRequirement>,
    pub headers: Vec<HeaderCondition>,
    pub query: Vec<KeyValueCondition>,
    pub cookies: Vec<KeyValueCondition>,
    pub target: Target,
    pub fallback: Option<UpstreamId>,
    pub fallback_unsafe: bool,
    pub shadow: Option<ShadowSpec>,
    pub webhook: Option<WebhookSpec>,
}

/// Where a matching request goes.
#[derive(Debug)]
pub enum Target {
    Upstream(UpstreamId),
    Split(Split),
}

/// Where a sticky split (or shadow sample) reads the key that keeps one user on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// `header:NAME` (stored lower-case).
    Header(http::HeaderName),
    /// `cookie:NAME`.
    Cookie(String),
    /// `ip`: the client's address.
    ClientIp,
}

/// `[routes.shadow]`, compiled: what to mirror and how to compare.
#[derive(Debug, Clone)]
pub struct ShadowSpec {
    pub upstream: UpstreamId,
    /// 0..=100
    pub percent: f64,
    pub sticky: Option<StickyKey>,
    pub methods: Vec<Method>,
    pub max_body: u64,
    pub ignore_headers: Vec<http::HeaderName>,
    /// JSON Pointer patterns; a `*` segment matches any index or key.
    pub ignore: Vec<String>,
    pub unordered: Vec<String>,
    pub tolerance: Vec<(String, f64)>,
}

/// `[routes.webhook]`, compiled.
#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub url: String,
    pub event: String,
    pub on_status: StatusClass,
    pub secret_env: String,
    pub key: Option<String>,
    pub retries: Vec<Duration>,
    pub timeout: Duration,
}

/// Which response statuses a webhook fires on: `2xx`, `4xx`, or one code like `201`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Class(u16),
    Exact(u16),
}

impl StatusClass {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusClass::Class(c) => status / 100 == c,
            StatusClass::Exact(code) => status == code,
        }
    }
}

/// Patterns compiled from `user_agent` must carry a `version` group; kept here for reuse.
pub fn has_version_group(re: &Regex) -> bool {
    re.capture_names().flatten().any(|n| n == "version")
}
