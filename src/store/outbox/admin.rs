//! The outbox's reading and housekeeping side: counts for `GET /api/webhooks`, dead events and
//! their replay, and the deletes that keep the file bounded.

use std::collections::BTreeMap;
use std::time::Duration;

use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::{millis, to_i64, to_u64, INSERT};
use crate::store::{Store, StoreError};

/// Rows [`Store::prune`] and [`Store::trim`] delete per transaction.
pub const DELETE_CHUNK: usize = 5_000;

/// Event counts, for one route or (in [`OutboxStats::total`]) all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteStats {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    /// The `created_ms` of the oldest pending event (by `created_ms`, so a replayed event counts
    /// from its first commit).
    pub oldest_pending_created_ms: Option<i64>,
    /// How long it has been waiting at the `now_ms` given to [`Store::stats`] (0 if in the future).
    pub oldest_pending_age: Option<Duration>,
}

/// What [`Store::stats`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub total: RouteStats,
    /// Every route with an event stored, by name.
    pub routes: BTreeMap<String, RouteStats>,
}

/// A dead event, as [`Store::dead_events`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadEvent {
    pub id: String,
    pub route: String,
    pub key: Option<String>,
    pub attempts: u32,
    pub last_error: String,
    pub created_ms: i64,
    /// When it died.
    pub updated_ms: i64,
}

/// The oldest ?2 delivered events (delivered before ?1), in one statement. A partial index is
/// used only for a literal state, hence one statement per state.
pub(super) const DELETE_DELIVERED: &str = "
    DELETE FROM webhook_events WHERE seq IN (SELECT seq FROM webhook_events
        WHERE state = 'delivered' AND updated_ms < ?1 ORDER BY updated_ms LIMIT ?2)";

/// [`DELETE_DELIVERED`] for dead events.
pub(super) const DELETE_DEAD: &str = "
    DELETE FROM webhook_events WHERE seq IN (SELECT seq FROM webhook_events
        WHERE state = 'dead' AND updated_ms < ?1 ORDER BY updated_ms LIMIT ?2)";

pub(super) const DEAD_EVENTS: &str = "
    SELECT id, route, key, attempts, last_error, created_ms, updated_ms
    FROM webhook_events WHERE state = 'dead' AND (?1 IS NULL OR route = ?1)
    ORDER BY updated_ms DESC, seq DESC LIMIT ?2";

pub(super) const OLDEST_PENDING: &str =
    "SELECT min(created_ms) FROM webhook_events WHERE state = 'pending' AND route = ?1";

impl Store {
    /// Counts per route and in total, and the oldest pending event's age. Reads a few rows per
    /// route, however many events are stored. Blocks.
    pub fn stats(&self, now_ms: i64) -> Result<OutboxStats, StoreError> {
        let sql = self.sql("read webhook stats");
        self.read("read webhook stats", |tx| stats(tx, now_ms).map_err(&sql))
    }

