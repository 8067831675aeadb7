//! Upstreams: targets, balancing, health checks, timeouts, TLS.

use super::*;
use crate::units::HumanDuration;
use serde::Deserialize;

/// A named group of backend targets.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Upstream {
    /// `IP:port` of each target (host names are not resolved).
    pub targets: Vec<String>,
    /// `round_robin` (default) or `consistent_hash` (see `hash_key`).
    #[serde(default)]
    pub balance: Balance,
    /// Key for `consistent_hash`: `client_ip` (default) or `header:NAME`.
    #[serde(default)]
    pub hash_key: Option<String>,
    /// Active health checks; without them only passive ejection applies.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Connect, read and write timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Extra attempts on another target when connecting fails (idempotent requests only;
    /// default 1).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Passive ejection of failing targets.
    #[serde(default)]
    pub passive: PassiveHealth,
    /// Connect to the targets over TLS.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// A limit on requests in flight to this upstream that follows its latency: requests
    /// over it are refused (503) instead of queueing in a backend that is already slow.
    #[serde(default)]
    pub adaptive_concurrency: Option<AdaptiveConcurrency>,
    /// `http1` (default) or `http2`: HTTP/2 only, over TLS by ALPN or in clear text with
    /// prior knowledge (h2c); gRPC routes need it.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
}

/// The HTTP version Rampart speaks to an upstream's targets.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 only (ALPN `h2` over TLS, h2c with prior knowledge without).
    Http2,
}

/// `upstreams.NAME.adaptive_concurrency`: the limit grows by one per answer on time while
/// it is in use, and is multiplied by `backoff` when answers take over `tolerance` times
/// the best latency of the last `window`, or fail (at most once per best latency).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveConcurrency {
    /// The lowest the limit goes (default 4).
    pub min: u32,
    /// The highest (default 1000); it starts halfway.
    pub max: u32,
    /// How many times the best latency an answer may take before it counts as late
    /// (default 2.0).
    pub tolerance: f64,
    /// What the limit is multiplied by on a late or failed answer (default 0.9).
    pub backoff: f64,
    /// How long the best latency is kept before it is measured again (default 30s).
    pub window: HumanDuration,
}

impl Default for AdaptiveConcurrency {
    fn default() -> Self {
        AdaptiveConcurrency {
            min: 4,
            max: 1000,
            tolerance: 2.0,
            backoff: 0.9,
            window: HumanDuration::from_secs(30),
        }
    }
}

// `targets` is required, so `Upstream` has no `Default`: its defaulted key needs this.
fn default_retries() -> u32 {
    1
}

/// How a target is chosen for each request.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each target in turn.
    #[default]
    RoundRobin,
    /// The same key (`hash_key`) goes to the same target.
    ConsistentHash,
}

/// Active health checks: a `GET` to each target at an interval.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct HealthCheck {
    /// The path requested (default `/healthz`).
    pub path: String,
    /// Time between checks (default 5 s).
    pub interval: HumanDuration,
    /// Connect and read timeout of one check (default 1 s).
    pub timeout: HumanDuration,
    /// Consecutive failures that mark a target unhealthy (default 3).
    pub unhealthy_after: u32,
    /// Consecutive successes that mark it healthy again (default 2).
    pub healthy_after: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: "/healthz".into(),
            interval: HumanDuration::from_secs(5),
            timeout: HumanDuration::from_secs(1),
            unhealthy_after: 3,
            healthy_after: 2,
        }
    }
}

/// Timeouts towards the upstream's targets.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Timeouts {
    /// Connecting to a target (default 2 s).
    pub connect: HumanDuration,
    /// Each read from the target (default 30 s).
    pub read: HumanDuration,
    /// Each write to the target (default 30 s).
    pub write: HumanDuration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: HumanDuration::from_secs(2),
            read: HumanDuration::from_secs(30),
            write: HumanDuration::from_secs(30),
        }
    }
}

/// Passive ejection: a target that fails `failures` connections in a row is skipped for `eject_for`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct PassiveHealth {
    /// Consecutive failed connections before a target is skipped (default 3).
    pub failures: u32,
    /// How long it is skipped (default 10 s).
    pub eject_for: HumanDuration,
}

impl Default for PassiveHealth {
    fn default() -> Self {
        PassiveHealth {
            failures: 3,
            eject_for: HumanDuration::from_secs(10),
        }
    }
}
