//! `route`: host, canonical path and method to a route (404, 405 + Allow).

use super::{reject, Decision, Reject, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use rampart_router::Match;

pub(super) fn run(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let req = r.head;
    let h2 = req.version == http::Version::HTTP_2;
    // A CORS preflight belongs to the route of the request it announces, when that route
    // has a CORS policy (the `cors` stage answers it); otherwise it is an OPTIONS request.
    if let Some(method) =
        super::cors::preflight_method(req).and_then(|m| std::str::from_utf8(m).ok())
    {
        if let Match::Route { index, prefix } = snap.router.find(&ctx.host, &ctx.path, method) {
            if snap.routes[index].cors.is_some() {
                return chosen(snap, ctx, index, prefix, h2);
            }
        }
    }
    match snap.router.find(&ctx.host, &ctx.path, req.method.as_str()) {
        Match::Route { index, prefix } => chosen(snap, ctx, index, prefix, h2),
        Match::NotFound => reject(404, "no route matches this request", "no route"),
        Match::MethodNotAllowed { allow } => Decision::Respond(Reject {
            status: 405,
            message: "method not allowed",
            reason: "method not allowed",
            headers: vec![("Allow", allow.join(", "))],
        }),
    }
}

fn chosen(snap: &Snapshot, ctx: &mut Ctx, index: usize, prefix: String, h2: bool) -> Decision {
    let route = snap.routes[index].clone();
    let grpc_only = route.spec.grpc;
    ctx.upstream.pool = route.pool.clone();
    ctx.route = Some(route);
    ctx.prefix = prefix;
    let grpc = ctx.grpc && h2;
    ctx.grpc = grpc && grpc_only;
    if grpc_only && !grpc {
        return reject(
            415,
            "this route takes gRPC over HTTP/2 only",
            "not a gRPC request",
        );
    }
    Decision::Continue
}
