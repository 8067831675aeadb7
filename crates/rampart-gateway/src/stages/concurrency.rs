//! `concurrency`: an in-flight slot per route or consumer, released when the request ends
//! (503 when full).

use super::{Decision, Reject, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;

pub(super) fn run(_: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route) = ctx.route.map(|i| &snap.routes[i]) else {
        return Decision::Continue;
    };
    let Some(c) = &route.spec.concurrency else {
        return Decision::Continue;
    };
    let key = match (c.key.as_str(), ctx.auth.principal.as_ref()) {
        ("consumer", Some(p)) => format!("{}|c:{}", route.spec.name, p.consumer_id),
        ("consumer", None) => format!(
            "{}|ip:{}",
            route.spec.name,
            ctx.client_ip.map(|i| i.to_string()).unwrap_or_default()
        ),
        _ => route.spec.name.clone(),
    };
    match snap.inflight.acquire(&key, c.limit) {
        Some(g) => {
            ctx.limits.inflight = Some(g);
            Decision::Continue
        }
        None => Decision::Respond(Reject {
            status: 503,
            message: "too many requests in progress",
            reason: "concurrency limit",
            headers: vec![("Retry-After", "1".into())],
        }),
    }
}
