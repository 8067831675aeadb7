//! Rampart's security event stream: one JSON object per request on which a security stage
//! decided something. Sinks: a JSON-lines file (on disk within 100 ms), stdout, syslog
//! (RFC 5424 over UDP or TCP, optionally CEF-formatted), an HTTP webhook with batching,
//! retry with backoff and a bounded buffer, and SIEM connectors (Splunk HEC, Elastic `_bulk`,
//! NATS JetStream) behind a durable disk buffer ([`siem`]). Emitting never blocks the data
//! plane: when a sink's queue is full the event is dropped for that sink and counted.

mod error;
pub mod redact;
pub mod siem;
pub mod spool;

pub use error::Error;

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// One matched WAF rule (filled in by the WAF stage).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleMatch {
    /// The rule's id.
    pub id: u64,
    /// The rule's `msg`.
    pub msg: String,
    /// The rule's `logdata` (secret parameters redacted; a credential replaced by a note).
    pub data: String,
    /// The rule's severity, e.g. `CRITICAL`.
    pub severity: String,
    /// The rule's tags.
    pub tags: Vec<String>,
}

/// One security decision on one request, as written to every sink.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// Unique across nodes and restarts, so a SIEM can de-duplicate what was delivered
    /// twice (set when emitted).
    pub id: String,
    /// When, as RFC 3339 with milliseconds (UTC).
    pub ts: String,
    /// The request's id (`X-Request-Id`).
    pub request_id: String,
    /// The W3C trace the request belongs to (32 hex digits), when it went through the
    /// request pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The client address (behind trusted proxies: the one they named).
    pub client_ip: Option<String>,
    /// The request method.
    pub method: String,
    /// The request's host.
    pub host: String,
    /// The request target, with secret query parameters redacted.
    pub uri: String,
    /// The matched route's name, if any.
    pub route: Option<String>,
    /// The stage that decided: `framing`, `authenticate`, `authorize`, `rate_limit`, `waf`...
    pub stage: String,
    /// `block`, `detect` or `allow`.
    pub action: String,
    /// The status answered.
    pub status: u16,
    /// Why (never a credential or a payload).
    pub reason: String,
    /// The authenticated consumer's id, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// The WAF's inbound anomaly score, when the WAF ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly_score: Option<i64>,
    /// WAF rules that matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleMatch>,
    /// Cedar policy ids that determined the decision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// How the request broke its route's API contract (every violation, even when the
    /// client was shown none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<ContractViolation>,
    /// The client's bot verdict (`good_bot`, `bad_bot`, `automated`, `human`, `unknown`),
    /// when it was decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// The client's TLS fingerprint (JA4), when it spoke TLS to Rampart itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// Who made an admin change (a token's name; never the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What an admin change changed, by resource (`~ routes/api`); never a value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

/// One way a request broke its API contract.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContractViolation {
    /// Where (`/query/limit`, `/body/items/0`).
    pub pointer: String,
    /// The keyword that failed.
    pub keyword: String,
    /// What was expected.
    pub message: String,
}

impl Event {
    /// The current time in the format of `ts`.
    pub fn now_ts() -> String {
        humantime::format_rfc3339_millis(SystemTime::now()).to_string()
    }

    /// An event about no request in particular (stage `events`, or the caller's): the
    /// action and reason, the request fields empty.
    pub fn notice(action: &str, reason: String) -> Event {
        Event {
            id: String::new(),
            ts: Event::now_ts(),
            request_id: String::new(),
            trace_id: None,
            client_ip: None,
            method: String::new(),
            host: String::new(),
            uri: String::new(),
            route: None,
            stage: "events".into(),
            action: action.into(),
            status: 0,
            reason,
            consumer: None,
            anomaly_score: None,
            rules: Vec::new(),
            policies: Vec::new(),
            violations: Vec::new(),
            bot: None,
            ja4: None,
            actor: None,
            changes: Vec::new(),
        }
    }
}

/// Event ids: a random prefix drawn at start, then a counter, so ids never repeat across
/// restarts or nodes.
pub struct IdGen {
    prefix: String,
    next: std::sync::Mutex<u64>,
}

impl IdGen {
    fn new() -> IdGen {
        IdGen {
            prefix: format!("{:016x}", rand::random::<u64>()),
            next: std::sync::Mutex::new(0),
        }
    }

    /// The next id.
    pub fn next(&self) -> String {
        self.with_next(|id| id)
    }

