//! Bans and the automatic responses that set them.

use crate::units::HumanDuration;
use serde::Deserialize;

/// `bans:`, where bans live and what they may never touch.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BanSettings {
    /// `local` (this node) or `redis` (shared by every node through the top-level `redis:`
    /// URL, applied everywhere within a second).
    pub backend: BanBackend,
    /// Networks (CIDRs) never banned, by hand or by a playbook.
    pub never: Vec<String>,
    /// Automatic bans in force at most (a flood of attacking addresses cannot grow the
    /// list without bound); playbooks ban no one beyond it.
    pub max_automatic: usize,
}

impl Default for BanSettings {
    fn default() -> Self {
        BanSettings {
            backend: BanBackend::Local,
            never: Vec::new(),
            max_automatic: 100_000,
        }
    }
}

/// Where bans are kept.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BanBackend {
    /// On this node only.
    #[default]
    Local,
    /// In Redis, shared by every node.
    Redis,
}

/// One automatic response (`responses:` list entry).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResponsePlaybook {
    /// Named in events and in the bans it sets.
    pub name: String,
    /// The security events counted: `waf_block`, `auth_failure`, `lockout`,
    /// `rate_limited`, `validation_failure`.
    pub on: Vec<ResponseEvent>,
    /// Whose events are counted: `client_ip` (default) or `consumer`.
    #[serde(default)]
    pub key: ResponseKey,
    /// Events within `within` that trigger the response.
    pub count: u32,
    /// The counting window, e.g. `1m`.
    pub within: HumanDuration,
    /// How long the first ban lasts, e.g. `10m`.
    pub ban: HumanDuration,
    /// Longer bans for repeats within a day (the last one repeats), e.g. `[1h, 1d]`.
    #[serde(default)]
    pub escalate: Vec<HumanDuration>,
    /// Instead of refusing the key for the ban's duration, hold it to this rate
    /// (e.g. `10/minute`): a tightened rate limit, shared like bans.
    #[serde(default)]
    pub throttle: Option<String>,
}

/// A kind of security event a playbook counts.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResponseEvent {
    /// The WAF refused the request.
    WafBlock,
    /// Missing or wrong credentials.
    AuthFailure,
    /// Refused because of an account or address lockout.
    Lockout,
    /// A rate limit or quota refused the request.
    RateLimited,
    /// The request broke its route's input contract.
    ValidationFailure,
}

/// Whose events a playbook counts.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResponseKey {
    /// The client address (behind trusted proxies, the real one).
    #[default]
    ClientIp,
    /// The authenticated consumer.
    Consumer,
}
