//! The buckets a request meets: spending and refilling, 429s, keys, claims, routes, two instances.

use super::*;

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
