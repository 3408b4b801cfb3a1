//! The webhook outbox (CONTRACT section 6): each event a webhook route emits, from its commit
//! until it is delivered or dead, and kept a while after that for listing and replay.
//!
//! An event is appended once ([`Store::append_events`], usually through [`super::GroupCommit`]),
//! claimed by the deliverer when due ([`Store::claim_due`]), and its attempts recorded
//! ([`Store::record`]) until it is `delivered` or `dead`. Delivery is at least once: a claim hides
//! an event for `claim_for`, and if its outcome never arrives (a crash), it is claimed again.
//! `seq` is commit order; `id` is the Standard Webhooks `webhook-id`, the same across attempts and
//! replays. Times are the caller's Unix milliseconds, so tests step them.
//!
//! Order: events with the same `(route, key)` are claimed one at a time in `seq` order; a failing
//! event holds back the later events of its key only, and releases them once delivered or dead.
//! Unkeyed events have no order.
//!
//! # Lanes
//!
//! A pending event waits in one of three lanes (column `lane`), so that claiming reads only
//! claimable rows, however many others wait behind a failing key, for a retry, or on a paused
//! route:
//!
//! - `blocked`: a keyed event behind an earlier pending event of its `(route, key)`. When that
//!   one is delivered or dead, the next one of the key moves to `ready`.
//! - `ready`: the first pending event of its key (or unkeyed), due at `next_attempt_ms` (for a
//!   new event, its `created_ms`). [`Store::claim_due`] takes these, lowest `seq` first, reading
//!   only the routes it was not told to skip.
//! - `waiting`: claimed and in flight, or failed and waiting for its retry, until
//!   `next_attempt_ms`; each claim first moves the ones whose time has come back to `ready`.
//!
//! Per-state counts live in `webhook_counts`, kept by triggers, so [`Store::stats`] reads a few
//! rows whatever the number of events.
//!
//! # Bounds
//!
//! Pending events are bounded by whoever appends: [`super::GroupCommit::max_pending`] refuses
//! events beyond it (read with [`Store::pending_count`]). Delivered and dead events go after their
//! retention ([`Store::prune`]) or beyond a count ([`Store::trim`]); both delete in chunks of
//! [`DELETE_CHUNK`], each its own transaction, so appends are never held up for long.
//! [`Store::size_bytes`] reports the file; freed pages are reused, not returned to the disk.

mod admin;

use std::time::Duration;

use rusqlite::{params, OptionalExtension, Transaction};

use super::{Store, StoreError};

pub use admin::{DeadEvent, OutboxStats, RouteStats, DELETE_CHUNK};

/// Events whose retry time has come that one claim moves back to `ready` (oldest due first): a
/// bound on the claim's transaction when a whole backlog comes due at once. Below it, due events
/// are claimed strictly in commit order.
const PROMOTE_PER_CLAIM: usize = 4_096;

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The `webhook-id`; unique. Appending an id that is stored already is a no-op, so a retried
    /// append cannot duplicate an event.
    pub id: String,
    pub route: String,
    /// The ordering group within the route; `None`: unordered.
    pub key: Option<String>,
    /// The JSON body, as sent.
    pub payload: String,
    /// When the event was made, Unix ms; it is due from then.
    pub created_ms: i64,
}

/// An event claimed for delivery by [`Store::claim_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEvent {
    pub seq: i64,
    pub id: String,
    pub route: String,
    pub key: Option<String>,
    pub payload: String,
    /// Attempts made before this one (0 on the first, and after a replay).
    pub attempts: u32,
    pub created_ms: i64,
}

/// What one delivery attempt came to, for [`Store::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered (2xx): counts the attempt and releases the next event of its key.
    Delivered { id: String },
    /// Failed; try again at `next_attempt_ms` (Unix ms). Counts the attempt.
    Retry {
        id: String,
        error: String,
        next_attempt_ms: i64,
    },
    /// Failed for good: kept as dead (listed, replayable); releases the next event of its key.
    Dead { id: String, error: String },
}

