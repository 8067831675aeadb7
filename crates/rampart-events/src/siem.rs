//! SIEM connectors that lose nothing: Splunk HTTP Event Collector, Elastic/OpenSearch
//! `_bulk` with ECS field names, and NATS JetStream. Each sink writes every event to its own
//! durable buffer ([`crate::spool`]) first; a sender task delivers from the buffer in order,
//! in batches, retrying with backoff for as long as the SIEM is down, and moves the cursor
//! only once the SIEM acknowledged. Delivery is at least once; every event carries a unique
//! `id` (also the Elastic `_id` and the JetStream `Nats-Msg-Id`) for de-duplication.

use crate::spool::{Batch, Spool};
use crate::{Event, IdGen};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When the buffer is made durable against a power loss (a process crash loses nothing
/// that was written, whatever the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every write.
    Always,
    /// At most this long after a write.
    Every(Duration),
    /// Left to the operating system.
    Never,
}

/// What a full buffer gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// The oldest undelivered events.
    DropOldest,
    /// The events that do not fit.
    DropNewest,
}

/// Where a durable sink delivers.
#[derive(Debug, Clone)]
pub enum Target {
    /// Splunk HTTP Event Collector.
    Splunk {
        /// The collector's event endpoint (`https://splunk:8088/services/collector/event`).
        url: String,
        /// The HEC token.
        token: String,
        /// The index, when not the token's default.
        index: Option<String>,
        /// The sourcetype.
        sourcetype: String,
    },
    /// Elastic or OpenSearch `_bulk`.
    Elastic {
        /// The cluster's base URL.
        url: String,
        /// The index or data stream.
        index: String,
        /// `Authorization` header value, if any (`ApiKey ...` or `Basic ...`).
        authorization: Option<String>,
    },
    /// NATS JetStream.
    Nats {
        /// `nats://host:port`.
        url: String,
        /// The subject events are published on.
        subject: String,
        /// A stream created for the subject when it does not exist.
        stream: Option<String>,
        /// An authentication token.
        token: Option<String>,
    },
}

/// One durable sink.
#[derive(Debug, Clone)]
pub struct DurableConfig {
    /// Its name in metrics and logs (`splunk`, `elastic`, `nats`).
    pub name: String,
    /// Where events go.
    pub target: Target,
    /// The buffer's directory (one per sink).
    pub dir: PathBuf,
    /// The buffer's bound in bytes.
    pub max_bytes: u64,
    /// When the buffer is synced to disk.
    pub fsync: Fsync,
    /// What a full buffer drops.
    pub on_full: OnFull,
    /// Events per request to the SIEM at most.
    pub batch_size: usize,
    /// Longest a partial batch waits for more events.
    pub flush_interval: Duration,
    /// Longest one delivery may take before it is retried.
    pub timeout: Duration,
}

/// A durable sink's counters (metrics, labelled by `name`).
#[derive(Debug, Default)]
pub struct SinkStats {
    /// The sink's name.
    pub name: String,
    /// Events the SIEM acknowledged.
    pub delivered: AtomicU64,
    /// Events dropped: the buffer was full or its disk failed.
    pub lost: AtomicU64,
    /// Events the SIEM refused for good (set aside in `rejected.jsonl`).
    pub rejected: AtomicU64,
    /// Deliveries that failed and were retried.
    pub retries: AtomicU64,
    /// Events buffered, not yet delivered.
    pub pending: AtomicU64,
    /// Bytes the buffer holds.
    pub bytes: AtomicU64,
}

struct Shared {
    spool: Mutex<Spool>,
    wake: tokio::sync::Notify,
    stats: Arc<SinkStats>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Spool> {
        // A panic while holding the lock leaves a spool whose state is still on disk.
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, sp: &Spool) {
        self.stats.pending.store(sp.pending(), Ordering::Relaxed);
        self.stats.bytes.store(sp.bytes(), Ordering::Relaxed);
    }
}

/// A running durable sink: the channel its writer thread reads, and its counters.
pub(crate) struct Started {
    pub tx: std::sync::mpsc::SyncSender<Arc<Event>>,
    pub stats: Arc<SinkStats>,
    /// What opening the buffer repaired.
    pub notes: Vec<String>,
}

