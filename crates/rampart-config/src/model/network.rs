//! The network layer: who the client is behind proxies, and which networks may connect.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `network:`, the first stages a request meets.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct NetworkSettings {
    /// Proxies (CIDRs) allowed to say who their client is. Default: none, so the TCP peer
    /// is the client and forwarding headers are never read.
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies fill in: `x-forwarded-for` (default) or `forwarded`
    /// (RFC 7239).
    pub client_ip_header: ClientIpHeader,
    /// A forwarding header from a trusted proxy that cannot be read: `reject` (400,
    /// default) or `ignore` (the nearest address that could be verified is the client).
    pub malformed_client_ip: MalformedClientIp,
    /// Named lists of networks, used by listeners' and routes' `network:` policies.
    pub lists: BTreeMap<String, NetworkList>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MalformedClientIp {
    #[default]
    Reject,
    Ignore,
}

/// A named list: networks written in the config and files of networks (one per line,
/// `#` comments), re-read when they change.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkList {
    /// IPv4 and IPv6 addresses or CIDRs.
    pub cidrs: Vec<String>,
    /// Files of addresses or CIDRs.
    pub files: Vec<String>,
}

/// Which networks a listener or route admits.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct NetworkPolicy {
    /// When set, only clients in one of these lists get through.
    pub allow_only: Vec<String>,
    /// Clients in any of these lists are refused (even if an `allow_only` list has them).
    pub deny: Vec<String>,
    /// How a refused client is answered.
    pub action: NetworkAction,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NetworkAction {
    /// 403 with Rampart's JSON error.
    #[default]
    Forbid,
    /// Close the connection without an answer.
    Close,
}
