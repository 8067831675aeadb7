//! Brute-force protection: after N failures for the same identity (or M from one client IP)
//! within a window, attempts are refused for a lockout period, even with the right secret.
//! Counters are local, or shared across gateway nodes through Redis.

use rampart_config::LockoutSettings;
use rampart_redis::redis;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Entry {
    failures: u32,
    window_start: Option<Instant>,
    locked_until: Option<Instant>,
}

/// Failure counters and locks, local or in Redis (falling back to local while it is unreachable).
pub struct Lockout {
    settings: LockoutSettings,
    local: Mutex<HashMap<String, Entry>>,
    redis: Option<rampart_redis::RedisHandle>,
}

const MAX_LOCAL_ENTRIES: usize = 200_000;

impl Lockout {
    /// No I/O: a Redis backend connects on first use, and while it cannot be reached
    /// failures are counted locally.
    pub fn new(settings: LockoutSettings) -> Result<Lockout, crate::Error> {
        let redis = match &settings.redis {
            Some(url) => Some(
                rampart_redis::RedisHandle::new(url, "lockout", Duration::from_millis(500))
                    .map_err(crate::Error::Lockout)?,
            ),
            None => None,
        };
        Ok(Lockout {
            settings,
            local: Mutex::new(HashMap::new()),
            redis,
        })
    }

    /// The remaining lockout of any of `keys`, if one is locked.
    pub async fn locked(&self, keys: &[String]) -> Option<Duration> {
        if let Some(mut conn) = self.shared().await {
            let mut worst: Option<Duration> = None;
            for k in keys {
                let ttl: Result<i64, _> = redis::cmd("PTTL")
                    .arg(format!("rampart:locked:{k}"))
                    .query_async(&mut conn)
                    .await;
                match ttl {
                    Ok(ms) if ms > 0 => {
                        let d = Duration::from_millis(ms as u64);
                        worst = Some(worst.map_or(d, |w| w.max(d)));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log::warn!("lockout: redis unavailable, using local counters: {e}");
                        return self.locked_local(keys);
                    }
                }
            }
            return worst;
        }
        self.locked_local(keys)
    }

    fn locked_local(&self, keys: &[String]) -> Option<Duration> {
        let now = Instant::now();
        let map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|k| map.get(k)?.locked_until)
            .filter(|u| *u > now)
            .map(|u| u - now)
            .max()
    }

    /// Record one failure for each (key, limit) pair.
    pub async fn failure(&self, keys: &[(String, u32)]) {
        if let Some(mut conn) = self.shared().await {
            let window = self.settings.window.0.as_millis() as u64;
            let lock = self.settings.duration.0.as_millis() as u64;
            for (k, max) in keys {
                // INCR + PEXPIRE NX opens the window on the first failure; at the limit the
                // lock key is set with its own expiry. One round trip per key.
                let r: Result<(i64,), _> = redis::pipe()
                    .cmd("INCR")
                    .arg(format!("rampart:fail:{k}"))
                    .cmd("PEXPIRE")
                    .arg(format!("rampart:fail:{k}"))
                    .arg(window)
                    .arg("NX")
                    .ignore()
                    .query_async(&mut conn)
                    .await;
                match r {
                    Ok((n,)) if n >= *max as i64 => {
                        let _: Result<(), _> = redis::pipe()
                            .cmd("SET")
                            .arg(format!("rampart:locked:{k}"))
                            .arg(1)
                            .arg("PX")
                            .arg(lock)
                            .ignore()
                            .cmd("DEL")
                            .arg(format!("rampart:fail:{k}"))
                            .ignore()
                            .query_async(&mut conn)
                            .await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log::warn!("lockout: redis unavailable, counting locally: {e}");
                        self.failure_local(&[(k.clone(), *max)]);
                    }
                }
            }
            return;
        }
        self.failure_local(keys);
    }

    fn failure_local(&self, keys: &[(String, u32)]) {
        let now = Instant::now();
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > MAX_LOCAL_ENTRIES {
            // Bounded memory: forget entries that are neither locked nor in a live window.
            let window = self.settings.window.0;
            map.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now)
                    || e.window_start.is_some_and(|s| now - s < window)
            });
        }
        for (k, max) in keys {
            let e = map.entry(k.clone()).or_default();
            match e.window_start {
                Some(s) if now - s < self.settings.window.0 => e.failures += 1,
                _ => {
                    e.window_start = Some(now);
                    e.failures = 1;
                }
            }
            if e.failures >= *max {
                e.locked_until = Some(now + self.settings.duration.0);
                e.failures = 0;
                e.window_start = None;
            }
        }
    }

    /// A success clears the identity's failure count (not an active lock).
    pub async fn success(&self, key: &str) {
        self.lower(key, "redis.call('DEL', KEYS[1])", |e| {
            e.failures = 0;
            e.window_start = None;
        })
        .await
    }

    /// Takes back one failure counted for a key before a check that then succeeded.
    pub async fn forgive(&self, key: &str) {
        // Only an existing counter is decremented: an expired window stays expired.
        self.lower(
            key,
            "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECR', KEYS[1]) end",
            |e| e.failures = e.failures.saturating_sub(1),
        )
        .await
    }

    /// Lowers a key's failure count: a one-line script on Redis, or `local` on the entry.
    async fn lower(&self, key: &str, script: &str, local: impl FnOnce(&mut Entry)) {
        if let Some(mut conn) = self.shared().await {
            let _: Result<(), _> = redis::cmd("EVAL")
                .arg(script)
                .arg(1)
                .arg(format!("rampart:fail:{key}"))
                .query_async(&mut conn)
                .await;
            return;
        }
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(key) {
            local(e);
        }
    }

    /// The Redis connection when counters are shared and Redis can be reached; `None`
    /// means count on this node.
    async fn shared(&self) -> Option<redis::aio::ConnectionManager> {
        self.redis.as_ref()?.connection().await
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &LockoutSettings {
        &self.settings
    }
}
