//! Rate limits, quotas and concurrency limits.

use crate::units::HumanDuration;
use serde::Deserialize;

/// One limit: a rate (GCRA, exact per request) or a long-period quota.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct RateLimit {
    /// `client_ip` (default), `consumer`, `route`, `header:NAME`, `claim:NAME`, or a list of them.
    pub key: LimitKey,
    /// `100/s`, `5000/min`, `10/h`.
    pub rate: Option<String>,
    /// Requests allowed at once (default: the rate's count).
    pub burst: Option<u64>,
    /// `10000/day`, `1M/month` (30 days): fixed windows; survive restarts with redis.
    pub quota: Option<String>,
    /// `reject` (default, 429) or `delay` (hold the request up to `max_delay`); quotas only reject.
    pub mode: LimitMode,
    /// In `delay` mode, the longest a request is held before it is rejected (default 500 ms).
    pub max_delay: HumanDuration,
    /// `local` (default, this node) or `redis` (shared through the top-level `redis`).
    pub backend: LimitBackend,
    /// With `backend: redis`: `local` (default), `allow` or `deny` (503) when Redis fails.
    pub on_backend_error: OnBackendError,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            key: LimitKey::One("client_ip".into()),
            rate: None,
            burst: None,
            quota: None,
            mode: LimitMode::Reject,
            max_delay: HumanDuration(std::time::Duration::from_millis(500)),
            backend: LimitBackend::Local,
            on_backend_error: OnBackendError::Local,
        }
    }
}

/// What a limit counts per: one key part or several (each combination has its own budget).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum LimitKey {
    /// A single part, e.g. `client_ip`.
    One(String),
    /// Several parts, e.g. `[consumer, route]`.
    Many(Vec<String>),
}

impl LimitKey {
    /// The key parts as written.
    pub fn parts(&self) -> Vec<&str> {
        match self {
            LimitKey::One(s) => vec![s.as_str()],
            LimitKey::Many(v) => v.iter().map(|s| s.as_str()).collect(),
        }
    }
}

/// What happens to a request over a rate.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LimitMode {
    /// Refuse at once (429 with `Retry-After`).
    #[default]
    Reject,
    /// Hold the request until it fits, if within `max_delay`; refuse otherwise.
    Delay,
}

/// Where a limit's state is kept.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LimitBackend {
    /// In this node's memory.
    #[default]
    Local,
    /// In Redis, shared by all gateway nodes.
    Redis,
}

/// What a `redis` limit does when Redis cannot be reached or errs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnBackendError {
    /// Skip this limit.
    Allow,
    /// Refuse the request (503).
    Deny,
    /// Fall back to this node's local limiter (default).
    #[default]
    Local,
}

/// In-flight request limit.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Concurrency {
    /// Requests in flight at most; more get 503.
    pub limit: u32,
    /// `route` (default) or `consumer` (one budget per consumer on this route).
    #[serde(default)]
    pub key: ConcurrencyKey,
}

/// Whose requests share one in-flight budget.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyKey {
    /// Every request on the route.
    #[default]
    Route,
    /// Each consumer (anonymous requests: each client IP).
    Consumer,
}