pub(crate) fn start(
    cfg: &DurableConfig,
    ids: Arc<IdGen>,
    rt: &tokio::runtime::Handle,
) -> Result<Started, crate::Error> {
    let (spool, notes) =
        Spool::open(&cfg.dir, cfg.max_bytes).map_err(|reason| crate::Error::Spool {
            sink: cfg.name.clone(),
            reason,
        })?;
    let stats = Arc::new(SinkStats {
        name: cfg.name.clone(),
        ..Default::default()
    });
    let shared = Arc::new(Shared {
        spool: Mutex::new(spool),
        wake: tokio::sync::Notify::new(),
        stats: stats.clone(),
    });
    shared.publish(&shared.lock());
    let (tx, rx) = std::sync::mpsc::sync_channel(crate::QUEUE);
    let writer = shared.clone();
    let wcfg = cfg.clone();
    std::thread::Builder::new()
        .name(format!("rampart-spool-{}", cfg.name))
        .spawn(move || write_loop(rx, writer, wcfg, ids))
        .map_err(|source| crate::Error::Thread { source })?;
    rt.spawn(send_loop(shared, cfg.clone()));
    Ok(Started { tx, stats, notes })
}

/// Room kept for the notice that reports a loss.
const NOTICE_ROOM: usize = 1024;

fn loss_notice(ids: &IdGen, sink: &str, lost: u64, on_full: OnFull) -> Event {
    let policy = match on_full {
        OnFull::DropOldest => "the oldest were dropped",
        OnFull::DropNewest => "the newest were dropped",
    };
    let mut e = Event::notice(
        "drop",
        format!(
            "the {sink} sink lost {lost} events: its buffer was full or its disk failed; {policy}"
        ),
    );
    e.id = ids.next();
    e
}

fn write_loop(
    rx: std::sync::mpsc::Receiver<Arc<Event>>,
    shared: Arc<Shared>,
    cfg: DurableConfig,
    ids: Arc<IdGen>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut unreported = 0u64;
    let mut last_sync = Instant::now();
    // Wakes when idle too: to sync on time, and to report a loss once room was made.
    let idle = match cfg.fsync {
        Fsync::Every(d) => d.min(Duration::from_secs(1)),
        _ => Duration::from_secs(1),
    };
    loop {
        let first = match rx.recv_timeout(idle) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                let _ = shared.lock().sync();
                return;
            }
        };
        let mut batch: Vec<Arc<Event>> = first.into_iter().collect();
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let mut sp = shared.lock();
        let mut lost = 0u64;
        for e in &batch {
            let Ok(bytes) = serde_json::to_vec(e.as_ref()) else {
                continue;
            };
            if !sp.fits(bytes.len() + NOTICE_ROOM) && cfg.on_full == OnFull::DropOldest {
                let n = sp.drop_oldest(bytes.len() + NOTICE_ROOM);
                lost += n;
                unreported += n;
            }
            // The loss is reported in the stream itself, where the events would have been.
            if unreported > 0 && sp.fits(bytes.len() + NOTICE_ROOM) {
                let notice = loss_notice(&ids, &cfg.name, unreported, cfg.on_full);
                log::warn!("events: {}", notice.reason);
                if let Ok(n) = serde_json::to_vec(&notice) {
                    if sp.append(&n).is_ok() {
                        unreported = 0;
                    }
                }
            }
            let written = sp.fits(bytes.len()) && {
                match sp.append(&bytes) {
                    Ok(()) => true,
                    Err(e) => {
                        log::error!("events: {} buffer: {e}", cfg.name);
                        false
                    }
                }
            };
            if !written {
                lost += 1;
                unreported += 1;
            }
        }
        shared.stats.lost.fetch_add(lost, Ordering::Relaxed);
        if unreported > 0 && sp.fits(NOTICE_ROOM) {
            let notice = loss_notice(&ids, &cfg.name, unreported, cfg.on_full);
            log::warn!("events: {}", notice.reason);
            if let Ok(n) = serde_json::to_vec(&notice) {
                if sp.append(&n).is_ok() {
                    unreported = 0;
                    shared.wake.notify_one();
                }
            }
        }
        let due = match cfg.fsync {
            Fsync::Always => true,
            Fsync::Every(d) => last_sync.elapsed() >= d,
            Fsync::Never => false,
        };
        if due {
            if let Err(e) = sp.sync() {
                log::error!("events: {} buffer: {e}", cfg.name);
            }
            last_sync = Instant::now();
        }
        shared.publish(&sp);
        drop(sp);
        if !batch.is_empty() {
            shared.wake.notify_one();
        }
    }
}

