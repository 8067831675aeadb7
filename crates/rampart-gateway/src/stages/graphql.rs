//! `graphql`: a GraphQL route's limits (rampart-graphql), after the API contract. GET
//! parameters, a JSON body (or a batch), or an `application/graphql` body is measured as a
//! whole — depth, aliases, fields, cost, introspection, the persisted-query allow-list — and
//! refused with an RFC 9457 document (enforce) or reported (detect). The operations go to the
//! access log.

use super::{Decision, Reject};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use pingora::proxy::Session;
use rampart_config::ContractMode;

pub(super) async fn run(session: &mut Session, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route) = ctx.route.clone() else {
        return Decision::Continue;
    };
    let Some(g) = route.graphql.as_ref() else {
        return Decision::Continue;
    };
    let enforce = g.cfg.mode == ContractMode::Enforce;
    let method = session.req_header().method.clone();
    let refuse = |ctx: &mut Ctx, status: u16, v: Vec<rampart_graphql::Violation>| {
        let errors = serde_json::to_value(&v).unwrap_or_default();
        ctx.contract.violations = v
            .into_iter()
            .map(|v| rampart_openapi::Violation {
                pointer: v.pointer,
                keyword: v.keyword,
                message: v.message,
            })
            .collect();
        if !enforce {
            ctx.contract.detected_by = Some("graphql");
            return Decision::Continue;
        }
        ctx.contract.problem = Some(crate::contract::problem_doc(
            status,
            "GraphQL request over the route's limits",
            g.cfg.show_violations.then_some(errors),
            &ctx.request_id,
        ));
        let headers = if status == 405 {
            vec![("Allow", "GET, POST".to_string())]
        } else {
            Vec::new()
        };
        Decision::Respond(Reject {
            status,
            message: "GraphQL request over the route's limits",
            reason: "GraphQL request over the limits",
            headers,
        })
    };
    let one = |keyword: &str, message: &str| {
        vec![rampart_graphql::Violation {
            pointer: String::new(),
            keyword: keyword.into(),
            message: message.into(),
        }]
    };
    let result = if method == http::Method::GET {
        let query = session.req_header().uri.query().unwrap_or("");
        match rampart_graphql::query_pairs(query) {
            Ok(pairs) => rampart_graphql::check(rampart_graphql::Request::Get(&pairs), &g.limits),
            Err(v) => Err(vec![v]),
        }
    } else if method == http::Method::POST {
        let ct = session
            .req_header()
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let json = ct == "application/json" || ct.ends_with("+json");
        if !json && ct != "application/graphql" {
            return refuse(
                ctx,
                415,
                one(
                    "media-type",
                    "application/json or application/graphql expected",
                ),
            );
        }
        let body =
            match super::body::read_whole(session, snap, ctx, g.cfg.max_body.0 as usize).await {
                Ok(Some(b)) => b,
                Ok(None) => return refuse(ctx, 400, one("required", "a body is required")),
                Err(refusal) if enforce => return refusal,
                Err(_) => return Decision::Continue,
            };
        let req = if json {
            rampart_graphql::Request::Json(&body)
        } else {
            rampart_graphql::Request::Text(&body)
        };
        rampart_graphql::check(req, &g.limits)
    } else {
        return refuse(
            ctx,
            405,
            one("method", "GraphQL is served over GET and POST"),
        );
    };
    match result {
        Ok(a) => {
            ctx.contract.operation = a.operations.first().map(|o| match &o.name {
                Some(n) => format!("{} {n}", o.kind),
                None => o.kind.to_string(),
            });
            Decision::Continue
        }
        Err(v) => refuse(ctx, 400, v),
    }
}
