//! Rate limits, quotas and concurrency limits.

use crate::units::HumanDuration;
use serde::Deserialize;

/// One limit: a rate (GCRA, exact per request) or a long-period quota.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct RateLimit {
    /// `client_ip`, `consumer`, `route`, `header:NAME`, `claim:NAME`, or a list of them.
    pub key: LimitKey,
    /// `100/s`, `5000/min`, `10/h`.
    pub rate: Option<String>,
    /// Requests allowed at once (default: the rate's count).
    pub burst: Option<u64>,
    /// `10000/day`, `1M/month` (30 days): fixed windows; survive restarts with redis.
    pub quota: Option<String>,
    pub mode: LimitMode,
    /// In `delay` mode, the longest a request is held before it is rejected.
    pub max_delay: HumanDuration,
    pub backend: LimitBackend,
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
