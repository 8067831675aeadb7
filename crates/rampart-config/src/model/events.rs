//! The security event stream and its sinks, and what it redacts.

use crate::units::{ByteSize, HumanDuration};
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
    /// Send the events to a Splunk HTTP Event Collector, through a durable buffer.
    pub splunk: Option<SplunkSink>,
    /// Send the events to Elastic or OpenSearch (`_bulk`, ECS field names), through a
    /// durable buffer.
    pub elastic: Option<ElasticSink>,
    /// Publish the events to NATS JetStream, through a durable buffer.
    pub nats: Option<NatsSink>,
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
            splunk: None,
            elastic: None,
            nats: None,
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

/// A SIEM sink's durable buffer on local disk: events survive an outage of the SIEM and a
/// restart of the gateway, and are delivered at least once, in order.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BufferConfig {
    /// The directory (one per sink; created 0700).
    pub dir: String,
    /// The most the buffer holds (default 256MiB).
    #[serde(default = "default_spool_size")]
    pub max_size: ByteSize,
    /// When writes are synced to disk: `always`, `never` (the OS decides) or a duration
    /// (default `1s`). A crash of the gateway loses nothing written either way; this is
    /// about a crash of the machine.
    #[serde(default)]
    pub fsync: FsyncPolicy,
    /// What a full buffer drops (default `drop_oldest`); the loss is counted and reported
    /// as an event in the stream.
    #[serde(default)]
    pub on_full: OnFullPolicy,
}

/// `buffer.fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every write.
    Always,
    /// Left to the operating system.
    Never,
    /// At most this long after a write.
    Every(std::time::Duration),
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Every(std::time::Duration::from_secs(1))
    }
}

impl<'de> Deserialize<'de> for FsyncPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => humantime::parse_duration(&s)
                .ok()
                .filter(|d| !d.is_zero())
                .map(FsyncPolicy::Every)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "fsync {s:?}: expected always, never or a duration such as 1s"
                    ))
                }),
        }
    }
}

/// `buffer.on_full`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnFullPolicy {
    /// The oldest undelivered events make room.
    #[default]
    DropOldest,
    /// New events are dropped until there is room.
    DropNewest,
}

/// `events.splunk`: Splunk HTTP Event Collector (HEC JSON events).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SplunkSink {
    /// The collector's endpoint, e.g. `https://splunk:8088/services/collector/event`.
    pub url: String,
    /// The HEC token (`${ENV}` keeps it out of the file).
    pub token: String,
    /// The index, when not the token's default.
    #[serde(default)]
    pub index: Option<String>,
    /// The sourcetype (default `rampart:security`).
    #[serde(default = "default_sourcetype")]
    pub sourcetype: String,
    /// Longest one delivery may take before it is given up and retried (default 10 s).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// The durable buffer.
    pub buffer: BufferConfig,
    /// Events per request at most (default 100).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Longest a partial batch waits before it is sent (default 1 s).
    #[serde(default = "default_flush")]
    pub flush_interval: HumanDuration,
}

/// `events.elastic`: Elastic or OpenSearch through `_bulk`, documents in ECS field names.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ElasticSink {
    /// The cluster's base URL, e.g. `https://es:9200`.
    pub url: String,
    /// The index or data stream (default `rampart-events`).
    #[serde(default = "default_index")]
    pub index: String,
    /// An API key (sent as `Authorization: ApiKey ...`).
    #[serde(default)]
    pub api_key: Option<String>,
    /// Basic authentication, with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic authentication's password.
    #[serde(default)]
    pub password: Option<String>,
    /// Longest one delivery may take before it is given up and retried (default 10 s).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// The durable buffer.
    pub buffer: BufferConfig,
    /// Events per request at most (default 100).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Longest a partial batch waits before it is sent (default 1 s).
    #[serde(default = "default_flush")]
    pub flush_interval: HumanDuration,
}

/// `events.nats`: NATS JetStream; each event's id is its `Nats-Msg-Id`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NatsSink {
    /// The server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The subject (default `rampart.events`).
    #[serde(default = "default_subject")]
    pub subject: String,
    /// A JetStream stream created for the subject when it does not exist yet.
    #[serde(default)]
    pub stream: Option<String>,
    /// An authentication token.
    #[serde(default)]
    pub token: Option<String>,
    /// Longest one delivery may take before it is given up and retried (default 10 s).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// The durable buffer.
    pub buffer: BufferConfig,
    /// Events per request at most (default 100).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Longest a partial batch waits before it is sent (default 1 s).
    #[serde(default = "default_flush")]
    pub flush_interval: HumanDuration,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_spool_size() -> ByteSize {
    ByteSize(256 << 20)
}
fn default_sourcetype() -> String {
    "rampart:security".into()
}
fn default_index() -> String {
    "rampart-events".into()
}
fn default_subject() -> String {
    "rampart.events".into()
}
