//! Webhooks that sync writes through new services back to the legacy app (CONTRACT section 6).
//!
//! Today this holds the compiled `[routes.webhook]`; `ficus explain` reads it. The outbox and
//! delivery build on the route's filter chain ([`crate::filters`]).

use std::time::Duration;

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
