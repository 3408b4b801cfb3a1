//! What ficus does with a request once its route matched: where it goes, where it falls back to,
//! and what is mirrored and emitted on the side. The matching half of a route is
//! [`crate::routing::Matcher`]; a [`crate::routing::Route`] holds one of each.

use crate::filters::FilterChain;
use crate::routing::{Target, UpstreamId};
use crate::shadow::{Mirror, ShadowSpec};
use crate::webhook::emit::Emitter;
use crate::webhook::WebhookSpec;

#[derive(Debug)]
pub struct Action {
    /// One upstream, or a weighted split (whose side [`crate::routing`] picks per request).
    pub target: Target,
    /// Where a failed request is replayed (see [`crate::proxy::fallback`]).
    pub fallback: Option<UpstreamId>,
    /// Replay methods that are not safe (POST, ...) too.
    pub fallback_unsafe: bool,
    /// The filters run on the route's requests: the built-ins, then its plugins.
    pub filters: FilterChain,
    pub shadow: Option<ShadowSpec>,
    /// The shadow as the last filter of `filters`, set when the table is built (it needs the
    /// upstreams) and armed by the server that runs the table.
    pub mirror: Option<std::sync::Arc<Mirror>>,
    pub webhook: Option<WebhookSpec>,
    /// The webhook as the last filter of `filters`, set when the table is built and armed by
    /// the server that runs the table.
    pub emitter: Option<std::sync::Arc<Emitter>>,
}
