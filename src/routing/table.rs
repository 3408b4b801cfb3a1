//! The compiled, immutable route table that the hot path reads.
//!
//! Built once by [`crate::config`] from `routes.toml`, then shared behind one `ArcSwap`; nothing in
//! here changes after it is built, so a request can keep its table for its whole life.

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;
use regex::Regex;

use super::conditions::{HeaderCondition, KeyValueCondition};
use super::index::RouteIndex;
use super::path::PathPattern;
use super::split::Split;
use super::version::{VersionRequirement, VersionSource};
use crate::action::Action;
use crate::filters::FilterChain;
use crate::settings::ProxySettings;
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
    /// The filters run on requests that no route matches.
    pub default_filters: FilterChain,
    /// `[proxy] trusted_proxies`: peers whose X-Forwarded-* headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `[proxy] allow_encoded_slash`: keep `%2F` and `%5C` in paths instead of refusing them.
    pub allow_encoded_slash: bool,
    /// Routes in file order: the first that matches wins.
    pub routes: Vec<Route>,
    pub index: RouteIndex,
    /// A hash of the file's text (see [`crate::config::version_of`]).
    pub version: String,
    pub loaded_at: std::time::SystemTime,
}

/// One `[[routes]]` entry, compiled: what it matches and what ficus then does.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub matcher: Matcher,
    pub action: Action,
}

/// Every condition of a route; all must hold (checked in this order, see [`super::Miss`]).
#[derive(Debug)]
pub struct Matcher {
    pub path: PathPattern,
    /// `None`: any method.
    pub methods: Option<Vec<Method>>,
    pub client_version: Option<VersionRequirement>,
    pub headers: Vec<HeaderCondition>,
    pub query: Vec<KeyValueCondition>,
    pub cookies: Vec<KeyValueCondition>,
}

/// Where a matching request goes.
#[derive(Debug)]
pub enum Target {
    Upstream(UpstreamId),
    Split(Split),
}

impl Target {
    /// Every upstream a request of the route may be sent to first.
    pub fn upstream_ids(&self) -> impl Iterator<Item = UpstreamId> + '_ {
        let (one, sides) = match self {
            Target::Upstream(id) => (Some(*id), &[][..]),
            Target::Split(split) => (None, &split.sides[..]),
        };
        one.into_iter().chain(sides.iter().map(|(id, _)| *id))
    }
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

/// Patterns compiled from `user_agent` must carry a `version` group; kept here for reuse.
pub fn has_version_group(re: &Regex) -> bool {
    re.capture_names().flatten().any(|n| n == "version")
}
