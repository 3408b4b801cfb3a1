//! A server's shadow state: the counters of each shadowed route, what each has learned is noise,
//! the bound on requests in flight to each shadow upstream, and the connector the mirrored
//! requests go out on. A table's mirrors get theirs when the server starts running the table
//! ([`Shadows::arm`]), so state follows the route's name across reloads.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pingora::connectors::TransportConnector;
use serde_json::Value;

use super::mirror::Armed;
use super::report::{Noise, Outcome, RouteReport, RouteStats};
use crate::metrics::Metrics;
use crate::routing::RouteTable;
use crate::store::{LazyStore, Store};

/// Samples `GET /api/shadow/samples` lists per route, newest first.
pub const SAMPLES_LISTED: usize = 20;

/// A route's learned noise, with the fingerprint of the `[routes.shadow]` it was learned under.
type Learned = (u64, Arc<Noise>);

pub struct Shadows {
    metrics: Arc<Metrics>,
    pub(super) connector: TransportConnector,
    stats: Mutex<HashMap<Arc<str>, Arc<RouteStats>>>,
    /// By route: the fingerprint of the `[routes.shadow]` the noise was learned under.
    noise: Mutex<HashMap<Arc<str>, Learned>>,
    /// By shadow upstream name.
    slots: Mutex<HashMap<String, Arc<Slots>>>,
    /// Where samples and learned noise are kept: opened when a table with a shadow is first
    /// armed; when it cannot be, nothing is kept and comparing goes on.
    store: Arc<LazyStore>,
}

impl Shadows {
    pub fn new(metrics: Arc<Metrics>, store: Arc<LazyStore>) -> Arc<Shadows> {
        Arc::new(Shadows {
            metrics,
            connector: TransportConnector::new(None),
            stats: Mutex::default(),
            noise: Mutex::default(),
            slots: Mutex::default(),
            store,
        })
    }

    /// The store in `data_dir`, opened on first use (blocking).
    pub(super) fn store(&self) -> Option<Store> {
        self.store.get().ok()
    }

    /// A route's recent mismatches, newest first (blocking: run it off the async runtime).
    pub fn samples(&self, route: &str) -> Result<Vec<Value>, String> {
        let store = self.store.get().map_err(|e| e.to_string())?;
        let stored = store
            .samples(route, SAMPLES_LISTED)
            .map_err(|e| e.to_string())?;
        Ok(stored
            .into_iter()
            .filter_map(|s| serde_json::from_str(&s.json).ok())
            .collect())
    }

    /// Gives every mirror of `table` this server's state; call before the table serves.
    pub fn arm(self: &Arc<Self>, table: &RouteTable) {
        for route in &table.routes {
            let Some(mirror) = &route.action.mirror else {
                continue;
            };
            let setup = &mirror.setup;
            let stats = Arc::clone(
                lock(&self.stats)
                    .entry(Arc::clone(&route.name))
                    .or_default(),
            );
            let fingerprint = fingerprint(&setup.spec);
            let known = lock(&self.noise)
                .get(&route.name)
                .filter(|(f, _)| *f == fingerprint)
                .map(|(_, n)| Arc::clone(n));
            let noise = known.unwrap_or_else(|| {
                // New to this server, or its shadow changed: what the store kept under this
                // fingerprint (the store forgets what was learned under another).
                let kept = self.store().map_or_else(Vec::new, |store| {
                    store.noise(&route.name, fingerprint).unwrap_or_else(|e| {
                        tracing::error!(route = %route.name, "learned noise not read: {e}");
                        Vec::new()
                    })
                });
                let noise = Arc::new(Noise::new(kept));
                lock(&self.noise)
                    .insert(Arc::clone(&route.name), (fingerprint, Arc::clone(&noise)));
                noise
            });
            let slots = Arc::clone(
                lock(&self.slots)
                    .entry(setup.shadow.name.clone())
                    .or_default(),
            );
            mirror.arm(Armed {
                shadows: Arc::clone(self),
                stats,
                noise,
                fingerprint,
                slots,
            });
        }
    }

    /// Counts one sampled request's outcome (a mismatch's paths are added by the caller).
    pub(super) fn record(&self, route: &str, stats: &RouteStats, outcome: Outcome) {
        if outcome != Outcome::Mismatch {
            stats.count(outcome);
        }
        self.metrics
            .shadow
            .with_label_values(&[route, outcome.label()])
            .inc();
    }

    /// `GET /api/shadow`'s routes: every shadowed route of `table`.
    pub fn report(&self, table: &RouteTable) -> BTreeMap<String, RouteReport> {
        let stats = lock(&self.stats);
        let noise = lock(&self.noise);
        table
            .routes
            .iter()
            .filter(|r| r.action.mirror.is_some())
            .map(|r| {
                let learned = noise
                    .get(&r.name)
                    .map(|(_, n)| n.list())
                    .unwrap_or_default();
                let report = match stats.get(&r.name) {
                    Some(s) => s.report(learned),
                    None => RouteStats::default().report(learned),
                };
                (r.name.to_string(), report)
            })
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Identifies a `[routes.shadow]` as written: learned noise is reset when it changes.
pub(super) fn fingerprint(spec: &super::ShadowSpec) -> u64 {
    xxhash_rust::xxh3::xxh3_64(format!("{spec:?}").as_bytes())
}

/// Mirrored requests in flight to one shadow upstream.
#[derive(Debug, Default)]
pub struct Slots(AtomicUsize);

/// One mirrored request's place under `max_in_flight`, given back when dropped.
pub struct Slot(Arc<Slots>);

impl Slots {
    /// A place, unless `max` are taken.
    pub fn try_take(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(self)))
    }

    pub fn in_flight(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}
