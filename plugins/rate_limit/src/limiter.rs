//! The key table: one token bucket per key, sharded, bounded, with time passed in.
//!
//! Each bucket is kept as GCRA's single timestamp (the generic cell rate algorithm, the exact
//! equivalent of a token bucket): the "theoretical arrival time" `tat`, the moment the bucket will
//! be full again. A bucket that takes one token every `interval` and holds `burst` tokens admits a
//! request at `now` when `max(tat, now) + interval - now <= burst * interval`, and then moves `tat`
//! on by one interval. So a bucket is 8 bytes, a decision is a few integer operations, and a
//! bucket whose `tat` has passed is full: it says nothing a fresh bucket would not, and is dropped.
//!
//! Time is nanoseconds since the limiter was made ([`Limiter::now`]); every decision takes it as
//! an argument, so tests and benches drive the clock themselves.
//!
//! Keys come hashed ([`Limiter::key`]): SipHash-1-3 with a key drawn per limiter (std's
//! `RandomState`), so clients cannot choose keys that pile into one shard or one probe chain. The
//! table stores only the 64-bit hash, so two client keys whose hashes collide share one bucket;
//! with a secret hash key that is a 2^-64 accident per pair, not something a client can aim for.
//!
//! The table is split into shards (a power of two, at most 64), each a `HashMap` behind its own
//! mutex, held for one lookup and one insert. Each shard holds at most `max_keys / shards`
//! buckets. Full buckets are swept out of a shard about once per bucket-fill time; when a shard is
//! still full of live buckets, the stalest eighth (the ones closest to full) is evicted at once,
//! so a flood of new keys costs a sort of one shard per eighth of its size, never more memory.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// The most shards a table is split into; enough that a few dozen cores rarely meet on one lock.
/// (Each holds at most `max_keys / shards` buckets, so the bound holds overall.)
const MAX_SHARDS: usize = 64;

/// What a limiter is made for; its fingerprint decides whether a reload keeps the buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Settings {
    /// Nanoseconds per token.
    pub interval: u64,
    /// Bucket size in tokens, at least 1.
    pub burst: u64,
    /// At most this many buckets are kept, at least 1.
    pub max_keys: usize,
}

/// The outcome of one request against its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The bucket size.
    pub limit: u64,
    /// Tokens left after this request.
    pub remaining: u64,
    /// Nanoseconds until the bucket is full again.
    pub reset: u64,
    /// For a refused request, nanoseconds until one token is there; 0 when allowed.
    pub retry_after: u64,
}

/// The buckets of one `rate_limit` instance.
pub struct Limiter {
    settings: Settings,
    /// `burst * interval`: how far ahead of now a bucket's `tat` may be.
    tau: u64,
    /// How often a shard drops its full buckets.
    sweep_every: u64,
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    epoch: Instant,
    hasher: RandomState,
}

struct Shard {
    /// Key hash to `tat`.
    tats: HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
    next_sweep: u64,
}

impl Limiter {
    /// `None` when `burst * interval` does not fit in 584 years of nanoseconds.
    pub fn new(settings: Settings) -> Option<Limiter> {
        let interval = settings.interval.max(1);
        let burst = settings.burst.max(1);
        let max_keys = settings.max_keys.max(1);
        let tau = burst.checked_mul(interval)?;
        // A shard per 16 keys at least (a power of two, at most MAX_SHARDS): a small table is one
        // shard, so its bound is exact.
        let shards = MAX_SHARDS.min(1 << (max_keys / 16).max(1).ilog2());
        let shard = || {
            Mutex::new(Shard {
                tats: HashMap::default(),
                next_sweep: 0,
            })
        };
        Some(Limiter {
            settings: Settings {
                interval,
                burst,
                max_keys,
            },
            tau,
            sweep_every: tau.max(1_000_000_000),
            shards: (0..shards).map(|_| shard()).collect(),
            per_shard: max_keys / shards,
            epoch: Instant::now(),
            hasher: RandomState::new(),
        })
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Now, in this limiter's nanoseconds.
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The table key of `key` (anything hashable; callers tag it with what kind of key it is).
    pub fn key(&self, key: impl Hash) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Takes a token from `key`'s bucket at `now`, if it has one.
    pub fn decide(&self, key: u64, now: u64) -> Decision {
        let Settings {
            interval, burst, ..
        } = self.settings;
        let mut shard = self.shard(key);
        if now >= shard.next_sweep {
            shard.tats.retain(|_, tat| *tat > now);
            shard.next_sweep = now.saturating_add(self.sweep_every);
        }
        let stored = shard.tats.get(&key).copied();
        let tat = stored.unwrap_or(now).max(now);
        let next = tat.saturating_add(interval);
        if next - now > self.tau {
            return Decision {
                allowed: false,
                limit: burst,
                remaining: 0,
                reset: tat - now,
                retry_after: next - self.tau - now,
            };
        }
        if stored.is_none() && shard.tats.len() >= self.per_shard {
            shard.make_room(now, self.per_shard);
        }
        shard.tats.insert(key, next);
        Decision {
            allowed: true,
            limit: burst,
            remaining: (self.tau - (next - now)) / interval,
            reset: next - now,
            retry_after: 0,
        }
    }

    /// How many buckets are kept now.
    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.lock(i).tats.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, Shard> {
        // The low bits pick the shard; `Prehashed` hands the map the other bits.
        self.lock(key as usize & (self.shards.len() - 1))
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding a shard leaves at worst one stale bucket: keep going.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Shard {
    /// Makes room for one more bucket in a full shard: drops the full buckets, and when there are
    /// none, the stalest eighth.
    fn make_room(&mut self, now: u64, cap: usize) {
        self.tats.retain(|_, tat| *tat > now);
        if self.tats.len() < cap {
            return;
        }
        let target = (cap / 8).max(1);
        let mut tats: Vec<u64> = self.tats.values().copied().collect();
        let (below, &mut cut, _) = tats.select_nth_unstable(target - 1);
        // Evict every bucket older than `cut`, and as many as `cut` itself as make `target`.
        let mut ties = target - below.iter().filter(|t| **t < cut).count();
        self.tats.retain(|_, tat| {
            if *tat < cut {
                false
            } else if *tat == cut && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// The map's hasher for keys that are hashes already. It swaps the key's halves, so the bits
/// hashbrown reads (the lowest for the slot, the top seven for the control byte) are not the
/// lowest six, which picked the shard and are the same for every key of it.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0.rotate_right(32)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; any other input is folded in rather than lost.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
