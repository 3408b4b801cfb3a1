//! What ficus does with a request once its route matched: where it goes, where it falls back to,
//! and what is mirrored and emitted on the side. The matching half of a route is
//! [`crate::routing::Matcher`]; a [`crate::routing::Route`] holds one of each.

use crate::filters::FilterChain;
use crate::routing::{Target, UpstreamId};
use crate::shadow::ShadowSpec;
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
    pub webhook: Option<WebhookSpec>,
}
