//! `path`: the canonical path (`rampart_router::canonical_path`) every later stage and the
//! upstream see, or 400.

use super::{reject, Decision, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;

/// One canonical path for routing, authorization, the WAF and the upstream.
pub(super) fn run(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let raw = r.head.uri.path();
    match rampart_router::canonical_path(raw, &snap.path_policy) {
        Ok(p) => {
            // Borrowed exactly when the path already was canonical.
            ctx.path_rewritten = matches!(p, std::borrow::Cow::Owned(_));
            ctx.path = p.into_owned();
            Decision::Continue
        }
        Err(e) => reject(400, "bad request", e.reason()),
    }
}
