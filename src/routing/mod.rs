//! Request matching: a pure function of (route table, request head).
//!
//! [`RouteTable::decide`] is the hot path: it walks only the routes the [`index`] says can match,
//! in file order, and returns the first that does with its upstream (a split picks its side).
//! [`RouteTable::explain`] gives the same answer with the reason every route before it failed.

pub mod conditions;
pub mod explain;
pub mod index;
pub mod normalize;
pub mod path;
pub mod pattern;
pub mod split;
pub mod table;
pub mod version;

use std::net::IpAddr;

use http::{HeaderMap, Method};
use semver::Version;

pub use conditions::{HeaderCondition, KeyValueCondition, ValueMatcher};
pub use explain::Explanation;
pub use index::RouteIndex;
pub use path::PathPattern;
pub use split::{Split, SplitChoice};
pub use table::*;
pub use version::{VersionOrigin, VersionRequirement, VersionSource};

/// What matching reads of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a Method,
    /// The path as sent, without the query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub client_ip: Option<IpAddr>,
}

/// The outcome of matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index into [`RouteTable::routes`]; `None` when no route matched (the default upstream).
    pub route: Option<usize>,
    pub upstream: UpstreamId,
    pub split: Option<SplitChoice>,
}

/// Why a route did not match: its first condition that failed, in the order they are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    Path,
    Method,
    NoVersion,
    Version(Version),
    Header(usize),
    Query(usize),
    Cookie(usize),
}

/// The request's client version, read at most once and only when a route asks for it.
pub(crate) struct LazyVersion<'a> {
    source: &'a VersionSource,
    headers: &'a HeaderMap,
    value: Option<Option<(Version, VersionOrigin)>>,
}

impl<'a> LazyVersion<'a> {
    pub(crate) fn new(source: &'a VersionSource, headers: &'a HeaderMap) -> Self {
        LazyVersion {
            source,
            headers,
            value: None,
        }
    }

    pub(crate) fn get(&mut self) -> Option<&(Version, VersionOrigin)> {
        let (source, headers) = (self.source, self.headers);
        self.value
            .get_or_insert_with(|| source.read(headers))
            .as_ref()
    }
}

impl Matcher {
    /// What this route's regexes take in memory (its share of the table's regex budget).
    pub fn regex_bytes(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| match &h.value {
                ValueMatcher::Regex(re) => re.memory_usage(),
                ValueMatcher::Exact(_) => 0,
            })
            .sum();
        self.path.regex_bytes() + headers
    }

    /// Checks every condition of this route against the request.
    pub(crate) fn check(&self, req: &RequestHead, version: &mut LazyVersion) -> Result<(), Miss> {
        if !self.path.matches(req.path) {
            return Err(Miss::Path);
        }
        if let Some(methods) = &self.methods {
            if !methods.contains(req.method) {
                return Err(Miss::Method);
            }
        }
        if let Some(requirement) = &self.client_version {
            match version.get() {
                None => return Err(Miss::NoVersion),
                Some((v, _)) if !requirement.matches(v) => return Err(Miss::Version(v.clone())),
                Some(_) => {}
            }
        }
        if let Some(i) = self.headers.iter().position(|h| !h.matches(req.headers)) {
            return Err(Miss::Header(i));
        }
        if let Some(i) = self.query.iter().position(|q| !q.matches_query(req.query)) {
            return Err(Miss::Query(i));
        }
        if let Some(i) = self
            .cookies
            .iter()
            .position(|c| !c.matches_cookie(req.headers))
        {
            return Err(Miss::Cookie(i));
        }
        Ok(())
    }
}

impl RouteTable {
    /// The route and upstream for this request.
    pub fn decide(&self, req: &RequestHead) -> Decision {
        let mut version = LazyVersion::new(&self.client_version, req.headers);
        for i in self.index.candidates(req.path) {
            if self.routes[i].matcher.check(req, &mut version).is_ok() {
                return self.decision_for(i, req);
            }
        }
        self.default_decision()
    }

    /// The same as [`RouteTable::decide`] but trying every route in file order, without the index.
    /// Kept for tests and benchmarks that check the index changes nothing.
    pub fn decide_by_scan(&self, req: &RequestHead) -> Decision {
        let mut version = LazyVersion::new(&self.client_version, req.headers);
        match (0..self.routes.len())
            .find(|&i| self.routes[i].matcher.check(req, &mut version).is_ok())
        {
            Some(i) => self.decision_for(i, req),
            None => self.default_decision(),
        }
    }

    pub(crate) fn decision_for(&self, i: usize, req: &RequestHead) -> Decision {
        match &self.routes[i].action.target {
            Target::Upstream(id) => Decision {
                route: Some(i),
                upstream: *id,
                split: None,
            },
            Target::Split(split) => {
                let choice = split.choose(req.headers, req.client_ip);
                Decision {
                    route: Some(i),
                    upstream: choice.upstream,
                    split: Some(choice),
                }
            }
        }
    }

    fn default_decision(&self) -> Decision {
        Decision {
            route: None,
            upstream: self.default_upstream,
            split: None,
        }
    }

    /// The route's name, or `default` when no route matched (the metric label).
    pub fn route_name(&self, decision: &Decision) -> &str {
        decision
            .route
            .and_then(|i| self.routes.get(i))
            .map_or("default", |r| &*r.name)
    }

    pub fn upstream_name(&self, id: UpstreamId) -> &str {
        self.upstream(id).map_or("?", |u| u.name.as_str())
    }

    /// The upstream `id` names (always there for an id this table's compile made).
    pub fn upstream(&self, id: UpstreamId) -> Option<&std::sync::Arc<crate::upstream::Upstream>> {
        self.upstreams.get(id.index())
    }
}
