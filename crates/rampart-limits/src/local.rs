//! In-process GCRA and quota state. One `u64` per key (the theoretical arrival time, in
//! nanoseconds since the limiter's epoch), keyed by a 64-bit hash of the key, in sharded maps.
//! State whose TAT is in the past equals a fresh key, so it can be evicted freely: memory is
//! bounded by a per-limiter cap.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;
use std::time::Instant;

const SHARDS: usize = 64;

/// Identity hashing: keys are already 64-bit hashes.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Map = HashMap<u64, u64, BuildHasherDefault<IdHasher>>;

/// The in-process key: SipHash with per-process random keys, so clients cannot choose
/// keys (e.g. header values) that collide and degrade a shard.
pub fn hash_key(key: &str) -> u64 {
    hash_with(|h| h.write(key.as_bytes()))
}

/// As [`hash_key`], with the key fed by `f` (no string needed).
pub fn hash_with(f: impl FnOnce(&mut std::collections::hash_map::DefaultHasher)) -> u64 {
    use std::hash::BuildHasher;
    static STATE: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = STATE
        .get_or_init(std::collections::hash_map::RandomState::new)
        .build_hasher();
    f(&mut h);
    h.finish()
}

/// As [`stable_hash`], with the key fed by `f`.
pub fn stable_hash_with(f: impl FnOnce(&mut DefaultHasher)) -> u64 {
    let mut h = DefaultHasher::new();
    f(&mut h);
    h.finish()
}

/// A hash that is the same on every node, for keys shared through Redis.
pub fn stable_hash(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Local GCRA state: one theoretical arrival time per key, sharded, bounded in keys.
pub struct Gcra {
    shards: Vec<Mutex<Map>>,
    epoch: Instant,
    max_keys_per_shard: usize,
}

/// Result of one GCRA step, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Whether the request conforms (possibly after `wait_ns`).
    pub allowed: bool,
    /// How long to wait before the request conforms (0 when allowed now).
    pub wait_ns: u64,
    /// TAT minus now after the step: used for remaining/reset.
    pub ahead_ns: u64,
}

impl Gcra {
    /// State for about `max_keys` keys; beyond, expired keys and then arbitrary ones are
    /// dropped (they restart with a full burst).
    pub fn new(max_keys: usize) -> Gcra {
        Gcra {
            shards: (0..SHARDS).map(|_| Mutex::new(Map::default())).collect(),
            epoch: Instant::now(),
            max_keys_per_shard: (max_keys / SHARDS).max(16),
        }
    }

    /// Nanoseconds since this state was created: the clock `step` expects.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// One request at `now`: `t` emission interval, `tau` tolerance (burst), `max_wait`
    /// how long a delayed request may be held (0 = reject mode).
    pub fn step(&self, key: u64, now: u64, t: u64, tau: u64, max_wait: u64) -> Step {
        let mut shard = self.shards[(key as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Known keys: one probe, updated in place (the common, hot path).
        if let Some(v) = shard.get_mut(&key) {
            let tat = (*v).max(now);
            let wait = tat.saturating_sub(tau).saturating_sub(now);
            if wait > max_wait {
                return Step {
                    allowed: false,
                    wait_ns: wait,
                    ahead_ns: tat - now,
                };
            }
            *v = tat + t;
            return Step {
                allowed: true,
                wait_ns: wait,
                ahead_ns: tat + t - now,
            };
        }
        // A new key starts with a full burst; make room first if the shard is full.
        if shard.len() >= self.max_keys_per_shard {
            // Expired entries are equivalent to absent ones; if none, drop arbitrary ones
            // (those keys restart with a full burst: bounded memory over perfect memory).
            shard.retain(|_, v| *v > now);
            if shard.len() >= self.max_keys_per_shard {
                let victims: Vec<u64> = shard.keys().take(shard.len() / 8 + 1).copied().collect();
                for v in victims {
                    shard.remove(&v);
                }
            }
        }
        shard.insert(key, now + t);
        Step {
            allowed: true,
            wait_ns: 0,
            ahead_ns: t,
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// key → (window index, count)
type QuotaMap = HashMap<u64, (u64, u64), BuildHasherDefault<IdHasher>>;

/// Fixed-window counters for quotas: (window index, count) per key.
pub struct Quotas {
    shards: Vec<Mutex<QuotaMap>>,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
        }
    }
}

impl Quotas {
    /// Count one request in `window`; returns the count after it, or None if over `limit`.
    pub fn take(&self, key: u64, window: u64, limit: u64) -> Result<u64, u64> {
        let mut shard = self.shards[(key as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if shard.len() > 100_000 {
            shard.retain(|_, (w, _)| *w == window);
        }
        let e = shard.entry(key).or_insert((window, 0));
        if e.0 != window {
            *e = (window, 0);
        }
        if e.1 >= limit {
            return Err(e.1);
        }
        e.1 += 1;
        Ok(e.1)
    }
}
