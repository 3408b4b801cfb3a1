//! What an instance keeps across reloads (through `ficus_plugin::state`): its current key set,
//! its token cache, and for a JWKS the background task that refreshes the set.
//!
//! The refresher runs on the tokio runtime present where the instance was built or, when there
//! was none (the table `ficus run` loads before serving; `ficus check`, which never serves and
//! so never fetches), on the runtime of the first request that needs it. It holds the state only
//! weakly, and ends once no table holds the state any more. A fetch that fails keeps the last
//! good set; while there has never been one, requests get a 503 and fetches are retried sooner.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::sync::Notify;
// tokio's Instant, so tests can pause the clock.
use tokio::time::Instant;

use crate::cache::TokenCache;
use crate::keys::{self, KeySet, MAX_JWKS_BYTES};
use crate::settings::Location;

/// The least time between two refreshes asked for by tokens with an unknown `kid`, so a client
/// sending made-up kids cannot make ficus hammer the identity provider.
pub const KID_REFRESH_EVERY: Duration = Duration::from_secs(10);
/// How long one JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between retries of a failing fetch (never longer than `jwks_refresh`).
const MAX_RETRY: Duration = Duration::from_secs(60);

/// The state of one instance.
#[derive(Debug)]
pub struct Shared {
    pub keys: ArcSwapOption<KeySet>,
    pub cache: TokenCache,
    pub jwks: Option<Jwks>,
}

/// How a JWKS is kept fresh.
#[derive(Debug)]
pub struct Jwks {
    pub location: Location,
    pub refresh: Duration,
    /// Whether a refresher task is alive (it clears this when it ends or its runtime drops it).
    running: Arc<AtomicBool>,
    /// Wakes the refresher before its interval is up (a token with an unknown `kid`).
    kick: Arc<Notify>,
    last_kick: Mutex<Option<Instant>>,
}

impl Shared {
    pub fn new(jwks: Option<(Location, Duration)>) -> Shared {
        Shared {
            keys: ArcSwapOption::empty(),
            cache: TokenCache::default(),
            jwks: jwks.map(|(location, refresh)| Jwks {
                location,
                refresh,
                running: Arc::new(AtomicBool::new(false)),
                kick: Arc::new(Notify::new()),
                last_kick: Mutex::new(None),
            }),
        }
    }

    /// Makes `set` the current key set. An unchanged set keeps the token cache; a changed one
    /// empties it, so a key removed from the set stops verifying at once.
    pub fn install(&self, set: KeySet) {
        let current = self.keys.load();
        if current.as_ref().is_some_and(|c| c.digest() == set.digest()) {
            return;
        }
        self.keys.store(Some(Arc::new(set)));
        self.cache.clear();
    }

    /// Starts the refresher if this is a JWKS and none runs, on the current runtime; without a
    /// runtime, nothing happens (a later call starts it).
    pub fn ensure_refresher(self: &Arc<Self>) {
        let Some(jwks) = &self.jwks else {
            return;
        };
        if jwks.running.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if jwks.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let guard = Running(jwks.running.clone());
        runtime.spawn(refresher(Arc::downgrade(self), jwks.kick.clone(), guard));
    }

    /// A token named a `kid` the set lacks: refresh now, unless that was done moments ago.
    pub fn unknown_kid(self: &Arc<Self>) {
        let Some(jwks) = &self.jwks else {
            return;
        };
        {
            let mut last = jwks.last_kick.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < KID_REFRESH_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        jwks.kick.notify_one();
        self.ensure_refresher();
    }
}

impl Jwks {
    /// Whether a refresher task is alive.
    #[cfg(test)]
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}

/// Clears the running flag when the refresher ends, however it ends.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Fetches the set, then again every `refresh` (or when kicked), until the state is gone.
async fn refresher(shared: Weak<Shared>, kick: Arc<Notify>, _running: Running) {
    let mut client = None;
    let mut failures: u32 = 0;
    loop {
        let Some((location, refresh, loaded)) = shared.upgrade().and_then(|s| {
            let jwks = s.jwks.as_ref()?;
            Some((jwks.location.clone(), jwks.refresh, s.keys.load().is_some()))
        }) else {
            return;
        };
        let wait = match (loaded, failures) {
            (false, 0) => Duration::ZERO,
            (_, 0) => refresh,
            (_, n) => retry_after(n).min(refresh),
        };
        // Woken by the interval or by a kick, whichever comes first.
        let _ = tokio::time::timeout(wait, kick.notified()).await;
        let fetched = fetch(&location, &mut client).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match fetched {
            Ok(set) => {
                failures = 0;
                shared.install(set);
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(
                    jwks = %location,
                    failures,
                    "cannot refresh the JWKS; keeping the last good key set: {e}"
                );
            }
        }
    }
}

/// 1s, 2s, 4s, ... up to a minute.
fn retry_after(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_RETRY)
}

async fn fetch(
    location: &Location,
    client: &mut Option<reqwest::Client>,
) -> Result<KeySet, String> {
    let body = match location {
        Location::File(path) => {
            let path = path.clone();
            let max = crate::keys::MAX_JWKS_BYTES as u64;
            tokio::task::spawn_blocking(move || ficus_plugin::config::read_bounded(&path, max))
                .await
                .map_err(|e| format!("cannot read it: {e}"))?
                .map_err(|e| format!("cannot read it: {e}"))?
        }
        Location::Url(url) => {
            if client.is_none() {
                let built = reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .build()
                    .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
                *client = Some(built);
            }
            let Some(client) = client.as_ref() else {
                return Err("no HTTP client".to_string());
            };
            get(client, url).await?
        }
    };
    keys::parse_jwks(&body)
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut resp = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    if !resp.status().is_success() {
        return Err(format!("answered {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{e}"))? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
