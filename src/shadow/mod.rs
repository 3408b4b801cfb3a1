//! Shadow traffic: mirroring a sample of a route's requests to a service under test, and comparing
//! its answers with the ones clients got (CONTRACT sections 2 and 8).
//!
//! Today this holds the compiled `[routes.shadow]`; `ficus explain` reads it. Mirroring and
//! comparison build on the route's filter chain ([`crate::filters`]).

pub mod compare;

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
}