/// How a delivery went.
enum Outcome {
    Sent,
    /// Worth retrying: the SIEM is down, slow, overloaded or answered nonsense.
    Retry(String),
    /// Refused for good: these records (all when `None`) will never be accepted.
    Refused(Option<Vec<usize>>, String),
}

async fn send_loop(shared: Arc<Shared>, cfg: DurableConfig) {
    let mut conn = match Connector::new(&cfg.target, cfg.timeout) {
        Ok(c) => c,
        Err(e) => {
            log::error!("events: {} sink: {e}", cfg.name);
            return;
        }
    };
    let base = Duration::from_millis(200);
    let mut delay = base;
    let mut partial_since: Option<Instant> = None;
    // After a batch was refused as a whole, its events go one at a time to find the bad ones.
    let mut singles = 0usize;
    let mut failing_since: Option<Instant> = None;
    loop {
        let limit = if singles > 0 { 1 } else { cfg.batch_size };
        let peeked = {
            let mut sp = shared.lock();
            match sp.peek(limit) {
                Ok(b) => Some(b),
                Err(e) => {
                    // A segment damaged since it was opened: what it still held is lost.
                    match sp.skip_segment() {
                        Ok(lost) => {
                            shared.stats.lost.fetch_add(lost, Ordering::Relaxed);
                            log::error!("events: {} buffer: {e}; {lost} events skipped", cfg.name);
                        }
                        Err(e2) => log::error!("events: {} buffer: {e}; {e2}", cfg.name),
                    }
                    shared.publish(&sp);
                    None
                }
            }
        };
        let Some(peeked) = peeked else {
            // Not in a tight loop when the disk keeps failing.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        if peeked.records.is_empty() {
            partial_since = None;
            let _ = tokio::time::timeout(Duration::from_secs(1), shared.wake.notified()).await;
            continue;
        }
        if peeked.records.len() < limit {
            let since = *partial_since.get_or_insert_with(Instant::now);
            if let Some(left) = cfg.flush_interval.checked_sub(since.elapsed()) {
                if !left.is_zero() {
                    let _ = tokio::time::timeout(left, shared.wake.notified()).await;
                    continue;
                }
            }
        }
        partial_since = None;
        let outcome = conn.send(&peeked.records).await;
        let refused: Vec<usize> = match outcome {
            Outcome::Sent => Vec::new(),
            Outcome::Retry(why) => {
                shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                // One line when an outage starts and one a minute after, not one per retry.
                let now = Instant::now();
                match failing_since {
                    Some(t) if now.duration_since(t) < Duration::from_secs(60) => {}
                    _ => {
                        log::warn!(
                            "events: {} sink: {why}; {} events buffered, retrying",
                            cfg.name,
                            shared.stats.pending.load(Ordering::Relaxed)
                        );
                        failing_since = Some(now);
                    }
                }
                let jitter = Duration::from_millis(u64::from(rand::random::<u16>() % 200));
                tokio::time::sleep(delay + jitter).await;
                delay = (delay * 2).min(Duration::from_secs(30));
                continue;
            }
            Outcome::Refused(None, why) if peeked.records.len() > 1 => {
                log::warn!(
                    "events: {} sink refused a batch ({why}); sending its events one by one",
                    cfg.name
                );
                singles = peeked.records.len();
                continue;
            }
            Outcome::Refused(which, why) => {
                let which = which.unwrap_or_else(|| (0..peeked.records.len()).collect());
                log::error!(
                    "events: {} sink refused {} events for good ({why}); they are kept in {}",
                    cfg.name,
                    which.len(),
                    cfg.dir.join("rejected.jsonl").display()
                );
                which
            }
        };
        if failing_since.take().is_some() {
            log::info!("events: {} sink delivers again", cfg.name);
        }
        delay = base;
        set_aside(&cfg, &peeked, &refused);
        shared
            .stats
            .rejected
            .fetch_add(refused.len() as u64, Ordering::Relaxed);
        shared.stats.delivered.fetch_add(
            (peeked.records.len() - refused.len()) as u64,
            Ordering::Relaxed,
        );
        singles = singles.saturating_sub(peeked.records.len());
        let mut sp = shared.lock();
        if let Err(e) = sp.ack(&peeked) {
            log::error!("events: {} buffer: {e}", cfg.name);
        }
        shared.publish(&sp);
    }
}

