//! Prometheus metrics, one registry per process, rendered on the admin listener.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::OnceLock;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub upstream_healthy: IntGaugeVec,
    pub upstream_failures: IntCounterVec,
    pub upstream_limit: IntGaugeVec,
    pub rejected: IntCounterVec,
    pub reloads: IntCounterVec,
    pub tls_reloads: IntCounterVec,
    /// ACME issuances, renewals, failures… by listener and action.
    pub acme_events: IntCounterVec,
    /// Days left of each ACME listener's certificate, computed at render from `acme_expiry`.
    acme_days: prometheus::GaugeVec,
    /// Per listener: when its ACME certificate expires (`None`: a placeholder is served).
    pub acme_expiry: std::sync::Mutex<Vec<(String, Option<std::time::SystemTime>)>>,
    pub ratelimit_rejected: IntCounterVec,
    pub ratelimit_backend_errors: IntCounterVec,
    pub access_log_dropped: IntCounter,
    events: std::sync::OnceLock<std::sync::Arc<rampart_events::Stats>>,
    events_emitted: prometheus::IntGauge,
    events_dropped: prometheus::IntGauge,
    sinks: std::sync::OnceLock<Vec<std::sync::Arc<rampart_events::siem::SinkStats>>>,
    sink_counters: IntGaugeVec,
    in_flight: prometheus::IntGauge,
    queue_delay: prometheus::Gauge,
    spans_sent: prometheus::IntGauge,
    spans_dropped: prometheus::IntGauge,
    pub blocked: IntCounterVec,
    pub waf_blocked: IntCounterVec,
    pub waf_matches: IntCounterVec,
    pub waf_anomaly: HistogramVec,
    /// One counter per verdict, in `BotVerdict::ALL` order: resolved once, not per request.
    pub bot_verdicts: [IntCounter; 5],
    /// Cache answers by route and result (hit, stale, miss, revalidated, …).
    cache_results: IntCounterVec,
    /// The store: bytes, entries, stored, evicted, purged (copied at render).
    cache_store: IntGaugeVec,
}

