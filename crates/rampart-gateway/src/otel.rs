//! Spans over OTLP/HTTP (`tracing:` in the config): at the end of each sampled request, one
//! server span (the gateway's, whose id the upstream got as its parent), a child per stage
//! that did work (or refused) and one for the upstream exchange. They are built from what
//! the request recorded, handed to a bounded queue without waiting, and sent in batches by
//! a thread of their own: a slow or absent collector costs the data plane nothing, and what
//! does not fit is dropped and counted.

use crate::ctx::Ctx;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

struct Spans {
    tx: SyncSender<SpanData>,
    sample_ratio: f64,
    scope: InstrumentationScope,
}

static SPANS: OnceLock<Spans> = OnceLock::new();
/// Spans dropped because the queue was full (the collector slow or down).
pub(crate) static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Spans the collector accepted.
pub(crate) static SENT: AtomicU64 = AtomicU64::new(0);

/// Spans sent per request at most, and per OTLP request.
const BATCH: usize = 512;
/// Longest a partial batch waits.
const FLUSH: Duration = Duration::from_millis(500);
/// A stage that took less did no work worth a span (unless it refused the request).
const STAGE_MIN: Duration = Duration::from_micros(20);

/// Starts the exporter thread; once per process, at start (`tracing:` is bound at start).
pub(crate) fn start(cfg: &rampart_config::TracingConfig) -> Result<(), String> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(cfg.otlp_endpoint.clone())
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("OTLP exporter for {}: {e}", cfg.otlp_endpoint))?;
    exporter.set_resource(
        &opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(cfg.service_name.clone())
            .build(),
    );
    let (tx, rx) = sync_channel::<SpanData>(cfg.max_buffer);
    std::thread::Builder::new()
        .name("rampart-otlp".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let mut due = Instant::now() + FLUSH;
            loop {
                let wait = due.saturating_duration_since(Instant::now());
                let done = match rx.recv_timeout(wait) {
                    Ok(s) => {
                        batch.push(s);
                        false
                    }
                    Err(RecvTimeoutError::Timeout) => false,
                    Err(RecvTimeoutError::Disconnected) => true,
                };
                if batch.len() >= BATCH || (Instant::now() >= due) || done {
                    if !batch.is_empty() {
                        let n = batch.len() as u64;
                        // A plain executor: the blocking HTTP client must not run inside a
                        // Tokio runtime.
                        match futures_executor::block_on(
                            exporter.export(std::mem::take(&mut batch)),
                        ) {
                            Ok(()) => {
                                SENT.fetch_add(n, Relaxed);
                            }
                            Err(e) => {
                                DROPPED.fetch_add(n, Relaxed);
                                log::warn!("tracing: {n} spans not sent: {e}");
                            }
                        }
                    }
                    due = Instant::now() + FLUSH;
                }
                if done {
                    return;
                }
            }
        })
        .map_err(|e| format!("tracing thread: {e}"))?;
    let _ = SPANS.set(Spans {
        tx,
        sample_ratio: cfg.sample_ratio,
        scope: InstrumentationScope::builder("rampart")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    });
    Ok(())
}

/// Whether spans are sent at all (`tracing:` configured).
pub(crate) fn enabled() -> bool {
    SPANS.get().is_some()
}

/// Whether a new trace is recorded: decided once, where the trace starts, so that the
/// `traceparent` the upstream gets says the same (a continued trace keeps its caller's
/// flag).
pub(crate) fn sample_new_trace() -> bool {
    match SPANS.get() {
        Some(s) => s.sample_ratio >= 1.0 || fastrand::f64() < s.sample_ratio,
        None => true,
    }
}

/// One stage's run, for its span.
pub(crate) struct StageRun {
    pub(crate) name: &'static str,
    pub(crate) start: Instant,
    pub(crate) took: Duration,
    pub(crate) refused: bool,
}

