//! Rate limits, quotas and concurrency limits.

use crate::units::HumanDuration;
use serde::Deserialize;

/// One limit: a rate (GCRA, exact per request) or a long-period quota.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RateLimit {
    /// `client_ip`, `consumer`, `route`, `header:NAME`, `claim:NAME`, or a list of them.
    #[serde(default = "default_limit_key")]
    pub key: LimitKey,
    /// `100/s`, `5000/min`, `10/h`.
    #[serde(default)]
    pub rate: Option<String>,
    /// Requests allowed at once (default: the rate's count).
    #[serde(default)]
    pub burst: Option<u64>,
    /// `10000/day`, `1M/month` (30 days): fixed windows; survive restarts with redis.
    #[serde(default)]
    pub quota: Option<String>,
    #[serde(default)]
    pub mode: LimitMode,
    /// In `delay` mode, the longest a request is held before it is rejected.
    #[serde(default = "default_max_delay")]
    pub max_delay: HumanDuration,
    #[serde(default)]
    pub backend: LimitBackend,
    #[serde(default)]
    pub on_backend_error: OnBackendError,
}

pub(crate) fn default_limit_key() -> LimitKey {
    LimitKey::One("client_ip".into())
}
pub(crate) fn default_max_delay() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(500))
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum LimitKey {
    One(String),
    Many(Vec<String>),
}

impl LimitKey {
    pub fn parts(&self) -> Vec<&str> {
        match self {
            LimitKey::One(s) => vec![s.as_str()],
            LimitKey::Many(v) => v.iter().map(|s| s.as_str()).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LimitMode {
    #[default]
    Reject,
    Delay,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LimitBackend {
    #[default]
    Local,
    Redis,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnBackendError {
    Allow,
    Deny,
    /// Fall back to this node's local limiter (default).
    #[default]
    Local,
}

/// In-flight request limit.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Concurrency {
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