const SINK_COUNTERS: [&str; 6] = [
    "delivered",
    "lost",
    "rejected",
    "retries",
    "pending",
    "bytes",
];

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "rampart_requests_total",
                "Requests answered, by route and status",
            ),
            &["route", "status"],
        )
        .unwrap();
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "rampart_request_duration_seconds",
                "Time from request start to the end of the response, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .unwrap();
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "rampart_upstream_response_seconds",
                "Time from choosing a target to its response headers, by upstream",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["upstream"],
        )
        .unwrap();
        let upstream_healthy = IntGaugeVec::new(
            Opts::new(
                "rampart_upstream_target_healthy",
                "1 when the target passes health checks and is not ejected",
            ),
            &["upstream", "target"],
        )
        .unwrap();
        let upstream_failures = IntCounterVec::new(
            Opts::new(
                "rampart_upstream_failures_total",
                "Failed attempts to reach an upstream target, by kind",
            ),
            &["upstream", "target", "kind"],
        )
        .unwrap();
        let rejected = IntCounterVec::new(
            Opts::new(
                "rampart_rejected_total",
                "Requests refused by the gateway itself, by reason",
            ),
            &["reason"],
        )
        .unwrap();
        let reloads = IntCounterVec::new(
            Opts::new("rampart_config_reloads_total", "Config reloads, by result"),
            &["result"],
        )
        .unwrap();
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "rampart_tls_certificate_reloads_total",
                "Certificate rotations, by result",
            ),
            &["result"],
        )
        .unwrap();
        let acme_events = IntCounterVec::new(
            Opts::new(
                "rampart_acme_events_total",
                "ACME certificate events (issue, renew, pickup, load, placeholder, fail), by listener",
            ),
            &["listener", "action"],
        )
        .unwrap();
        let acme_days = prometheus::GaugeVec::new(
            Opts::new(
                "rampart_acme_certificate_expiry_days",
                "Days until the ACME certificate of a listener expires (0 while a placeholder is served)",
            ),
            &["listener"],
        )
        .unwrap();
        let ratelimit_rejected = IntCounterVec::new(
            Opts::new(
                "rampart_ratelimit_rejected_total",
                "Requests rejected by a rate limit or quota, by route and key type",
            ),
            &["route", "key"],
        )
        .unwrap();
        let ratelimit_backend_errors = IntCounterVec::new(
            Opts::new(
                "rampart_ratelimit_backend_errors_total",
                "Shared limiter (Redis) failures handled by on_backend_error, by route",
            ),
            &["route"],
        )
        .unwrap();
        let access_log_dropped = IntCounter::new(
            "rampart_access_log_dropped_total",
            "Access log lines dropped because the writer could not keep up",
        )
        .unwrap();
        let events_emitted =
            prometheus::IntGauge::new("rampart_security_events_total", "Security events emitted")
                .unwrap();
        let events_dropped = prometheus::IntGauge::new(
            "rampart_security_events_dropped_total",
            "Security events dropped by a full or failing sink",
        )
        .unwrap();
        // One family for the SIEM sinks' counters, told apart by `what`, so a dashboard
        // plots delivered / lost / rejected / retries / pending / bytes from one series set.
        let sink_counters = IntGaugeVec::new(
            Opts::new(
                "rampart_events_sink",
                "SIEM sink counters: what=delivered|lost|rejected|retries (totals), \
                 pending (events buffered, not yet delivered), bytes (buffer size on disk)",
            ),
            &["sink", "what"],
        )
        .unwrap();
        let queue_delay = prometheus::Gauge::new(
            "rampart_queue_delay_seconds",
            "How late the proxy threads' timers fire (smoothed): time work waits to run",
        )
        .unwrap();
        let in_flight = prometheus::IntGauge::new(
            "rampart_in_flight_requests",
            "Requests in progress (server.overload sheds past its thresholds)",
        )
        .unwrap();
        let spans_sent = prometheus::IntGauge::new(
            "rampart_spans_sent_total",
            "Trace spans the OTLP collector accepted",
        )
        .unwrap();
        let spans_dropped = prometheus::IntGauge::new(
            "rampart_spans_dropped_total",
            "Trace spans dropped: the queue full or the collector failing",
        )
        .unwrap();
        let blocked = IntCounterVec::new(
            Opts::new(
                "rampart_blocked_requests_total",
                "Requests blocked by a security stage, by route and stage",
            ),
            &["route", "stage"],
        )
        .unwrap();
        let waf_blocked = IntCounterVec::new(
            Opts::new(
                "rampart_waf_blocked_requests_total",
                "Requests (or responses) the WAF blocked, by route and the rule that blocked",
            ),
            &["route", "rule"],
        )
        .unwrap();
        let waf_matches = IntCounterVec::new(
            Opts::new(
                "rampart_waf_rule_matches_total",
                "WAF rule matches (blocking or not), by route and rule",
            ),
            &["route", "rule"],
        )
        .unwrap();
        let waf_anomaly = HistogramVec::new(
            HistogramOpts::new(
                "rampart_waf_anomaly_score",
                "CRS anomaly score of requests the WAF inspected, by route",
            )
            .buckets(vec![
                0.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0,
            ]),
            &["route"],
        )
        .unwrap();
        let bot_verdicts = IntCounterVec::new(
            Opts::new(
                "rampart_bot_verdicts_total",
                "Requests by bot verdict (good_bot, bad_bot, automated, human, unknown)",
            ),
            &["verdict"],
        )
        .unwrap();
        let bot_counters =
            rampart_config::BotVerdict::ALL.map(|v| bot_verdicts.with_label_values(&[v.name()]));
        let cache_results = IntCounterVec::new(
            Opts::new(
                "rampart_cache_requests_total",
                "Requests on caching routes, by route and what the cache did (hit, stale, miss, expired, revalidated, uncacheable, bypass)",
            ),
            &["route", "result"],
        )
        .unwrap();
        let cache_store = IntGaugeVec::new(
            Opts::new(
                "rampart_cache_store",
                "The response cache's store: bytes and entries held, entries stored, evicted and purged since start",
            ),
            &["stat"],
        )
        .unwrap();
        let upstream_limit = IntGaugeVec::new(
            Opts::new(
                "rampart_upstream_concurrency_limit",
                "The adaptive concurrency limit of each upstream that has one",
            ),
            &["upstream"],
        )
        .unwrap();
        for c in [
            Box::new(upstream_limit.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(cache_results.clone()),
            Box::new(cache_store.clone()),
            Box::new(bot_verdicts.clone()),
            Box::new(waf_blocked.clone()),
            Box::new(waf_matches.clone()),
            Box::new(waf_anomaly.clone()),
            Box::new(requests.clone()),
            Box::new(duration.clone()),
            Box::new(upstream_duration.clone()),
            Box::new(upstream_healthy.clone()),
            Box::new(upstream_failures.clone()),
            Box::new(rejected.clone()),
            Box::new(reloads.clone()),
            Box::new(tls_reloads.clone()),
            Box::new(acme_events.clone()),
            Box::new(acme_days.clone()),
            Box::new(ratelimit_rejected.clone()),
            Box::new(ratelimit_backend_errors.clone()),
            Box::new(access_log_dropped.clone()),
            Box::new(events_emitted.clone()),
            Box::new(events_dropped.clone()),
            Box::new(sink_counters.clone()),
            Box::new(in_flight.clone()),
            Box::new(queue_delay.clone()),
            Box::new(spans_sent.clone()),
            Box::new(spans_dropped.clone()),
            Box::new(blocked.clone()),
        ] {
            registry.register(c).unwrap();
        }
        // Both series exist from the start so dashboards and alerts see zeros, not gaps.
        reloads.with_label_values(&["ok"]);
        reloads.with_label_values(&["failed"]);
        tls_reloads.with_label_values(&["ok"]);
        tls_reloads.with_label_values(&["failed"]);
        Metrics {
            registry,
            requests,
            duration,
            upstream_duration,
            upstream_healthy,
            upstream_failures,
            upstream_limit,
            rejected,
            reloads,
            tls_reloads,
            acme_events,
            acme_days,
            acme_expiry: Default::default(),
            ratelimit_rejected,
            ratelimit_backend_errors,
            access_log_dropped,
            events: std::sync::OnceLock::new(),
            events_emitted,
            events_dropped,
            sinks: std::sync::OnceLock::new(),
            sink_counters,
            in_flight,
            queue_delay,
            spans_sent,
            spans_dropped,
            blocked,
            waf_blocked,
            waf_matches,
            waf_anomaly,
            bot_verdicts: bot_counters,
            cache_results,
            cache_store,
        }
    }

    /// Event-stream counters live in rampart-events; they are copied into gauges at render.
    pub fn watch_events(&self, events: &rampart_events::Events) {
        let _ = self.events.set(events.stats.clone());
        let _ = self.sinks.set(events.durable.clone());
        for s in &events.durable {
            for what in SINK_COUNTERS {
                self.sink_counters
                    .with_label_values(&[s.name.as_str(), what]);
            }
        }
    }

    /// Counts what the cache did for one request.
    pub fn cache_result(&self, route: &str, result: &str) {
        self.cache_results.with_label_values(&[route, result]).inc();
    }

    pub fn render(&self) -> Vec<u8> {
        if let Some(store) = crate::cache::store() {
            use std::sync::atomic::Ordering::Relaxed;
            let s = &store.stats;
            for (stat, v) in [
                ("bytes", store.bytes() as u64),
                ("entries", store.len() as u64),
                ("stored", s.stored.load(Relaxed)),
                ("evicted", s.evicted.load(Relaxed)),
                ("purged", s.purged.load(Relaxed)),
            ] {
                self.cache_store.with_label_values(&[stat]).set(v as i64);
            }
        }
        if let Some(s) = self.events.get() {
            use std::sync::atomic::Ordering::Relaxed;
            self.events_emitted.set(s.emitted.load(Relaxed) as i64);
            self.events_dropped.set(s.dropped.load(Relaxed) as i64);
        }
        self.in_flight
            .set(crate::stages::overload::in_flight() as i64);
        for (listener, not_after) in self
            .acme_expiry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let days = not_after
                .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
                .map_or(0.0, |d| d.as_secs_f64() / 86400.0);
            self.acme_days
                .with_label_values(&[listener.as_str()])
                .set(days);
        }
        self.queue_delay
            .set(crate::stages::overload::queue_delay().as_secs_f64());
        for s in self.sinks.get().into_iter().flatten() {
            use std::sync::atomic::Ordering::Relaxed;
            let values = [
                &s.delivered,
                &s.lost,
                &s.rejected,
                &s.retries,
                &s.pending,
                &s.bytes,
            ];
            for (what, v) in SINK_COUNTERS.iter().zip(values) {
                self.sink_counters
                    .with_label_values(&[s.name.as_str(), what])
                    .set(v.load(Relaxed) as i64);
            }
        }
        {
            use std::sync::atomic::Ordering::Relaxed;
            self.spans_sent.set(crate::otel::SENT.load(Relaxed) as i64);
            self.spans_dropped
                .set(crate::otel::DROPPED.load(Relaxed) as i64);
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding to a Vec cannot fail");
        out
    }
}

pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}
