//! Rampart's traffic control, free of proxy types: GCRA rate limits (exact per request, no
//! fixed-window double bursts), long-period quotas, reject or delay (throttle) modes, local
//! state with bounded memory or shared state in Redis (an atomic server-side script using
//! Redis' clock, so nodes with skewed clocks still agree), in-flight concurrency limits, and
//! [`adaptive`] limits that follow a backend's latency.
//!
//! The gateway fills [`Facts`] for a request and calls [`Limiter::check`] with the route's
//! compiled [`LimitRt`]s; the [`Decision`] says allow / delay / reject / unavailable and
//! carries the IETF `RateLimit-Policy` / `RateLimit` header values.

pub mod adaptive;
mod error;
pub mod local;
pub mod spec;

use rampart_config::{LimitBackend, LimitMode, OnBackendError, RateLimit};
use rampart_redis::redis;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use error::Error;
pub use spec::{parse_rate, Rate};

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyPart {
    ClientIp,
    Consumer,
    Route,
    Header(String),
    Claim(String),
}

#[derive(Debug, Clone)]
enum Kind {
    /// GCRA: emission interval and tolerance in nanoseconds.
    Rate {
        t: u64,
        tau: u64,
    },
    Quota {
        period: u64,
    },
}

/// One compiled limit.
#[derive(Debug, Clone)]
pub struct LimitRt {
    /// Namespace of this limit's state and its name in the headers.
    pub name: String,
    parts: Vec<KeyPart>,
    kind: Kind,
    count: u64,
    mode: LimitMode,
    max_delay: Duration,
    backend: LimitBackend,
    on_error: OnBackendError,
    /// `RateLimit-Policy` value, fixed per limit.
    policy: String,
}

impl LimitRt {
    /// `name` must be unique per limit (e.g. `route-orders-0`).
    pub fn compile(name: &str, l: &RateLimit) -> Result<LimitRt, Error> {
        let mut parts = Vec::new();
        for p in l.key.parts() {
            parts.push(match p {
                "client_ip" => KeyPart::ClientIp,
                "consumer" => KeyPart::Consumer,
                "route" => KeyPart::Route,
                other => match (other.strip_prefix("header:"), other.strip_prefix("claim:")) {
                    (Some(h), _) if !h.is_empty() => KeyPart::Header(h.to_ascii_lowercase()),
                    (_, Some(c)) if !c.is_empty() => KeyPart::Claim(c.to_string()),
                    _ => {
                        return Err(Error::KeyPart {
                            part: other.to_string(),
                        })
                    }
                },
            });
        }
        if parts.is_empty() {
            return Err(Error::EmptyKey);
        }
        let (kind, count, window) = match (&l.rate, &l.quota) {
            (Some(r), None) => {
                let rate = parse_rate(r)?;
                let t = rate.period.as_nanos() as u64 / rate.count;
                if t == 0 {
                    return Err(Error::RateTooFine { rate: r.clone() });
                }
                let burst = l.burst.unwrap_or(rate.count).max(1);
                (
                    Kind::Rate {
                        t,
                        tau: t * (burst - 1),
                    },
                    rate.count,
                    rate.period.as_secs(),
                )
            }
            (None, Some(q)) => {
                let rate = parse_rate(q)?;
                if l.mode == LimitMode::Delay {
                    return Err(Error::QuotaDelay);
                }
                (
                    Kind::Quota {
                        period: rate.period.as_secs(),
                    },
                    rate.count,
                    rate.period.as_secs(),
                )
            }
            _ => return Err(Error::RateOrQuota),
        };
        if l.burst.is_some() && l.quota.is_some() {
            return Err(Error::BurstWithQuota);
        }
        Ok(LimitRt {
            policy: format!("\"{name}\";q={count};w={}", window.max(1)),
            name: name.to_string(),
            parts,
            kind,
            count,
            mode: l.mode,
            max_delay: l.max_delay.0,
            backend: l.backend,
            on_error: l.on_backend_error,
        })
    }