    /// Runs `f` with the next id while no other id is handed out, so what `f` queues is
    /// queued in id order.
    fn with_next<T>(&self, f: impl FnOnce(String) -> T) -> T {
        let mut n = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let id = format!("{}-{}", self.prefix, *n);
        *n += 1;
        f(id)
    }
}

/// Where events go.
#[derive(Debug, Clone, Default)]
pub struct SinkConfig {
    /// A JSON-lines file, appended to.
    pub file: Option<String>,
    /// JSON lines on stdout.
    pub stdout: bool,
    /// A syslog collector.
    pub syslog: Option<SyslogConfig>,
    /// An HTTP endpoint.
    pub webhook: Option<WebhookConfig>,
    /// SIEM connectors with a durable buffer each.
    pub durable: Vec<siem::DurableConfig>,
    /// How many of the latest events to keep in memory (for a dashboard); 0 keeps none.
    pub recent: usize,
}

/// The syslog sink.
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// `IP:port` of the collector.
    pub address: String,
    /// TCP with octet-counting framing (RFC 6587) instead of UDP datagrams.
    pub tcp: bool,
    /// Messages in ArcSight CEF instead of JSON.
    pub cef: bool,
}

/// The webhook sink.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The endpoint events are POSTed to, as JSON arrays.
    pub url: String,
    /// Events per POST at most.
    pub batch_size: usize,
    /// Longest a partial batch waits.
    pub flush_interval: Duration,
    /// Events queued while the endpoint is slow or down; beyond, they are dropped.
    pub max_buffer: usize,
    /// Retries of a failed POST, with backoff, before the batch is dropped.
    pub max_retries: u32,
}

/// Counters exposed as metrics by the gateway.
#[derive(Default)]
pub struct Stats {
    /// Events emitted (each counted once, whatever the number of sinks).
    pub emitted: AtomicU64,
    /// Events dropped: a full sink queue, or a webhook batch that failed (counted per sink).
    pub dropped: AtomicU64,
    /// Webhook batches given up after their retries.
    pub webhook_failed_batches: AtomicU64,
}

/// One sink's queue: the network sinks' tasks read tokio channels, the durable sinks'
/// writer threads a standard one (they also wake on a timer to sync).
enum Queue {
    Task(mpsc::Sender<Arc<Event>>),
    Thread(std::sync::mpsc::SyncSender<Arc<Event>>),
}

impl Queue {
    fn offer(&self, e: Arc<Event>) -> bool {
        match self {
            Queue::Task(t) => t.try_send(e).is_ok(),
            Queue::Thread(t) => t.try_send(e).is_ok(),
        }
    }
}

/// The handle the data plane emits to.
pub struct Events {
    sinks: Vec<Queue>,
    recent: Option<(
        usize,
        std::sync::Mutex<std::collections::VecDeque<Arc<Event>>>,
    )>,
    ids: Arc<IdGen>,
    /// Counters for the metrics endpoint.
    pub stats: Arc<Stats>,
    /// The durable sinks' counters.
    pub durable: Vec<Arc<siem::SinkStats>>,
}

const QUEUE: usize = 10_000;

