//! Request limits, the access log and process settings.

use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Limits {
    #[serde(default = "default_body")]
    pub max_request_body: ByteSize,
    #[serde(default = "default_header_bytes")]
    pub max_header_bytes: ByteSize,
    #[serde(default = "default_header_timeout")]
    pub request_header_timeout: HumanDuration,
    /// The whole request body must arrive within this time (408 otherwise).
    #[serde(default = "default_body_timeout")]
    pub request_body_timeout: HumanDuration,
    /// After the first 5 s of a body, slower than this many bytes per second is cut (408).
    #[serde(default = "default_body_rate")]
    pub min_request_body_rate: ByteSize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_body: default_body(),
            max_header_bytes: default_header_bytes(),
            request_header_timeout: default_header_timeout(),
            request_body_timeout: default_body_timeout(),
            min_request_body_rate: default_body_rate(),
        }
    }
}

pub(crate) fn default_body() -> ByteSize {
    ByteSize(1 << 20)
}
pub(crate) fn default_header_bytes() -> ByteSize {
    ByteSize(16 << 10)
}
pub(crate) fn default_header_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
pub(crate) fn default_body_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
pub(crate) fn default_body_rate() -> ByteSize {
    ByteSize(1024)
}

/// `stdout` (default), `off`, or a file path.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AccessLog {
    #[serde(default = "default_log_target")]
    pub target: String,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            target: default_log_target(),
        }
    }
}

pub(crate) fn default_log_target() -> String {
    "stdout".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ServerSettings {
    /// Worker threads of the data plane.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// How often the config file is checked for changes (hot reload); `0s` disables the watch.
    #[serde(default = "default_watch")]
    pub watch_interval: HumanDuration,
    /// Time given to in-flight requests at shutdown.
    #[serde(default = "default_grace")]
    pub grace_period: HumanDuration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            threads: default_threads(),
            watch_interval: default_watch(),
            grace_period: default_grace(),
        }
    }
}

pub(crate) fn default_threads() -> usize {
    2
}
pub(crate) fn default_watch() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(500))
}
pub(crate) fn default_grace() -> HumanDuration {
    HumanDuration::from_secs(5)
}
