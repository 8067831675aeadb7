//! `overload`: load shedding. Every request holds a slot of the process-wide in-flight
//! count until it ends; over `server.overload`'s thresholds the least likely legitimate
//! requests are answered 503 before anything is done for them: first the anonymous ones
//! (no credential presented) from outside the allowlist, then all but the allowlist's.
//! Credentials are only looked at, not checked, here: a forged one buys a place in the
//! queue, not a way past authentication.

use super::{Decision, Reject, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use std::sync::atomic::{AtomicUsize, Ordering};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Requests in progress now (for the metrics).
pub(crate) fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// One request's place in the count, released when the request's context is dropped.
pub(crate) struct Slot(());

impl Drop for Slot {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

fn presents_credentials(r: &Req, snap: &Snapshot, ctx: &Ctx) -> bool {
    let h = &r.head.headers;
    let api = &snap.config.auth.api_key;
    ctx.auth.identity.is_some()
        || h.contains_key(http::header::AUTHORIZATION)
        || h.contains_key(api.header.as_str())
        || api.query.as_deref().is_some_and(|q| {
            r.head
                .uri
                .query()
                .is_some_and(|s| s.split('&').any(|kv| kv.split('=').next() == Some(q)))
        })
        || h.get_all(http::header::COOKIE)
            .iter()
            .any(|v| v.as_bytes().windows(12).any(|w| w == b"rampart_pass"))
}

fn shed(reason: &'static str) -> Decision {
    Decision::Respond(Reject {
        status: 503,
        message: "the gateway is overloaded; try again shortly",
        reason,
        headers: vec![("Retry-After", "1".into())],
    })
}

pub(super) fn run(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let n = IN_FLIGHT.fetch_add(1, Ordering::Relaxed) + 1;
    ctx.overload = Some(Slot(()));
    let o = &snap.config.server.overload;
    if n <= o.anonymous_limit().min(o.max_in_flight) {
        return Decision::Continue;
    }
    let allowlisted = snap
        .overload_allow
        .as_ref()
        .zip(ctx.client_ip)
        .is_some_and(|(p, ip)| p.check(ip).is_ok());
    if allowlisted {
        return if n <= o.max_in_flight.saturating_mul(2) {
            Decision::Continue
        } else {
            shed("over twice max_in_flight")
        };
    }
    if n > o.max_in_flight {
        return shed("over max_in_flight");
    }
    if !presents_credentials(r, snap, ctx) {
        return shed("anonymous request shed under load");
    }
    Decision::Continue
}
