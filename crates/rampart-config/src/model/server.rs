//! Request limits, the access log and process settings.

use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;

/// `limits:`, request size and timing limits applied to every request.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Limits {
    /// Largest request body (default 1 MiB); a larger declared or received body gets 413.
    pub max_request_body: ByteSize,
    /// Largest request header block (default 16 KiB, at least 1 KiB); larger gets 431.
    pub max_header_bytes: ByteSize,
    /// A request's whole header block must arrive within this time (default 10 s, against
    /// slowloris); an idle kept-alive connection is closed after it too.
    pub request_header_timeout: HumanDuration,
    /// The whole request body must arrive within this time (default 30 s; 408 otherwise).
    pub request_body_timeout: HumanDuration,
    /// After the first 5 s of a body, slower than this many bytes per second is cut (408;
    /// default 1 KiB).
    pub min_request_body_rate: ByteSize,
    /// Against slow readers: a write of the response that cannot complete at this many
    /// bytes per second (never in under 1 s) cuts the connection (HTTP/1; default 1 KiB;
    /// 0 leaves only `response_write_timeout`).
    pub min_response_rate: ByteSize,
    /// Longest one write of a response may wait for the client to read (HTTP/1 and
    /// HTTP/2; default 60 s, nginx's `send_timeout`).
    pub response_write_timeout: HumanDuration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_body: ByteSize(1 << 20),
            max_header_bytes: ByteSize(16 << 10),
            request_header_timeout: HumanDuration::from_secs(10),
            request_body_timeout: HumanDuration::from_secs(30),
            min_request_body_rate: ByteSize(1024),
            min_response_rate: ByteSize(1024),
            response_write_timeout: HumanDuration::from_secs(60),
        }
    }
}

/// `stdout` (default), `off`, or a file path.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct AccessLog {
    /// `stdout` (default), `off`, or a file path (appended to).
    pub target: String,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            target: "stdout".into(),
        }
    }
}

/// `server:`, process settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct ServerSettings {
    /// Worker threads of the data plane (default 2).
    pub threads: usize,
    /// How often the config file, network list files and TLS certificate files are checked
    /// for changes (hot reload; default 500 ms); `0s` disables the watch.
    pub watch_interval: HumanDuration,
    /// Time given to in-flight requests at shutdown (default 5 s).
    pub grace_period: HumanDuration,
    /// Staple OCSP responses to the TLS listeners' certificates whose issuer names an
    /// OCSP responder (default on): fetched, checked, refreshed halfway to `nextUpdate`.
    pub ocsp_stapling: bool,
    /// Proxies (CIDRs) allowed to say who their client is. Default: none, so the TCP peer
    /// is the client and forwarding headers are never read.
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies fill in: `x-forwarded-for` (default) or `forwarded`
    /// (RFC 7239).
    pub client_ip_header: super::ClientIpHeader,
    /// A forwarding header from a trusted proxy that cannot be read: `reject` (400,
    /// default) or `ignore` (the nearest address that could be verified is the client).
    pub malformed_client_ip: super::MalformedClientIp,
    /// Load shedding when more requests are in progress than the gateway should hold.
    pub overload: Overload,
    /// Open connections on all listeners together at most (the admin listener aside);
    /// more are refused at once.
    pub max_connections: Option<u32>,
}

/// `server.overload`: requests in progress (in flight) are counted across listeners; over
/// the limits, the least likely legitimate are answered 503 (`Retry-After: 1`) before any
/// work is done for them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Overload {
    /// Requests in progress at most (default 10,000); beyond, every request but the
    /// `allowlist`'s is shed.
    pub max_in_flight: usize,
    /// From this many in progress (default 80% of `max_in_flight`), requests that present
    /// no credential (no Authorization, API key, client certificate or challenge pass) and
    /// come from outside the `allowlist` are shed first.
    pub shed_anonymous_at: Option<usize>,
    /// Network lists whose clients are shed last: never for being anonymous, and only past
    /// twice `max_in_flight`.
    pub allowlist: Vec<String>,
    /// Measured queueing: how late the proxy threads' timers fire (a 10 ms timer, smoothed).
    /// Over this the gateway sheds as over `shed_anonymous_at`, over twice as halfway to
    /// `max_in_flight`, over four times as over `max_in_flight`. Off by default.
    pub max_queue_delay: Option<HumanDuration>,
}

impl Default for Overload {
    fn default() -> Self {
        Overload {
            max_in_flight: 10_000,
            shed_anonymous_at: None,
            allowlist: Vec::new(),
            max_queue_delay: None,
        }
    }
}

impl Overload {
    /// Where anonymous requests start being shed.
    pub fn anonymous_limit(&self) -> usize {
        self.shed_anonymous_at.unwrap_or(self.max_in_flight / 5 * 4)
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            threads: 2,
            watch_interval: HumanDuration(std::time::Duration::from_millis(500)),
            grace_period: HumanDuration::from_secs(5),
            ocsp_stapling: true,
            trusted_proxies: Vec::new(),
            client_ip_header: Default::default(),
            malformed_client_ip: Default::default(),
            overload: Overload::default(),
            max_connections: None,
        }
    }
}