    /// The kind of key, for metrics (`client_ip`, `consumer+route`, ...).
    pub fn key_type(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                KeyPart::ClientIp => "client_ip",
                KeyPart::Consumer => "consumer",
                KeyPart::Route => "route",
                KeyPart::Header(_) => "header",
                KeyPart::Claim(_) => "claim",
            })
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Whether this limit keeps its state in Redis (`backend: redis`).
    pub fn uses_redis(&self) -> bool {
        self.backend == LimitBackend::Redis
    }

    /// The state key. A missing consumer, header or claim falls back to the client IP, so
    /// anonymous callers never share a single bucket (which one could exhaust for all).
    fn key<H: std::hash::Hasher>(&self, f: &Facts, h: &mut H) {
        // Fed straight into the hasher: no key string is built per request.
        let ip = |h: &mut H| match f.client_ip {
            Some(IpAddr::V4(a)) => h.write(&a.octets()),
            Some(IpAddr::V6(a)) => h.write(&a.octets()),
            None => h.write(b"-"),
        };
        h.write(self.name.as_bytes());
        for p in &self.parts {
            h.write_u8(b'|');
            match p {
                KeyPart::ClientIp => ip(h),
                KeyPart::Consumer => match f.consumer {
                    Some(c) => {
                        h.write(b"c:");
                        h.write(c.as_bytes());
                    }
                    None => {
                        h.write(b"ip:");
                        ip(h);
                    }
                },
                KeyPart::Route => h.write(f.route.as_bytes()),
                KeyPart::Header(name) => match (f.header)(name) {
                    Some(v) => {
                        h.write(b"h:");
                        h.write(v.as_bytes());
                    }
                    None => {
                        h.write(b"ip:");
                        ip(h);
                    }
                },
                KeyPart::Claim(c) => match (f.claim)(c) {
                    Some(v) => {
                        h.write(b"j:");
                        h.write(v.as_bytes());
                    }
                    None => {
                        h.write(b"ip:");
                        ip(h);
                    }
                },
            }
            // Length-delimit parts so ("ab","c") and ("a","bc") differ.
            h.write_u8(0xff);
        }
    }
}

/// What the gateway knows about a request.
pub struct Facts<'a> {
    /// The client's address (also the fallback for missing key parts).
    pub client_ip: Option<IpAddr>,
    /// The authenticated consumer's id; `None` when anonymous.
    pub consumer: Option<&'a str>,
    /// The route's name.
    pub route: &'a str,
    /// A request header's value by (lower-case) name.
    pub header: &'a (dyn Fn(&str) -> Option<String> + Sync),
    /// A token claim's value by name.
    pub claim: &'a (dyn Fn(&str) -> Option<String> + Sync),
}

/// What to do with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Proceed now.
    Allow,
    /// Throttled: proceed after this delay.
    Delay(Duration),
    /// Over a limit (429).
    Reject {
        /// When the request would be allowed (`Retry-After`).
        retry_after: Duration,
    },
    /// The shared backend failed and the limit says `deny`.
    Unavailable,
}

/// The outcome of every limit of a route for one request.
#[derive(Debug, Clone)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// `RateLimit-Policy` and `RateLimit` values (IETF httpapi draft, structured fields).
    pub policy_header: Option<String>,
    /// The `RateLimit` value of the tightest limit (remaining and reset).
    pub limit_header: Option<String>,
    /// The limit that decided (for metrics and events).
    pub limit: Option<String>,
    /// The deciding limit's kind of key (`client_ip`, `consumer+route`, ...).
    pub key_type: Option<String>,
    /// A Redis error happened and `on_backend_error` was applied.
    pub backend_error: bool,
    /// This key has been rejected persistently: report once per minute.
    pub sustained_excess: bool,
}

struct One {
    verdict: Verdict,
    remaining: u64,
    reset_secs: u64,
}

/// The shared engine: local state, Redis connection, excess tracking.
pub struct Limiter {
    gcra: local::Gcra,
    quotas: local::Quotas,
    redis: Option<RedisBackend>,
    excess: Excess,
}

/// Rejections per key in fixed windows, to flag a client that keeps exceeding its limit
/// once per window. Sharded; a shard whose window ended is emptied in one swap, and a full
/// shard tracks no new keys until then, so memory is bounded without scanning under a lock.
struct Excess {
    epoch: Instant,
    shards: Vec<Mutex<ExcessShard>>,
}

#[derive(Default)]
struct ExcessShard {
    /// Window number (seconds since `epoch` / window length) the counts belong to.
    window: u64,
    counts: HashMap<u64, (u64, bool), BuildHasherDefault<local::IdHasher>>,
}

const EXCESS_SHARDS: usize = 16;
const EXCESS_KEYS_PER_SHARD: usize = 100_000 / EXCESS_SHARDS;

