//! The durable store under `[proxy] data_dir`: one SQLite file, `ficus.db`, that holds the recent
//! shadow mismatches ([`samples`]), the noise each route has learned ([`noise`]), the leases
//! that keep singleton work to one process ([`lease`]) and the webhook outbox ([`outbox`]), whose
//! appends [`group`] commits together.
//!
//! A [`Store`] is a cheap handle (an `Arc` around one connection behind a mutex); clone it freely.
//! **Every method blocks** (disk I/O, and up to 5 s waiting for another process's write lock), so
//! async callers run them with `tokio::task::spawn_blocking`.
//!
//! Two ficus processes may share `data_dir` during `ficus run --upgrade`, each with its own
//! [`Store`]. SQLite's locking keeps their writes apart: the database runs in WAL mode, every
//! read-modify-write is one `BEGIN IMMEDIATE` transaction, and a writer waits up to 5 s
//! (`busy_timeout`) for the other before failing. Commits are durable (`synchronous=FULL`).
//!
//! The schema is a list of migrations (`MIGRATIONS`) numbered by `PRAGMA user_version`; opening
//! applies the missing ones in one transaction, and refuses a file that a newer ficus migrated.

pub mod group;
#[cfg(test)]
mod group_tests;
pub mod lazy;
pub mod lease;
pub mod noise;
pub mod outbox;
#[cfg(test)]
mod outbox_admin_tests;
#[cfg(test)]
mod outbox_tests;
pub mod samples;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

pub use group::{AppendError, Appender, GroupCommit};
pub use lazy::LazyStore;
pub use outbox::{DeadEvent, DueEvent, NewEvent, OutboxStats, Outcome, RouteStats};
pub use samples::{SampleLimits, StoredSample};

/// The database's file name inside `data_dir`.
pub const FILE_NAME: &str = "ficus.db";

/// How long a statement waits for another connection's lock before failing with "database is
/// locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one migration per step: `MIGRATIONS[i]` takes `user_version` from `i` to `i + 1`.
/// Append only; never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: shadow samples, learned noise, leases.
    "
    CREATE TABLE shadow_samples (
        id INTEGER PRIMARY KEY,
        route TEXT NOT NULL,
        request_id TEXT NOT NULL,
        at_unix_ms INTEGER NOT NULL,
        size INTEGER NOT NULL,          -- json's length in bytes (length() would count characters)
        json TEXT NOT NULL
    );
    CREATE INDEX shadow_samples_by_route ON shadow_samples (route, at_unix_ms, id);
    CREATE INDEX shadow_samples_by_age ON shadow_samples (at_unix_ms, id);

    CREATE TABLE noise_routes (
        route TEXT PRIMARY KEY,
        fingerprint INTEGER NOT NULL    -- the route's u64 shadow fingerprint, bit-cast to i64
    ) WITHOUT ROWID;
    CREATE TABLE noise_paths (
        route TEXT NOT NULL REFERENCES noise_routes (route) ON DELETE CASCADE,
        path TEXT NOT NULL,
        PRIMARY KEY (route, path)
    ) WITHOUT ROWID;

    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_unix_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 2: the webhook outbox (outbox.rs explains the lanes).
    "
    CREATE TABLE webhook_events (
        -- Commit order. AUTOINCREMENT so a seq is never handed out twice, even after the newest
        -- rows were pruned: a replay takes a new seq, and seqs in logs stay unambiguous.
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,        -- the Standard Webhooks webhook-id
        route TEXT NOT NULL,
        key TEXT,                       -- the ordering group within the route; NULL: unordered
        payload TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
        -- Where a pending event waits; NULL once it is delivered or dead.
        lane TEXT CHECK (lane IN ('ready', 'waiting', 'blocked')),
        attempts INTEGER NOT NULL,
        next_attempt_ms INTEGER NOT NULL,
        last_error TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        CHECK ((state = 'pending') = (lane IS NOT NULL))
    );
    -- Partial indexes, each holding only the rows its query reads:
    -- the first pending event of a key (is a new event blocked? which one is released next?),
    CREATE INDEX webhook_events_key ON webhook_events (route, key, seq)
        WHERE state = 'pending' AND key IS NOT NULL;
    -- a route's claimable events in commit order,
    CREATE INDEX webhook_events_ready ON webhook_events (route, seq, next_attempt_ms)
        WHERE lane = 'ready';
    -- the claimed and retrying events that come due,
    CREATE INDEX webhook_events_waiting ON webhook_events (next_attempt_ms) WHERE lane = 'waiting';
    -- a route's oldest pending event,
    CREATE INDEX webhook_events_pending_age ON webhook_events (route, created_ms)
        WHERE state = 'pending';
    -- and the settled events by age (pruning; the dead-letter list, newest first).
    CREATE INDEX webhook_events_delivered ON webhook_events (updated_ms) WHERE state = 'delivered';
    CREATE INDEX webhook_events_dead ON webhook_events (updated_ms) WHERE state = 'dead';

    -- Events per (route, state), kept by the triggers below, so stats never count rows.
    CREATE TABLE webhook_counts (
        route TEXT NOT NULL,
        state TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (route, state)
    ) WITHOUT ROWID;
    CREATE TRIGGER webhook_events_counted_in AFTER INSERT ON webhook_events BEGIN
        INSERT INTO webhook_counts (route, state, n) VALUES (new.route, new.state, 1)
            ON CONFLICT (route, state) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER webhook_events_counted_out AFTER DELETE ON webhook_events BEGIN
        UPDATE webhook_counts SET n = n - 1 WHERE route = old.route AND state = old.state;
        DELETE FROM webhook_counts WHERE route = old.route AND state = old.state AND n <= 0;
    END;
    CREATE TRIGGER webhook_events_counted_moved AFTER UPDATE OF route, state ON webhook_events
        WHEN old.route IS NOT new.route OR old.state IS NOT new.state
    BEGIN
        UPDATE webhook_counts SET n = n - 1 WHERE route = old.route AND state = old.state;
        DELETE FROM webhook_counts WHERE route = old.route AND state = old.state AND n <= 0;
        INSERT INTO webhook_counts (route, state, n) VALUES (new.route, new.state, 1)
            ON CONFLICT (route, state) DO UPDATE SET n = n + 1;
    END;
    ",
];