/// Events a SIEM refused for good are kept beside the buffer, one JSON line each.
fn set_aside(cfg: &DurableConfig, batch: &Batch, which: &[usize]) {
    if which.is_empty() {
        return;
    }
    use std::io::Write;
    let path = cfg.dir.join("rejected.jsonl");
    let mut lines = Vec::new();
    for &i in which {
        if let Some(r) = batch.records.get(i) {
            lines.extend_from_slice(r);
            lines.push(b'\n');
        }
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(&lines));
    if let Err(e) = written {
        log::error!("events: cannot write {}: {e}", path.display());
    }
}

enum Connector {
    Http {
        client: reqwest::Client,
        target: Target,
    },
    Nats {
        timeout: Duration,
        url: String,
        subject: String,
        stream: Option<String>,
        token: Option<String>,
        js: Option<Box<async_nats::jetstream::Context>>,
        stream_ready: bool,
    },
}

impl Connector {
    fn new(target: &Target, timeout: Duration) -> Result<Connector, String> {
        match target {
            Target::Nats {
                url,
                subject,
                stream,
                token,
            } => Ok(Connector::Nats {
                timeout,
                url: url.clone(),
                subject: subject.clone(),
                stream: stream.clone(),
                token: token.clone(),
                js: None,
                stream_ready: false,
            }),
            _ => {
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout.min(Duration::from_secs(3)))
                    .build()
                    .map_err(|e| format!("HTTP client: {e}"))?;
                Ok(Connector::Http {
                    client,
                    target: target.clone(),
                })
            }
        }
    }

    async fn send(&mut self, records: &[Vec<u8>]) -> Outcome {
        match self {
            Connector::Http { client, target } => match target {
                Target::Splunk {
                    url,
                    token,
                    index,
                    sourcetype,
                } => {
                    let body = splunk_body(records, index.as_deref(), sourcetype);
                    let req = client
                        .post(url.as_str())
                        .header("authorization", format!("Splunk {token}"))
                        .header("content-type", "application/json")
                        .body(body);
                    splunk_outcome(req.send().await).await
                }
                Target::Elastic {
                    url,
                    index,
                    authorization,
                } => {
                    let body = bulk_body(records, index);
                    let mut req = client
                        .post(format!("{}/_bulk", url.trim_end_matches('/')))
                        .header("content-type", "application/x-ndjson")
                        .body(body);
                    if let Some(a) = authorization {
                        req = req.header("authorization", a.as_str());
                    }
                    bulk_outcome(req.send().await, records.len()).await
                }
                Target::Nats { .. } => Outcome::Retry("not an HTTP sink".into()),
            },
            Connector::Nats {
                timeout,
                url,
                subject,
                stream,
                token,
                js,
                stream_ready,
            } => {
                if js.is_none() {
                    let mut opts = async_nats::ConnectOptions::new()
                        .connection_timeout((*timeout).min(Duration::from_secs(3)))
                        .request_timeout(Some(*timeout));
                    if let Some(t) = token {
                        opts = opts.token(t.clone());
                    }
                    match opts.connect(url.as_str()).await {
                        Ok(c) => *js = Some(Box::new(async_nats::jetstream::new(c))),
                        Err(e) => return Outcome::Retry(format!("cannot connect: {e}")),
                    }
                }
                let ctx = js.as_ref().expect("connected");
                if let (Some(name), false) = (stream.as_ref(), *stream_ready) {
                    let config = async_nats::jetstream::stream::Config {
                        name: name.clone(),
                        subjects: vec![subject.clone()],
                        ..Default::default()
                    };
                    if let Err(e) = ctx.get_or_create_stream(config).await {
                        return Outcome::Retry(format!("stream {name}: {e}"));
                    }
                    *stream_ready = true;
                }
                let mut acks = Vec::with_capacity(records.len());
                for r in records {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Nats-Msg-Id", event_id(r).as_str());
                    match ctx
                        .publish_with_headers(subject.clone(), headers, r.clone().into())
                        .await
                    {
                        Ok(ack) => acks.push(ack),
                        Err(e) => return Outcome::Retry(format!("publish: {e}")),
                    }
                }
                for ack in acks {
                    if let Err(e) = ack.await {
                        return Outcome::Retry(format!("no acknowledgement: {e}"));
                    }
                }
                Outcome::Sent
            }
        }
    }
}