impl Events {
    /// Start the sink tasks on `rt`.
    pub fn start(cfg: &SinkConfig, rt: &tokio::runtime::Handle) -> Result<Events, Error> {
        let stats = Arc::new(Stats::default());
        let ids = Arc::new(IdGen::new());
        let mut sinks = Vec::new();
        let mut durable = Vec::new();
        let mut notes = Vec::new();
        // Durable sinks first: a buffer directory that cannot be used refuses the start
        // before any other sink's thread runs.
        for d in &cfg.durable {
            let started = siem::start(d, ids.clone(), rt)?;
            sinks.push(Queue::Thread(started.tx));
            durable.push(started.stats);
            notes.extend(
                started
                    .notes
                    .into_iter()
                    .map(|n| format!("{} buffer repaired: {n}", d.name)),
            );
        }
        if let Some(path) = &cfg.file {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| Error::File {
                    path: path.clone(),
                    source,
                })?;
            let (tx, rx) = mpsc::channel(QUEUE);
            std::thread::Builder::new()
                .name("rampart-events-file".into())
                .spawn(move || write_lines(Box::new(f), rx))
                .map_err(|source| Error::Thread { source })?;
            sinks.push(Queue::Task(tx));
        }
        if cfg.stdout {
            let (tx, rx) = mpsc::channel(QUEUE);
            std::thread::Builder::new()
                .name("rampart-events-stdout".into())
                .spawn(move || write_lines(Box::new(std::io::stdout()), rx))
                .map_err(|source| Error::Thread { source })?;
            sinks.push(Queue::Task(tx));
        }
        if let Some(s) = &cfg.syslog {
            let (tx, rx) = mpsc::channel(QUEUE);
            rt.spawn(syslog_task(s.clone(), rx));
            sinks.push(Queue::Task(tx));
        }
        if let Some(w) = &cfg.webhook {
            let (tx, rx) = mpsc::channel(w.max_buffer.max(1));
            rt.spawn(webhook_task(w.clone(), rx, stats.clone()));
            sinks.push(Queue::Task(tx));
        }
        let events = Events {
            sinks,
            recent: (cfg.recent > 0).then(|| (cfg.recent, Default::default())),
            ids,
            stats,
            durable,
        };
        for n in notes {
            log::warn!("events: {n}");
            events.emit(Event::notice("recover", n));
        }
        Ok(events)
    }

    /// A handle with no sinks: emitting is a no-op.
    pub fn disabled() -> Events {
        Events {
            sinks: Vec::new(),
            recent: None,
            ids: Arc::new(IdGen::new()),
            stats: Arc::new(Stats::default()),
            durable: Vec::new(),
        }
    }

    /// Whether any sink is configured (callers skip building events otherwise).
    pub fn enabled(&self) -> bool {
        !self.sinks.is_empty() || self.recent.is_some()
    }

    /// The latest events kept in memory, oldest first.
    pub fn recent(&self) -> Vec<Arc<Event>> {
        self.recent.as_ref().map_or_else(Vec::new, |(_, r)| {
            r.lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect()
        })
    }

    /// Never blocks: a full sink drops the event and counts it.
    pub fn emit(&self, mut e: Event) {
        if !self.enabled() {
            return;
        }
        self.stats.emitted.fetch_add(1, Ordering::Relaxed);
        // Ids and queueing in one step: every sink sees the events in id order, which is
        // the order a SIEM can check (per sink, ids of one run only grow).
        self.ids.with_next(|id| {
            e.id = id;
            let e = Arc::new(e);
            for s in &self.sinks {
                if !s.offer(e.clone()) {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Some((cap, r)) = &self.recent {
                let mut r = r.lock().unwrap_or_else(|p| p.into_inner());
                if r.len() == *cap {
                    r.pop_front();
                }
                r.push_back(e);
            }
        });
    }
}

/// Lines are flushed as soon as the queue is empty, so an event is on disk promptly.
fn write_lines(out: Box<dyn std::io::Write + Send>, mut rx: mpsc::Receiver<Arc<Event>>) {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(out);
    while let Some(e) = rx.blocking_recv() {
        let mut write = |e: &Event| {
            if let Ok(line) = serde_json::to_string(e) {
                let _ = w.write_all(line.as_bytes());
                let _ = w.write_all(b"\n");
            }
        };
        write(&e);
        while let Ok(more) = rx.try_recv() {
            write(&more);
        }
        let _ = w.flush();
    }
}

fn severity(e: &Event) -> u8 {
    // RFC 5424: 4 warning for blocks, 5 notice for detections/other decisions.
    if e.action == "block" {
        4
    } else {
        5
    }
}

fn cef_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace(['\n', '\r'], " ")
}

/// An RFC 5424 line; the message is the JSON event, or a CEF record.
pub fn syslog_line(e: &Event, cef: bool) -> String {
    let pri = 10 * 8 + severity(e); // facility 10: security/authorization (authpriv)
    let msg = if cef {
        format!(
            "CEF:0|Rampart|Rampart|{}|{}|{}|{}|rt={} src={} requestMethod={} request={} cs1Label=requestId cs1={} cs2Label=route cs2={} cs3Label=traceId cs3={} outcome={} reason={}",
            env!("CARGO_PKG_VERSION"),
            cef_escape(&e.stage).replace('|', "/"),
            cef_escape(&e.reason).replace('|', "/"),
            if e.action == "block" { 7 } else { 4 },
            cef_escape(&e.ts),
            cef_escape(e.client_ip.as_deref().unwrap_or("-")),
            cef_escape(&e.method),
            cef_escape(&e.uri),
            cef_escape(&e.request_id),
            cef_escape(e.route.as_deref().unwrap_or("-")),
            cef_escape(e.trace_id.as_deref().unwrap_or("-")),
            e.status,
            cef_escape(&e.reason),
        )
    } else {
        serde_json::to_string(e).unwrap_or_default()
    };
    format!("<{pri}>1 {} - rampart - security - {msg}", e.ts)
}

