//! `bans` and `consumer_ban`: a banned client address (first, before any other work) and,
//! once authentication named one, a banned consumer get 403. A throttle (a ban with a
//! rate) lets the request on, marked for the `rate_limit` stage.

use super::{Decision, Reject, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use rampart_bans::Subject;

fn banned() -> Decision {
    // The ban's reason stays in the operator's logs; the client learns only that it is.
    Decision::Respond(Reject {
        status: 403,
        message: "forbidden",
        reason: "banned",
        headers: Vec::new(),
    })
}

fn decide(ban: Option<rampart_bans::Ban>, on: Subject, ctx: &mut Ctx) -> Decision {
    match ban {
        Some(rampart_bans::Ban {
            limit: Some(rate), ..
        }) => {
            // A consumer's throttle is kept over an address's: it follows the caller.
            if on == Subject::Consumer || ctx.limits.restricted.is_none() {
                ctx.limits.restricted = Some((on, rate));
            }
            Decision::Continue
        }
        Some(_) => banned(),
        None => Decision::Continue,
    }
}

pub(super) fn ip(_: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let ban = ctx.client_ip.and_then(|ip| snap.bans.ip(ip));
    decide(ban, Subject::ClientIp, ctx)
}

pub(super) fn consumer(_: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let id = ctx.auth.principal.as_ref().map(|p| p.consumer_id.as_str());
    let ban = id.and_then(|id| snap.bans.consumer(id));
    decide(ban, Subject::Consumer, ctx)
}
