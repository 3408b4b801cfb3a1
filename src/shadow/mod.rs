//! Shadow traffic: mirroring a sample of a route's requests to a service under test, and comparing
//! its answers with the ones clients got (CONTRACT sections 2 and 8).
//!
//! Today this holds the compiled `[routes.shadow]`; `ficus explain` reads it. Mirroring and
//! comparison build on the route's filter chain ([`crate::filters`]).

pub mod compare;
mod job;
pub mod mirror;
pub mod report;
pub mod runtime;
pub mod sample;
pub mod samples;

pub use job::X_FICUS_SHADOW;
pub use mirror::{Mirror, Setup};
pub use runtime::Shadows;

use std::time::Duration;

use http::Method;

use crate::routing::{StickyKey, UpstreamId};

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
    /// The share (0..=100) of compared safe-method requests also sent a second time to the
    /// primary upstream, to learn what differs between two of its own answers; 0 is off.
    pub learn_noise: f64,
    /// How long a mirrored request (or a noise probe) may take, from connect to the end of its
    /// answer.
    pub timeout: Duration,
    /// Mirrored requests in flight to the shadow upstream at once; a sample beyond it is dropped.
    pub max_in_flight: usize,
}
