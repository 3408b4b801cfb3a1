//! Tokens already verified, so a client that sends the same token on every request costs a hash
//! lookup rather than a signature check.
//!
//! Entries are found by the whole token (std's `HashMap`: SipHash of the token, then a comparison
//! of the full text, so two tokens never share an entry), kept until the token expires, and never
//! returned after that. Only tokens that verified are stored, so a client cannot fill the table
//! with tokens of its own making. The table is bounded; when full, expired entries go first, then
//! arbitrary ones (the map's iteration order, which is random per process).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::claims::Verified;

/// The most tokens kept.
pub const MAX_ENTRIES: usize = 10_000;

/// A verdict, with a tag of the settings it was reached with.
type Entry = (u64, Arc<Verified>);

#[derive(Debug, Default)]
pub struct TokenCache {
    map: RwLock<HashMap<Box<str>, Entry>>,
}

impl TokenCache {
    /// The verified token, if it is cached, was verified with the settings `tag` stands for, and
    /// is still valid at Unix time `now`.
    pub fn get(&self, token: &str, now: u64, tag: u64) -> Option<Arc<Verified>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(token)
            .filter(|(t, v)| *t == tag && now <= v.valid_until)
            .map(|(_, v)| Arc::clone(v))
    }

    pub fn insert(&self, token: &str, verified: Arc<Verified>, now: u64, tag: u64) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES && !map.contains_key(token) {
            map.retain(|_, (_, v)| now <= v.valid_until);
            if map.len() >= MAX_ENTRIES {
                // Still full of live tokens: make room for a tenth more at once, so the next
                // inserts do not each scan the table.
                let evict: Vec<Box<str>> = map.keys().take(MAX_ENTRIES / 10).cloned().collect();
                for k in evict {
                    map.remove(&k);
                }
            }
        }
        map.insert(token.into(), (tag, verified));
    }

    /// Forgets one token.
    pub fn remove(&self, token: &str) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    /// Forgets every token: the keys that verified them have changed.
    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}
