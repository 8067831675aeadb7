//! Routes: what they match and what each one applies.

use super::*;
use serde::Deserialize;

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
    /// Only clients that presented a verified certificate (mTLS) may use this route.
    #[serde(default)]
    pub require_client_cert: bool,
    /// Which client networks may use this route (`network.lists` names).
    #[serde(default)]
    pub network: Option<NetworkPolicy>,
    #[serde(default)]
    pub auth: Option<RouteAuth>,
    #[serde(default)]
    pub authorize: Option<Authorize>,
    /// Limits for this route; absent = the top-level `rate_limit`; `[]` = none.
    #[serde(default)]
    pub rate_limit: Option<Vec<RateLimit>>,
    #[serde(default)]
    pub concurrency: Option<Concurrency>,
    #[serde(default)]
    pub waf: Option<RouteWaf>,
    /// Genuine WebSocket handshakes may upgrade on this route; any other `Upgrade` is
    /// removed from requests everywhere.
    #[serde(default)]
    pub websocket: bool,
    /// Replace upstream 5xx bodies (stack traces, internal addresses) with Rampart's JSON.
    #[serde(default)]
    pub hide_upstream_errors: bool,
    /// Response headers removed before the client sees them (any case), beyond `Server`
    /// and `X-Powered-By`, which are always removed.
    #[serde(default)]
    pub response_headers_deny: Vec<String>,
    /// When set, only these response headers (any case) reach the client, plus those
    /// Rampart itself adds.
    #[serde(default)]
    pub response_headers_allow: Option<Vec<String>>,
}
