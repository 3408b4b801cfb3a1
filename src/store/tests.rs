use std::sync::{Arc, Barrier};
use std::time::Duration;

use rusqlite::Connection;

use super::*;

fn limits(per_route: usize, total_bytes: u64) -> SampleLimits {
    SampleLimits {
        per_route,
        total_bytes,
    }
}

fn ids(samples: &[StoredSample]) -> Vec<&str> {
    samples.iter().map(|s| s.request_id.as_str()).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn store_handles_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Store>();
}

#[test]
fn open_creates_the_directory_and_sets_the_pragmas() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("data");
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.path(), dir.join("ficus.db"));
    assert!(dir.join("ficus.db").is_file());

    let conn = store.conn();
    let pragma = |name: &str| -> String {
        conn.query_row(&format!("SELECT * FROM pragma_{name}"), [], |row| {
            row.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| format!("{v:?}"))
        .unwrap()
    };
    assert_eq!(pragma("journal_mode"), r#"Text("wal")"#);
    assert_eq!(pragma("synchronous"), "Integer(2)", "FULL");
    assert_eq!(pragma("foreign_keys"), "Integer(1)");
    assert_eq!(pragma("busy_timeout"), "Integer(5000)");
}

#[test]
fn an_uncreatable_directory_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let err = Store::open(&file.join("data")).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[test]
fn samples_survive_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    let stored = |id: &str, at, json: &str| StoredSample {
        request_id: id.into(),
        at_unix_ms: at,
        json: json.into(),
    };
    {
        let store = Store::open(tmp.path()).unwrap();
        store.put_sample("orders", "r1", 1_000, "[1]").unwrap();
        store.put_sample("orders", "r2", 2_000, "[2]").unwrap();
    }
    let store = Store::open(tmp.path()).unwrap();
    let expected = [stored("r2", 2_000, "[2]"), stored("r1", 1_000, "[1]")];
    assert_eq!(store.samples("orders", 10).unwrap(), expected);
}

#[test]
fn reopening_runs_no_migration_twice_and_a_new_one_once() {
    let tmp = tempfile::tempdir().unwrap();
    Store::open(tmp.path())
        .unwrap()
        .put_sample("r", "kept", 1, "{}")
        .unwrap();
    // A second open would fail with "table already exists" if migration 1 ran again.
    let store = Store::open(tmp.path()).unwrap();
    let version = |conn: &Connection| -> i64 {
        conn.pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    };
    assert_eq!(version(&store.conn()), MIGRATIONS.len() as i64);
    drop(store);

    // A later binary's migration list: the new step runs once, on the first open only.
    let mut later = MIGRATIONS.to_vec();
    later.push("CREATE TABLE from_a_later_ficus (id INTEGER PRIMARY KEY);");
    let path = tmp.path().join(FILE_NAME);
    let mut conn = Connection::open(&path).unwrap();
    migrate(&mut conn, &path, &later).unwrap();
    migrate(&mut conn, &path, &later).unwrap();
    assert_eq!(version(&conn), later.len() as i64);
    drop(conn);

    // ... and this binary then refuses the file rather than use a schema it does not know.
    let err = Store::open(tmp.path()).unwrap_err();
    let known = MIGRATIONS.len() as i64;
    assert!(
        matches!(err, StoreError::TooNew { found, known: k, .. } if found == known + 1 && k == known),
        "{err:?}"
    );
}

#[test]
fn a_newer_schema_version_is_refused_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Store::open(tmp.path()).unwrap());
    let path = tmp.path().join(FILE_NAME);
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);

    let err = Store::open(tmp.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 99, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    // Left as it was.
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 99);
}

#[test]
fn put_sample_keeps_the_newest_per_route_by_time() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_with(tmp.path(), limits(3, 1 << 20)).unwrap();
    for (i, at) in [10, 20, 30, 40, 50].into_iter().enumerate() {
        store.put_sample("a", &format!("a{i}"), at, "{}").unwrap();
    }
    store.put_sample("b", "b0", 1, "{}").unwrap();
    store.put_sample("b", "b1", 2, "{}").unwrap();
    assert_eq!(ids(&store.samples("a", 10).unwrap()), ["a4", "a3", "a2"]);
    assert_eq!(ids(&store.samples("b", 10).unwrap()), ["b1", "b0"]);

    // A late sample older than every kept one is itself the oldest, so it goes.
    store.put_sample("a", "late", 5, "{}").unwrap();
    assert_eq!(ids(&store.samples("a", 10).unwrap()), ["a4", "a3", "a2"]);
    // Equal times: the later insert counts as newer.
    store.put_sample("a", "tie", 50, "{}").unwrap();
    assert_eq!(ids(&store.samples("a", 10).unwrap()), ["tie", "a4", "a3"]);
    assert_eq!(ids(&store.samples("a", 1).unwrap()), ["tie"]);
    assert!(store.samples("unknown", 10).unwrap().is_empty());
}