/// Inserts a pending event: `blocked` behind its key's pending events, else `ready`. Parameters:
/// id, route, key, payload, created_ms, next_attempt_ms, updated_ms.
const INSERT: &str = "
    INSERT INTO webhook_events
        (id, route, key, payload, state, lane, attempts, next_attempt_ms, created_ms, updated_ms)
    VALUES (?1, ?2, ?3, ?4, 'pending',
        CASE WHEN ?3 IS NOT NULL AND EXISTS (SELECT 1 FROM webhook_events
                 WHERE state = 'pending' AND route = ?2 AND key = ?3)
             THEN 'blocked' ELSE 'ready' END,
        0, ?6, ?5, ?7)
    ON CONFLICT (id) DO NOTHING";

/// The routes with a `ready` event, one index probe each (a skip-scan written out).
const READY_ROUTES: &str = "
    WITH RECURSIVE r (route) AS (
        SELECT (SELECT min(route) FROM webhook_events WHERE lane = 'ready')
        UNION ALL
        SELECT (SELECT min(route) FROM webhook_events WHERE lane = 'ready' AND route > r.route)
        FROM r WHERE r.route IS NOT NULL)
    SELECT route FROM r WHERE route IS NOT NULL";

/// A route's due `ready` events in commit order, read from the index alone.
const READY_SEQS: &str = "
    SELECT seq FROM webhook_events
    WHERE lane = 'ready' AND route = ?1 AND next_attempt_ms <= ?2 ORDER BY seq LIMIT ?3";

/// Moves an event whose key's earlier events are all gone to `ready`.
const RELEASE_NEXT: &str = "
    UPDATE webhook_events SET lane = 'ready'
    WHERE lane = 'blocked' AND seq = (SELECT min(seq) FROM webhook_events
                                      WHERE state = 'pending' AND route = ?1 AND key = ?2)";

/// Moves up to ?2 `waiting` events due at ?1 back to `ready`, the longest due first.
const PROMOTE_DUE: &str = "
    UPDATE webhook_events SET lane = 'ready' WHERE seq IN (
        SELECT seq FROM webhook_events WHERE lane = 'waiting' AND next_attempt_ms <= ?1
        ORDER BY next_attempt_ms LIMIT ?2)";

/// Claims one event until ?2.
const TAKE: &str = "
    UPDATE webhook_events SET lane = 'waiting', next_attempt_ms = ?2 WHERE seq = ?1
    RETURNING seq, id, route, key, payload, attempts, created_ms";

impl Store {
    /// Appends `events` in one IMMEDIATE transaction (one fsync for all), in slice order: that is
    /// their commit order. Ids already stored are skipped. Blocks.
    pub fn append_events(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let sql = self.sql("append webhook events");
        self.write("append webhook events", |tx| {
            let mut insert = tx.prepare_cached(INSERT).map_err(&sql)?;
            for e in events {
                let at = e.created_ms;
                insert
                    .execute(params![e.id, e.route, e.key, e.payload, at, at, at])
                    .map_err(&sql)?;
            }
            Ok(())
        })
    }

    /// Claims up to `limit` due events, lowest `seq` first, from routes not in `skip_routes`
    /// (paused, or at their in-flight limit; the caller may still get more events of one route
    /// than it has room for, and should hold them until it has). A keyed event is claimable only
    /// as the first pending event of its `(route, key)`. Each claimed event is hidden until
    /// `now_ms + claim_for`, when it is due again unless an [`Outcome`] was recorded for it: make
    /// `claim_for` longer than an attempt can take. (When thousands of retries come due at
    /// once, each claim considers the longest-due few thousand first; see `PROMOTE_PER_CLAIM`.)
    /// One IMMEDIATE transaction. Blocks.
    pub fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        skip_routes: &[&str],
        claim_for: Duration,
    ) -> Result<Vec<DueEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let until = now_ms.saturating_add(millis(claim_for));
        let sql = self.sql("claim due webhook events");
        self.write("claim due webhook events", |tx| {
            claim(tx, now_ms, limit, skip_routes, until).map_err(&sql)
        })
    }

    /// Records the outcomes of a batch of attempts in one transaction, so delivering does not
    /// pay one fsync per event. An outcome for an event that is not pending (recorded already,
    /// say by the process that claimed it before) or unknown changes nothing. Blocks.
    pub fn record(&self, outcomes: &[Outcome], now_ms: i64) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let sql = self.sql("record webhook deliveries");
        self.write("record webhook deliveries", |tx| {
            outcomes
                .iter()
                .try_for_each(|outcome| record_one(tx, outcome, now_ms))
                .map_err(&sql)
        })
    }
}

