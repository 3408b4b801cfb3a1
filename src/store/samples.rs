//! Shadow samples: the most recent mismatches per route (request, both responses, the diff), kept
//! as JSON text that the caller writes and the admin API reads back (`/api/shadow/samples`).
//!
//! "Recent" is by the caller's `at_unix_ms`, ties broken by insertion order; the oldest go first
//! when a route has more than [`SampleLimits::per_route`] samples or all routes together more than
//! [`SampleLimits::total_bytes`] of JSON.

use rusqlite::params;

use super::{Store, StoreError};

/// How many samples [`Store::put_sample`] keeps. Fixed per [`Store`] handle: pass them to
/// [`Store::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleLimits {
    /// Samples kept per route, newest first (0 keeps none). Default 20.
    pub per_route: usize,
    /// Bytes of sample JSON kept across all routes. Default 16 MiB.
    pub total_bytes: u64,
}

impl Default for SampleLimits {
    fn default() -> Self {
        SampleLimits {
            per_route: 20,
            total_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One stored sample, as [`Store::samples`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSample {
    pub request_id: String,
    pub at_unix_ms: i64,
    /// The caller's JSON, unchanged.
    pub json: String,
}

impl Store {
    /// Stores one sample for `route`, then drops the oldest samples beyond this handle's
    /// [`SampleLimits`] (the route's count, then all routes' bytes), in one transaction. A sample
    /// larger than `total_bytes` on its own is refused with [`StoreError::SampleTooLarge`] and
    /// nothing changes. Blocks.
    pub fn put_sample(
        &self,
        route: &str,
        request_id: &str,
        at_unix_ms: i64,
        json: &str,
    ) -> Result<(), StoreError> {
        let limits = self.inner.limits;
        let size = json.len() as u64;
        if size > limits.total_bytes {
            return Err(StoreError::SampleTooLarge {
                path: self.inner.path.clone(),
                route: route.to_owned(),
                size,
                limit: limits.total_bytes,
            });
        }
        let sql = self.sql("store a shadow sample");
        self.write("store a shadow sample", |tx| {
            tx.prepare_cached(
                "INSERT INTO shadow_samples (route, request_id, at_unix_ms, size, json)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut insert| {
                insert.execute(params![route, request_id, at_unix_ms, to_i64(size), json])
            })
            .map_err(&sql)?;
            // The route's samples past the newest `per_route`.
            tx.prepare_cached(
                "DELETE FROM shadow_samples WHERE route = ?1 AND id NOT IN (
                     SELECT id FROM shadow_samples WHERE route = ?1
                     ORDER BY at_unix_ms DESC, id DESC LIMIT ?2)",
            )
            .and_then(|mut trim| trim.execute(params![route, to_i64(limits.per_route)]))
            .map_err(&sql)?;
            // Every sample from the one where the running total (newest first) passes the limit.
            // Sizes are never negative, so the running total only grows: what goes is the oldest.
            tx.prepare_cached(
                "DELETE FROM shadow_samples WHERE id IN (
                     SELECT id FROM (
                         SELECT id, SUM(size) OVER (ORDER BY at_unix_ms DESC, id DESC) AS running
                         FROM shadow_samples)
                     WHERE running > ?1)",
            )
            .and_then(|mut trim| trim.execute(params![to_i64(limits.total_bytes)]))
            .map_err(&sql)?;
            Ok(())
        })
    }

    /// Up to `limit` of `route`'s samples, newest first. Blocks.
    pub fn samples(&self, route: &str, limit: usize) -> Result<Vec<StoredSample>, StoreError> {
        let sql = self.sql("read shadow samples");
        self.read("read shadow samples", |tx| {
            let mut select = tx
                .prepare_cached(
                    "SELECT request_id, at_unix_ms, json FROM shadow_samples WHERE route = ?1
                     ORDER BY at_unix_ms DESC, id DESC LIMIT ?2",
                )
                .map_err(&sql)?;
            let rows = select
                .query_map(params![route, to_i64(limit)], |row| {
                    Ok(StoredSample {
                        request_id: row.get(0)?,
                        at_unix_ms: row.get(1)?,
                        json: row.get(2)?,
                    })
                })
                .map_err(&sql)?;
            rows.collect::<Result<_, _>>().map_err(&sql)
        })
    }
}

/// A count or size as SQLite's integer (saturating: nothing stored comes near `i64::MAX`).
fn to_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}
