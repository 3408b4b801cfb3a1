//! Per-request state, and the two views of it every phase needs: the route's filter chain with
//! the filters' context, and the fallback decision's view of the attempt.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

use ficus_plugin::FilterCtx;

use super::fallback::Attempt;
use crate::filters::FilterChain;
use crate::routing::{Decision, RequestHead, RouteTable, UpstreamId};
use crate::upstream::discovery::EndpointInfo;
use crate::upstream::Permit;

/// Per-request state.
pub struct RequestCtx {
    pub(crate) table: Option<Arc<RouteTable>>,
    pub(crate) decision: Option<Decision>,
    /// What the route's filters know and hand each other (the request id among it).
    pub(crate) filter: FilterCtx,
    /// Set once the request is replayed: the route's fallback upstream.
    pub(crate) fallback: Option<UpstreamId>,
    pub(crate) response_started: bool,
    pub(crate) upstream: Option<UpstreamId>,
    /// The endpoint of the current attempt.
    pub(crate) endpoint: Option<(std::net::SocketAddr, Arc<EndpointInfo>)>,
    /// Endpoints of the current upstream this request failed to connect to: a retry avoids them.
    pub(crate) tried: Vec<std::net::SocketAddr>,
    /// This request's place under the upstream's `max_connections`, while it holds one.
    pub(crate) permit: Option<Permit>,
    pub(crate) started: Instant,
    /// The request body as the chain's body hook has seen it (Pingora's engine only, which
    /// replays a retried request's body through the body phase again).
    pub(crate) body_seen: BodySeen,
}

/// How much of the request body the chain's body hook has seen, and how much the current attempt
/// has sent, so that a retry's replay of the same bytes is not shown to filters twice: the body
/// phase sees each byte once, whatever the engine.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BodySeen {
    hooked: u64,
    this_attempt: u64,
    ended: bool,
}

impl BodySeen {
    /// A new attempt starts sending the body from its first byte.
    pub(crate) fn new_attempt(&mut self) {
        self.this_attempt = 0;
    }

    /// The part of `chunk` (at the current attempt's place in the body) that the hook has not
    /// seen, and whether the end is news; `None` when there is nothing new at all.
    pub(crate) fn unseen(
        &mut self,
        chunk: Option<&Bytes>,
        end: bool,
    ) -> Option<(Option<Bytes>, bool)> {
        let len = chunk.map_or(0, |c| c.len() as u64);
        let start = self.this_attempt;
        self.this_attempt += len;
        let fresh = match chunk {
            Some(c) if start + len > self.hooked => {
                let skip = usize::try_from(self.hooked.saturating_sub(start)).unwrap_or(usize::MAX);
                self.hooked = start + len;
                Some(c.slice(skip.min(c.len())..))
            }
            _ => None,
        };
        let end_news = end && !self.ended;
        self.ended |= end;
        (fresh.is_some() || end_news).then_some((fresh, end_news))
    }
}

impl RequestCtx {
    pub(crate) fn new() -> Self {
        RequestCtx {
            table: None,
            decision: None,
            filter: FilterCtx::default(),
            fallback: None,
            response_started: false,
            upstream: None,
            endpoint: None,
            tried: Vec::new(),
            permit: None,
            started: Instant::now(),
            body_seen: BodySeen::default(),
        }
    }

