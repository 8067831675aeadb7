//! OAuth 2.0 token introspection (RFC 7662) for opaque tokens, with a cache keyed by the
//! token's hash: active results until `exp` (bounded by `max_ttl`), inactive ones briefly.

use crate::{secrets, Error};
use rampart_config::Introspection;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Calls the introspection endpoint and caches its answers.
pub struct Introspector {
    /// The `auth.introspection` config.
    pub cfg: Introspection,
    http: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

/// Until when, and the claims if the token was active.
type Cached = (Instant, Option<Value>);

const INACTIVE_TTL: Duration = Duration::from_secs(30);
const MAX_CACHE: usize = 100_000;

impl Introspector {
    /// No I/O: the endpoint is called per token.
    pub fn new(cfg: &Introspection) -> Result<Introspector, Error> {
        Ok(Introspector {
            cfg: cfg.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(Error::HttpClient)?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The claims of an active token, from the cache or the endpoint; a reason otherwise.
    pub async fn introspect(&self, token: &str) -> Result<Value, &'static str> {
        let key = secrets::sha256(token.as_bytes());
        {
            let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((until, v)) = c.get(&key) {
                if Instant::now() < *until {
                    return v.clone().ok_or("token inactive");
                }
            }
        }
        let resp = self
            .http
            .post(&self.cfg.url)
            .basic_auth(&self.cfg.client_id, Some(&self.cfg.client_secret))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|_| "introspection endpoint unreachable")?;
        if !resp.status().is_success() {
            return Err("introspection endpoint refused");
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|_| "introspection answer malformed")?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let active =
            v["active"].as_bool() == Some(true) && v["exp"].as_u64().is_none_or(|exp| exp > now);
        let ttl = if active {
            let until_exp = v["exp"]
                .as_u64()
                .map(|e| Duration::from_secs(e.saturating_sub(now)))
                .unwrap_or(self.cfg.max_ttl.0);
            until_exp.min(self.cfg.max_ttl.0)
        } else {
            INACTIVE_TTL.min(self.cfg.max_ttl.0)
        };
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() > MAX_CACHE {
            let now = Instant::now();
            c.retain(|_, (t, _)| *t > now);
        }
        c.insert(key, (Instant::now() + ttl, active.then(|| v.clone())));
        if active {
            Ok(v)
        } else {
            Err("token inactive")
        }
    }
}