    /// Pending events in all routes (for a bound on the outbox). Blocks.
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        self.count("pending")
    }

    /// Events in `state`, all routes together.
    fn count(&self, state: &str) -> Result<u64, StoreError> {
        let sql = self.sql("count webhook events");
        self.read("count webhook events", |tx| {
            tx.prepare_cached("SELECT coalesce(sum(n), 0) FROM webhook_counts WHERE state = ?1")
                .and_then(|mut count| count.query_row(params![state], |row| row.get::<_, i64>(0)))
                .map(to_u64)
                .map_err(&sql)
        })
    }

    /// Up to `limit` dead events, of `route` or all routes, the most recently dead first. Blocks.
    pub fn dead_events(
        &self,
        route: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadEvent>, StoreError> {
        let sql = self.sql("list dead webhook events");
        self.read("list dead webhook events", |tx| {
            let mut select = tx.prepare_cached(DEAD_EVENTS).map_err(&sql)?;
            let rows = select
                .query_map(params![route, to_i64(limit)], dead_event)
                .map_err(&sql)?;
            rows.collect::<Result<_, _>>().map_err(&sql)
        })
    }

    /// Makes a dead or delivered event pending again: same id, payload and `created_ms`, 0
    /// attempts and no last error, due at `now_ms`. It takes a **new seq**, so it goes to the back of its key's queue: an old event
    /// that is replayed never jumps ahead of newer events of its key that are still pending (the
    /// receiver already saw them, or will in order). `false` if no such event, or it is pending.
    /// Blocks.
    pub fn replay(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let sql = self.sql("replay a webhook event");
        self.write("replay a webhook event", |tx| {
            replay_one(tx, id, now_ms).map_err(&sql)
        })
    }

    /// [`Store::replay`]s every dead event of `route`, in their commit order, in one transaction;
    /// returns how many. Blocks.
    pub fn replay_dead(&self, route: &str, now_ms: i64) -> Result<usize, StoreError> {
        let sql = self.sql("replay dead webhook events");
        self.write("replay dead webhook events", |tx| {
            let ids: Vec<String> = tx
                .prepare_cached(
                    "SELECT id FROM webhook_events WHERE state = 'dead' AND route = ?1
                     ORDER BY seq",
                )
                .and_then(|mut select| {
                    select
                        .query_map(params![route], |row| row.get(0))?
                        .collect()
                })
                .map_err(&sql)?;
            for id in &ids {
                replay_one(tx, id, now_ms).map_err(&sql)?;
            }
            Ok(ids.len())
        })
    }

    /// Deletes delivered events delivered before `now_ms - delivered_older_than`, and dead events
    /// dead before `now_ms - dead_older_than`; returns how many. Blocks.
    pub fn prune(
        &self,
        now_ms: i64,
        delivered_older_than: Duration,
        dead_older_than: Duration,
    ) -> Result<usize, StoreError> {
        let delivered_before = now_ms.saturating_sub(millis(delivered_older_than));
        let dead_before = now_ms.saturating_sub(millis(dead_older_than));
        Ok(
            self.delete_oldest(DELETE_DELIVERED, delivered_before, usize::MAX)?
                + self.delete_oldest(DELETE_DEAD, dead_before, usize::MAX)?,
        )
    }

    /// Deletes the oldest delivered events beyond `max_delivered`, and the oldest dead ones
    /// beyond `max_dead` (oldest by when they were delivered or died); returns how many. With
    /// [`Store::prune`] this bounds the outbox by count as well as by age. Blocks.
    pub fn trim(&self, max_delivered: u64, max_dead: u64) -> Result<usize, StoreError> {
        let excess = |state, max: u64| -> Result<usize, StoreError> {
            let n = self.count(state)?.saturating_sub(max);
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        };
        let delivered = excess("delivered", max_delivered)?;
        let dead = excess("dead", max_dead)?;
        Ok(self.delete_oldest(DELETE_DELIVERED, i64::MAX, delivered)?
            + self.delete_oldest(DELETE_DEAD, i64::MAX, dead)?)
    }

    /// The database's size in bytes (`page_count * page_size`; the WAL file, at most a few MB
    /// between checkpoints, is not counted). Blocks.
    pub fn size_bytes(&self) -> Result<u64, StoreError> {
        let sql = self.sql("read the database size");
        self.read("read the database size", |tx| {
            tx.query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(to_u64)
            .map_err(&sql)
        })
    }

    /// Runs `delete` ([`DELETE_DELIVERED`] or [`DELETE_DEAD`]) with `before` until it has deleted
    /// `most` rows or none are left, one transaction per [`DELETE_CHUNK`] rows.
    fn delete_oldest(&self, delete: &str, before: i64, most: usize) -> Result<usize, StoreError> {
        let sql = self.sql("delete old webhook events");
        let mut total = 0;
        loop {
            let chunk = most.saturating_sub(total).min(DELETE_CHUNK);
            if chunk == 0 {
                return Ok(total);
            }
            let deleted = self.write("delete old webhook events", |tx| {
                tx.prepare_cached(delete)
                    .and_then(|mut stmt| stmt.execute(params![before, to_i64(chunk)]))
                    .map_err(&sql)
            })?;
            total += deleted;
            if deleted < chunk {
                return Ok(total);
            }
        }
    }
}

/// Deletes a delivered or dead event and inserts it again as new (a new seq), pending.
fn replay_one(tx: &Transaction<'_>, id: &str, now_ms: i64) -> rusqlite::Result<bool> {
    let old: Option<(String, Option<String>, String, i64)> = tx
        .prepare_cached(
            "DELETE FROM webhook_events WHERE id = ?1 AND state IN ('delivered', 'dead')
             RETURNING route, key, payload, created_ms",
        )?
        .query_row(params![id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    let Some((route, key, payload, created_ms)) = old else {
        return Ok(false);
    };
    tx.prepare_cached(INSERT)?
        .execute(params![id, route, key, payload, created_ms, now_ms, now_ms])?;
    Ok(true)
}

fn stats(tx: &Transaction<'_>, now_ms: i64) -> rusqlite::Result<OutboxStats> {
    let mut stats = OutboxStats::default();
    let mut counts = tx.prepare_cached("SELECT route, state, n FROM webhook_counts")?;
    let mut rows = counts.query([])?;
    while let Some(row) = rows.next()? {
        let route: String = row.get(0)?;
        let state: String = row.get(1)?;
        let n = to_u64(row.get(2)?);
        let entry = stats.routes.entry(route).or_default();
        let (this, all) = match state.as_str() {
            "pending" => (&mut entry.pending, &mut stats.total.pending),
            "delivered" => (&mut entry.delivered, &mut stats.total.delivered),
            "dead" => (&mut entry.dead, &mut stats.total.dead),
            _ => continue, // the table's CHECK allows no other state
        };
        *this += n;
        *all += n;
    }
    let mut oldest = tx.prepare_cached(OLDEST_PENDING)?;
    for (route, entry) in stats.routes.iter_mut().filter(|(_, e)| e.pending > 0) {
        let created: Option<i64> = oldest.query_row(params![route], |row| row.get(0))?;
        entry.oldest_pending_created_ms = created;
        entry.oldest_pending_age = created.map(|at| age(now_ms, at));
    }
    stats.total.oldest_pending_created_ms = (stats.routes.values())
        .filter_map(|e| e.oldest_pending_created_ms)
        .min();
    stats.total.oldest_pending_age = stats
        .total
        .oldest_pending_created_ms
        .map(|at| age(now_ms, at));
    Ok(stats)
}

fn dead_event(row: &Row<'_>) -> rusqlite::Result<DeadEvent> {
    Ok(DeadEvent {
        id: row.get(0)?,
        route: row.get(1)?,
        key: row.get(2)?,
        attempts: row.get(3)?,
        last_error: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
        created_ms: row.get(5)?,
        updated_ms: row.get(6)?,
    })
}

fn age(now_ms: i64, at_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(now_ms.saturating_sub(at_ms)).unwrap_or(0))
}
