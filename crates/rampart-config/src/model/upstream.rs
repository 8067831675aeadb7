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

// `targets` is required, so `Upstream` has no `Default`: its defaulted key needs this.
fn default_retries() -> u32 {
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
#[serde(default)]
pub struct HealthCheck {
    pub path: String,
    pub interval: HumanDuration,
    pub timeout: HumanDuration,
    pub unhealthy_after: u32,
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

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Timeouts {
    pub connect: HumanDuration,
    pub read: HumanDuration,
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
    pub failures: u32,
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