#[test]
fn put_sample_keeps_total_bytes_across_routes_dropping_the_oldest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_with(tmp.path(), limits(20, 100)).unwrap();
    let json = "x".repeat(30);
    store.put_sample("a", "a1", 1, &json).unwrap();
    store.put_sample("b", "b2", 2, &json).unwrap();
    store.put_sample("a", "a3", 3, &json).unwrap();
    assert_eq!(ids(&store.samples("a", 10).unwrap()), ["a3", "a1"]);
    // 120 bytes: the oldest (a1) goes, whatever its route.
    store.put_sample("b", "b4", 4, &json).unwrap();
    assert_eq!(ids(&store.samples("a", 10).unwrap()), ["a3"]);
    assert_eq!(ids(&store.samples("b", 10).unwrap()), ["b4", "b2"]);
    // One sample of exactly the limit pushes out everything else.
    store.put_sample("c", "c5", 5, &"y".repeat(100)).unwrap();
    assert!(store.samples("a", 10).unwrap().is_empty());
    assert!(store.samples("b", 10).unwrap().is_empty());
    assert_eq!(ids(&store.samples("c", 10).unwrap()), ["c5"]);
}

#[test]
fn total_bytes_counts_utf8_bytes_not_characters() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_with(tmp.path(), limits(20, 10)).unwrap();
    store.put_sample("a", "old", 1, "éééé").unwrap(); // 8 bytes, 4 characters
    store.put_sample("a", "new", 2, "éé").unwrap(); // 4 bytes: 12 in all
    assert_eq!(ids(&store.samples("a", 10).unwrap()), ["new"]);
}

#[test]
fn a_sample_larger_than_total_bytes_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_with(tmp.path(), limits(20, 10)).unwrap();
    store.put_sample("a", "small", 1, "{}").unwrap();
    let err = store
        .put_sample("a", "big", 2, &"z".repeat(11))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SampleTooLarge {
                size: 11,
                limit: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("ficus.db"), "{err}");
    assert_eq!(ids(&store.samples("a", 10).unwrap()), ["small"]);
}

#[test]
fn clones_share_one_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let clone = store.clone();
    std::thread::spawn(move || clone.put_sample("a", "from-thread", 1, "{}").unwrap())
        .join()
        .unwrap();
    assert_eq!(ids(&store.samples("a", 10).unwrap()), ["from-thread"]);
}

#[test]
fn noise_is_kept_sorted_under_the_same_fingerprint_across_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = Store::open(tmp.path()).unwrap();
        assert!(store.noise("orders", 7).unwrap().is_empty());
        store
            .add_noise("orders", 7, &strings(&["/z", "/a/*/b", "header:date"]))
            .unwrap();
        store
            .add_noise("orders", 7, &strings(&["/a/*/b", "/m"]))
            .unwrap();
        store.add_noise("other", 1, &strings(&["/x"])).unwrap();
    }
    let store = Store::open(tmp.path()).unwrap();
    assert_eq!(
        store.noise("orders", 7).unwrap(),
        ["/a/*/b", "/m", "/z", "header:date"]
    );
    assert_eq!(store.noise("other", 1).unwrap(), ["/x"]);
}

#[test]
fn noise_resets_when_the_fingerprint_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.add_noise("orders", 1, &strings(&["/a"])).unwrap();
    store.add_noise("other", 1, &strings(&["/x"])).unwrap();

    // Reading under a new fingerprint forgets, and the new fingerprint sticks.
    assert!(store.noise("orders", 2).unwrap().is_empty());
    store.add_noise("orders", 2, &strings(&["/b"])).unwrap();
    assert_eq!(store.noise("orders", 2).unwrap(), ["/b"]);
    // Adding under another fingerprint forgets too, then adds.
    store.add_noise("orders", 3, &strings(&["/c"])).unwrap();
    assert_eq!(store.noise("orders", 3).unwrap(), ["/c"]);
    // Back to an earlier fingerprint: what was learned under it is gone.
    assert!(store.noise("orders", 2).unwrap().is_empty());
    // Other routes keep theirs.
    assert_eq!(store.noise("other", 1).unwrap(), ["/x"]);
}

#[test]
fn noise_fingerprints_keep_all_64_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    for fingerprint in [u64::MAX, 1 << 63, 0] {
        store
            .add_noise("r", fingerprint, &strings(&["/p"]))
            .unwrap();
        assert_eq!(store.noise("r", fingerprint).unwrap(), ["/p"]);
    }
    assert!(store.noise("r", u64::MAX - 1).unwrap().is_empty());
}