fn event_id(record: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_slice::<Id>(record)
        .map(|i| i.id)
        .unwrap_or_default()
}

/// Seconds since the epoch, with milliseconds, of an event's `ts`.
fn epoch(ts: &str) -> f64 {
    humantime::parse_rfc3339(ts)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_millis() as f64 / 1000.0)
}

/// HEC's JSON event format: one envelope per event, concatenated.
pub fn splunk_body(records: &[Vec<u8>], index: Option<&str>, sourcetype: &str) -> Vec<u8> {
    let host = hostname();
    let mut out = Vec::new();
    for r in records {
        let Ok(event) = serde_json::from_slice::<Value>(r) else {
            continue;
        };
        let mut env = Map::new();
        env.insert(
            "time".into(),
            json!(epoch(event["ts"].as_str().unwrap_or(""))),
        );
        env.insert("host".into(), json!(host));
        env.insert("source".into(), json!("rampart"));
        env.insert("sourcetype".into(), json!(sourcetype));
        if let Some(i) = index {
            env.insert("index".into(), json!(i));
        }
        env.insert("event".into(), event);
        if let Ok(line) = serde_json::to_vec(&env) {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }
    out
}

/// The SIEM's whole answer, or why the request is worth retrying.
async fn answer(
    r: Result<reqwest::Response, reqwest::Error>,
) -> Result<(reqwest::StatusCode, bytes::Bytes), Outcome> {
    let r = r.map_err(|e| Outcome::Retry(format!("request failed: {e}")))?;
    let status = r.status();
    let body = r
        .bytes()
        .await
        .map_err(|e| Outcome::Retry(format!("answer cut: {e}")))?;
    Ok((status, body))
}

async fn splunk_outcome(r: Result<reqwest::Response, reqwest::Error>) -> Outcome {
    let (status, body) = match answer(r).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("code").and_then(Value::as_i64));
    match status.as_u16() {
        200 if code == Some(0) => Outcome::Sent,
        200 => Outcome::Retry("HEC answered 200 without code 0".into()),
        // 400: the data (HEC codes 5, 6, 12...); 413: too large.
        400 | 413 => Outcome::Refused(None, format!("HEC answered {status}")),
        _ => Outcome::Retry(format!("HEC answered {status}")),
    }
}

/// `_bulk` NDJSON: a `create` with the event's id (so a resent event is a 409, not a
/// duplicate), then the ECS document.
pub fn bulk_body(records: &[Vec<u8>], index: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let Ok(event) = serde_json::from_slice::<Value>(r) else {
            continue;
        };
        let action = json!({"create": {"_index": index, "_id": event["id"]}});
        if let (Ok(a), Ok(d)) = (
            serde_json::to_vec(&action),
            serde_json::to_vec(&ecs(&event)),
        ) {
            out.extend_from_slice(&a);
            out.push(b'\n');
            out.extend_from_slice(&d);
            out.push(b'\n');
        }
    }
    out
}