impl Excess {
    fn new() -> Excess {
        Excess {
            epoch: Instant::now(),
            shards: (0..EXCESS_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Count one rejection; true exactly once per key and window, at the threshold.
    fn note(&self, key: u64) -> bool {
        let window = self.epoch.elapsed().as_secs() / EXCESS_WINDOW.as_secs();
        let mut s = self.shards[(key % EXCESS_SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let stale = if s.window != window {
            s.window = window;
            Some(std::mem::take(&mut s.counts))
        } else {
            None
        };
        let full = s.counts.len() >= EXCESS_KEYS_PER_SHARD;
        let flagged = match s.counts.get_mut(&key) {
            Some(e) => {
                e.0 += 1;
                e.0 >= EXCESS_THRESHOLD && !std::mem::replace(&mut e.1, true)
            }
            None if !full => {
                s.counts.insert(key, (1, EXCESS_THRESHOLD <= 1));
                EXCESS_THRESHOLD <= 1
            }
            None => false,
        };
        drop(s);
        // The old window's map is freed after the lock is released.
        drop(stale);
        flagged
    }
}

const EXCESS_WINDOW: Duration = Duration::from_secs(60);
const EXCESS_THRESHOLD: u64 = 100;
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);

struct RedisBackend {
    handle: rampart_redis::RedisHandle,
    gcra: redis::Script,
    quota: redis::Script,
}

/// GCRA in Redis with the server's clock (microseconds). Returns {allowed, wait, ahead}.
const GCRA_LUA: &str = r"
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tau - now
if wait < 0 then wait = 0 end
if wait > max_wait then
  return {0, wait, tat - now}
end
local new = tat + t
redis.call('SET', KEYS[1], new, 'PX', math.floor((new - now) / 1000) + 1000)
return {1, wait, new - now}
";

/// Quota counter: INCR, expiry at the window's end. Returns the count.
const QUOTA_LUA: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1])) end
return n
";

impl Limiter {
    /// `redis_url`: for limits with `backend: redis`. Connects lazily.
    pub fn new(redis_url: Option<&str>, max_local_keys: usize) -> Result<Limiter, Error> {
        let redis = match redis_url {
            Some(u) => Some(RedisBackend {
                handle: rampart_redis::RedisHandle::new(u, "rate limit", REDIS_TIMEOUT)?,
                gcra: redis::Script::new(GCRA_LUA),
                quota: redis::Script::new(QUOTA_LUA),
            }),
            None => None,
        };
        Ok(Limiter {
            gcra: local::Gcra::new(max_local_keys),
            quotas: local::Quotas::default(),
            redis,
            excess: Excess::new(),
        })
    }

    /// Keys held in local rate state (for metrics).
    pub fn local_keys(&self) -> usize {
        self.gcra.len()
    }

    /// Apply every limit; the most restrictive outcome wins. Delays only count when every
    /// limit allows (possibly after a delay).
    pub async fn check(&self, limits: &[LimitRt], f: &Facts<'_>) -> Decision {
        let mut d = Decision {
            verdict: Verdict::Allow,
            policy_header: None,
            limit_header: None,
            limit: None,
            key_type: None,
            backend_error: false,
            sustained_excess: false,
        };
        let mut tightest: Option<(u64, &LimitRt, u64)> = None;
        let mut delay = Duration::ZERO;
        for l in limits {
            let one = match l.backend {
                LimitBackend::Local => self.local(l, local::hash_with(|hs| l.key(f, hs))),
                LimitBackend::Redis => match self
                    .remote(l, local::stable_hash_with(|hs| l.key(f, hs)))
                    .await
                {
                    Ok(o) => o,
                    Err(()) => {
                        d.backend_error = true;
                        match l.on_error {
                            OnBackendError::Allow => continue,
                            OnBackendError::Deny => {
                                d.verdict = Verdict::Unavailable;
                                d.limit = Some(l.name.clone());
                                d.key_type = Some(l.key_type());
                                return d;
                            }
                            OnBackendError::Local => {
                                self.local(l, local::hash_with(|hs| l.key(f, hs)))
                            }
                        }
                    }
                },
            };
            if tightest.is_none_or(|(r, _, _)| one.remaining < r) {
                tightest = Some((one.remaining, l, one.reset_secs));
            }
            match one.verdict {
                Verdict::Allow => {}
                Verdict::Delay(w) => delay = delay.max(w),
                v @ (Verdict::Reject { .. } | Verdict::Unavailable) => {
                    d.verdict = v;
                    d.limit = Some(l.name.clone());
                    d.key_type = Some(l.key_type());
                    d.sustained_excess = self.excess.note(local::hash_with(|hs| l.key(f, hs)));
                    tightest = Some((0, l, one.reset_secs));
                    break;
                }
            }
        }
        if d.verdict == Verdict::Allow && !delay.is_zero() {
            d.verdict = Verdict::Delay(delay);
        }
        if let Some((remaining, l, reset)) = tightest {
            d.policy_header = Some(l.policy.clone());
            d.limit_header = Some(format!("\"{}\";r={};t={}", l.name, remaining, reset));
        }
        d
    }

