//! What a route's shadow has found so far: counts by outcome and the differing paths, as
//! `GET /api/shadow` reports them. Kept in memory per server (counts restart at 0 with the
//! process) and bounded: paths come from response bodies, so at most [`MAX_PATHS`] distinct ones
//! are kept per route and the rest are counted under `other`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use serde::Serialize;

/// Distinct differing paths kept per route; learned noise paths likewise.
pub const MAX_PATHS: usize = 1_000;
/// The name differences past [`MAX_PATHS`] are counted under.
pub const OTHER: &str = "other";

/// What came of one sampled request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Match,
    Mismatch,
    /// The shadow failed: refused, timed out, broken.
    Error,
    /// Sampled but not compared: a body past `max_body`, the primary upstream is the shadow
    /// upstream, or the client's request failed before it had an answer to compare.
    Skipped,
    /// Sampled while `max_in_flight` mirrored requests were already out.
    Dropped,
}

impl Outcome {
    /// The `result` label of `ficus_shadow_total`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
            Outcome::Dropped => "dropped",
        }
    }
}

/// One route's counts and differing paths.
#[derive(Debug, Default)]
pub struct RouteStats {
    matched: AtomicU64,
    mismatched: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
    dropped: AtomicU64,
    differences: Mutex<Differences>,
    /// When the last sample was kept (Unix ms).
    last_sample_ms: AtomicU64,
}

/// At most one mismatch per route is kept as a sample in this long, so a route that mismatches
/// on every request writes to disk ten times a second, not once per request.
pub const SAMPLE_EVERY_MS: u64 = 100;

#[derive(Debug, Default)]
struct Differences {
    /// Generalised path to (count, the request id of its first example).
    paths: HashMap<String, (u64, String)>,
    other: u64,
    other_example: Option<String>,
}

/// A route's entry in `GET /api/shadow`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RouteReport {
    pub compared: u64,
    pub matched: u64,
    pub mismatched: u64,
    pub errors: u64,
    pub skipped: u64,
    pub dropped: u64,
    /// Most frequent first.
    pub differences: Vec<DifferenceCount>,
    pub noise: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DifferenceCount {
    pub path: String,
    pub count: u64,
    /// The `x-request-id` of a request that showed it.
    pub example: String,
}

impl RouteStats {
    pub fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Match => &self.matched,
            Outcome::Mismatch => &self.mismatched,
            Outcome::Error => &self.errors,
            Outcome::Skipped => &self.skipped,
            Outcome::Dropped => &self.dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A mismatch: each distinct path once (already generalised).
    pub fn mismatch(&self, paths: &BTreeSet<String>, request_id: &str) {
        self.count(Outcome::Mismatch);
        let mut diffs = self.differences.lock().unwrap_or_else(|p| p.into_inner());
        for path in paths {
            if let Some((count, _)) = diffs.paths.get_mut(path) {
                *count += 1;
            } else if diffs.paths.len() < MAX_PATHS {
                diffs
                    .paths
                    .insert(path.clone(), (1, request_id.to_string()));
            } else {
                diffs.other += 1;
                diffs
                    .other_example
                    .get_or_insert_with(|| request_id.to_string());
            }
        }
    }

    /// Whether a mismatch seen at `now_ms` is kept as a sample; claims the turn if so.
    pub fn sample_due(&self, now_ms: u64) -> bool {
        let last = self.last_sample_ms.load(Ordering::Relaxed);
        now_ms.saturating_sub(last) >= SAMPLE_EVERY_MS
            && self
                .last_sample_ms
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    pub fn report(&self, noise: Vec<String>) -> RouteReport {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (matched, mismatched) = (load(&self.matched), load(&self.mismatched));
        let diffs = self.differences.lock().unwrap_or_else(|p| p.into_inner());
        let mut differences: Vec<DifferenceCount> = diffs
            .paths
            .iter()
            .map(|(path, (count, example))| DifferenceCount {
                path: path.clone(),
                count: *count,
                example: example.clone(),
            })
            .collect();
        differences.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.path.cmp(&b.path)));
        if diffs.other > 0 {
            differences.push(DifferenceCount {
                path: OTHER.to_string(),
                count: diffs.other,
                example: diffs.other_example.clone().unwrap_or_default(),
            });
        }
        RouteReport {
            compared: matched + mismatched,
            matched,
            mismatched,
            errors: load(&self.errors),
            skipped: load(&self.skipped),
            dropped: load(&self.dropped),
            differences,
            noise,
        }
    }
}

