//! ficus: a strangler-fig reverse proxy on Pingora.
//!
//! A request flows through the modules in this order:
//!
//! 1. [`proxy`] (the thin Pingora layer) reads the request head and loads the current
//!    [`routing::RouteTable`] once;
//! 2. [`routing`] decides, as a pure function of (table, request head), which route's
//!    [`routing::Matcher`] holds and which [`upstream::Upstream`] answers (a weighted sticky split
//!    picks a side by a stable hash); the route's [`action::Action`] says what else happens
//!    (fallback, [`shadow`], [`webhook`]);
//! 3. [`proxy`] runs the route's [`filters`] chain (the built-ins set the request id, trace context
//!    and forwarding headers; a plugin may answer at once), sends the request to the upstream,
//!    falls back to the route's fallback upstream on a connect failure, timeout or 5xx, and maps
//!    errors to a status (502, 503, 504);
//! 4. [`upstream`] picks the endpoint (round robin over the healthy ones, DNS re-resolved and
//!    health-checked in the background); its state outlives a table through [`state`].
//!
//! [`config`] reads `routes.toml` in two layers (serde structs that mirror the file, then a compile
//! step that validates everything in one pass and builds the immutable table); [`settings`] holds
//! the process-wide `[proxy]` settings and [`plugins`] the plugin kinds by name. [`server`] wires
//! the Pingora server; [`reload`] swaps the table; [`admin`] serves the admin API; [`lifecycle`]
//! handles signals; [`cli`] implements `check` and `explain`; [`demo`] runs the embedded demo.
//! [`access_log`] and [`metrics`] record what each request did.

pub mod access_log;
pub mod action;
pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod engine;
pub mod filters;
pub mod lifecycle;
pub mod metrics;
pub mod plugins;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod server;
pub mod settings;
/// State that outlives a route table (kept in the plugin interface crate, for plugins too).
pub use ficus_plugin::state;
pub mod shadow;
pub mod store;
pub mod upstream;
pub mod webhook;

/// How many cases each property test runs: 10,000 in `./dev test`; `./dev fuzz` sets
/// `FICUS_FUZZ_CASES` (a million) and runs the property tests alone, in release mode.
#[cfg(test)]
pub(crate) fn fuzz_cases() -> u32 {
    std::env::var("FICUS_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}
