//! Learned noise (CONTRACT section 8, `learn_noise`): per route, the paths that differed between
//! two answers of the primary to the same request, so they stop counting as mismatches.
//!
//! What is noise depends on how the route is compared, so the noise is kept with the fingerprint
//! of the route's shadow settings it was learned under (the caller computes it). Meeting a route
//! under another fingerprint, [`Store::noise`] and [`Store::add_noise`] forget what it learned and
//! record the new fingerprint. The fingerprint is stored as its bits in SQLite's signed integer
//! (`u64 as i64`, and back), so every value round-trips.

use rusqlite::{params, OptionalExtension, Transaction};

use super::{Store, StoreError};

/// The most paths kept per route; [`Store::add_noise`] ignores any beyond.
pub const MAX_NOISE_PATHS: usize = 1_000;

impl Store {
    /// `route`'s learned noise paths, sorted (by bytes), if they were learned under `fingerprint`;
    /// otherwise forgets them, records `fingerprint` and returns none. Blocks.
    pub fn noise(&self, route: &str, fingerprint: u64) -> Result<Vec<String>, StoreError> {
        let sql = self.sql("read learned noise");
        self.write("read learned noise", |tx| {
            reset_if_changed(tx, route, fingerprint).map_err(&sql)?;
            let mut select = tx
                .prepare_cached("SELECT path FROM noise_paths WHERE route = ?1 ORDER BY path")
                .map_err(&sql)?;
            let paths = select
                .query_map(params![route], |row| row.get(0))
                .map_err(&sql)?;
            paths.collect::<Result<_, _>>().map_err(&sql)
        })
    }

    /// Adds `paths` to `route`'s learned noise (after the same reset as [`Store::noise`] if the
    /// fingerprint changed). Paths already known are skipped; once the route has
    /// [`MAX_NOISE_PATHS`], the rest are ignored. Blocks.
    pub fn add_noise(
        &self,
        route: &str,
        fingerprint: u64,
        paths: &[String],
    ) -> Result<(), StoreError> {
        let sql = self.sql("store learned noise");
        self.write("store learned noise", |tx| {
            reset_if_changed(tx, route, fingerprint).map_err(&sql)?;
            let known: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM noise_paths WHERE route = ?1")
                .and_then(|mut count| count.query_row(params![route], |row| row.get(0)))
                .map_err(&sql)?;
            let mut room = MAX_NOISE_PATHS.saturating_sub(usize::try_from(known).unwrap_or(0));
            let mut insert = tx
                .prepare_cached("INSERT OR IGNORE INTO noise_paths (route, path) VALUES (?1, ?2)")
                .map_err(&sql)?;
            for path in paths {
                if room == 0 {
                    break;
                }
                // 0 rows when the path was known already.
                room -= insert.execute(params![route, path]).map_err(&sql)?;
            }
            Ok(())
        })
    }
}

/// Makes `fingerprint` the route's: when another one is recorded, or none, the route's paths are
/// deleted first (there are none without a record: the paths reference it).
fn reset_if_changed(
    tx: &Transaction<'_>,
    route: &str,
    fingerprint: u64,
) -> Result<(), rusqlite::Error> {
    let fingerprint = fingerprint as i64;
    let stored: Option<i64> = tx
        .prepare_cached("SELECT fingerprint FROM noise_routes WHERE route = ?1")?
        .query_row(params![route], |row| row.get(0))
        .optional()?;
    if stored == Some(fingerprint) {
        return Ok(());
    }
    tx.prepare_cached("DELETE FROM noise_paths WHERE route = ?1")?
        .execute(params![route])?;
    tx.prepare_cached(
        "INSERT INTO noise_routes (route, fingerprint) VALUES (?1, ?2)
         ON CONFLICT (route) DO UPDATE SET fingerprint = excluded.fingerprint",
    )?
    .execute(params![route, fingerprint])?;
    Ok(())
}
