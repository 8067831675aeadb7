//! Routes: what they match and what each one applies.

use super::*;
use serde::Deserialize;

/// One route: which requests it matches (host, path, method) and what applies to them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Route {
    /// Unique name, used in logs, metrics and events.
    pub name: String,
    /// Host names (`api.example.test`, or `*.example.test` for one more label); empty = any host.
    /// An exact host beats a wildcard, which beats no `hosts`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path prefixes matched on segment boundaries (the longest wins), or `=/exact` paths;
    /// written in canonical form.
    pub paths: Vec<String>,
    /// Upper-case methods allowed (`GET`, `POST`, ...); empty = any. Others get 405.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Name of the upstream (under `upstreams`) requests are sent to.
    pub upstream: String,
    /// Remove the matched path prefix before forwarding (`/api/x` via `/api` becomes `/x`); not
    /// with `=` paths.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Only clients that presented a verified certificate (mTLS) may use this route.
    #[serde(default)]
    pub require_client_cert: bool,
    /// Which client networks may use this route (`network.lists` names).
    #[serde(default)]
    pub network: Option<NetworkPolicy>,
    /// Who may call: the credentials this route accepts.
    #[serde(default)]
    pub auth: Option<RouteAuth>,
    /// What authenticated callers may do here (needs `auth`).
    #[serde(default)]
    pub authorize: Option<Authorize>,
    /// Limits for this route; absent = the top-level `rate_limit`; `[]` = none.
    #[serde(default)]
    pub rate_limit: Option<Vec<RateLimit>>,
    /// Limit on requests in flight on this route.
    #[serde(default)]
    pub concurrency: Option<Concurrency>,
    /// This route's WAF settings (needs a top-level `waf`).
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