async fn syslog_task(cfg: SyslogConfig, mut rx: mpsc::Receiver<Arc<Event>>) {
    use tokio::io::AsyncWriteExt;
    let mut tcp: Option<tokio::net::TcpStream> = None;
    let udp = if cfg.tcp {
        None
    } else {
        match tokio::net::UdpSocket::bind("0.0.0.0:0").await {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("events: syslog socket: {e}");
                return;
            }
        }
    };
    while let Some(e) = rx.recv().await {
        let line = syslog_line(&e, cfg.cef);
        if let Some(u) = &udp {
            let _ = u.send_to(line.as_bytes(), &cfg.address).await;
            continue;
        }
        // TCP: octet-counted framing (RFC 6587), reconnecting on failure.
        let framed = format!("{} {line}", line.len());
        for _ in 0..2 {
            if tcp.is_none() {
                tcp = tokio::net::TcpStream::connect(&cfg.address).await.ok();
            }
            let ok = match tcp.as_mut() {
                Some(s) => s.write_all(framed.as_bytes()).await.is_ok(),
                None => false,
            };
            if ok {
                break;
            }
            tcp = None;
        }
    }
}

async fn webhook_task(cfg: WebhookConfig, mut rx: mpsc::Receiver<Arc<Event>>, stats: Arc<Stats>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            log::error!("events: webhook client: {e}");
            return;
        }
    };
    let mut batch: Vec<Arc<Event>> = Vec::new();
    loop {
        let deadline = tokio::time::sleep(cfg.flush_interval);
        tokio::pin!(deadline);
        let closed = loop {
            tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => {
                        batch.push(e);
                        if batch.len() >= cfg.batch_size {
                            break false;
                        }
                    }
                    None => break true,
                },
                _ = &mut deadline => break false,
            }
        };
        if !batch.is_empty() {
            let body: Vec<&Event> = batch.iter().map(|e| e.as_ref()).collect();
            let mut delay = Duration::from_millis(100);
            let mut sent = false;
            for _ in 0..=cfg.max_retries {
                match client.post(&cfg.url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        sent = true;
                        break;
                    }
                    _ => {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
            if !sent {
                stats.webhook_failed_batches.fetch_add(1, Ordering::Relaxed);
                stats
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            batch.clear();
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> Event {
        Event {
            id: "x-1".into(),
            ts: "2026-11-24T10:00:00.000Z".into(),
            request_id: "r1".into(),
            trace_id: None,
            client_ip: Some("192.0.2.1".into()),
            method: "GET".into(),
            host: "h".into(),
            uri: "/a=b|c".into(),
            route: Some("r".into()),
            stage: "authorize".into(),
            action: "block".into(),
            status: 403,
            reason: "group x is denied".into(),
            consumer: Some("bob".into()),
            anomaly_score: None,
            rules: Vec::new(),
            policies: vec!["p1".into()],
            violations: Vec::new(),
            bot: None,
            ja4: None,
            actor: None,
            changes: Vec::new(),
        }
    }

    #[test]
    fn syslog_formats() {
        let l = syslog_line(&ev(), false);
        assert!(
            l.starts_with("<84>1 2026-11-24T10:00:00.000Z - rampart - security - {"),
            "{l}"
        );
        let c = syslog_line(&ev(), true);
        assert!(c.contains("CEF:0|Rampart|Rampart|"), "{c}");
        assert!(c.contains("request=/a\\=b|c"), "{c}");
    }

    #[tokio::test]
    async fn unopenable_file_names_the_path() {
        let cfg = SinkConfig {
            file: Some("/nonexistent-rampart-dir/e.jsonl".into()),
            ..Default::default()
        };
        let e = Events::start(&cfg, &tokio::runtime::Handle::current())
            .err()
            .expect("refused");
        assert!(matches!(e, Error::File { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("events file /nonexistent-rampart-dir/e.jsonl: "),
            "{e}"
        );
    }

    #[tokio::test]
    async fn file_sink_is_prompt() {
        let dir = std::env::temp_dir().join(format!("rampart-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("e.jsonl");
        let ev_cfg = SinkConfig {
            file: Some(path.display().to_string()),
            ..Default::default()
        };
        let events = Events::start(&ev_cfg, &tokio::runtime::Handle::current()).unwrap();
        let start = std::time::Instant::now();
        events.emit(ev());
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains("\"request_id\":\"r1\"") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_millis(100),
                "not on disk within 100 ms"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
