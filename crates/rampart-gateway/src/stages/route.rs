//! `route`: host, canonical path and method to a route (404, 405 + Allow).

use super::{reject, Decision, Reject, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use rampart_router::Match;

pub(super) fn run(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let req = r.head;
    match snap.router.find(&ctx.host, &ctx.path, req.method.as_str()) {
        Match::Route { index, prefix } => {
            let route = snap.routes[index].clone();
            ctx.upstream.pool = route.pool.clone();
            ctx.route = Some(route);
            ctx.prefix = prefix;
            Decision::Continue
        }
        Match::NotFound => reject(404, "no route matches this request", "no route"),
        Match::MethodNotAllowed { allow } => Decision::Respond(Reject {
            status: 405,
            message: "method not allowed",
            reason: "method not allowed",
            headers: vec![("Allow", allow.join(", "))],
        }),
    }
}
