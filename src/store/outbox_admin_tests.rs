//! The outbox's admin side: replay, dead letters, stats, housekeeping, and what survives a
//! restart or a second process. Time is the `now_ms` each call takes; nothing sleeps.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use rusqlite::Connection;

use super::outbox_tests::{assert_consistent, claim, dead, delivered, event, open, seq_of, CLAIM};
use super::*;

#[test]
fn replay_keeps_the_id_and_queues_the_event_behind_its_keys_pending_events() {
    let (_tmp, store) = open();
    store
        .append_events(&[
            event("k-1", "r", Some("k"), 0),
            event("k-2", "r", Some("k"), 0),
        ])
        .unwrap();
    claim(&store, 0);
    store.record(&[dead("k-1")], 10).unwrap();
    let old_seq = seq_of(&store, "k-1");
    assert_eq!(claim(&store, 10), ["k-2"]);

    assert!(store.replay("k-1", 20).unwrap());
    assert!(seq_of(&store, "k-1") > seq_of(&store, "k-2"));
    assert!(seq_of(&store, "k-1") > old_seq);
    // Still behind k-2, which is in flight.
    assert!(claim(&store, 20).is_empty());
    store.record(&[delivered("k-2")], 30).unwrap();
    let replayed = store.claim_due(30, 10, &[], CLAIM).unwrap();
    assert_eq!((replayed[0].id.as_str(), replayed[0].attempts), ("k-1", 0));
    assert_eq!(replayed[0].payload, r#"{"id":"k-1"}"#);
    assert_eq!(
        replayed[0].created_ms, 0,
        "a replay keeps the creation time"
    );

    assert!(!store.replay("k-1", 40).unwrap(), "pending already");
    assert!(!store.replay("unknown", 40).unwrap());
    // A delivered event can be sent again too.
    assert!(store.replay("k-2", 40).unwrap());
    assert_consistent(&store);
}

#[test]
fn replay_dead_replays_one_routes_dead_events_in_commit_order() {
    let (_tmp, store) = open();
    let ids = ["a", "b", "c", "other"];
    let events: Vec<_> = ids
        .iter()
        .map(|id| event(id, if *id == "other" { "s" } else { "r" }, None, 0))
        .collect();
    store.append_events(&events).unwrap();
    claim(&store, 0);
    // Dying in another order than they were committed in.
    store
        .record(&[dead("c"), dead("a"), dead("other"), dead("b")], 10)
        .unwrap();
    let newest_first: Vec<_> = store.dead_events(Some("r"), 2).unwrap();
    assert_eq!(newest_first.len(), 2);

    assert_eq!(store.replay_dead("r", 20).unwrap(), 3);
    assert_eq!(store.replay_dead("r", 20).unwrap(), 0);
    assert_eq!(claim(&store, 20), ["a", "b", "c"]);
    assert_eq!(store.dead_events(None, 10).unwrap()[0].id, "other");
    assert_consistent(&store);
}

#[test]
fn dead_events_are_listed_most_recently_dead_first() {
    let (_tmp, store) = open();
    let events: Vec<_> = ["x", "y", "z"]
        .iter()
        .map(|id| event(id, if *id == "y" { "s" } else { "r" }, None, 0))
        .collect();
    store.append_events(&events).unwrap();
    claim(&store, 0);
    store.record(&[dead("y")], 10).unwrap();
    store.record(&[dead("z"), dead("x")], 20).unwrap(); // same time: later seq first
    let listed = |route| -> Vec<String> {
        let dead = store.dead_events(route, 10).unwrap();
        dead.into_iter().map(|e| e.id).collect()
    };
    assert_eq!(listed(None), ["z", "x", "y"]);
    assert_eq!(listed(Some("r")), ["z", "x"]);
    assert!(listed(Some("none")).is_empty());
}

#[test]
fn stats_count_each_route_and_age_its_oldest_pending_event() {
    let (_tmp, store) = open();
    store
        .append_events(&[
            event("o1", "orders", None, 1_000),
            event("o2", "orders", None, 3_000),
            event("u1", "users", None, 2_000),
            event("u2", "users", None, 2_500),
        ])
        .unwrap();
    claim(&store, 3_000);
    store
        .record(&[delivered("o1"), dead("u1"), delivered("u2")], 3_000)
        .unwrap();

    let stats = store.stats(10_000).unwrap();
    let orders = &stats.routes["orders"];
    assert_eq!((orders.pending, orders.delivered, orders.dead), (1, 1, 0));
    assert_eq!(orders.oldest_pending_created_ms, Some(3_000));
    assert_eq!(orders.oldest_pending_age, Some(Duration::from_secs(7)));
    let users = &stats.routes["users"];
    assert_eq!((users.pending, users.delivered, users.dead), (0, 1, 1));
    assert_eq!(users.oldest_pending_created_ms, None);
    let total = &stats.total;
    assert_eq!((total.pending, total.delivered, total.dead), (1, 2, 1));
    assert_eq!(total.oldest_pending_created_ms, Some(3_000));
    assert_eq!(store.pending_count().unwrap(), 1);
    // An event from the future is 0 s old, not negative.
    assert_eq!(
        store.stats(0).unwrap().total.oldest_pending_age,
        Some(Duration::ZERO)
    );
}

#[test]
fn prune_and_trim_delete_settled_events_oldest_first_and_never_pending_ones() {
    let (_tmp, store) = open();
    let events: Vec<_> = (0..8)
        .map(|i| event(&format!("e{i}"), "r", None, 0))
        .collect();
    store.append_events(&events).unwrap();
    claim(&store, 0);
    // e0..e2 delivered at 100, 200, 300; e3, e4 dead at 100, 300; e5..e7 stay pending.
    for (i, at) in [(0, 100), (1, 200), (2, 300)] {
        store.record(&[delivered(&format!("e{i}"))], at).unwrap();
    }
    store.record(&[dead("e3")], 100).unwrap();
    store.record(&[dead("e4")], 300).unwrap();
    let size = store.size_bytes().unwrap();
    assert!(size > 0 && size % 4_096 == 0, "{size}");

    // Delivered before 350 - 150 = 200: e0 only (strictly before); dead before -650: none.
    let pruned = store
        .prune(350, Duration::from_millis(150), Duration::from_secs(1))
        .unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(store.stats(0).unwrap().total.delivered, 2);
    // Keep the newest delivered and dead one.
    assert_eq!(store.trim(1, 1).unwrap(), 2);
    assert_eq!(store.trim(1, 1).unwrap(), 0);
    let remaining: Vec<String> = (store.conn())
        .prepare("SELECT id FROM webhook_events ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(remaining, ["e2", "e4", "e5", "e6", "e7"]);
    // Everything settled goes with a zero retention; pending events stay.
    assert_eq!(
        store.prune(1_000, Duration::ZERO, Duration::ZERO).unwrap(),
        2
    );
    assert_eq!(store.stats(0).unwrap().total.pending, 3);
    assert_consistent(&store);
}

#[test]
fn events_and_claims_survive_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = Store::open(tmp.path()).unwrap();
        let events = [event("a", "r", Some("k"), 0), event("b", "r", Some("k"), 0)];
        store.append_events(&events).unwrap();
        assert_eq!(claim(&store, 0), ["a"]);
    }
    // A restart within the claim: still in flight, b still behind it; after it, a again.
    let store = Store::open(tmp.path()).unwrap();
    assert!(claim(&store, 1_000).is_empty());
    assert_eq!(claim(&store, CLAIM.as_millis() as i64), ["a"]);
    assert_eq!(store.stats(0).unwrap().total.pending, 2);
}

