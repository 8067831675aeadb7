//! `network` and `route_network`: the listener's and then the route's network policy on the
//! client address (403, or the connection closed without an answer).

use super::{Decision, Reject, Req};
use crate::ctx::Ctx;
use crate::network::PolicyRt;
use crate::snapshot::Snapshot;
use rampart_config::NetworkAction;

fn check(policy: Option<&PolicyRt>, ctx: &Ctx) -> Decision {
    let (Some(p), Some(ip)) = (policy, ctx.client_ip) else {
        return Decision::Continue;
    };
    match p.check(ip) {
        Ok(()) => Decision::Continue,
        Err(refusal) => match p.action {
            NetworkAction::Forbid => Decision::Respond(Reject {
                status: 403,
                message: "forbidden",
                reason: refusal.reason(),
                headers: Vec::new(),
            }),
            NetworkAction::Close => Decision::Close(refusal.reason()),
        },
    }
}

pub(super) fn listener(_: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let policy = ctx
        .listener
        .and_then(|i| snap.listeners[i].network.as_ref());
    check(policy, ctx)
}

pub(super) fn route(_: &Req, _: &Snapshot, ctx: &mut Ctx) -> Decision {
    let route = ctx.route.clone();
    check(route.as_ref().and_then(|r| r.network.as_ref()), ctx)
}
