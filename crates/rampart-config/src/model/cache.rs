//! The response cache: the process-wide store, and each route's use of it.

use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;

/// The store every route's cache shares (one per process; changing it needs a restart).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Bytes of bodies and headers kept; the least recently used entries go first.
    pub max_size: ByteSize,
    /// How long requests for an entry being fetched wait for it (one upstream fetch per
    /// entry at a time) before they go upstream themselves.
    pub lock_timeout: HumanDuration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_size: ByteSize(128 << 20),
            lock_timeout: HumanDuration::from_secs(3),
        }
    }
}

/// A route's response cache.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteCache {
    /// How long a response stays fresh when the upstream gives no `Cache-Control` or
    /// `Expires` (200, 203, 204, 300, 301, 308, 404, 410 only).
    #[serde(default = "default_cache_ttl")]
    pub ttl: HumanDuration,
    /// Larger bodies are passed through and not stored.
    #[serde(default = "default_cache_max_body")]
    pub max_body: ByteSize,
    /// Request headers that always select a variant, beside the response's `Vary`.
    #[serde(default)]
    pub vary_on: Vec<String>,
    /// What besides the route, the upstream and the upstream's method identifies an entry:
    /// `host`, `path`, `query`, `header:<name>`. Default: host, path, query.
    #[serde(default = "default_cache_key")]
    pub key: Vec<String>,
    /// Methods answered from the cache (HEAD is answered from a GET's entry).
    #[serde(default = "default_cache_methods")]
    pub methods: Vec<String>,
    /// Store answers to authenticated requests: each consumer gets its own entries unless
    /// the upstream marks the answer `Cache-Control: public`. Off: they are never stored.
    #[serde(default)]
    pub authenticated: bool,
    /// Defaults for `stale-while-revalidate` / `stale-if-error` when the upstream sets none.
    #[serde(default)]
    pub stale_while_revalidate: Option<HumanDuration>,
    /// How long an entry may be served when the upstream fails after it went stale.
    #[serde(default)]
    pub stale_if_error: Option<HumanDuration>,
}

fn default_cache_ttl() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_cache_max_body() -> ByteSize {
    ByteSize(1 << 20)
}

fn default_cache_key() -> Vec<String> {
    vec!["host".into(), "path".into(), "query".into()]
}

fn default_cache_methods() -> Vec<String> {
    vec!["GET".into(), "HEAD".into()]
}
