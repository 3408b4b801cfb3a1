//! A server's store, opened the first time something needs it: a server whose table has no
//! shadow and no webhook never creates `data_dir/ficus.db`. A store that could not be opened (a
//! full disk, a file in the way) is tried again on a later use, at most once a second.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Store;

/// How long after a failed open the next use tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct LazyStore {
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    store: Option<Store>,
    failed: Option<(Instant, String)>,
}

impl LazyStore {
    pub fn new(dir: PathBuf) -> LazyStore {
        LazyStore {
            dir,
            state: Mutex::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store (a cheap handle), opened on first use (blocking). After a failure, the same
    /// error for a second, then another try; each failure is logged once.
    pub fn get(&self) -> Result<Store, String> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = &state.store {
            return Ok(store.clone());
        }
        if let Some((at, why)) = &state.failed {
            if at.elapsed() < RETRY_AFTER {
                return Err(why.clone());
            }
        }
        match Store::open(&self.dir) {
            Ok(store) => {
                if state.failed.take().is_some() {
                    tracing::warn!("the store in {} opens again", self.dir.display());
                }
                state.store = Some(store.clone());
                Ok(store)
            }
            Err(e) => {
                let why = e.to_string();
                if state.failed.as_ref().is_none_or(|(_, w)| *w != why) {
                    tracing::error!("the store cannot be opened: {why}");
                }
                state.failed = Some((Instant::now(), why.clone()));
                Err(why)
            }
        }
    }
}
