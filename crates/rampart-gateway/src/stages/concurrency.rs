//! `concurrency`: an in-flight slot per route or consumer, released when the request ends
//! (503 when full); and `upstream_limit`, the last stage: a place under the upstream's
//! adaptive limit (`rampart_limits::adaptive`), told how the upstream answered when the
//! request is logged.

use super::{Decision, Reject, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use rampart_config::ConcurrencyKey;
use std::hash::Hash;

pub(super) fn run(_: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route) = ctx.route.clone() else {
        return Decision::Continue;
    };
    let Some(c) = &route.spec.concurrency else {
        return Decision::Continue;
    };
    // Hashed in place: no key string is built per request.
    let key = rampart_limits::local::hash_with(|h| {
        route.spec.name.hash(h);
        match (c.key, ctx.auth.principal.as_ref()) {
            (ConcurrencyKey::Consumer, Some(p)) => ('c', &p.consumer_id).hash(h),
            (ConcurrencyKey::Consumer, None) => ('i', ctx.client_ip).hash(h),
            (ConcurrencyKey::Route, _) => {}
        }
    });
    match snap.inflight.acquire(key, c.limit) {
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

/// `upstream_limit`: a place under the chosen upstream's adaptive limit, or 503 at once.
pub(super) fn upstream(ctx: &mut Ctx) -> Decision {
    let Some(limit) = ctx.upstream.pool.as_ref().and_then(|p| p.adaptive.clone()) else {
        return Decision::Continue;
    };
    match limit.try_acquire() {
        Some(p) => {
            ctx.upstream.permit = Some(p);
            Decision::Continue
        }
        None => Decision::Respond(Reject {
            status: 503,
            message: "the service is busy; try again shortly",
            reason: "upstream concurrency limit",
            headers: vec![("Retry-After", "1".into())],
        }),
    }
}
