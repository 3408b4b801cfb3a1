//! `use = "rate_limit"`: a token bucket per key. A request that finds its bucket empty is answered
//! `429 Too Many Requests` with `Retry-After`, and nothing is sent upstream. Every response of the
//! route (the upstream's, the 429, another filter's) carries `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` for the request's own bucket.
//!
//! ```toml
//! [plugins.per-client]
//! use = "rate_limit"
//! key = "header:x-api-key"   # "ip" (default), "route", "header:NAME" or "claim:NAME"
//! rate = "6000/m"            # required: a count per s, m or h
//! burst = 100                # optional: bucket size; default the rate's count (6000 here)
//! max_keys = 100000          # optional: the most buckets kept (default 100000)
//! ```
//!
//! Choices:
//! - A request without its key (no such header, an empty one, no such claim) is limited by its
//!   client ip instead, in buckets apart from the keyed ones: a client cannot escape the limit by
//!   leaving the key out, and keyless clients do not starve each other through one shared bucket.
//! - `burst` defaults to the rate's count, so `"6000/m"` is 6000 per minute that may come at
//!   once, like the window of the IETF draft's quota; a smaller burst smooths the traffic.
//! - `RateLimit-Reset` is read as the draft's "seconds until the quota resets": the quota is the
//!   bucket, so it is the seconds until the bucket is full again (0 when it is), rounded up.
//!   `Retry-After` on a 429 is the seconds until one token is back, rounded up.
//! - Buckets belong to the instance: an instance listed on several routes is one limit across
//!   them (with `key = "route"`, each route has its own bucket). They survive a reload that leaves
//!   the instance's section as it was ([`ficus_plugin::state`]), and are per process.
//! - The table keeps at most `max_keys` buckets: full buckets are dropped, and when the table is
//!   full of live ones the stalest (closest to full) are evicted, so hostile keys cost a client at
//!   most a fresh bucket, never memory ([`limiter`]).

pub mod config;
pub mod limiter;

use std::sync::{Arc, LazyLock};

use ficus_plugin::config::{Diagnostics, Section};
use ficus_plugin::http::{header, HeaderName, HeaderValue, StatusCode};
use ficus_plugin::state::{self, StateKey};
use ficus_plugin::{
    Claims, Filter, FilterCtx, Flow, Hooks, PluginKind, RequestHead, Response, ResponseHead,
};

use config::{KeySource, Settings};
use limiter::{Decision, Limiter};

/// The kind, as ficus registers it.
pub struct Kind;

const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

impl PluginKind for Kind {
    fn kind(&self) -> &'static str {
        "rate_limit"
    }

    fn build(&self, section: Section<'_>, diags: &mut Diagnostics) -> Option<Arc<dyn Filter>> {
        let name = section.name().to_string();
        let span = section.span();
        let settings = config::read(section, diags)?;
        let key = StateKey::new("rate_limit", &name, &settings);
        let limiter = state::get_or_make(key, || Limiter::new(settings.limiter).ok_or(()));
        match limiter {
            Ok(limiter) => Some(Arc::new(RateLimit {
                name,
                settings,
                limiter,
            })),
            Err(()) => {
                diags.error(span, "the burst is too large for the rate");
                None
            }
        }
    }
}

/// One `rate_limit` instance.
pub struct RateLimit {
    name: String,
    settings: Settings,
    limiter: Arc<Limiter>,
}

/// What the request phase decided, for the response phase's headers. A chain with two
/// `rate_limit` instances reports the bucket with the fewest tokens left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quota {
    limit: u64,
    remaining: u64,
    /// Seconds until the bucket is full.
    reset: u64,
}