/// What went wrong with the store; every message names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {}: {source} (check data_dir and its permissions)", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open {}: {source} (check data_dir and its permissions)", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "{} is in journal mode {mode:?}, not WAL: put data_dir on a local filesystem",
        path.display()
    )]
    NoWal { path: PathBuf, mode: String },
    #[error(
        "{} has schema version {found}, but this ficus knows only up to {known}: it was written by \
         a newer ficus; run that version, or point data_dir elsewhere",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("cannot migrate {} to schema version {version}: {source}", path.display())]
    Migrate {
        path: PathBuf,
        version: usize,
        source: rusqlite::Error,
    },
    #[error(
        "{}: a shadow sample for route {route:?} is {size} bytes, more than the {limit} bytes \
         kept for all samples; raise the limit or send smaller samples",
        path.display()
    )]
    SampleTooLarge {
        path: PathBuf,
        route: String,
        size: u64,
        limit: u64,
    },
    #[error("{}: cannot {action}: {source}", path.display())]
    Sql {
        path: PathBuf,
        action: &'static str,
        source: rusqlite::Error,
    },
}

/// A handle on `data_dir/ficus.db`; see the module docs. Every method blocks.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    limits: SampleLimits,
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating `dir` and the file if needed) and migrates the store in `dir`, with the
    /// default [`SampleLimits`]. Blocks.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, SampleLimits::default())
    }

    /// [`Store::open`] with the limits that [`Store::put_sample`] keeps to on this handle. Samples
    /// stored earlier beyond them (say, under larger limits) are trimmed by the next `put_sample`:
    /// that route's beyond `per_route`, all routes' beyond `total_bytes`. Blocks.
    pub fn open_with(dir: &Path, limits: SampleLimits) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let mut conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        configure(&conn, &path)?;
        migrate(&mut conn, &path, MIGRATIONS)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                limits,
                conn: Mutex::new(conn),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The limits this handle's [`Store::put_sample`] keeps to.
    pub fn limits(&self) -> SampleLimits {
        self.inner.limits
    }

    /// The connection. A panic while it was held cannot leave it mid-transaction (a dropped
    /// `Transaction` rolls back), so a poisoned lock is taken over rather than propagated.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.inner
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction (the write lock is taken up front, so a
    /// read-modify-write cannot interleave with another process's) and commits if it returns `Ok`.
    fn write<T>(
        &self,
        action: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.sql(action))?;
        let value = f(&tx)?;
        tx.commit().map_err(self.sql(action))?;
        Ok(value)
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    fn read<T>(
        &self,
        action: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(self.sql(action))?;
        let value = f(&tx)?;
        tx.finish().map_err(self.sql(action))?;
        Ok(value)
    }

    /// Wraps a SQLite error with the file and what was being done.
    fn sql(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            path: self.inner.path.clone(),
            action,
            source,
        }
    }
}

/// The per-connection settings. `busy_timeout` comes first, so that switching an existing file to
/// WAL waits for another process rather than failing.
fn configure(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    Ok(())
}

/// Brings the schema from its `user_version` up to `migrations.len()` in one IMMEDIATE
/// transaction (so two processes opening at once migrate once), or refuses a newer file.
fn migrate(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<(), StoreError> {
    let known = migrations.len();
    let err = |version| {
        move |source| StoreError::Migrate {
            path: path.to_path_buf(),
            version,
            source,
        }
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err(known))?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(err(known))?;
    // A negative user_version was not written by ficus; treat it like an unknown newer one.
    let current = match usize::try_from(found) {
        Ok(current) if current <= known => current,
        _ => {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                known: i64::try_from(known).unwrap_or(i64::MAX),
            })
        }
    };
    for (index, sql) in migrations.iter().enumerate().skip(current) {
        let version = index + 1;
        tx.execute_batch(sql).map_err(err(version))?;
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(err(version))?;
    }
    tx.commit().map_err(err(known))
}

/// The system clock in Unix milliseconds (0 before 1970, saturated far in the future).
fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}