#[test]
fn two_processes_appending_at_once_both_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let stores = [
        Store::open(tmp.path()).unwrap(),
        Store::open(tmp.path()).unwrap(),
    ];
    let start = Arc::new(Barrier::new(stores.len()));
    let threads: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(p, store)| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                for batch in 0..50 {
                    let events: Vec<_> = (0..4)
                        .map(|i| event(&format!("p{p}-{batch}-{i}"), "r", Some("k"), 0))
                        .collect();
                    store.append_events(&events).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let store = Store::open(tmp.path()).unwrap();
    assert_eq!(store.pending_count().unwrap(), 400);
    assert_consistent(&store);
}

#[test]
fn a_version_1_file_gains_the_outbox_and_keeps_its_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(FILE_NAME);
    let mut conn = Connection::open(&path).unwrap();
    migrate(&mut conn, &path, &MIGRATIONS[..1]).unwrap();
    conn.execute(
        "INSERT INTO shadow_samples (route, request_id, at_unix_ms, size, json)
         VALUES ('r', 'kept', 1, 2, '{}')",
        [],
    )
    .unwrap();
    drop(conn);
    let store = Store::open(tmp.path()).unwrap();
    assert_eq!(store.samples("r", 10).unwrap()[0].request_id, "kept");
    store.append_events(&[event("e", "r", None, 0)]).unwrap();
}
