//! The key table: bounded by max_keys, full buckets dropped, the stalest evicted, kept across reloads.

use super::*;

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
