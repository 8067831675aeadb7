//! ACME across nodes through Redis: one node orders a certificate at a time (a lock with
//! an owner token and an expiry), the issued certificate is published for the others to
//! pick up, and challenge answers are visible to every node (the ACME server may reach any
//! of them). Without Redis reachable, a node orders on its own: a certificate is worth more
//! than avoiding a duplicate order.

use rampart_redis::redis;
use rampart_redis::RedisHandle;
use std::sync::Arc;
use std::time::Duration;

const PREFIX: &str = "rampart:acme:";
/// How long a challenge answer is kept: longer than any validation takes.
const ANSWER_TTL: u64 = 600;

/// Redis for one process's ACME managers.
pub struct Shared {
    redis: Arc<RedisHandle>,
}

/// The lock came back: who holds it.
pub enum Lock {
    /// This node holds it, with this owner token.
    Held(String),
    /// Another node does.
    Busy,
    /// Redis cannot be reached.
    Unavailable,
}

impl Shared {
    /// Shares through `redis`.
    pub fn new(redis: Arc<RedisHandle>) -> Shared {
        Shared { redis }
    }

    async fn conn(&self) -> Option<redis::aio::ConnectionManager> {
        self.redis.connection().await
    }

    /// Takes the order lock of certificate `id` for `ttl`.
    pub async fn lock(&self, id: &str, ttl: Duration) -> Lock {
        let Some(mut c) = self.conn().await else {
            return Lock::Unavailable;
        };
        let token = format!("{:032x}", rand::random::<u128>());
        let r: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(format!("{PREFIX}{id}:lock"))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut c)
            .await;
        match r {
            Ok(Some(_)) => Lock::Held(token),
            Ok(None) => Lock::Busy,
            Err(_) => Lock::Unavailable,
        }
    }

    /// Releases the lock if this node still holds it (compare and delete in one step).
    pub async fn unlock(&self, id: &str, token: &str) {
        let Some(mut c) = self.conn().await else {
            return;
        };
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
        );
        let _: redis::RedisResult<i64> = script
            .key(format!("{PREFIX}{id}:lock"))
            .arg(token)
            .invoke_async(&mut c)
            .await;
    }

    /// Publishes an issued certificate (chain and key) for the other nodes.
    pub async fn publish(&self, id: &str, chain_pem: &str, key_pem: &str) {
        let Some(mut c) = self.conn().await else {
            return;
        };
        let v = serde_json::json!({"chain": chain_pem, "key": key_pem}).to_string();
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("{PREFIX}{id}:certificate"))
            .arg(v)
            .query_async(&mut c)
            .await;
    }

    /// The certificate another node published, as (chain, key).
    pub async fn published(&self, id: &str) -> Option<(String, String)> {
        let mut c = self.conn().await?;
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("{PREFIX}{id}:certificate"))
            .query_async(&mut c)
            .await
            .ok()?;
        let j: serde_json::Value = serde_json::from_str(&v?).ok()?;
        Some((
            j.get("chain")?.as_str()?.to_string(),
            j.get("key")?.as_str()?.to_string(),
        ))
    }

    async fn put(&self, key: String, value: &str) {
        let Some(mut c) = self.conn().await else {
            return;
        };
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(ANSWER_TTL)
            .query_async(&mut c)
            .await;
    }

    async fn get(&self, key: String) -> Option<String> {
        let mut c = self.conn().await?;
        redis::cmd("GET").arg(key).query_async(&mut c).await.ok()?
    }

    pub(crate) async fn put_http01(&self, token: &str, key_auth: &str) {
        self.put(format!("{PREFIX}http-01:{token}"), key_auth).await
    }

    pub(crate) async fn http01(&self, token: &str) -> Option<String> {
        self.get(format!("{PREFIX}http-01:{token}")).await
    }

    pub(crate) async fn put_tls_alpn01(&self, domain: &str, digest: &[u8]) {
        self.put(
            format!("{PREFIX}tls-alpn-01:{domain}"),
            &hex::encode(digest),
        )
        .await
    }

    pub(crate) async fn tls_alpn01(&self, domain: &str) -> Option<Vec<u8>> {
        hex::decode(self.get(format!("{PREFIX}tls-alpn-01:{domain}")).await?).ok()
    }
}
