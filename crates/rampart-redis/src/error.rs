//! Why a Redis handle could not be made.

/// The errors of `rampart-redis`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not parse or names an unsupported scheme.
    #[error("redis {url}: {source}")]
    Url {
        url: String,
        #[source]
        source: redis::RedisError,
    },
}
