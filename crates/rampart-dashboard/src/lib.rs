//! The live dashboard's numbers. Every finished request is one [`Sample`]; samples are
//! added into the current second's aggregate, seconds into a ring of the last 5 minutes and
//! into the current minute, minutes into a ring of the last 24 hours. A query merges the
//! aggregates of a window (`5m`, `1h`, `24h`), for one route or all, into the JSON the page
//! draws. Memory is bounded: rings of fixed length, per-route aggregates for configured
//! routes only, and at most [`TOP`] keys per top list (the rest counted as `other`).
//!
//! The page itself (`assets/`) is served by the gateway's admin listener; it reads the
//! queries as a stream of server-sent events.

use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The page, its script and its style (no outside assets).
pub const PAGE: &str = include_str!("../assets/dashboard.html");
/// The page's script.
pub const SCRIPT: &str = include_str!("../assets/dashboard.js");
/// The page's style.
pub const STYLE: &str = include_str!("../assets/dashboard.css");

/// Keys kept per top list in one aggregate; beyond, counts go to `other`.
pub const TOP: usize = 32;
const SECONDS: usize = 300;
const MINUTES: usize = 1440;
/// Latency buckets: four per power of two of microseconds, up to about 70 s.
const LAT_BUCKETS: usize = 104;

/// One finished request.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The route's name (`-` when none matched).
    pub route: &'a str,
    /// The status answered.
    pub status: u16,
    /// From the first byte read to the last written.
    pub latency: Duration,
    /// The stage that refused it, when one did.
    pub blocked_by: Option<&'a str>,
    /// WAF rules that matched a request the WAF refused.
    pub rules: &'a [u64],
    /// The client.
    pub client_ip: Option<IpAddr>,
    /// The authenticated consumer.
    pub consumer: Option<&'a str>,
    /// The client's country (ISO 3166 alpha-2), when a country database is configured.
    pub country: Option<[u8; 2]>,
}

/// Counts per key, at most [`TOP`] keys.
#[derive(Debug, Clone)]
struct Top<K> {
    counts: HashMap<K, u64>,
    other: u64,
}

