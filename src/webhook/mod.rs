//! Webhooks that sync writes through new services back to the legacy app (CONTRACT section 6).
//!
//! Today this holds the compiled `[routes.webhook]`; `ficus explain` reads it. The outbox and
//! delivery build on the route's filter chain ([`crate::filters`]).

pub mod deliver;
pub mod emit;
pub mod event;
pub mod runtime;
pub mod schedule;
pub mod sign;

pub use deliver::Delivery;
pub use runtime::Webhooks;

use std::time::Duration;

use crate::routing::UpstreamId;

/// `[routes.webhook]`, compiled.
#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub url: String,
    pub event: String,
    pub on_status: StatusClass,
    pub secret_env: String,
    /// The ordering key's place (`/id`, or `request:/pointer` into the request body).
    pub key: Option<event::KeySpec>,
    pub retries: Vec<Duration>,
    pub timeout: Duration,
    /// The upstreams whose answers emit; `None`: every upstream but the table's default (the
    /// legacy app is never told about its own writes, and a fallback to it emits nothing).
    pub from: Option<Vec<UpstreamId>>,
    /// Deliveries of this route's events in flight at once.
    pub max_in_flight: usize,
    /// Deliveries per second at most; `None`: as fast as `max_in_flight` allows.
    pub rate: Option<f64>,
    /// Request and response bodies kept in an event; a larger one is `null`, marked truncated.
    pub max_body: u64,
}

/// Which response statuses a webhook fires on: `2xx`, `4xx`, or one code like `201`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Class(u16),
    Exact(u16),
}
