//! The outbox's delivery side: commit order, per-key order, claims and outcomes; plus the query
//! plans. Time is the `now_ms` each call takes; nothing sleeps. The helpers serve
//! `outbox_admin_tests` too.

use std::time::Duration;

use super::*;

pub(super) const CLAIM: Duration = Duration::from_secs(30);

pub(super) fn open() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    (tmp, store)
}

pub(super) fn event(id: &str, route: &str, key: Option<&str>, created_ms: i64) -> NewEvent {
    NewEvent {
        id: id.into(),
        route: route.into(),
        key: key.map(Into::into),
        payload: format!(r#"{{"id":"{id}"}}"#),
        created_ms,
    }
}

/// The ids claimed at `now_ms` (up to 100, no route skipped).
pub(super) fn claim(store: &Store, now_ms: i64) -> Vec<String> {
    claim_skipping(store, now_ms, &[])
}

pub(super) fn claim_skipping(store: &Store, now_ms: i64, skip: &[&str]) -> Vec<String> {
    let due = store.claim_due(now_ms, 100, skip, CLAIM).unwrap();
    assert!(due.windows(2).all(|w| w[0].seq < w[1].seq), "{due:?}");
    due.into_iter().map(|e| e.id).collect()
}

pub(super) fn delivered(id: &str) -> Outcome {
    Outcome::Delivered { id: id.into() }
}

pub(super) fn dead(id: &str) -> Outcome {
    Outcome::Dead {
        id: id.into(),
        error: format!("{id} failed"),
    }
}

pub(super) fn retry(id: &str, next_attempt_ms: i64) -> Outcome {
    Outcome::Retry {
        id: id.into(),
        error: "503 Service Unavailable".into(),
        next_attempt_ms,
    }
}

pub(super) fn seq_of(store: &Store, id: &str) -> i64 {
    (store.conn())
        .query_row("SELECT seq FROM webhook_events WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
}

/// The lanes and counts agree with the events: per key, the first pending event is the only
/// one not blocked; unkeyed events are never blocked; the counts are the rows' counts.
pub(super) fn assert_consistent(store: &Store) {
    let conn = store.conn();
    let wrong: i64 = conn
        .query_row(
            "SELECT count(*) FROM webhook_events e WHERE state = 'pending' AND
               (lane = 'blocked') IS NOT (key IS NOT NULL AND seq > (SELECT min(seq)
                   FROM webhook_events p
                   WHERE p.state = 'pending' AND p.route = e.route AND p.key = e.key))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(wrong, 0, "pending events in the wrong lane");
    let counted: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT route, state, count(*) AS n FROM webhook_events
                 GROUP BY route, state) AS actual
             FULL JOIN webhook_counts c USING (route, state)
             WHERE actual.n IS NOT c.n",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(counted, 0, "webhook_counts disagrees with the events");
}

#[test]
fn events_are_claimed_in_commit_order_across_routes_and_batches() {
    let (_tmp, store) = open();
    let batch = [
        event("a1", "orders", None, 1_000),
        event("b1", "users", None, 900), // committed after a1: its time does not matter
        event("a2", "orders", None, 1_000),
    ];
    store.append_events(&batch).unwrap();
    store
        .append_events(&[event("b2", "users", None, 1_000)])
        .unwrap();

    let due = store.claim_due(1_000, 3, &[], CLAIM).unwrap();
    let first = &due[0];
    assert_eq!(
        (
            first.id.as_str(),
            first.route.as_str(),
            first.key.as_deref()
        ),
        ("a1", "orders", None)
    );
    assert_eq!(
        (first.payload.as_str(), first.attempts),
        (r#"{"id":"a1"}"#, 0)
    );
    assert_eq!(first.created_ms, 1_000);
    let ids: Vec<_> = due.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["a1", "b1", "a2"]);
    assert_eq!(claim(&store, 1_000), ["b2"]);
    assert!(claim(&store, 1_000).is_empty(), "all in flight");
    assert_consistent(&store);
}

#[test]
fn claim_skips_the_routes_it_is_told_to_and_events_not_yet_due() {
    let (_tmp, store) = open();
    store
        .append_events(&[
            event("paused", "legacy", None, 1_000),
            event("later", "orders", None, 5_000), // created by a clock ahead of ours
            event("now", "orders", None, 1_000),
        ])
        .unwrap();
    assert_eq!(claim_skipping(&store, 1_000, &["legacy"]), ["now"]);
    assert!(claim_skipping(&store, 4_999, &["legacy"]).is_empty());
    assert_eq!(claim(&store, 5_000), ["paused", "later"]);
    assert!(store.claim_due(5_000, 0, &[], CLAIM).unwrap().is_empty());
}

#[test]
fn a_failing_event_holds_back_only_the_later_events_of_its_key() {
    let (_tmp, store) = open();
    store
        .append_events(&[
            event("k1-1", "orders", Some("k1"), 0),
            event("k1-2", "orders", Some("k1"), 0),
            event("k2-1", "orders", Some("k2"), 0),
            event("free", "orders", None, 0),
            event("k1-3", "orders", Some("k1"), 0),
            event("other-route-k1", "users", Some("k1"), 0),
        ])
        .unwrap();
    assert_consistent(&store);
    // Only the first of k1; the same key on another route is another group.
    assert_eq!(claim(&store, 0), ["k1-1", "k2-1", "free", "other-route-k1"]);
    store
        .record(
            &[
                retry("k1-1", 1_000),
                delivered("k2-1"),
                delivered("free"),
                delivered("other-route-k1"),
            ],
            10,
        )
        .unwrap();
    // k1-2 is due but waits behind k1-1's retry.
    assert!(claim(&store, 500).is_empty());
    assert_eq!(claim(&store, 1_000), ["k1-1"]);

    // Once the first is dead, the next proceeds, one at a time.
    store.record(&[dead("k1-1")], 1_010).unwrap();
    assert_consistent(&store);
    assert_eq!(claim(&store, 1_010), ["k1-2"]);
    assert!(claim(&store, 1_010).is_empty());
    store.record(&[delivered("k1-2")], 1_020).unwrap();
    assert_eq!(claim(&store, 1_020), ["k1-3"]);
    assert_consistent(&store);
}

#[test]
fn a_claimed_event_is_hidden_until_its_claim_runs_out_then_due_again() {
    let (_tmp, store) = open();
    store.append_events(&[event("e", "r", None, 0)]).unwrap();
    let claim_for = Duration::from_millis(100);
    assert_eq!(store.claim_due(1_000, 10, &[], claim_for).unwrap().len(), 1);
    assert!(store
        .claim_due(1_099, 10, &[], claim_for)
        .unwrap()
        .is_empty());
    // The deliverer crashed without an outcome: the event comes back, its attempts unchanged.
    let again = store.claim_due(1_100, 10, &[], claim_for).unwrap();
    assert_eq!((again[0].id.as_str(), again[0].attempts), ("e", 0));
}

#[test]
fn record_applies_a_batch_and_ignores_outcomes_for_settled_or_unknown_events() {
    let (_tmp, store) = open();
    let events: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|id| event(id, "r", None, 0))
        .collect();
    store.append_events(&events).unwrap();
    claim(&store, 0);
    store
        .record(&[delivered("a"), retry("b", 5_000), dead("c")], 100)
        .unwrap();

    let stats = store.stats(100).unwrap().total;
    assert_eq!((stats.pending, stats.delivered, stats.dead), (1, 1, 1));
    let listed = store.dead_events(None, 10).unwrap();
    assert_eq!(
        listed,
        [DeadEvent {
            id: "c".into(),
            route: "r".into(),
            key: None,
            attempts: 1,
            last_error: "c failed".into(),
            created_ms: 0,
            updated_ms: 100,
        }]
    );
    let b = store.claim_due(5_000, 10, &[], CLAIM).unwrap();
    assert_eq!((b[0].id.as_str(), b[0].attempts), ("b", 1));

    // Late or duplicate outcomes (another process's, say) change nothing.
    store
        .record(&[retry("a", 0), delivered("c"), delivered("nope")], 200)
        .unwrap();
    let stats = store.stats(200).unwrap().total;
    assert_eq!((stats.pending, stats.delivered, stats.dead), (1, 1, 1));
    assert!(claim(&store, 200).is_empty());
    assert_consistent(&store);
}

#[test]
fn appending_an_id_that_is_stored_already_changes_nothing() {
    let (_tmp, store) = open();
    store.append_events(&[event("e", "r", None, 0)]).unwrap();
    let mut again = event("e", "other", None, 5);
    again.payload = "changed".into();
    store
        .append_events(&[again, event("f", "r", None, 0)])
        .unwrap();
    let due = store.claim_due(10, 10, &[], CLAIM).unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(
        (due[0].route.as_str(), due[0].payload.as_str()),
        ("r", r#"{"id":"e"}"#)
    );
}

/// Guards the "fast with many rows" promise: every outbox query reads through an index, and
/// scans only the partial ones (a scan of the table would visit every delivered event).
#[test]
fn every_outbox_query_uses_an_index() {
    let (_tmp, store) = open();
    let conn = store.conn();
    for (name, sql) in outbox::QUERIES_FOR_PLAN_TESTS {
        let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let count = explain.parameter_count();
        let params: Vec<rusqlite::types::Value> = vec![rusqlite::types::Value::Integer(1); count];
        let plan: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(params), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // A SEARCH is a probe; a SCAN is fine only of a partial index (the rows of one state).
        let scans: Vec<_> = plan
            .iter()
            .filter(|step| step.starts_with("SCAN webhook_events"))
            .filter(|step| !step.contains("INDEX webhook_events_"))
            .collect();
        assert!(scans.is_empty(), "{name} scans the table: {plan:#?}");
    }
}
