//! The security event stream and its sinks, and what it redacts.

use crate::units::HumanDuration;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct EventsConfig {
    /// JSON lines, one per request on which a security stage decided something.
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub stdout: bool,
    #[serde(default)]
    pub syslog: Option<SyslogSink>,
    #[serde(default)]
    pub webhook: Option<WebhookSink>,
    /// Query parameters whose values are replaced by `REDACTED` in events and logs (any case,
    /// also when their names are percent-encoded), beyond the API-key parameter.
    #[serde(default = "default_redact")]
    pub redact_query: Vec<String>,
    /// Headers whose values never appear in events (a WAF match on them is reported
    /// without its data), beyond the API-key header.
    #[serde(default = "default_redact_headers")]
    pub redact_headers: Vec<String>,
}

// Not a container `#[serde(default)]` with these in `impl Default`: the derived `Default`
// (empty lists) is what a config without an `events` section gets, while a written section
// gets these lists. Kept as it was; unifying them would redact more when `events` is absent.
fn default_redact_headers() -> Vec<String> {
    [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn default_redact() -> Vec<String> {
    [
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
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SyslogSink {
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

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WebhookSink {
    pub url: String,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_flush")]
    pub flush_interval: HumanDuration,
    /// Events held while the webhook is slow or down; beyond, they are dropped and counted.
    #[serde(default = "default_buffer")]
    pub max_buffer: usize,
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