/// The paths (and `header:NAME`s) a route has learned are noise: two answers of its primary
/// upstream to the same request differed there. Never `status` or `body`.
#[derive(Debug, Default)]
pub struct Noise {
    paths: RwLock<BTreeSet<String>>,
}

impl Noise {
    pub fn new(paths: impl IntoIterator<Item = String>) -> Self {
        Noise {
            paths: RwLock::new(paths.into_iter().take(MAX_PATHS).collect()),
        }
    }

    pub fn contains(&self, path: &str) -> bool {
        let paths = self.paths.read().unwrap_or_else(|p| p.into_inner());
        paths.contains(path)
    }

    /// Adds `learned`; returns the ones that were new (to be stored).
    pub fn learn(&self, learned: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut paths = self.paths.write().unwrap_or_else(|p| p.into_inner());
        let mut new = Vec::new();
        for path in learned {
            if paths.len() >= MAX_PATHS {
                break;
            }
            if paths.insert(path.clone()) {
                new.push(path);
            }
        }
        new
    }

    pub fn list(&self) -> Vec<String> {
        let paths = self.paths.read().unwrap_or_else(|p| p.into_inner());
        paths.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn compared_is_matched_plus_mismatched_and_paths_count_per_request() {
        let stats = RouteStats::default();
        stats.count(Outcome::Match);
        stats.mismatch(&set(&["/items/*/price", "status"]), "req-1");
        stats.mismatch(&set(&["/items/*/price"]), "req-2");
        stats.count(Outcome::Error);
        stats.count(Outcome::Dropped);
        let r = stats.report(vec!["/request_id".into()]);
        assert_eq!((r.compared, r.matched, r.mismatched), (3, 1, 2));
        assert_eq!((r.errors, r.skipped, r.dropped), (1, 0, 1));
        assert_eq!(r.differences[0].path, "/items/*/price");
        assert_eq!(
            (r.differences[0].count, r.differences[0].example.as_str()),
            (2, "req-1")
        );
        assert_eq!(r.differences[1].path, "status");
        assert_eq!(r.noise, ["/request_id"]);
    }

    #[test]
    fn samples_are_kept_at_most_once_per_interval() {
        let stats = RouteStats::default();
        assert!(stats.sample_due(1_000_000));
        assert!(!stats.sample_due(1_000_000 + SAMPLE_EVERY_MS - 1));
        assert!(stats.sample_due(1_000_000 + SAMPLE_EVERY_MS));
    }

    #[test]
    fn paths_past_the_cap_are_counted_under_other() {
        let stats = RouteStats::default();
        let many: BTreeSet<String> = (0..MAX_PATHS + 5).map(|i| format!("/k{i:05}")).collect();
        stats.mismatch(&many, "req-1");
        let r = stats.report(vec![]);
        assert_eq!(r.differences.len(), MAX_PATHS + 1);
        let other = r.differences.last().unwrap();
        assert_eq!((other.path.as_str(), other.count), (OTHER, 5));
    }

    #[test]
    fn noise_learns_each_path_once_and_is_bounded() {
        let noise = Noise::new(["/a".to_string()]);
        assert_eq!(noise.learn(["/a".to_string(), "/b".to_string()]), ["/b"]);
        assert!(noise.contains("/b"));
        noise.learn((0..2 * MAX_PATHS).map(|i| format!("/n{i}")));
        assert_eq!(noise.list().len(), MAX_PATHS);
    }
}
