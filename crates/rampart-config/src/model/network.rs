//! The network layer: who the client is behind proxies, and which networks may connect.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `network:`, what the first stages a request meets work with. (Who the client is behind
/// proxies is `server.trusted_proxies`.)
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct NetworkSettings {
    /// MaxMind DB files for lists by country and autonomous system (re-read on change).
    pub geoip: GeoIp,
    /// Named lists of networks, used by listeners' and routes' `network:` policies.
    pub lists: BTreeMap<String, NetworkList>,
}

/// The header trusted proxies fill in (`server.client_ip_header`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), its `for=` parameters.
    Forwarded,
}

/// What a malformed forwarding header gets (`server.malformed_client_ip`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MalformedClientIp {
    /// Answer 400.
    #[default]
    Reject,
    /// Take the nearest address that could be verified as the client.
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
    /// Countries (ISO 3166-1 alpha-2 codes like `FR`), located with `geoip.country_db`.
    pub countries: Vec<String>,
    /// Autonomous system numbers, from `geoip.asn_db`.
    pub asns: Vec<u32>,
}

/// `network.geoip`: the databases country and ASN lists look addresses up in.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GeoIp {
    /// A MaxMind DB with countries (GeoLite2-Country, or the same format).
    pub country_db: Option<String>,
    /// A MaxMind DB with autonomous system numbers (GeoLite2-ASN, or the same format).
    pub asn_db: Option<String>,
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

/// How a client refused by a network policy is answered.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NetworkAction {
    /// 403 with Rampart's JSON error.
    #[default]
    Forbid,
    /// Close the connection without an answer.
    Close,
}
