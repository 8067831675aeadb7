//! The configuration shape. Field names are the YAML contract; extend, never rename.

use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Config {
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub upstreams: BTreeMap<String, Upstream>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub access_log: AccessLog,
    #[serde(default)]
    pub server: ServerSettings,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Listener {
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Admin {
    /// Serves /metrics, /healthz and /readyz. Loopback by default so metrics never face the internet.
    #[serde(default = "default_admin_address")]
    pub address: String,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: default_admin_address(),
        }
    }
}

fn default_admin_address() -> String {
    "127.0.0.1:9901".into()
}

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
}

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

fn default_hc_path() -> String {
    "/healthz".into()
}
fn default_hc_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_hc_timeout() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_three() -> u32 {
    3
}
fn default_two() -> u32 {
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

fn default_connect() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_read() -> HumanDuration {
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

fn default_eject() -> HumanDuration {
    HumanDuration::from_secs(10)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Route {
    pub name: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub paths: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    pub upstream: String,
    #[serde(default)]
    pub strip_prefix: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Limits {
    #[serde(default = "default_body")]
    pub max_request_body: ByteSize,
    #[serde(default = "default_header_bytes")]
    pub max_header_bytes: ByteSize,
    #[serde(default = "default_header_timeout")]
    pub request_header_timeout: HumanDuration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_body: default_body(),
            max_header_bytes: default_header_bytes(),
            request_header_timeout: default_header_timeout(),
        }
    }
}

fn default_body() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_header_bytes() -> ByteSize {
    ByteSize(16 << 10)
}
fn default_header_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// `stdout` (default), `off`, or a file path.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AccessLog {
    #[serde(default = "default_log_target")]
    pub target: String,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            target: default_log_target(),
        }
    }
}

fn default_log_target() -> String {
    "stdout".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ServerSettings {
    /// Worker threads of the data plane.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// How often the config file is checked for changes (hot reload); `0s` disables the watch.
    #[serde(default = "default_watch")]
    pub watch_interval: HumanDuration,
    /// Time given to in-flight requests at shutdown.
    #[serde(default = "default_grace")]
    pub grace_period: HumanDuration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            threads: default_threads(),
            watch_interval: default_watch(),
            grace_period: default_grace(),
        }
    }
}

fn default_threads() -> usize {
    2
}
fn default_watch() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(500))
}
fn default_grace() -> HumanDuration {
    HumanDuration::from_secs(5)
}