impl<K> Default for Top<K> {
    fn default() -> Self {
        Top {
            counts: HashMap::new(),
            other: 0,
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone + Ord> Top<K> {
    fn add(&mut self, k: &K, n: u64) {
        if let Some(c) = self.counts.get_mut(k) {
            *c += n;
        } else if self.counts.len() < TOP {
            self.counts.insert(k.clone(), n);
        } else {
            self.other += n;
        }
    }

    /// Merging keeps every key (a query's scratch aggregate is not bounded).
    fn merge_all(&mut self, o: &Top<K>) {
        for (k, n) in &o.counts {
            *self.counts.entry(k.clone()).or_default() += n;
        }
        self.other += o.other;
    }

    fn best(&self, n: usize) -> Vec<(K, u64)> {
        let mut v: Vec<(K, u64)> = self.counts.iter().map(|(k, c)| (k.clone(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

/// What one route did in one second or minute.
#[derive(Debug, Clone)]
struct Agg {
    requests: u64,
    /// By status class: 1xx..5xx (anything else counts as 5xx).
    status: [u64; 5],
    blocked: u64,
    stages: Top<String>,
    rules: Top<u64>,
    ips: Top<IpAddr>,
    consumers: Top<String>,
    countries: Top<[u8; 2]>,
    latency: Box<[u32; LAT_BUCKETS]>,
}

impl Default for Agg {
    fn default() -> Self {
        Agg {
            requests: 0,
            status: [0; 5],
            blocked: 0,
            stages: Top::default(),
            rules: Top::default(),
            ips: Top::default(),
            consumers: Top::default(),
            countries: Top::default(),
            latency: Box::new([0; LAT_BUCKETS]),
        }
    }
}

fn lat_bucket(d: Duration) -> usize {
    let us = d.as_micros().max(1) as f64;
    ((us.log2() * 4.0) as usize).min(LAT_BUCKETS - 1)
}

/// The upper edge of a latency bucket, in milliseconds.
fn lat_edge_ms(b: usize) -> f64 {
    2f64.powf((b + 1) as f64 / 4.0) / 1000.0
}

impl Agg {
    fn add(&mut self, s: &Sample) {
        self.requests += 1;
        let class = match s.status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        self.status[class] += 1;
        self.latency[lat_bucket(s.latency)] += 1;
        if let Some(stage) = s.blocked_by {
            self.blocked += 1;
            self.stages.add(&stage.to_string(), 1);
            for r in s.rules {
                self.rules.add(r, 1);
            }
            if let Some(ip) = s.client_ip {
                self.ips.add(&ip, 1);
            }
            if let Some(c) = s.consumer {
                self.consumers.add(&c.to_string(), 1);
            }
            if let Some(c) = s.country {
                self.countries.add(&c, 1);
            }
        }
    }

    fn merge(&mut self, o: &Agg, bounded: bool) {
        self.requests += o.requests;
        for (a, b) in self.status.iter_mut().zip(o.status) {
            *a += b;
        }
        self.blocked += o.blocked;
        for (a, b) in self.latency.iter_mut().zip(o.latency.iter()) {
            *a += b;
        }
        if bounded {
            for (k, n) in &o.stages.counts {
                self.stages.add(k, *n);
            }
            for (k, n) in &o.rules.counts {
                self.rules.add(k, *n);
            }
            for (k, n) in &o.ips.counts {
                self.ips.add(k, *n);
            }
            for (k, n) in &o.consumers.counts {
                self.consumers.add(k, *n);
            }
            for (k, n) in &o.countries.counts {
                self.countries.add(k, *n);
            }
            self.stages.other += o.stages.other;
            self.rules.other += o.rules.other;
            self.ips.other += o.ips.other;
            self.consumers.other += o.consumers.other;
            self.countries.other += o.countries.other;
        } else {
            self.stages.merge_all(&o.stages);
            self.rules.merge_all(&o.rules);
            self.ips.merge_all(&o.ips);
            self.consumers.merge_all(&o.consumers);
            self.countries.merge_all(&o.countries);
        }
    }

    fn percentile(&self, p: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (b, &c) in self.latency.iter().enumerate() {
            seen += u64::from(c);
            if seen >= want {
                return Some((lat_edge_ms(b) * 1000.0).round() / 1000.0);
            }
        }
        None
    }
}

/// One second or minute: an aggregate per route.
#[derive(Debug, Default)]
struct Bucket {
    at: u64,
    routes: HashMap<String, Agg>,
}

impl Bucket {
    fn merged(&self, route: Option<&str>, into: &mut Agg, bounded: bool) {
        for (name, agg) in &self.routes {
            if route.is_none_or(|r| r == name) {
                into.merge(agg, bounded);
            }
        }
    }
}

struct Rings {
    current: Bucket,
    seconds: VecDeque<Bucket>,
    minute: Bucket,
    minutes: VecDeque<Bucket>,
}

/// The dashboard's aggregates.
///
/// Route names come from the config (or `-`), so the aggregates per bucket are bounded by
/// the routes configured while the bucket was filling.
pub struct Dashboard {
    rings: Mutex<Rings>,
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard::new()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Dashboard {
    /// Empty rings.
    pub fn new() -> Dashboard {
        let now = now_secs();
        Dashboard {
            rings: Mutex::new(Rings {
                current: Bucket {
                    at: now,
                    ..Default::default()
                },
                seconds: VecDeque::with_capacity(SECONDS),
                minute: Bucket {
                    at: now / 60 * 60,
                    ..Default::default()
                },
                minutes: VecDeque::with_capacity(MINUTES),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rings> {
        self.rings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a finished request.
    pub fn record(&self, s: &Sample) {
        self.record_at(s, now_secs());
    }

    fn record_at(&self, s: &Sample, now: u64) {
        let route = s.route;
        let mut r = self.lock();
        r.roll(now);
        match r.current.routes.get_mut(route) {
            Some(a) => a.add(s),
            None => {
                let mut a = Agg::default();
                a.add(s);
                r.current.routes.insert(route.to_string(), a);
            }
        }
    }

    /// The window (`5m`, `1h` or `24h`) for one route or all, as the page's JSON: a time
    /// series, totals, breakdowns and latency percentiles.
    pub fn query(&self, window: &str, route: Option<&str>) -> Value {
        self.query_at(window, route, now_secs())
    }

    fn query_at(&self, window: &str, route: Option<&str>, now: u64) -> Value {
        let mut r = self.lock();
        r.roll(now);
        // Points: seconds for 5 minutes, minutes for longer windows; the bucket still
        // filling is left out of the series (it would read low) but counted in the totals.
        let (step, points): (u64, usize) = match window {
            "1h" => (60, 60),
            "24h" => (60, MINUTES),
            _ => (1, SECONDS),
        };
        let (ring, current) = if step == 1 {
            (&r.seconds, &r.current)
        } else {
            (&r.minutes, &r.minute)
        };
        let end = current.at;
        let start = end.saturating_sub(step * points as u64);
        let mut series: Vec<Value> = Vec::with_capacity(points);
        let mut total = Agg::default();
        let mut by_route: HashMap<&str, Agg> = HashMap::new();
        let mut idx = ring.iter().filter(|b| b.at >= start).peekable();
        let mut t = start;
        while t < end {
            let mut agg = Agg::default();
            while let Some(b) = idx.next_if(|b| b.at <= t) {
                if b.at == t {
                    b.merged(route, &mut agg, false);
                    for (name, a) in &b.routes {
                        if route.is_none_or(|r| r == name) {
                            by_route.entry(name).or_default().merge(a, false);
                        }
                    }
                }
            }
            series.push(json!([
                t,
                agg.requests,
                agg.status[1],
                agg.status[2],
                agg.status[3],
                agg.status[4],
                agg.blocked
            ]));
            total.merge(&agg, false);
            t += step;
        }
        // The filling bucket; for minutes, the current second too (not yet rolled in).
        let mut filling = Agg::default();
        let mut fill = vec![current];
        if step == 60 {
            fill.push(&r.current);
        }
        for b in fill {
            b.merged(route, &mut filling, false);
            for (name, a) in &b.routes {
                if route.is_none_or(|r| r == name) {
                    by_route.entry(name).or_default().merge(a, false);
                }
            }
        }
        total.merge(&filling, false);
        let last = ring
            .back()
            .filter(|b| b.at + step == end)
            .map(|b| {
                let mut a = Agg::default();
                b.merged(route, &mut a, false);
                a.requests as f64 / step as f64
            })
            .unwrap_or(0.0);
        let mut routes: Vec<Value> = by_route
            .iter()
            .map(|(name, a)| {
                json!({"route": name, "requests": a.requests, "2xx": a.status[1],
                    "3xx": a.status[2], "4xx": a.status[3], "5xx": a.status[4],
                    "blocked": a.blocked, "p95_ms": a.percentile(0.95)})
            })
            .collect();
        routes.sort_by(|a, b| a["route"].as_str().cmp(&b["route"].as_str()));
        json!({
            "window": window_name(window),
            "route": route,
            "step": step,
            "now": now,
            "rps": last,
            "series": series,
            "totals": {
                "requests": total.requests,
                "1xx": total.status[0], "2xx": total.status[1], "3xx": total.status[2],
                "4xx": total.status[3], "5xx": total.status[4],
                "blocked": total.blocked,
            },
            "latency_ms": {
                "p50": total.percentile(0.50),
                "p95": total.percentile(0.95),
                "p99": total.percentile(0.99),
            },
            "blocked_by_stage": top_json(&total.stages, 20, |k| k.clone()),
            "blocked_by_rule": top_json(&total.rules, 10, |k| k.to_string()),
            "top_ips": top_json(&total.ips, 10, |k| k.to_string()),
            "top_consumers": top_json(&total.consumers, 10, |k| k.clone()),
            "top_countries": top_json(&total.countries, 10, |k| {
                String::from_utf8_lossy(k).into_owned()
            }),
            "routes": routes,
        })
    }
}

/// The `n` largest counts, then what the others add up to as `other`.
fn top_json<K: std::hash::Hash + Eq + Clone + Ord>(
    t: &Top<K>,
    n: usize,
    name: impl Fn(&K) -> String,
) -> Value {
    let best = t.best(n);
    let shown: u64 = best.iter().map(|(_, c)| c).sum();
    let all: u64 = t.counts.values().sum::<u64>() + t.other;
    let mut out: Vec<Value> = best
        .iter()
        .map(|(k, c)| json!({"key": name(k), "n": c}))
        .collect();
    if all > shown {
        out.push(json!({"key": "other", "n": all - shown}));
    }
    Value::Array(out)
}

fn window_name(w: &str) -> &'static str {
    match w {
        "1h" => "1h",
        "24h" => "24h",
        _ => "5m",
    }
}

impl Rings {
    /// Moves finished seconds (and minutes) into their rings.
    fn roll(&mut self, now: u64) {
        if now <= self.current.at {
            return;
        }
        let done = std::mem::replace(
            &mut self.current,
            Bucket {
                at: now,
                ..Default::default()
            },
        );
        let minute = done.at / 60 * 60;
        if minute != self.minute.at {
            self.close_minute(minute);
        }
        for (name, a) in &done.routes {
            self.minute
                .routes
                .entry(name.clone())
                .or_default()
                .merge(a, true);
        }
        if !done.routes.is_empty() {
            if self.seconds.len() == SECONDS {
                self.seconds.pop_front();
            }
            self.seconds.push_back(done);
        }
        let minute = now / 60 * 60;
        if minute != self.minute.at {
            self.close_minute(minute);
        }
        while self
            .seconds
            .front()
            .is_some_and(|b| b.at + SECONDS as u64 <= now)
        {
            self.seconds.pop_front();
        }
        while self
            .minutes
            .front()
            .is_some_and(|b| b.at + (MINUTES as u64) * 60 <= now)
        {
            self.minutes.pop_front();
        }
    }

    fn close_minute(&mut self, next: u64) {
        let done = std::mem::replace(
            &mut self.minute,
            Bucket {
                at: next,
                ..Default::default()
            },
        );
        if !done.routes.is_empty() {
            if self.minutes.len() == MINUTES {
                self.minutes.pop_front();
            }
            self.minutes.push_back(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(route: &'a str, status: u16, ms: u64, blocked: Option<&'a str>) -> Sample<'a> {
        Sample {
            route,
            status,
            latency: Duration::from_millis(ms),
            blocked_by: blocked,
            rules: &[],
            client_ip: Some("192.0.2.7".parse().unwrap()),
            consumer: None,
            country: Some(*b"FR"),
        }
    }

    #[test]
    fn windows_series_and_totals() {
        let d = Dashboard::new();
        // A minute boundary (1_800_000_000 is one).
        let t0 = 1_800_000_000;
        assert_eq!(t0 % 60, 0);
        for s in 0..130u64 {
            d.record_at(&sample("api", 200, 5, None), t0 + s);
            if s % 10 == 0 {
                let mut b = sample("web", 403, 1, Some("waf"));
                b.rules = &[942100, 941100];
                d.record_at(&b, t0 + s);
            }
        }
        d.record_at(&sample("-", 404, 1, None), t0 + 129);
        let q = d.query_at("5m", None, t0 + 130);
        let series = q["series"].as_array().unwrap();
        assert_eq!(series.len(), 300);
        assert_eq!(series.last().unwrap()[0], t0 + 129);
        assert_eq!(series.last().unwrap()[1], 2, "{}", series.last().unwrap());
        assert_eq!(q["totals"]["requests"], 130 + 13 + 1);
        assert_eq!(q["totals"]["blocked"], 13);
        assert_eq!(q["rps"], 2.0);
        assert_eq!(q["blocked_by_stage"][0], json!({"key": "waf", "n": 13}));
        assert_eq!(q["blocked_by_rule"][0]["n"], 13);
        assert_eq!(q["top_countries"][0], json!({"key": "FR", "n": 13}));
        let p50 = q["latency_ms"]["p50"].as_f64().unwrap();
        assert!((5.0..=6.2).contains(&p50), "{p50}");
        let routes: Vec<&str> = q["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["route"].as_str().unwrap())
            .collect();
        assert_eq!(routes, ["-", "api", "web"]);
        // One route only.
        let web = d.query_at("5m", Some("web"), t0 + 130);
        assert_eq!(web["totals"]["requests"], 13);
        assert_eq!(web["totals"]["4xx"], 13);
        // Minutes: two closed, the third filling (counted in totals, not in the series).
        let h = d.query_at("1h", None, t0 + 130);
        assert_eq!(h["series"].as_array().unwrap().len(), 60);
        assert_eq!(h["series"].as_array().unwrap().last().unwrap()[1], 60 + 6);
        assert_eq!(h["totals"]["requests"], 130 + 13 + 1);
        // Later, the seconds are gone from the 5-minute window but the minutes stay.
        let later = d.query_at("5m", None, t0 + 1000);
        assert_eq!(later["totals"]["requests"], 0);
        let day = d.query_at("24h", None, t0 + 1000);
        assert_eq!(day["totals"]["requests"], 130 + 13 + 1);
    }

    #[test]
    fn top_lists_stay_bounded_under_a_flood_of_addresses() {
        let d = Dashboard::new();
        let t0 = 1_800_000_000;
        for i in 0..50_000u32 {
            let mut s = sample("api", 403, 1, Some("network"));
            s.client_ip = Some(IpAddr::from(i.to_be_bytes()));
            d.record_at(&s, t0 + u64::from(i / 1000));
        }
        let r = d.lock();
        for b in r.seconds.iter().chain([&r.current, &r.minute]) {
            for a in b.routes.values() {
                assert!(a.ips.counts.len() <= TOP);
            }
        }
        drop(r);
        let q = d.query_at("5m", None, t0 + 60);
        let ips = q["top_ips"].as_array().unwrap();
        assert_eq!(ips.len(), 11);
        assert_eq!(ips[10]["key"], "other");
        let sum: u64 = ips.iter().map(|v| v["n"].as_u64().unwrap()).sum();
        assert_eq!(sum, 50_000);
        assert_eq!(q["totals"]["blocked"], 50_000);
    }
}
