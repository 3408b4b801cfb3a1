//! Leases: named, expiring claims that keep singleton work (the webhook deliverer) to one process
//! while two ficus processes share `data_dir` during `ficus run --upgrade`.
//!
//! A holder takes a free or expired lease with [`Store::try_lease`] and keeps it by calling again
//! before it expires; if the holder dies, the lease frees itself at expiry. Times are Unix
//! milliseconds from the system clock, compared across processes on the same host. Holders are
//! the caller's strings and should be unique per process (for example pid and start time).

use std::time::Duration;

use rusqlite::{params, OptionalExtension};

use super::{now_unix_ms, Store, StoreError};

impl Store {
    /// Takes the lease `name` for `holder` until `ttl` from now, if it is free, expired, or held
    /// by `holder` already (a renewal). `false` when another holder has it unexpired. Atomic: one
    /// IMMEDIATE transaction. Blocks.
    pub fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.try_lease_at(name, holder, ttl, now_unix_ms())
    }

    /// [`Store::try_lease`] at the given time (tests step the clock with it).
    pub(crate) fn try_lease_at(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let expires = now_ms.saturating_add(ttl_ms);
        let sql = self.sql("take a lease");
        self.write("take a lease", |tx| {
            // Inserts, or overwrites a row that is ours or expired; otherwise changes nothing.
            let changed = tx
                .prepare_cached(
                    "INSERT INTO leases (name, holder, expires_unix_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE
                         SET holder = excluded.holder, expires_unix_ms = excluded.expires_unix_ms
                         WHERE leases.holder = excluded.holder OR leases.expires_unix_ms <= ?4",
                )
                .and_then(|mut upsert| upsert.execute(params![name, holder, expires, now_ms]))
                .map_err(&sql)?;
            Ok(changed == 1)
        })
    }

    /// Gives up the lease `name` if `holder` holds it (expired or not); otherwise does nothing.
    /// Blocks.
    pub fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let sql = self.sql("release a lease");
        self.write("release a lease", |tx| {
            tx.prepare_cached("DELETE FROM leases WHERE name = ?1 AND holder = ?2")
                .and_then(|mut delete| delete.execute(params![name, holder]))
                .map_err(&sql)?;
            Ok(())
        })
    }

    /// Who holds the lease `name` now, and until when (Unix ms); `None` when it is free or
    /// expired. For the admin API. Blocks.
    pub fn holder(&self, name: &str) -> Result<Option<(String, i64)>, StoreError> {
        self.holder_at(name, now_unix_ms())
    }

    /// [`Store::holder`] at the given time.
    pub(crate) fn holder_at(
        &self,
        name: &str,
        now_ms: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let sql = self.sql("read a lease");
        self.read("read a lease", |tx| {
            tx.prepare_cached(
                "SELECT holder, expires_unix_ms FROM leases
                 WHERE name = ?1 AND expires_unix_ms > ?2",
            )
            .and_then(|mut select| {
                select
                    .query_row(params![name, now_ms], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(&sql)
        })
    }
}
