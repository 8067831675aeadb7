//! `rules`: the route's rules engine (`rampart-rules`), after authorization (conditions may
//! name consumers and groups) and before rate limits, the WAF and the contract, so that
//! they all see the request as the upstream will: its rewritten path and changed headers.

use super::{reject, Decision, Served};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use rampart_rules::{Answer, Ops, Request};

pub(super) fn run(session: &mut Session, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route) = ctx.route.clone() else {
        return Decision::Continue;
    };
    let Some(rules) = &route.rules else {
        return Decision::Continue;
    };
    let ip = ctx.client_ip;
    let outcome = {
        let head = session.req_header();
        let header = |n: &str| {
            head.headers
                .get_all(n)
                .iter()
                .map(|v| v.as_bytes())
                .collect()
        };
        let in_list = |l: &str| {
            ip.zip(snap.lists.get(l))
                .is_some_and(|(ip, list)| list.set.contains(ip, &snap.geo))
        };
        let principal = ctx.auth.principal.as_ref();
        let req = Request {
            method: head.method.as_str(),
            path: &ctx.path,
            query: head.uri.query(),
            header: &header,
            client_ip: ip,
            in_list: &in_list,
            country: ip
                .filter(|_| rules.needs_country())
                .and_then(|ip| snap.geo.country(ip)),
            consumer: principal.map(|p| p.consumer_id.as_str()),
            groups: principal.map(|p| &p.groups[..]).unwrap_or(&[]),
            bot: ctx.bot.as_ref().map(|b| b.verdict),
        };
        match rules.evaluate(&req) {
            Ok(o) => o,
            Err(a) => {
                return reject(
                    400,
                    "a header or query parameter the route decides on was sent twice",
                    match a.what {
                        "header" => "rules: header sent twice",
                        _ => "rules: query parameter sent twice",
                    },
                )
            }
        }
    };
    ctx.rules_applied = outcome.applied;
    ctx.response_ops = outcome.response_headers.into_iter().cloned().collect();
    if let Some(answer) = outcome.answer {
        return Decision::Serve(match answer {
            Answer::Redirect { location, status } => Served {
                status: *status,
                content_type: "text/plain; charset=utf-8",
                body: Bytes::new(),
                headers: vec![("Location", location.clone())],
                refusal: None,
            },
            Answer::Respond {
                status,
                body,
                content_type,
            } => Served {
                status: *status,
                content_type: "text/plain; charset=utf-8",
                body: Bytes::from(body.clone()),
                // Replaces the placeholder above (`serve` inserts these after it).
                headers: vec![("Content-Type", content_type.clone())],
                refusal: None,
            },
        });
    }
    ctx.request_ops = outcome
        .request_headers
        .iter()
        .map(|o| (*o).clone())
        .collect();
    let req = session.req_header_mut();
    for ops in outcome.request_headers {
        for name in &ops.remove {
            req.remove_header(name.as_str());
        }
        for (name, value) in &ops.set {
            let _ = req.insert_header(name.clone(), value.as_str());
        }
        for (name, value) in &ops.add {
            let _ = req.append_header(name.clone(), value.as_str());
        }
    }
    if let Some(path) = outcome.path {
        ctx.path = path;
        ctx.path_rewritten = true;
        // The rewritten path is the upstream's as it stands: `strip_prefix` is not applied.
        ctx.prefix = "/".into();
    }
    if let Some(name) = outcome.upstream {
        if let Some(pool) = snap.pools.get(name) {
            ctx.upstream.pool = Some(pool.clone());
        }
    }
    Decision::Continue
}

/// The rules' changes to an answer (the upstream's, or a rule's own).
pub(crate) fn response(resp: &mut ResponseHeader, ctx: &Ctx) {
    for ops in &ctx.response_ops {
        apply(resp, ops);
    }
}

fn apply(resp: &mut ResponseHeader, ops: &Ops) {
    for name in &ops.remove {
        resp.remove_header(name.as_str());
    }
    for (name, value) in &ops.set {
        let _ = resp.insert_header(name.clone(), value.as_str());
    }
    for (name, value) in &ops.add {
        let _ = resp.append_header(name.clone(), value.as_str());
    }
}

/// The rules' request header changes applied to a header list as the WAF reads it (names
/// compared in any case; `set` replaces every value, `add` appends).
pub(crate) fn apply_to_list(headers: &mut Vec<(String, Vec<u8>)>, ops: &[Ops]) {
    for o in ops {
        headers.retain(|(k, _)| {
            !o.remove.iter().any(|r| k.eq_ignore_ascii_case(r))
                && !o.set.iter().any(|(s, _)| k.eq_ignore_ascii_case(s))
        });
        for (k, v) in o.set.iter().chain(&o.add) {
            headers.push((k.clone(), v.as_bytes().to_vec()));
        }
    }
}