    /// Routes the request on `table` and runs its filter chain's request phase; a filter's own
    /// answer comes back. `normalized` is the (forward, matching) path pair from the edge, when
    /// normalisation changed the path.
    pub(crate) fn route(
        &mut self,
        table: Arc<RouteTable>,
        req: &mut pingora::http::RequestHeader,
        normalized: Option<&(String, String)>,
    ) -> Option<ficus_plugin::Response> {
        let head = RequestHead {
            method: &req.method,
            path: normalized.map_or(req.uri.path(), |(_, m)| m.as_str()),
            query: req.uri.query(),
            headers: &req.headers,
            client_ip: self.filter.client_ip,
        };
        let decision = table.decide(&head);
        let route = decision.route.and_then(|i| table.routes.get(i));
        let chain = route.map_or(&table.default_filters, |r| &r.action.filters);
        if chain.has_plugins() {
            // Only plugins read these: a route with none does not pay for them.
            self.filter.route = route.map(|r| r.name.clone());
            if let Some(r) = route {
                self.filter.params = r.matcher.path.params(head.path);
            }
            self.filter.client_version = table
                .client_version
                .read(head.headers)
                .map(|(v, _)| v.to_string());
        }
        let plugins = chain.has_plugins();
        let answer = chain.on_request(&mut super::heads::Req(req), &mut self.filter);
        let mut decision = decision;
        if let (Some(i), Some(_), true) = (decision.route, decision.split, plugins) {
            // A split side is chosen after the request phase: a sticky key may be a header a
            // plugin set from a verified claim (jwt), never the one a client forged.
            let head = RequestHead {
                method: &req.method,
                path: normalized.map_or(req.uri.path(), |(_, m)| m.as_str()),
                query: req.uri.query(),
                headers: &req.headers,
                client_ip: self.filter.client_ip,
            };
            decision = table.decision_for(i, &head);
        }
        self.decision = Some(decision);
        self.table = Some(table);
        answer
    }

    /// The filter chain of the request's route (or of the table's default), with the filters'
    /// context: two disjoint borrows, so the chain is not cloned per phase.
    pub(crate) fn chain(&mut self) -> Option<(&FilterChain, &mut FilterCtx)> {
        self.with_table().map(|(_, chain, cx)| (chain, cx))
    }

    /// [`RequestCtx::chain`] with the table it belongs to.
    pub(crate) fn with_table(&mut self) -> Option<(&RouteTable, &FilterChain, &mut FilterCtx)> {
        let table = self.table.as_deref()?;
        let chain = match self.decision.and_then(|d| d.route) {
            Some(i) => &table.routes.get(i)?.action.filters,
            None => &table.default_filters,
        };
        Some((table, chain, &mut self.filter))
    }

    /// The fallback decision's view of the current attempt of a `method` request whose body has
    /// (`body_truncated`) or has not outgrown the replay buffer.
    pub(crate) fn attempt<'a>(
        &'a self,
        method: &'a http::Method,
        body_truncated: bool,
    ) -> Attempt<'a> {
        Attempt {
            route: self
                .table
                .as_deref()
                .zip(self.decision.and_then(|d| d.route))
                .and_then(|(t, i)| t.routes.get(i)),
            method,
            upstream: self.upstream,
            fell_back: self.fallback.is_some(),
            response_started: self.response_started,
            body_truncated,
        }
    }
}

/// The peer's IP address, when the connection is over IP.
pub(crate) fn peer_ip(
    addr: Option<&pingora::protocols::l4::socket::SocketAddr>,
) -> Option<std::net::IpAddr> {
    addr.and_then(|a| a.as_inet()).map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_body_is_shown_to_the_body_hook_once() {
        let mut seen = BodySeen::default();
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        seen.new_attempt();
        assert_eq!(
            seen.unseen(Some(&b("ab")), false),
            Some((Some(b("ab")), false))
        );
        assert_eq!(
            seen.unseen(Some(&b("cd")), false),
            Some((Some(b("cd")), false))
        );
        // A retry sends what was read so far again, in one piece, then the rest.
        seen.new_attempt();
        assert_eq!(seen.unseen(Some(&b("abc")), false), None);
        assert_eq!(
            seen.unseen(Some(&b("def")), true),
            Some((Some(b("ef")), true))
        );
        // Another retry after the end: nothing new at all.
        seen.new_attempt();
        assert_eq!(seen.unseen(Some(&b("abcdef")), true), None);
        // An empty body ends once.
        let mut empty = BodySeen::default();
        assert_eq!(empty.unseen(None, true), Some((None, true)));
        assert_eq!(empty.unseen(None, true), None);
    }
}
