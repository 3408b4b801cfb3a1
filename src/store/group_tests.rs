//! Group commit: batching, durability, back-pressure, failures and shutdown.

use std::time::Duration;

use futures_util::future::join_all;
use futures_util::FutureExt;
use rusqlite::Connection;

use super::*;

fn event(id: &str, route: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        route: route.into(),
        key: None,
        payload: "{}".into(),
        created_ms: 0,
    }
}

/// Another process's write transaction on the store in `dir`: the commit thread waits for it
/// (up to the busy timeout) until [`release`].
fn hold_write_lock(dir: &std::path::Path) -> Connection {
    let conn = Connection::open(dir.join(FILE_NAME)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

fn release(lock: Connection) {
    lock.execute_batch("COMMIT").unwrap();
}

fn claimed_ids(store: &Store) -> Vec<String> {
    let due = store.claim_due(0, 10_000, &[], Duration::from_secs(30));
    due.unwrap().into_iter().map(|e| e.id).collect()
}

#[tokio::test]
async fn appends_queued_during_a_commit_share_the_next_one_in_call_order() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let appender = GroupCommit::start(store.clone(), 1_024).unwrap();

    let lock = hold_write_lock(tmp.path());
    let ids: Vec<String> = (0..200).map(|i| format!("e{i:03}")).collect();
    let waits: Vec<_> = ids
        .iter()
        .map(|id| appender.append(event(id, "r")))
        .collect();
    release(lock);
    for result in join_all(waits).await {
        result.unwrap();
    }
    // At most the first event went alone, before the rest were queued.
    assert!(appender.commits() <= 2, "{} commits", appender.commits());
    assert_eq!(claimed_ids(&store), ids);
}

#[tokio::test]
async fn a_batch_is_at_most_max_batch_events() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let settings = GroupCommit {
        capacity: 100,
        max_batch: 4,
        max_pending: None,
    };
    let appender = settings.spawn(store.clone()).unwrap();
    let lock = hold_write_lock(tmp.path());
    let waits: Vec<_> = (0..10)
        .map(|i| appender.append(event(&format!("e{i}"), "r")))
        .collect();
    release(lock);
    assert!(join_all(waits).await.into_iter().all(|r| r.is_ok()));
    assert!(
        (3..=4).contains(&appender.commits()),
        "{}",
        appender.commits()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let appender = GroupCommit::start(store.clone(), 1_024).unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|task| {
            let appender = appender.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    appender.append(event(&format!("t{task}-{i}"), "r")).await?;
                }
                Ok::<_, AppendError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.pending_count().unwrap(), 640);
    assert!(
        appender.commits() < 640 / 4,
        "{} commits",
        appender.commits()
    );
}

#[tokio::test]
async fn an_appended_event_is_durable_once_append_resolves() {
    let tmp = tempfile::tempdir().unwrap();
    let appender = GroupCommit::start(Store::open(tmp.path()).unwrap(), 16).unwrap();
    appender.append(event("durable", "r")).await.unwrap();
    // A fresh handle, as a restarted process would open.
    let fresh = Store::open(tmp.path()).unwrap();
    assert_eq!(claimed_ids(&fresh), ["durable"]);
}

#[tokio::test]
async fn a_full_queue_is_refused_at_once_with_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let appender = GroupCommit::start(store.clone(), 1).unwrap();
    let lock = hold_write_lock(tmp.path());
    // The thread holds at most one event (waiting for the lock) and the queue one more.
    let mut accepted = Vec::new();
    let mut busy = None;
    for i in 0..3 {
        let mut wait = Box::pin(appender.append(event(&format!("e{i}"), "r")));
        match (&mut wait).now_or_never() {
            Some(Err(err)) => {
                busy = Some(err);
                break;
            }
            Some(Ok(())) => panic!("committed while the store was locked"),
            None => accepted.push(wait),
        }
    }
    assert_eq!(busy, Some(AppendError::Busy));
    release(lock);
    assert!(join_all(accepted).await.into_iter().all(|r| r.is_ok()));
}

#[tokio::test]
async fn a_failed_commit_fails_its_batch_and_the_next_commit_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    // A failure only for events of one route, as a full disk would fail them all.
    (store.conn())
        .execute_batch(
            "CREATE TEMP TRIGGER fail BEFORE INSERT ON webhook_events WHEN new.route = 'fail'
             BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .unwrap();
    let appender = GroupCommit::start(store.clone(), 16).unwrap();
    let err = appender.append(event("e1", "fail")).await.unwrap_err();
    assert!(
        matches!(&err, AppendError::Store(msg) if msg.contains("disk full") && msg.contains("ficus.db")),
        "{err:?}"
    );
    appender.append(event("e2", "ok")).await.unwrap();
    assert_eq!(claimed_ids(&store), ["e2"]);
}

#[tokio::test]
async fn events_beyond_max_pending_are_refused_until_some_are_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let settings = GroupCommit {
        capacity: 16,
        max_batch: 512,
        max_pending: Some(2),
    };
    let appender = settings.spawn(store.clone()).unwrap();
    appender.append(event("a", "r")).await.unwrap();
    // In one batch or two, b fits and c does not.
    let (b, c) = tokio::join!(
        appender.append(event("b", "r")),
        appender.append(event("c", "r"))
    );
    assert_eq!((b, c), (Ok(()), Err(AppendError::Full { limit: 2 })));
    assert_eq!(claimed_ids(&store), ["a", "b"]);
    store
        .record(&[Outcome::Delivered { id: "a".into() }], 0)
        .unwrap();
    appender.append(event("c", "r")).await.unwrap();
}

#[test]
fn the_commit_thread_ends_when_the_last_appender_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let appender = GroupCommit::start(store.clone(), 16).unwrap();
    let clone = appender.clone();
    drop(appender);
    assert_eq!(
        std::sync::Arc::strong_count(&store.inner),
        2,
        "one clone left"
    );
    drop(clone);
    // The thread drops its handle as it returns.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::sync::Arc::strong_count(&store.inner) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the thread is still running"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
