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

#[test]
fn every_problem_in_a_section_is_reported_at_its_line_and_column() {
    let text = "key = \"cookie:sid\"\nrate = \"10/d\"\nburst = 0\nmax_keys = -1\nbrust = 3\n";
    let (built, diags) = build_named("bad", text);
    assert!(built.is_none());
    let at = |needle: &str| line_col(text, text.find(needle).expect("in the text"));
    let found: Vec<((usize, usize), &str)> = diags
        .errors
        .iter()
        .map(|e| (line_col(text, e.span.start), e.message.as_str()))
        .collect();
    let expect = [
        (at("\"cookie:sid\""), "unknown key \"cookie:sid\""),
        (at("\"10/d\""), "invalid rate \"10/d\""),
        (at("0\n"), "burst = 0 is out of range"),
        (at("-1"), "max_keys = -1 is out of range"),
        (at("brust"), "unknown key \"brust\""),
    ];
    for (pos, message) in expect {
        assert!(
            found.contains(&(pos, message)),
            "{message} at {pos:?}: {found:?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:?}");
    let hint = |m: &str| {
        diags
            .errors
            .iter()
            .find(|e| e.message.contains(m))
            .and_then(|e| e.hint.clone())
    };
    assert_eq!(hint("brust").as_deref(), Some("did you mean \"burst\"?"));
    assert!(hint("cookie").is_some_and(|h| h.contains("header:NAME")));
    assert!(hint("10/d").is_some_and(|h| h.contains("\"100/s\"")));
}

#[test]
fn a_missing_rate_a_bad_header_name_and_an_empty_claim_are_refused() {
    let (built, diags) = build_named("no-rate", "key = \"ip\"");
    assert!(built.is_none());
    assert_eq!(diags.errors.len(), 1);
    assert!(diags.errors[0].message.contains("has no `rate`"));

    let text = "key = \"header:bad name\"\nrate = \"1/s\"";
    let (_, diags) = build_named("bad-header", text);
    assert_eq!(diags.errors[0].span.start, text.find("\"header").unwrap());
    assert!(diags.errors[0].message.contains("not a header name"));

    let (_, diags) = build_named("empty-claim", "key = \"claim:\"\nrate = \"1/s\"");
    assert!(diags.errors[0].message.contains("claim's name"));

    let (_, diags) = build_named("wrong-type", "rate = 100");
    assert_eq!(diags.errors.len(), 1, "{:?}", diags.errors);
}

#[test]
fn rates_are_a_count_per_second_minute_or_hour() {
    use config::parse_rate;
    assert_eq!(parse_rate("100/s"), Ok((100, 10_000_000)));
    assert_eq!(parse_rate("6000/m"), Ok((6000, 10_000_000)));
    assert_eq!(parse_rate(" 1 / h "), Ok((1, 3600 * SECOND)));
    assert_eq!(parse_rate("3/s"), Ok((3, 333_333_333)));
    for bad in [
        "",
        "100",
        "0/s",
        "-1/s",
        "1.5/s",
        "10/d",
        "x/s",
        "2000000000/s",
    ] {
        assert!(parse_rate(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn burst_defaults_to_the_rates_count_and_max_keys_to_100000() {
    let rl = build("rate = \"6000/m\"");
    let s = rl.settings.limiter;
    assert_eq!(
        (s.burst, s.max_keys, s.interval),
        (6000, 100_000, 10_000_000)
    );
    assert_eq!(rl.settings.key, KeySource::Ip);
    assert_eq!(
        rl.explain(&request(&[])).as_deref(),
        Some("6000/m per client ip, burst 6000, at most 100000 keys")
    );
}

#[test]
fn a_bucket_spends_its_burst_then_refills_one_token_per_interval() {
    // 10/s: a token every 100 ms, three at most.
    let limiter = Limiter::new(LimiterSettings {
        interval: SECOND / 10,
        burst: 3,
        max_keys: 10,
    })
    .expect("fits");
    let k = limiter.key("client");
    let ms = |n: u64| n * 1_000_000;
    let t0 = 5 * SECOND;
    let d = |now| limiter.decide(k, now);

    let first = d(t0);
    assert!(first.allowed);
    assert_eq!((first.limit, first.remaining, first.reset), (3, 2, ms(100)));
    assert_eq!((d(t0).remaining, d(t0).remaining), (1, 0));
    let refused = d(t0);
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert_eq!(refused.retry_after, ms(100), "one token is 100 ms away");
    assert_eq!(refused.reset, ms(300), "the bucket is full in 300 ms");

    // 40 ms later a token is still 60 ms away; a refusal does not spend one.
    assert_eq!(d(t0 + ms(40)).retry_after, ms(60));
    let later = d(t0 + ms(100));
    assert!(later.allowed);
    assert_eq!((later.remaining, later.reset), (0, ms(300)));

    // A bucket left alone for longer than it takes to fill is full, not fuller.
    let rested = d(t0 + 60 * SECOND);
    assert_eq!((rested.allowed, rested.remaining), (true, 2));
}

#[test]
fn over_the_limit_is_a_429_with_retry_after_and_every_answer_carries_the_quota() {
    // 1/m, burst 2: the third request is refused, a token is 60 s away.
    let rl = build("rate = \"1/m\"\nburst = 2");
    let req = request(&[]);
    let mut cx = cx_from("192.0.2.1");
    let first = send(&rl, &req, &mut cx, 0);
    assert!(first.allowed);
    assert_eq!(
        (first.limit, first.remaining, first.reset),
        (Some(2), Some(1), Some(60))
    );
    let mut cx = cx_from("192.0.2.1");
    let second = send(&rl, &req, &mut cx, SECOND / 2);
    assert_eq!((second.remaining, second.reset), (Some(0), Some(120)));

    let mut cx = cx_from("192.0.2.1");
    let third = send(&rl, &req, &mut cx, SECOND / 2);
    assert!(!third.allowed);
    let answer = third.refused.expect("a 429");
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        third.retry_after,
        Some(60),
        "a token is back 60 s after the first request: 59.5 s, rounded up"
    );
    assert_eq!((third.remaining, third.reset), (Some(0), Some(120)));
    assert_eq!(answer.body, "too many requests; retry after 60s\n");
}

#[test]
fn each_key_has_its_own_bucket_and_a_request_without_one_is_limited_by_its_ip() {
    let rl = build("key = \"header:x-api-key\"\nrate = \"1/m\"\nburst = 1");
    let with = |key: &str| request(&[("x-api-key", key)]);
    let ip = "198.51.100.7";
    assert!(send(&rl, &with("a"), &mut cx_from(ip), 0).allowed);
    assert!(!send(&rl, &with("a"), &mut cx_from(ip), 0).allowed);
    assert!(
        send(&rl, &with("b"), &mut cx_from(ip), 0).allowed,
        "another key from the same address has its own bucket"
    );
    // Without the header (or with it empty), the client's address is the key.
    assert!(send(&rl, &request(&[]), &mut cx_from(ip), 0).allowed);
    assert!(!send(&rl, &with(""), &mut cx_from(ip), 0).allowed);
    assert!(send(&rl, &request(&[]), &mut cx_from("198.51.100.8"), 0).allowed);
    // A key that reads like an address is not that address's bucket.
    assert!(send(&rl, &with("198.51.100.9"), &mut cx_from(ip), 0).allowed);
    assert!(send(&rl, &request(&[]), &mut cx_from("198.51.100.9"), 0).allowed);
}

#[test]
fn a_claim_key_reads_the_claims_a_jwt_filter_left_in_the_context() {
    let rl = build("key = \"claim:sub\"\nrate = \"1/h\"\nburst = 1");
    let req = request(&[]);
    let with_sub = |sub: &str| {
        let mut cx = cx_from("203.0.113.1");
        let claims = BTreeMap::from([("sub".to_string(), sub.to_string())]);
        cx.extensions.insert(Claims::new(claims));
        cx
    };
    assert!(send(&rl, &req, &mut with_sub("alice"), 0).allowed);
    assert!(!send(&rl, &req, &mut with_sub("alice"), 0).allowed);
    assert!(send(&rl, &req, &mut with_sub("bob"), 0).allowed);
    // No claims at all: the address's bucket, which alice and bob did not touch.
    assert!(send(&rl, &req, &mut cx_from("203.0.113.1"), 0).allowed);
}

#[test]
fn a_route_key_gives_each_route_one_bucket_for_every_client() {
    let rl = build("key = \"route\"\nrate = \"1/m\"\nburst = 1");
    let on = |route: &str, ip: &str| {
        let mut cx = cx_from(ip);
        cx.route = Some(Arc::from(route));
        cx
    };
    let req = request(&[]);
    assert!(send(&rl, &req, &mut on("a", "192.0.2.1"), 0).allowed);
    assert!(!send(&rl, &req, &mut on("a", "192.0.2.2"), 0).allowed);
    assert!(send(&rl, &req, &mut on("b", "192.0.2.1"), 0).allowed);
}

#[test]
fn two_instances_on_one_route_report_the_bucket_closest_to_empty() {
    let wide = build("rate = \"100/s\"");
    let narrow = build("rate = \"10/s\"");
    let req = request(&[]);
    for order in [[&wide, &narrow], [&narrow, &wide]] {
        let mut cx = cx_from("192.0.2.50");
        let mut resp = http::Response::new(()).into_parts().0;
        for rl in order {
            assert!(matches!(rl.decide(&req, &mut cx, 0), Flow::Continue));
        }
        for rl in order {
            rl.on_response(&mut resp, &mut cx);
        }
        assert_eq!(resp.headers["ratelimit-limit"], "10");
    }
}

#[test]
fn the_table_never_holds_more_than_max_keys_buckets() {
    let limiter = Limiter::new(LimiterSettings {
        interval: SECOND,
        burst: 5,
        max_keys: 1000,
    })
    .expect("fits");
    // Hostile: every request a new key, none of them ever idle long enough to be full.
    for i in 0..100_000u64 {
        assert!(limiter.decide(limiter.key(i), 0).allowed);
        assert!(limiter.len() <= 1000, "{} buckets after {i}", limiter.len());
    }
    assert!(limiter.len() > 500, "eviction keeps most of the table");
}

#[test]
fn full_buckets_are_dropped_once_they_have_had_time_to_fill() {
    // 20 keys: one shard, so one sweep sees them all.
    let limiter = Limiter::new(LimiterSettings {
        interval: SECOND,
        burst: 5,
        max_keys: 20,
    })
    .expect("fits");
    for i in 0..20u64 {
        limiter.decide(limiter.key(i), 0);
    }
    assert_eq!(limiter.len(), 20);
    // Each spent one token: full again after a second, swept at the next look.
    limiter.decide(limiter.key("one more"), 5 * SECOND);
    assert_eq!(limiter.len(), 1);
}

#[test]
fn a_full_table_evicts_the_stalest_bucket_first() {
    // One shard holding one bucket: the next key evicts the one that is there.
    let limiter = Limiter::new(LimiterSettings {
        interval: SECOND,
        burst: 2,
        max_keys: 1,
    })
    .expect("fits");
    let (a, b) = (limiter.key("a"), limiter.key("b"));
    assert_eq!(limiter.decide(a, 0).remaining, 1);
    assert_eq!(limiter.decide(a, 0).remaining, 0);
    assert!(limiter.decide(b, 0).allowed);
    assert_eq!(limiter.len(), 1);
    assert_eq!(
        limiter.decide(a, 0).remaining,
        1,
        "a's bucket was evicted: it starts full"
    );

    // With room for several, the stalest goes: the bucket closest to full.
    let limiter = Limiter::new(LimiterSettings {
        interval: SECOND,
        burst: 10,
        max_keys: 3,
    })
    .expect("fits");
    let [x, y, z, w] = ["x", "y", "z", "w"].map(|k| limiter.key(k));
    for (key, spent) in [(x, 5), (y, 1), (z, 3)] {
        for _ in 0..spent {
            limiter.decide(key, 0);
        }
    }
    let half = SECOND / 2;
    assert!(limiter.decide(w, half).allowed);
    assert_eq!(limiter.len(), 3);
    assert_eq!(limiter.decide(x, half).remaining, 4, "x kept its 5 spent");
    assert_eq!(limiter.decide(z, half).remaining, 6, "z kept its 3 spent");
    assert_eq!(limiter.decide(y, half).remaining, 9, "y was evicted");
    assert_eq!(limiter.len(), 3);
}

#[test]
fn a_reload_that_keeps_the_section_keeps_the_buckets() {
    let text = "rate = \"1/m\"\nburst = 1";
    let (first, _) = build_named("kept", text);
    let first = first.expect("built");
    let (again, _) = build_named("kept", text);
    let again = again.expect("built");
    assert!(Arc::ptr_eq(&first.limiter, &again.limiter));
    assert!(send(&first, &request(&[]), &mut cx_from("192.0.2.9"), 0).allowed);
    assert!(!send(&again, &request(&[]), &mut cx_from("192.0.2.9"), 0).allowed);

    let (changed, _) = build_named("kept", "rate = \"2/m\"\nburst = 1");
    assert!(!Arc::ptr_eq(
        &first.limiter,
        &changed.expect("built").limiter
    ));
}

#[test]
fn the_kind_builds_a_filter_that_takes_part_in_the_request_and_response_phases() {
    let root = DeTable::parse("rate = \"5/s\"").expect("valid TOML");
    let node: Node<'_> = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut diags = Diagnostics::default();
    let filter = Kind
        .build(Section::new("kind-built", node), &mut diags)
        .expect("built");
    assert_eq!(filter.name(), "kind-built");
    assert_eq!(filter.hooks(), Hooks::REQUEST | Hooks::RESPONSE);
    let mut req = request(&[]);
    assert!(matches!(
        filter.on_request(&mut req, &mut cx_from("192.0.2.3")),
        Flow::Continue
    ));
}