    fn local(&self, l: &LimitRt, key: u64) -> One {
        match l.kind {
            Kind::Rate { t, tau } => {
                let max_wait = match l.mode {
                    LimitMode::Reject => 0,
                    LimitMode::Delay => l.max_delay.as_nanos() as u64,
                };
                let s = self.gcra.step(key, self.gcra.now_ns(), t, tau, max_wait);
                gcra_outcome(s.allowed, s.wait_ns, s.ahead_ns, t, tau)
            }
            Kind::Quota { period } => {
                let now = unix_now();
                let window = now / period;
                let reset = (window + 1) * period - now;
                match self.quotas.take(key, window, l.count) {
                    Ok(n) => One {
                        verdict: Verdict::Allow,
                        remaining: l.count - n,
                        reset_secs: reset,
                    },
                    Err(_) => One {
                        verdict: Verdict::Reject {
                            retry_after: Duration::from_secs(reset),
                        },
                        remaining: 0,
                        reset_secs: reset,
                    },
                }
            }
        }
    }

    async fn remote(&self, l: &LimitRt, key: u64) -> Result<One, ()> {
        let r = self.redis.as_ref().ok_or(())?;
        let mut conn = r.handle.connection().await.ok_or(())?;
        let rkey = format!("rampart:rl:{key:016x}");
        let fut = async {
            match l.kind {
                Kind::Rate { t, tau } => {
                    let max_wait = match l.mode {
                        LimitMode::Reject => 0,
                        LimitMode::Delay => l.max_delay.as_micros() as u64,
                    };
                    let (allowed, wait, ahead): (i64, i64, i64) = r
                        .gcra
                        .key(&rkey)
                        .arg(t / 1000)
                        .arg(tau / 1000)
                        .arg(max_wait)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(|e| log::warn!("rate limit: redis error: {e}"))?;
                    Ok(gcra_outcome(
                        allowed == 1,
                        wait.max(0) as u64 * 1000,
                        ahead.max(0) as u64 * 1000,
                        t,
                        tau,
                    ))
                }
                Kind::Quota { period } => {
                    let now = unix_now();
                    let window = now / period;
                    let reset = (window + 1) * period - now;
                    let n: u64 = r
                        .quota
                        .key(format!("{rkey}:{window}"))
                        .arg(reset + 60)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(|e| log::warn!("quota: redis error: {e}"))?;
                    Ok(if n > l.count {
                        One {
                            verdict: Verdict::Reject {
                                retry_after: Duration::from_secs(reset),
                            },
                            remaining: 0,
                            reset_secs: reset,
                        }
                    } else {
                        One {
                            verdict: Verdict::Allow,
                            remaining: l.count - n,
                            reset_secs: reset,
                        }
                    })
                }
            }
        };
        tokio::time::timeout(REDIS_TIMEOUT, fut)
            .await
            .map_err(|_| ())?
    }
}

fn gcra_outcome(allowed: bool, wait: u64, ahead: u64, t: u64, tau: u64) -> One {
    // Requests that still fit in the burst after this one.
    let remaining = (tau + t).saturating_sub(ahead) / t;
    let reset_secs = ahead.div_ceil(1_000_000_000);
    let verdict = if !allowed {
        Verdict::Reject {
            retry_after: Duration::from_nanos(wait),
        }
    } else if wait > 0 {
        Verdict::Delay(Duration::from_nanos(wait))
    } else {
        Verdict::Allow
    };
    One {
        verdict,
        remaining,
        reset_secs,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// In-flight request counters; a guard releases its slot when dropped. Keys are 64-bit
/// hashes ([`local::hash_with`]) spread over shards, so concurrent requests on different
/// keys rarely meet on one lock.
pub struct InFlight {
    shards: Vec<Mutex<HashMap<u64, u32, BuildHasherDefault<local::IdHasher>>>>,
}

const INFLIGHT_SHARDS: usize = 32;

impl Default for InFlight {
    fn default() -> Self {
        InFlight {
            shards: (0..INFLIGHT_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

/// One request counted in flight; dropping it releases the slot.
pub struct InFlightGuard {
    owner: Arc<InFlight>,
    key: u64,
}

impl InFlight {
    fn shard(
        &self,
        key: u64,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, u32, BuildHasherDefault<local::IdHasher>>> {
        self.shards[(key % INFLIGHT_SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for `key` if fewer than `limit` are in use; `None` when full.
    pub fn acquire(self: &Arc<Self>, key: u64, limit: u32) -> Option<InFlightGuard> {
        let mut m = self.shard(key);
        let n = m.entry(key).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(InFlightGuard {
            owner: self.clone(),
            key,
        })
    }

    /// Slots of `key` in use.
    pub fn current(&self, key: u64) -> u32 {
        self.shard(key).get(&key).copied().unwrap_or(0)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut m = self.owner.shard(self.key);
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
