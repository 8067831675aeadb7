//! Why the event sinks could not be started.

/// The errors of `rampart-events`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The events file cannot be opened for appending.
    #[error("events file {path}: {source}")]
    File {
        /// The configured `events.file`.
        path: String,
        /// Why it cannot be opened.
        #[source]
        source: std::io::Error,
    },
    /// A sink's writer thread cannot be started.
    #[error("{source}")]
    Thread {
        /// Why the thread cannot be spawned.
        #[source]
        source: std::io::Error,
    },
    /// A durable sink's buffer directory cannot be used.
    #[error("events.{sink}.buffer: {reason}")]
    Spool {
        /// The sink.
        sink: String,
        /// Why.
        reason: String,
    },
}
