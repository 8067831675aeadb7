//! `bans` and `consumer_ban`: a banned client address (first, before any other work) and,
//! once authentication named one, a banned consumer get 403.

use super::{Decision, Reject, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;

fn banned() -> Decision {
    // The ban's reason stays in the operator's logs; the client learns only that it is.
    Decision::Respond(Reject {
        status: 403,
        message: "forbidden",
        reason: "banned",
        headers: Vec::new(),
    })
}

pub(super) fn ip(_: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    match ctx.client_ip.and_then(|ip| snap.bans.ip(ip)) {
        Some(_) => banned(),
        None => Decision::Continue,
    }
}

pub(super) fn consumer(_: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let id = ctx.auth.principal.as_ref().map(|p| p.consumer_id.as_str());
    match id.and_then(|id| snap.bans.consumer(id)) {
        Some(_) => banned(),
        None => Decision::Continue,
    }
}
