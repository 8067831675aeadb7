//! Distributed tracing: where spans are sent (OTLP over HTTP) and how many.

use serde::Deserialize;

/// `tracing:`, spans for each request (one per request, one per stage that did work and
/// one for the upstream) sent over OTLP/HTTP in protobuf. Without it no span is recorded;
/// the W3C trace context is propagated either way.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP traces endpoint, e.g.
    /// `http://127.0.0.1:4318/v1/traces`.
    pub otlp_endpoint: String,
    /// Share of new traces recorded, 0 to 1 (default 1). A trace continued from a trusted
    /// caller follows the caller's sampled flag.
    #[serde(default = "one")]
    pub sample_ratio: f64,
    /// `service.name` of the spans (default `rampart`).
    #[serde(default = "service")]
    pub service_name: String,
    /// Spans held while the collector is slow or down; beyond, they are dropped and
    /// counted (default 10 000).
    #[serde(default = "buffer")]
    pub max_buffer: usize,
}

fn one() -> f64 {
    1.0
}

fn service() -> String {
    "rampart".into()
}

fn buffer() -> usize {
    10_000
}
