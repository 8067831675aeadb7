//! Feeds the live dashboard (`rampart-dashboard`) and builds what its stream sends: the
//! aggregates of a window, with upstream health, route names and the latest events added.

use crate::snapshot::Snapshot;
use rampart_dashboard::{Dashboard, Sample};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

/// The process's aggregates.
pub(crate) fn board() -> &'static Dashboard {
    static D: OnceLock<Dashboard> = OnceLock::new();
    D.get_or_init(Dashboard::new)
}

/// One finished request. The country is looked up for blocked requests only (it is only
/// shown for them) and only when a country database is configured.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    snap: Option<&Snapshot>,
    route: &str,
    status: u16,
    latency: Duration,
    blocked_by: Option<&str>,
    rules: &[u64],
    client_ip: Option<IpAddr>,
    consumer: Option<&str>,
) {
    if snap.is_some_and(|s| !s.config.admin.dashboard) {
        return;
    }
    let country = match (blocked_by, client_ip, snap) {
        (Some(_), Some(ip), Some(s)) => s.geo.country(ip),
        _ => None,
    };
    board().record(&Sample {
        route,
        status,
        latency,
        blocked_by,
        rules,
        client_ip,
        consumer,
        country,
    });
}

/// Longest a string of an event shown on the page (URIs and rule data carry payloads).
const SHOWN: usize = 160;

fn cut(s: &str) -> String {
    if s.chars().count() <= SHOWN {
        return s.to_string();
    }
    let mut out: String = s.chars().take(SHOWN).collect();
    out.push('…');
    out
}

/// The stream's message: the window's aggregates, upstream health, the configured route
/// names and the latest events (of the route, when one is chosen), payloads cut short.
pub(crate) fn message(
    snap: &Snapshot,
    events: &rampart_events::Events,
    window: &str,
    route: Option<&str>,
) -> Value {
    let mut v = board().query(window, route);
    let mut upstreams = Vec::new();
    let mut names: Vec<&String> = snap.pools.keys().collect();
    names.sort();
    for name in names {
        for (target, healthy, ejected) in snap.pools[name].health() {
            upstreams
                .push(json!({"upstream": name, "target": target, "healthy": healthy && !ejected}));
        }
    }
    v["upstreams"] = upstreams.into();
    v["route_names"] = snap
        .routes
        .iter()
        .map(|r| r.spec.name.clone())
        .collect::<Vec<_>>()
        .into();
    let latest: Vec<Value> = events
        .recent()
        .iter()
        .rev()
        .filter(|e| route.is_none_or(|r| e.route.as_deref() == Some(r)))
        .take(25)
        .map(|e| {
            json!({
                "ts": e.ts, "stage": e.stage, "action": e.action, "status": e.status,
                "client_ip": e.client_ip, "route": e.route, "method": cut(&e.method),
                "host": cut(&e.host), "uri": cut(&e.uri), "reason": cut(&e.reason),
                "consumer": e.consumer, "anomaly_score": e.anomaly_score,
                "rules": e.rules.iter().map(|r| json!({
                    "id": r.id, "msg": cut(&r.msg), "data": cut(&r.data)
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    v["events"] = latest.into();
    v
}
