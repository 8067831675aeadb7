//! `client_cert`: routes with `require_client_cert` refuse clients without a verified
//! certificate (403).

use super::{reject, Decision, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;

pub(super) fn run(_: &Req, _: &Snapshot, ctx: &mut Ctx) -> Decision {
    let needs = ctx.route_spec().is_some_and(|r| r.require_client_cert);
    if needs && ctx.auth.identity.is_none() {
        return reject(403, "client certificate required", "no client certificate");
    }
    Decision::Continue
}
