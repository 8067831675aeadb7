//! A Redis handle for state shared across gateway nodes (rate limits, lockout counters).
//!
//! Built without I/O, so a config can be checked and compiled without a reachable Redis;
//! the connection is made on first use. Requests read it without a lock: the connection
//! manager is set once, reconnects by itself afterwards, and its clones share one
//! multiplexed connection. After a failed connect, callers fail fast for a second instead
//! of each waiting for its own timeout, and fall back to what their engine does without
//! Redis.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod error;

pub use error::Error;
pub use redis;

/// A lazily connected, shareable Redis connection.
pub struct RedisHandle {
    client: redis::Client,
    /// What the owner uses it for, in log lines (`rate limit`, `lockout`).
    purpose: &'static str,
    timeout: Duration,
    conn: OnceLock<redis::aio::ConnectionManager>,
    /// Held only while connecting, so one task connects and the others wait for it.
    connecting: tokio::sync::Mutex<()>,
    /// No new attempt before this many milliseconds after `epoch`.
    retry_at_ms: AtomicU64,
    epoch: Instant,
}

/// How long callers fail fast after a failed connect.
const BACKOFF: Duration = Duration::from_secs(1);

impl RedisHandle {
    /// Parse the URL; no connection yet. `timeout` bounds connecting and each response.
    pub fn new(url: &str, purpose: &'static str, timeout: Duration) -> Result<RedisHandle, Error> {
        let client = redis::Client::open(url).map_err(|source| Error::Url {
            url: url.to_string(),
            source,
        })?;
        Ok(RedisHandle {
            client,
            purpose,
            timeout,
            conn: OnceLock::new(),
            connecting: tokio::sync::Mutex::new(()),
            retry_at_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// The client, for what a shared connection cannot do (a pub/sub subscription).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    fn backing_off(&self) -> bool {
        (self.epoch.elapsed().as_millis() as u64) < self.retry_at_ms.load(Ordering::Relaxed)
    }

    /// The connection, or `None` while Redis cannot be reached.
    pub async fn connection(&self) -> Option<redis::aio::ConnectionManager> {
        if let Some(c) = self.conn.get() {
            return Some(c.clone());
        }
        if self.backing_off() {
            return None;
        }
        let _one_connects = self.connecting.lock().await;
        if let Some(c) = self.conn.get() {
            return Some(c.clone());
        }
        if self.backing_off() {
            return None;
        }
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(0);
        match tokio::time::timeout(
            self.timeout * 3,
            redis::aio::ConnectionManager::new_with_config(self.client.clone(), cfg),
        )
        .await
        {
            Ok(Ok(c)) => Some(self.conn.get_or_init(|| c).clone()),
            _ => {
                let until = self.epoch.elapsed() + BACKOFF;
                self.retry_at_ms
                    .store(until.as_millis() as u64, Ordering::Relaxed);
                log::warn!("{}: redis unreachable", self.purpose);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_are_refused_without_io() {
        let e = RedisHandle::new("not a url", "test", Duration::from_millis(100))
            .err()
            .expect("refused");
        assert!(e.to_string().starts_with("redis not a url: "), "{e}");
        assert!(
            RedisHandle::new("redis://127.0.0.1:1", "test", Duration::from_millis(100)).is_ok()
        );
    }

    /// Nothing listens on port 1: the first caller waits for the timeout, the next ones
    /// fail fast during the backoff.
    #[tokio::test]
    async fn unreachable_redis_fails_fast_after_one_attempt() {
        let h =
            RedisHandle::new("redis://127.0.0.1:1", "test", Duration::from_millis(100)).unwrap();
        assert!(h.connection().await.is_none());
        let t = Instant::now();
        for _ in 0..100 {
            assert!(h.connection().await.is_none());
        }
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
    }

    /// The real Redis of the test machine (127.0.0.1:6379): one connection, shared.
    #[tokio::test]
    async fn connects_once_and_shares_the_connection() {
        let h =
            RedisHandle::new("redis://127.0.0.1:6379", "test", Duration::from_millis(500)).unwrap();
        let mut a = h.connection().await.expect("redis on 127.0.0.1:6379");
        let pong: String = redis::cmd("PING").query_async(&mut a).await.unwrap();
        assert_eq!(pong, "PONG");
        let mut b = h.connection().await.unwrap();
        let pong: String = redis::cmd("PING").query_async(&mut b).await.unwrap();
        assert_eq!(pong, "PONG");
    }
}