fn claim(
    tx: &Transaction<'_>,
    now_ms: i64,
    limit: usize,
    skip_routes: &[&str],
    until: i64,
) -> rusqlite::Result<Vec<DueEvent>> {
    tx.prepare_cached(PROMOTE_DUE)?
        .execute(params![now_ms, to_i64(PROMOTE_PER_CLAIM)])?;

    let routes: Vec<String> = tx
        .prepare_cached(READY_ROUTES)?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    // The first `limit` of each route, merged: the first `limit` of all.
    let mut seqs = Vec::new();
    let mut ready = tx.prepare_cached(READY_SEQS)?;
    for route in routes.iter().filter(|r| !skip_routes.contains(&r.as_str())) {
        let route_seqs =
            ready.query_map(params![route, now_ms, to_i64(limit)], |row| row.get(0))?;
        for seq in route_seqs {
            seqs.push(seq?);
        }
    }
    seqs.sort_unstable();
    seqs.truncate(limit);

    let mut take = tx.prepare_cached(TAKE)?;
    seqs.into_iter()
        .map(|seq: i64| {
            take.query_row(params![seq, until], |row| {
                Ok(DueEvent {
                    seq: row.get(0)?,
                    id: row.get(1)?,
                    route: row.get(2)?,
                    key: row.get(3)?,
                    payload: row.get(4)?,
                    attempts: row.get(5)?,
                    created_ms: row.get(6)?,
                })
            })
        })
        .collect()
}

fn record_one(tx: &Transaction<'_>, outcome: &Outcome, now_ms: i64) -> rusqlite::Result<()> {
    // Only an event that could have been claimed: `blocked` ones never were.
    let (id, state, error) = match outcome {
        Outcome::Retry {
            id,
            error,
            next_attempt_ms,
        } => {
            tx.prepare_cached(
                "UPDATE webhook_events SET lane = 'waiting', attempts = attempts + 1,
                     last_error = ?2, next_attempt_ms = ?3, updated_ms = ?4
                 WHERE id = ?1 AND lane IN ('ready', 'waiting')",
            )?
            .execute(params![id, error, next_attempt_ms, now_ms])?;
            return Ok(());
        }
        Outcome::Delivered { id } => (id, "delivered", None),
        Outcome::Dead { id, error } => (id, "dead", Some(error)),
    };
    let left: Option<(String, Option<String>)> = tx
        .prepare_cached(
            "UPDATE webhook_events SET state = ?2, lane = NULL, attempts = attempts + 1,
                 last_error = coalesce(?3, last_error), updated_ms = ?4
             WHERE id = ?1 AND lane IN ('ready', 'waiting')
             RETURNING route, key",
        )?
        .query_row(params![id, state, error, now_ms], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    if let Some((route, Some(key))) = left {
        tx.prepare_cached(RELEASE_NEXT)?
            .execute(params![route, key])?;
    }
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn to_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// A count from SQLite (never negative; 0 if it were).
fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
pub(super) const QUERIES_FOR_PLAN_TESTS: &[(&str, &str)] = &[
    ("insert", INSERT),
    ("ready routes", READY_ROUTES),
    ("ready seqs", READY_SEQS),
    ("release next", RELEASE_NEXT),
    ("promote due", PROMOTE_DUE),
    ("take", TAKE),
    ("delete delivered", admin::DELETE_DELIVERED),
    ("delete dead", admin::DELETE_DEAD),
    ("dead events", admin::DEAD_EVENTS),
    ("oldest pending", admin::OLDEST_PENDING),
];