#[test]
fn noise_keeps_at_most_1000_paths_per_route() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    // Duplicates take no room.
    store
        .add_noise("r", 1, &strings(&["/p0000", "/p0000"]))
        .unwrap();
    let many: Vec<String> = (0..1_200).map(|i| format!("/p{i:04}")).collect();
    store.add_noise("r", 1, &many).unwrap();
    let kept = store.noise("r", 1).unwrap();
    assert_eq!(kept.len(), noise::MAX_NOISE_PATHS);
    assert_eq!(kept, many[..1_000]);

    store.add_noise("r", 1, &strings(&["/new"])).unwrap();
    assert!(!store.noise("r", 1).unwrap().contains(&"/new".to_string()));
    // The cap is per route.
    store.add_noise("s", 1, &strings(&["/new"])).unwrap();
    assert_eq!(store.noise("s", 1).unwrap(), ["/new"]);
}

const TTL: Duration = Duration::from_millis(100);

/// Two handles on one directory, as two processes during `ficus run --upgrade` would have.
fn two_processes() -> (tempfile::TempDir, Store, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let old = Store::open(tmp.path()).unwrap();
    let new = Store::open(tmp.path()).unwrap();
    (tmp, old, new)
}

#[test]
fn a_held_lease_is_refused_to_another_process() {
    let (_tmp, old, new) = two_processes();
    assert!(old
        .try_lease("webhooks", "old", Duration::from_secs(60))
        .unwrap());
    assert!(!new
        .try_lease("webhooks", "new", Duration::from_secs(60))
        .unwrap());
    let (holder, expires) = new.holder("webhooks").unwrap().unwrap();
    assert_eq!(holder, "old");
    assert!(expires > now_unix_ms());
    // Another name is another lease.
    assert!(new
        .try_lease("other", "new", Duration::from_secs(60))
        .unwrap());
    assert_eq!(old.holder("unknown").unwrap(), None);
}

#[test]
fn a_renewed_lease_outlives_its_first_expiry() {
    let (_tmp, old, new) = two_processes();
    assert!(old.try_lease_at("l", "old", TTL, 1_000).unwrap());
    assert_eq!(
        new.holder_at("l", 1_000).unwrap(),
        Some(("old".into(), 1_100))
    );
    assert!(old.try_lease_at("l", "old", TTL, 1_050).unwrap());
    assert_eq!(
        new.holder_at("l", 1_120).unwrap(),
        Some(("old".into(), 1_150))
    );
    assert!(!new.try_lease_at("l", "new", TTL, 1_120).unwrap());
    assert!(!new.try_lease_at("l", "new", TTL, 1_149).unwrap());
}

#[test]
fn an_expired_lease_can_be_taken_by_another_process() {
    let (_tmp, old, new) = two_processes();
    assert!(old.try_lease_at("l", "old", TTL, 1_000).unwrap());
    assert!(!new.try_lease_at("l", "new", TTL, 1_099).unwrap());
    // Expired at exactly its expiry time.
    assert_eq!(new.holder_at("l", 1_100).unwrap(), None);
    assert!(new.try_lease_at("l", "new", TTL, 1_100).unwrap());
    assert_eq!(
        old.holder_at("l", 1_100).unwrap(),
        Some(("new".into(), 1_200))
    );
    assert!(!old.try_lease_at("l", "old", TTL, 1_150).unwrap());
}

#[test]
fn releasing_hands_the_lease_over_and_only_the_holder_can() {
    let (_tmp, old, new) = two_processes();
    assert!(old.try_lease("l", "old", Duration::from_secs(60)).unwrap());
    new.release_lease("l", "new").unwrap();
    assert!(!new.try_lease("l", "new", Duration::from_secs(60)).unwrap());
    old.release_lease("l", "old").unwrap();
    assert_eq!(new.holder("l").unwrap(), None);
    assert!(new.try_lease("l", "new", Duration::from_secs(60)).unwrap());
    assert_eq!(old.holder("l").unwrap().map(|(h, _)| h), Some("new".into()));
}

#[test]
fn racing_processes_get_one_lease_between_them() {
    let tmp = tempfile::tempdir().unwrap();
    let stores: Vec<Store> = (0..8).map(|_| Store::open(tmp.path()).unwrap()).collect();
    let start = Arc::new(Barrier::new(stores.len()));
    let threads: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(i, store)| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                store
                    .try_lease("l", &format!("p{i}"), Duration::from_secs(60))
                    .unwrap()
            })
        })
        .collect();
    let won = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|&won| won)
        .count();
    assert_eq!(won, 1);
}
