//! `authorize`: the route's policy through `rampart-authz`, on the canonical path (403).

use super::{reject, Decision, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use std::time::SystemTime;

pub(super) fn run(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route) = ctx.route.clone() else {
        return Decision::Continue;
    };
    let decision = match &route.policy {
        Some(policy) => {
            let p = ctx.auth.principal.as_ref();
            let req = rampart_authz::AuthzRequest {
                consumer: p.map(|p| p.consumer_id.as_str()),
                groups: p.map(|p| p.groups.as_slice()).unwrap_or(&[]),
                claims: p.and_then(|p| p.claims.as_deref()),
                method: r.head.method.as_str(),
                path: ctx.path.as_str(),
                route: route.spec.name.as_str(),
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
        // Authenticated routes without a policy follow default_authorization.
        None if route.spec.auth.is_some() && ctx.auth.principal.is_some() => {
            rampart_authz::default_decision(snap.config.default_authorization)
        }
        None => return Decision::Continue,
    };
    let allowed = decision.allowed;
    ctx.auth.authz = Some(decision);
    if allowed {
        Decision::Continue
    } else {
        reject(403, "forbidden", "authorization denied")
    }
}