/// The request's spans, queued for export (nothing when tracing is off or the trace is not
/// sampled).
pub(crate) fn record(ctx: &Ctx, method: &str, path: &str, route: &str, status: u16) {
    let (Some(s), Some(tc)) = (SPANS.get(), ctx.trace.as_ref()) else {
        return;
    };
    if !tc.sampled() {
        return;
    }
    // Instants are monotonic; the spans need wall-clock times: anchor them on now.
    let (now, wall) = (Instant::now(), SystemTime::now());
    let at = |i: Instant| wall - now.saturating_duration_since(i);
    let trace_id = TraceId::from_bytes(tc.trace_id);
    let own = SpanId::from_bytes(tc.span_id);
    let cx = |id: SpanId| {
        SpanContext::new(
            trace_id,
            id,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    };
    let span = |id: SpanId,
                parent: SpanId,
                remote: bool,
                kind: SpanKind,
                name: String,
                (start, end): (SystemTime, SystemTime),
                attributes: Vec<KeyValue>,
                status: Status| SpanData {
        span_context: cx(id),
        parent_span_id: parent,
        parent_span_is_remote: remote,
        span_kind: kind,
        name: name.into(),
        start_time: start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: s.scope.clone(),
    };
    let mut out = Vec::new();
    let mut attrs = vec![
        KeyValue::new("http.request.method", method.to_string()),
        KeyValue::new("url.path", path.to_string()),
        KeyValue::new("http.response.status_code", i64::from(status)),
        KeyValue::new("rampart.request_id", ctx.request_id.clone()),
    ];
    if route != "-" {
        attrs.push(KeyValue::new("http.route", route.to_string()));
    }
    if let Some(ip) = ctx.client_ip {
        attrs.push(KeyValue::new("client.address", ip.to_string()));
    }
    if let Some((stage, reason)) = ctx.refused {
        attrs.push(KeyValue::new("rampart.refused_by", stage));
        attrs.push(KeyValue::new("rampart.reason", reason));
    }
    let failed = |code: u16| {
        if code >= 500 {
            Status::error(format!("status {code}"))
        } else {
            Status::Unset
        }
    };
    out.push(span(
        own,
        tc.parent_id.map_or(SpanId::INVALID, SpanId::from_bytes),
        tc.parent_id.is_some(),
        SpanKind::Server,
        format!("{method} {route}"),
        (at(ctx.start), wall),
        attrs,
        failed(status),
    ));
    for st in &ctx.stage_runs {
        if st.took < STAGE_MIN && !st.refused {
            continue;
        }
        let mut attrs = Vec::new();
        if st.refused {
            attrs.push(KeyValue::new("rampart.refused", true));
        }
        if st.name == "waf" {
            if let Some(w) = ctx.waf.as_deref() {
                attrs.push(KeyValue::new(
                    "rampart.waf.rules_matched",
                    w.tx.matched.len() as i64,
                ));
                attrs.push(KeyValue::new(
                    "rampart.waf.anomaly_score",
                    w.tx.anomaly_score(),
                ));
            }
        }
        out.push(span(
            SpanId::from_bytes(fastrand::u64(1..).to_be_bytes()),
            own,
            false,
            SpanKind::Internal,
            st.name.to_string(),
            (at(st.start), at(st.start + st.took)),
            attrs,
            Status::Unset,
        ));
    }
    if let (Some(start), Some(took)) = (ctx.upstream.start, ctx.upstream.time) {
        let mut attrs = vec![KeyValue::new(
            "rampart.upstream.attempts",
            ctx.upstream.tried.len() as i64,
        )];
        if let Some(p) = &ctx.upstream.pool {
            attrs.push(KeyValue::new("rampart.upstream", p.name.clone()));
        }
        if let Some(t) = ctx.upstream.target {
            attrs.push(KeyValue::new("server.address", t.ip().to_string()));
            attrs.push(KeyValue::new("server.port", i64::from(t.port())));
        }
        out.push(span(
            SpanId::from_bytes(fastrand::u64(1..).to_be_bytes()),
            own,
            false,
            SpanKind::Client,
            "upstream".to_string(),
            (at(start), at(start + took)),
            attrs,
            Status::Unset,
        ));
    }
    for d in out.into_iter().take(BATCH) {
        match s.tx.try_send(d) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                DROPPED.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}
