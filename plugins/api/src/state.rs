//! State that outlives a route table: endpoint health, rate-limit buckets, token caches, shadow
//! counters, in-flight bounds. ficus keeps its upstreams' here, and a plugin kind keeps its
//! instances' here ([`get_or_make`] in `PluginKind::build`), so that a reload which leaves an
//! instance's section as it was keeps its state.
//!
//! A table is rebuilt whole on every reload, but the state its parts keep must not be: an
//! endpoint marked unhealthy stays so, a rate limit keeps its buckets. Each piece of state is
//! registered under its kind, its name and a fingerprint of the configuration it was made for.
//! A new table asks for the same key and gets the same state back; a changed configuration gives
//! a new key and fresh state. The registry holds only weak references: a state lives exactly as
//! long as some table (the running one, or one a request in flight still holds) uses it, so what
//! a reload no longer needs goes away with the last table that did.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// Where a piece of state is found again: its kind (`upstream`, `rate_limit`, ...), its name in
/// the table, and a fingerprint of its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateKey {
    pub kind: &'static str,
    pub name: String,
    pub fingerprint: u64,
}

impl StateKey {
    /// The key of `name`'s state of `kind` for this configuration (anything hashable that holds
    /// every setting the state depends on).
    pub fn new(kind: &'static str, name: &str, config: &impl Hash) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        config.hash(&mut hasher);
        StateKey {
            kind,
            name: name.to_string(),
            fingerprint: hasher.finish(),
        }
    }
}

struct Entries {
    map: HashMap<StateKey, Weak<dyn Any + Send + Sync>>,
    /// The size after the last sweep of dead entries; the next sweep waits until it doubles, so
    /// compiling a table with many new pieces of state stays linear.
    swept_at: usize,
}

/// The process's state registry; every server in the process shares it (two tables with the
/// same upstream, same settings, share its health).
static REGISTRY: LazyLock<Mutex<Entries>> = LazyLock::new(|| {
    Mutex::new(Entries {
        map: HashMap::new(),
        swept_at: 0,
    })
});

/// The state under `key`, or a new one made by `make` (and registered) when no table holds one.
pub fn get_or_make<T, E>(key: StateKey, make: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E>
where
    T: Send + Sync + 'static,
{
    let mut entries = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = entries
        .map
        .get(&key)
        .and_then(Weak::upgrade)
        .and_then(|any| any.downcast::<T>().ok())
    {
        return Ok(found);
    }
    if entries.map.len() >= 2 * entries.swept_at.max(32) {
        // State no table holds any more: forget it.
        entries.map.retain(|_, weak| weak.strong_count() > 0);
        entries.swept_at = entries.map.len();
    }
    let made = Arc::new(make()?);
    let erased: Arc<dyn Any + Send + Sync> = made.clone();
    entries.map.insert(key, Arc::downgrade(&erased));
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(name: &str, config: u32, made: &mut u32) -> Arc<String> {
        let key = StateKey::new("test", name, &config);
        get_or_make(key, || {
            *made += 1;
            Ok::<_, ()>(format!("{name}@{config}"))
        })
        .unwrap()
    }

    #[test]
    fn the_same_key_finds_the_same_state_while_a_table_holds_it() {
        let mut made = 0;
        let first = get("state-a", 1, &mut made);
        let again = get("state-a", 1, &mut made);
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(made, 1);
        // A changed configuration is new state.
        let changed = get("state-a", 2, &mut made);
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_eq!(made, 2);
    }

    #[test]
    fn state_no_table_holds_is_dropped() {
        let mut made = 0;
        drop(get("state-b", 1, &mut made));
        let _fresh = get("state-b", 1, &mut made);
        assert_eq!(made, 2, "nothing held the first, so it was made again");
    }
}
