//! Upstreams: targets, balancing, health checks, timeouts, TLS.

use super::*;
use crate::units::HumanDuration;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Upstream {
    pub targets: Vec<String>,
    #[serde(default)]
    pub balance: Balance,
    /// Key for `consistent_hash`: `client_ip` (default) or `header:NAME`.
    #[serde(default)]
    pub hash_key: Option<String>,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Extra attempts on another target when connecting fails (idempotent requests only).
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default)]
    pub passive: PassiveHealth,
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
}

pub(crate) fn default_retries() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    ConsistentHash,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct HealthCheck {
    #[serde(default = "default_hc_path")]
    pub path: String,
    #[serde(default = "default_hc_interval")]
    pub interval: HumanDuration,
    #[serde(default = "default_hc_timeout")]
    pub timeout: HumanDuration,
    #[serde(default = "default_three")]
    pub unhealthy_after: u32,
    #[serde(default = "default_two")]
    pub healthy_after: u32,
}

pub(crate) fn default_hc_path() -> String {
    "/healthz".into()
}
pub(crate) fn default_hc_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}
pub(crate) fn default_hc_timeout() -> HumanDuration {
    HumanDuration::from_secs(1)
}
pub(crate) fn default_three() -> u32 {
    3
}
pub(crate) fn default_two() -> u32 {
    2
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Timeouts {
    #[serde(default = "default_connect")]
    pub connect: HumanDuration,
    #[serde(default = "default_read")]
    pub read: HumanDuration,
    #[serde(default = "default_read")]
    pub write: HumanDuration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: default_connect(),
            read: default_read(),
            write: default_read(),
        }
    }
}

pub(crate) fn default_connect() -> HumanDuration {
    HumanDuration::from_secs(2)
}
pub(crate) fn default_read() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// Passive ejection: a target that fails `failures` connections in a row is skipped for `eject_for`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PassiveHealth {
    #[serde(default = "default_three")]
    pub failures: u32,
    #[serde(default = "default_eject")]
    pub eject_for: HumanDuration,
}

impl Default for PassiveHealth {
    fn default() -> Self {
        PassiveHealth {
            failures: default_three(),
            eject_for: default_eject(),
        }
    }
}

pub(crate) fn default_eject() -> HumanDuration {
    HumanDuration::from_secs(10)
}
