//! `authorize`: the route's policy through `rampart-authz`, on the canonical path (403);
//! then the policy of the API operation the request is for, when it has its own.

use super::{reject, Decision, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use std::time::SystemTime;

fn decide(
    policy: &rampart_authz::RoutePolicy,
    r: &Req,
    ctx: &Ctx,
    route: &str,
) -> rampart_authz::Decision {
    let p = ctx.auth.principal.as_ref();
    let req = rampart_authz::AuthzRequest {
        consumer: p.map(|p| p.consumer_id.as_str()),
        groups: p.map(|p| p.groups.as_slice()).unwrap_or(&[]),
        claims: p.and_then(|p| p.claims.as_deref()),
        method: r.head.method.as_str(),
        path: ctx.path.as_str(),
        route,
        client_ip: ctx.client_ip,
        mtls: ctx
            .auth
            .identity
            .as_ref()
            .map(|i| (i.common_name.as_deref(), i.fingerprint_sha256.as_str())),
        now: SystemTime::now(),
    };
    policy.decide(&req)
}

pub(super) fn run(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route) = ctx.route.clone() else {
        return Decision::Continue;
    };
    let op = ctx.operation.clone().filter(|o| o.policy.is_some());
    let decision = match &route.policy {
        Some(policy) => Some(decide(policy, r, ctx, &route.spec.name)),
        // The operation's own policy is the one that decides.
        None if op.is_some() => None,
        // Authenticated routes without a policy follow default_authorization.
        None if route.spec.auth.is_some() && ctx.auth.principal.is_some() => Some(
            rampart_authz::default_decision(snap.config.default_authorization),
        ),
        None => return Decision::Continue,
    };
    if let Some(d) = decision {
        let allowed = d.allowed;
        ctx.auth.authz = Some(d);
        if !allowed {
            return reject(403, "forbidden", "authorization denied");
        }
    }
    if let Some(op) = op {
        let policy = op.policy.as_ref().expect("filtered on a policy");
        let d = decide(policy, r, ctx, &op.label);
        let allowed = d.allowed;
        ctx.auth.authz = Some(d);
        if !allowed {
            return reject(403, "forbidden", "operation authorization denied");
        }
    }
    Decision::Continue
}
