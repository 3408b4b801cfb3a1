//! Unit tests of `rate_limit`: its section's errors (section.rs), the buckets a request meets
//! (buckets.rs) and the bounded key table (table.rs), with the helpers they share here.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ficus_plugin::config::{Diagnostics, Node, Section};
use ficus_plugin::http::{self, Request};
use ficus_plugin::toml::de::{DeTable, DeValue};
use ficus_plugin::toml::Spanned;

use super::*;
use crate::limiter::Settings as LimiterSettings;

const SECOND: u64 = 1_000_000_000;

/// Builds an instance named `name` from `text`, a section body without `use`.
fn build_named(name: &str, text: &str) -> (Option<RateLimit>, Diagnostics) {
    let root = DeTable::parse(text).expect("valid TOML");
    let node: Node<'_> = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut diags = Diagnostics::default();
    // The kind's own build, minus the type erasure, so tests can drive the clock.
    let built = config::read(Section::new(name, node), &mut diags).map(|settings| {
        let key = StateKey::new("rate_limit", name, &settings);
        let limiter =
            state::get_or_make(key, || Limiter::new(settings.limiter).ok_or(())).expect("fits");
        RateLimit {
            name: name.to_string(),
            settings,
            limiter,
        }
    });
    (built, diags)
}

fn build(text: &str) -> RateLimit {
    // Each test its own instance name, so the state registry never hands one test another's.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (built, diags) = build_named(&format!("rl-test-{n}"), text);
    assert!(diags.is_empty(), "{:?}", diags.errors);
    built.expect("built")
}

fn request(headers: &[(&str, &str)]) -> http::request::Parts {
    let mut req = Request::get("/x");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(()).expect("a request").into_parts().0
}

fn cx_from(ip: &str) -> FilterCtx {
    FilterCtx {
        client_ip: Some(ip.parse::<IpAddr>().expect("an address")),
        ..FilterCtx::default()
    }
}

/// Runs the request phase at `now` and returns whether it passed and the quota headers the
/// response phase then sets (on a 429, the refusal's own).
fn send(rl: &RateLimit, req: &http::request::Parts, cx: &mut FilterCtx, now: u64) -> Sent {
    let flow = rl.decide(req, cx, now);
    let mut resp = http::Response::new(()).into_parts().0;
    let refused = match flow {
        Flow::Continue => None,
        Flow::Respond(r) => {
            resp.status = r.status;
            resp.headers = r.headers.clone();
            Some(r)
        }
    };
    rl.on_response(&mut resp, cx);
    let h = |n: &str| {
        resp.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.parse::<u64>().expect("a number"))
    };
    Sent {
        allowed: refused.is_none(),
        limit: h("ratelimit-limit"),
        remaining: h("ratelimit-remaining"),
        reset: h("ratelimit-reset"),
        retry_after: h("retry-after"),
        refused,
    }
}

#[derive(Debug)]
struct Sent {
    allowed: bool,
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<u64>,
    retry_after: Option<u64>,
    refused: Option<Response>,
}

/// `(line, column)`, 1-based, of byte `at` in `text`, as ficus reports it.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = at - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

mod buckets;
mod section;
mod table;
