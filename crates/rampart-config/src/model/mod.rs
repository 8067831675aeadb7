//! The configuration shape, one module per section. Field names are the YAML contract;
//! extend, never rename.

use serde::Deserialize;
use std::collections::BTreeMap;

mod auth;
mod authz;
mod bans;
mod bots;
mod cache;
mod events;
mod limits;
mod listener;
mod network;
mod requests;
mod route;
mod rules;
mod server;
mod store;
mod tracing;
mod upstream;
mod waf;

pub use auth::*;
pub use authz::*;
pub use bans::*;
pub use bots::*;
pub use cache::*;
pub use events::*;
pub use limits::*;
pub use listener::*;
pub use network::*;
pub use requests::*;
pub use route::*;
pub use rules::*;
pub use server::*;
pub use store::*;
pub use tracing::*;
pub use upstream::*;
pub use waf::*;

/// The whole configuration, as read from the YAML file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Config {
    /// Where clients connect (at least one).
    pub listeners: Vec<Listener>,
    /// The admin listener (metrics and health endpoints).
    #[serde(default)]
    pub admin: Admin,
    /// Backends by name; routes refer to them in `upstream`.
    #[serde(default)]
    pub upstreams: BTreeMap<String, Upstream>,
    /// Which requests go where, and what each route applies.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Request size and timing limits, for every listener.
    #[serde(default)]
    pub limits: Limits,
    /// Where one line per request is written.
    #[serde(default)]
    pub access_log: AccessLog,
    /// Process settings: threads, reload, shutdown, trusted proxies.
    #[serde(default)]
    pub server: ServerSettings,
    /// Who may call: applications or people, with their credentials.
    #[serde(default)]
    pub consumers: Vec<Consumer>,
    /// How credentials are read and checked (shared by all routes).
    #[serde(default)]
    pub auth: AuthSettings,
    /// Routes with `auth` but no `authorize`: `allow` any authenticated consumer, or `deny`.
    #[serde(default)]
    pub default_authorization: DefaultAuthorization,
    /// Cedar policies (and optional entities and schema) that routes use with `cedar: true`.
    #[serde(default)]
    pub cedar: Option<CedarFiles>,
    /// Rate limits for routes that do not set their own.
    #[serde(default)]
    pub rate_limit: Vec<RateLimit>,
    /// Shared limiter state for `backend: redis` (e.g. redis://127.0.0.1:6379).
    #[serde(default)]
    pub redis: Option<String>,
    /// The security event stream (for SIEMs).
    #[serde(default)]
    pub events: EventsConfig,
    /// Spans over OTLP (none without it).
    #[serde(default)]
    pub tracing: Option<TracingConfig>,
    /// The web application firewall: SecLang rules (e.g. the OWASP CRS) for every route
    /// unless a route turns it off.
    #[serde(default)]
    pub waf: Option<WafConfig>,
    /// How requests are made unambiguous before any stage decides on them.
    #[serde(default)]
    pub requests: RequestHygiene,
    /// The network layer: named network lists.
    #[serde(default)]
    pub network: NetworkSettings,
    /// Where bans live (this node or Redis) and who is never banned.
    #[serde(default)]
    pub bans: BanSettings,
    /// Automatic responses: ban a key that keeps producing security events.
    #[serde(default)]
    pub responses: Vec<ResponsePlaybook>,
    /// A config store shared by a fleet (PostgreSQL); without it the file is the config.
    #[serde(default)]
    pub store: Option<StoreSettings>,
    /// Bots: the browser challenge.
    #[serde(default)]
    pub bots: BotSettings,
    /// The response cache's store (routes turn caching on with `cache`).
    #[serde(default)]
    pub cache: CacheSettings,
}
