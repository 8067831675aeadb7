//! The security event stream and its sinks, and what it redacts.

use crate::units::HumanDuration;
use serde::Deserialize;

/// `events:`, the security event stream (one JSON object per decision) and its sinks.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct EventsConfig {
    /// JSON lines, one per request on which a security stage decided something.
    pub file: Option<String>,
    /// Also write the events to stdout as JSON lines.
    pub stdout: bool,
    /// Send the events to a syslog collector.
    pub syslog: Option<SyslogSink>,
    /// POST the events to an HTTP endpoint.
    pub webhook: Option<WebhookSink>,
    /// Query parameters whose values are replaced by `REDACTED` in events and logs (any case,
    /// also when their names are percent-encoded), beyond the API-key parameter.
    pub redact_query: Vec<String>,
    /// Headers whose values never appear in events (a WAF match on them is reported
    /// without its data), beyond the API-key header.
    pub redact_headers: Vec<String>,
}

// The redaction lists apply whether or not an `events` section is written: the access log
// redacts early-refused requests' URIs with them too.
impl Default for EventsConfig {
    fn default() -> Self {
        let list = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        EventsConfig {
            file: None,
            stdout: false,
            syslog: None,
            webhook: None,
            redact_query: list(&[
                "access_token",
                "id_token",
                "refresh_token",
                "token",
                "api_key",
                "apikey",
                "key",
                "password",
                "passwd",
                "secret",
                "client_secret",
                "code",
                "session",
                "sig",
                "signature",
            ]),
            redact_headers: list(&[
                "authorization",
                "proxy-authorization",
                "cookie",
                "set-cookie",
                "x-api-key",
            ]),
        }
    }
}

/// Events sent to a syslog collector as RFC 5424 messages.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SyslogSink {
    /// `IP:port` of the collector.
    pub address: String,
    /// `udp` (default) or `tcp` (RFC 6587 octet counting).
    #[serde(default)]
    pub protocol: SyslogProtocol,
    /// `json` (default) or `cef`.
    #[serde(default)]
    pub format: SyslogFormat,
}

/// How syslog messages travel.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyslogProtocol {
    /// One datagram per message.
    #[default]
    Udp,
    /// A stream, each message framed by its length (RFC 6587 octet counting).
    Tcp,
}

/// What a syslog message carries.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    /// The event as JSON.
    #[default]
    Json,
    /// ArcSight Common Event Format.
    Cef,
}

/// Events POSTed to an HTTP endpoint as JSON arrays, in batches.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WebhookSink {
    /// The `http(s)://` endpoint.
    pub url: String,
    /// Events per POST at most (default 100).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Longest a partial batch waits before it is sent (default 1 s).
    #[serde(default = "default_flush")]
    pub flush_interval: HumanDuration,
    /// Events held while the webhook is slow or down; beyond, they are dropped and counted
    /// (default 10 000).
    #[serde(default = "default_buffer")]
    pub max_buffer: usize,
    /// Retries of a failed POST, with backoff, before the batch is dropped and counted (default 3).
    #[serde(default = "default_retries_webhook")]
    pub max_retries: u32,
}

// `url` is required, so `WebhookSink` has no `Default`: its defaulted keys need these.
fn default_batch() -> usize {
    100
}
fn default_flush() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_buffer() -> usize {
    10_000
}
fn default_retries_webhook() -> u32 {
    3
}