async fn bulk_outcome(r: Result<reqwest::Response, reqwest::Error>, n: usize) -> Outcome {
    let (status, body) = match answer(r).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    match status.as_u16() {
        200 => {}
        400 | 413 => return Outcome::Refused(None, format!("_bulk answered {status}")),
        _ => return Outcome::Retry(format!("_bulk answered {status}")),
    }
    let Some(items) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("items").and_then(Value::as_array).cloned())
    else {
        return Outcome::Retry("_bulk answered 200 without items".into());
    };
    if items.len() != n {
        return Outcome::Retry(format!("_bulk answered {} items for {n}", items.len()));
    }
    let mut refused = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let s = item
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.get("status"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match s {
            // 409: created by an earlier attempt whose answer was lost.
            200..=299 | 409 => {}
            400..=428 | 430..=499 => refused.push(i),
            _ => return Outcome::Retry(format!("_bulk item answered {s}")),
        }
    }
    if refused.is_empty() {
        Outcome::Sent
    } else {
        Outcome::Refused(Some(refused), "_bulk refused items".into())
    }
}

/// An event in Elastic Common Schema field names; what ECS has no field for stays under
/// `rampart`.
pub fn ecs(e: &Value) -> Value {
    let s = |k: &str| e.get(k).filter(|v| !v.is_null()).cloned();
    let action = e["action"].as_str().unwrap_or("");
    let stage = e["stage"].as_str().unwrap_or("");
    let mut category = vec!["web"];
    if stage == "waf" {
        category.push("intrusion_detection");
    }
    let kind = if stage == "waf" { "alert" } else { "event" };
    let etype = match action {
        "block" => "denied",
        "allow" => "allowed",
        _ => "info",
    };
    let mut doc = json!({
        "@timestamp": s("ts"),
        "ecs": {"version": "8.11.0"},
        "event": {
            "id": s("id"),
            "kind": kind,
            "category": category,
            "type": [etype],
            "action": stage,
            "outcome": if action == "block" { "failure" } else { "success" },
            "reason": s("reason"),
            "module": "rampart",
            "dataset": "rampart.security",
        },
        "observer": {"vendor": "Rampart", "product": "Rampart", "type": "waf"},
        "http": {
            "request": {"method": s("method"), "id": s("request_id")},
            "response": {"status_code": s("status")},
        },
        "url": {"original": s("uri"), "domain": s("host")},
        "rampart": {"action": action},
    });
    let put = |doc: &mut Value, path: &[&str], v: Option<Value>| {
        let Some(v) = v else { return };
        let mut at = doc;
        for k in &path[..path.len() - 1] {
            at = at
                .as_object_mut()
                .expect("an object")
                .entry(*k)
                .or_insert_with(|| json!({}));
        }
        at[path[path.len() - 1]] = v;
    };
    put(&mut doc, &["source", "ip"], s("client_ip"));
    put(&mut doc, &["user", "name"], s("consumer"));
    put(&mut doc, &["trace", "id"], s("trace_id"));
    put(&mut doc, &["labels", "route"], s("route"));
    if let Some(rules) = e["rules"].as_array().filter(|r| !r.is_empty()) {
        let ids: Vec<String> = rules.iter().map(|r| r["id"].to_string()).collect();
        let names: Vec<Value> = rules.iter().map(|r| r["msg"].clone()).collect();
        put(&mut doc, &["rule", "id"], Some(json!(ids)));
        put(&mut doc, &["rule", "name"], Some(json!(names)));
        put(&mut doc, &["rampart", "rules"], Some(json!(rules)));
    }
    for k in [
        "anomaly_score",
        "policies",
        "violations",
        "actor",
        "changes",
    ] {
        put(&mut doc, &["rampart", k], s(k));
    }
    doc
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "rampart".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "id": "abc-1", "ts": "2026-12-07T10:00:00.250Z", "request_id": "r1",
            "trace_id": "0af7651916cd43dd8448eb211c80319c", "client_ip": "192.0.2.9",
            "method": "GET", "host": "api.example", "uri": "/q?x=<script>\"\n",
            "route": "api", "stage": "waf", "action": "block", "status": 403,
            "reason": "anomaly score 5", "anomaly_score": 5,
            "rules": [{"id": 941100, "msg": "XSS", "data": "<script>", "severity": "CRITICAL", "tags": []}]
        }))
        .unwrap()
    }

    #[test]
    fn ecs_names_and_escapes() {
        let body = bulk_body(&[record()], "rampart-events");
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let action: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(action["create"]["_id"], "abc-1");
        let doc: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(doc["@timestamp"], "2026-12-07T10:00:00.250Z");
        assert_eq!(doc["event"]["id"], "abc-1");
        assert_eq!(doc["event"]["kind"], "alert");
        assert_eq!(doc["event"]["type"][0], "denied");
        assert_eq!(doc["source"]["ip"], "192.0.2.9");
        assert_eq!(doc["http"]["response"]["status_code"], 403);
        assert_eq!(doc["url"]["original"], "/q?x=<script>\"\n");
        assert_eq!(doc["rule"]["id"][0], "941100");
        assert_eq!(doc["trace"]["id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(doc["rampart"]["anomaly_score"], 5);
        assert!(doc.get("user").is_none());
    }

    #[test]
    fn hec_envelope() {
        let body = splunk_body(&[record(), record()], Some("sec"), "rampart:security");
        let text = String::from_utf8(body).unwrap();
        let envs: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(envs.len(), 2);
        assert_eq!(envs[0]["time"], 1796637600.25);
        assert_eq!(envs[0]["index"], "sec");
        assert_eq!(envs[0]["event"]["id"], "abc-1");
    }

    /// A disk that fills up (a 256 KiB tmpfs): events that do not fit are counted as
    /// lost, nothing panics, and the buffer left behind opens without repairs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_loses_events_but_not_the_buffer() {
        let dir = std::env::temp_dir().join(format!("rampart-enospc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(mounted, "mounting a tmpfs needs root, as in CI");
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let _guard = Unmount(dir.clone());
        let cfg = DurableConfig {
            name: "splunk".into(),
            target: Target::Splunk {
                // Nothing listens: every event stays buffered.
                url: "http://127.0.0.1:9/services/collector/event".into(),
                token: "t".into(),
                index: None,
                sourcetype: "s".into(),
            },
            dir: dir.join("spool"),
            max_bytes: 64 << 20,
            fsync: Fsync::Always,
            on_full: OnFull::DropNewest,
            batch_size: 100,
            flush_interval: Duration::from_millis(100),
            timeout: Duration::from_secs(1),
        };
        let ids = Arc::new(IdGen::new());
        let started = start(&cfg, ids.clone(), &tokio::runtime::Handle::current()).unwrap();
        const SENT: u64 = 2_000;
        for i in 0..SENT {
            let mut e = Event::notice("block", format!("attack {i} {}", "x".repeat(200)));
            e.id = ids.next();
            started.tx.send(Arc::new(e)).unwrap();
        }
        let stats = started.stats.clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        while stats.pending.load(Ordering::Relaxed) + stats.lost.load(Ordering::Relaxed) < SENT {
            assert!(Instant::now() < deadline, "{stats:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let lost = stats.lost.load(Ordering::Relaxed);
        let pending = stats.pending.load(Ordering::Relaxed);
        assert!(
            lost > 500 && pending > 100,
            "lost {lost}, pending {pending}"
        );
        // Every segment on the full disk holds whole records only (failed writes were cut
        // back), and together the records the pending count.
        let mut records = 0;
        for e in std::fs::read_dir(&cfg.dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "seg") {
                let len = std::fs::metadata(&path).unwrap().len();
                let (good, n) = crate::spool::check_segment(&path).unwrap();
                assert_eq!(good, len, "{}", path.display());
                records += n;
            }
        }
        assert_eq!(records, pending);
        let first_seg = cfg.dir.join(format!("{:020}.seg", 0));
        let bytes = std::fs::read(first_seg).unwrap();
        let first: Value = serde_json::from_slice(
            &bytes[8..8 + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize],
        )
        .unwrap();
        assert!(first["reason"].as_str().unwrap().starts_with("attack 0 "));
    }
}
