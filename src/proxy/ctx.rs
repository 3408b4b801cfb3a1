//! Per-request state, and the two views of it every phase needs: the route's filter chain with
//! the filters' context, and the fallback decision's view of the attempt.

use std::sync::Arc;
use std::time::Instant;

use ficus_plugin::FilterCtx;
use pingora::proxy::Session;

use super::fallback::Attempt;
use crate::filters::FilterChain;
use crate::routing::{Decision, RouteTable, UpstreamId};
use crate::upstream::discovery::EndpointInfo;
use crate::upstream::Permit;

/// Per-request state.
pub struct RequestCtx {
    pub(super) table: Option<Arc<RouteTable>>,
    pub(super) decision: Option<Decision>,
    /// What the route's filters know and hand each other (the request id among it).
    pub(super) filter: FilterCtx,
    /// Set once the request is replayed: the route's fallback upstream.
    pub(super) fallback: Option<UpstreamId>,
    pub(super) response_started: bool,
    pub(super) upstream: Option<UpstreamId>,
    /// The endpoint of the current attempt.
    pub(super) endpoint: Option<(std::net::SocketAddr, Arc<EndpointInfo>)>,
    /// Endpoints of the current upstream this request failed to connect to: a retry avoids them.
    pub(super) tried: Vec<std::net::SocketAddr>,
    /// This request's place under the upstream's `max_connections`, while it holds one.
    pub(super) permit: Option<Permit>,
    pub(super) started: Instant,
}

impl RequestCtx {
    pub(super) fn new() -> Self {
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
        }
    }

    /// The filter chain of the request's route (or of the table's default), with the filters'
    /// context: two disjoint borrows, so the chain is not cloned per phase.
    pub(super) fn chain(&mut self) -> Option<(&FilterChain, &mut FilterCtx)> {
        self.with_table().map(|(_, chain, cx)| (chain, cx))
    }

    /// [`RequestCtx::chain`] with the table it belongs to.
    pub(super) fn with_table(&mut self) -> Option<(&RouteTable, &FilterChain, &mut FilterCtx)> {
        let table = self.table.as_deref()?;
        let chain = match self.decision.and_then(|d| d.route) {
            Some(i) => &table.routes.get(i)?.action.filters,
            None => &table.default_filters,
        };
        Some((table, chain, &mut self.filter))
    }

    pub(super) fn attempt<'a>(&'a self, session: &'a Session) -> Attempt<'a> {
        Attempt {
            route: self
                .table
                .as_deref()
                .zip(self.decision.and_then(|d| d.route))
                .and_then(|(t, i)| t.routes.get(i)),
            method: &session.req_header().method,
            upstream: self.upstream,
            fell_back: self.fallback.is_some(),
            response_started: self.response_started,
            body_truncated: session.as_ref().retry_buffer_truncated(),
        }
    }
}

pub(super) fn client_ip(session: &Session) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}
