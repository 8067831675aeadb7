//! Why a Redis handle could not be made.

/// The errors of `rampart-redis`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not parse or names an unsupported scheme.
    #[error("redis {url}: {source}")]
    Url {
        /// The URL as configured.
        url: String,
        /// What the Redis client said.
        #[source]
        source: redis::RedisError,
    },
}