/// Which bucket a request draws from: the key's kind is part of the hash, so a header value that
/// reads like an address does not share the bucket of that address.
#[derive(Hash)]
enum Key<'a> {
    Ip(Option<std::net::IpAddr>),
    Route(Option<&'a str>),
    Value(&'a [u8]),
}

impl RateLimit {
    /// The bucket key of a request.
    fn key_of(&self, req: &dyn RequestHead, cx: &FilterCtx) -> u64 {
        let value = match &self.settings.key {
            KeySource::Ip => None,
            KeySource::Route => return self.limiter.key(Key::Route(cx.route.as_deref())),
            KeySource::Header(name) => req.headers().get(name).map(HeaderValue::as_bytes),
            KeySource::Claim(name) => cx
                .extensions
                .get::<Claims>()
                .and_then(|c| c.get(name))
                .map(str::as_bytes),
        };
        match value.filter(|v| !v.is_empty()) {
            Some(v) => self.limiter.key(Key::Value(v)),
            None => self.limiter.key(Key::Ip(cx.client_ip)),
        }
    }

    /// Decides `req` at `now` (the limiter's clock): the unit tests drive the clock.
    fn decide(&self, req: &dyn RequestHead, cx: &mut FilterCtx, now: u64) -> Flow {
        let decision = self.limiter.decide(self.key_of(req, cx), now);
        let quota = Quota {
            limit: decision.limit,
            remaining: decision.remaining,
            reset: seconds_up(decision.reset),
        };
        match cx.extensions.get::<Quota>() {
            Some(earlier) if earlier.remaining <= quota.remaining => {}
            _ => {
                cx.extensions.insert(quota);
            }
        }
        if decision.allowed {
            Flow::Continue
        } else {
            Flow::Respond(refusal(&decision, quota))
        }
    }
}

impl Filter for RateLimit {
    fn name(&self) -> &str {
        &self.name
    }

    fn reads_claims(&self) -> bool {
        matches!(self.settings.key, KeySource::Claim(_))
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST | Hooks::RESPONSE
    }

    fn explain(&self, _req: &ficus_plugin::http::request::Parts) -> Option<String> {
        let key = match &self.settings.key {
            KeySource::Ip => "client ip".to_string(),
            KeySource::Route => "route".to_string(),
            KeySource::Header(h) => format!("header {h} (client ip without it)"),
            KeySource::Claim(c) => format!("claim {c} (client ip without it)"),
        };
        let limiter::Settings {
            burst, max_keys, ..
        } = self.settings.limiter;
        Some(format!(
            "{} per {key}, burst {burst}, at most {max_keys} keys",
            self.settings.rate
        ))
    }

    fn on_request(&self, req: &mut dyn RequestHead, cx: &mut FilterCtx) -> Flow {
        self.decide(req, cx, self.limiter.now())
    }

    fn on_response(&self, resp: &mut dyn ResponseHead, cx: &mut FilterCtx) {
        if let Some(quota) = cx.extensions.get::<Quota>().copied() {
            set_quota_headers(quota, |n, v| resp.insert_header(n, v));
        }
    }
}

/// The 429 for a request that found its bucket empty.
fn refusal(decision: &Decision, quota: Quota) -> Response {
    let wait = seconds_up(decision.retry_after).max(1);
    let mut response = Response::new(StatusCode::TOO_MANY_REQUESTS).with_body(
        "text/plain; charset=utf-8",
        format!("too many requests; retry after {wait}s\n"),
    );
    response
        .headers
        .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    set_quota_headers(quota, |n, v| {
        response.headers.insert(n, v);
    });
    response
}

fn set_quota_headers(quota: Quota, mut set: impl FnMut(HeaderName, HeaderValue)) {
    set(LIMIT, number(quota.limit));
    set(REMAINING, number(quota.remaining));
    set(RESET, number(quota.reset));
}

/// `n` as a header value. The numbers below 1024 are made once and shared (a clone is a reference
/// count), so most responses format and allocate nothing for their three headers.
fn number(n: u64) -> HeaderValue {
    static SMALL: LazyLock<Vec<HeaderValue>> =
        LazyLock::new(|| (0..1024u64).map(HeaderValue::from).collect());
    usize::try_from(n)
        .ok()
        .and_then(|i| SMALL.get(i))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from(n))
}

/// Nanoseconds as whole seconds, rounded up.
fn seconds_up(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000_000)
}

#[cfg(test)]
mod tests;
