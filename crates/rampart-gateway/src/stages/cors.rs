//! `cors`: cross-origin requests on routes with a CORS policy (`rampart-cors`). Preflights
//! are answered here, before authentication (browsers send them without credentials) and
//! never reach the upstream; an allowed origin's request continues with the headers its
//! answer will carry; another site's request is refused unless the route says otherwise.

use super::{reject, Decision, Req, Served};
use crate::ctx::Ctx;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};

/// A route's compiled policy.
#[derive(Debug)]
pub(crate) struct CorsRt {
    pub policy: rampart_cors::Policy,
    pub refuse_other_origins: bool,
}

/// `OPTIONS` with `Origin` and one `Access-Control-Request-Method`: the method the real
/// request will use, which the `route` stage routes the preflight by.
pub(crate) fn preflight_method(head: &RequestHeader) -> Option<&[u8]> {
    if head.method != http::Method::OPTIONS || !head.headers.contains_key(http::header::ORIGIN) {
        return None;
    }
    let mut m = head
        .headers
        .get_all(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        .iter();
    match (m.next(), m.next()) {
        (Some(v), None) => Some(v.as_bytes()),
        _ => None,
    }
}

pub(super) fn run(r: &Req, ctx: &mut Ctx) -> Decision {
    let Some(cors) = ctx.route.as_ref().and_then(|rt| rt.cors.clone()) else {
        return Decision::Continue;
    };
    let headers = &r.head.headers;
    let mut origins = headers.get_all(http::header::ORIGIN).iter();
    let origin = match (origins.next(), origins.next()) {
        (None, _) => return Decision::Continue, // not from a page of another site
        (Some(o), None) => o.as_bytes(),
        // Which one would the backend read? Neither is trusted.
        (Some(_), Some(_)) => return refuse(rampart_cors::Refusal::Origin),
    };
    if let Some(method) = preflight_method(r.head) {
        let asked: Vec<&[u8]> = headers
            .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        return match cors.policy.preflight(origin, method, &asked) {
            Ok(headers) => Decision::Serve(Served {
                status: 204,
                content_type: "",
                body: Bytes::new(),
                headers,
                refusal: None,
            }),
            Err(why) => refuse(why),
        };
    }
    if rampart_cors::same_origin(origin, &ctx.host, ctx.tls) {
        return Decision::Continue;
    }
    if cors.policy.allows_origin(origin) {
        ctx.cors = Some(cors.policy.response_headers(origin));
        Decision::Continue
    } else if cors.refuse_other_origins {
        refuse(rampart_cors::Refusal::Origin)
    } else {
        Decision::Continue
    }
}

fn refuse(why: rampart_cors::Refusal) -> Decision {
    reject(403, "cross-origin request not allowed", why.reason())
}

/// The answer of a route with a CORS policy: the upstream's `Access-Control-*` headers
/// removed (the route's policy is the only one), the request's own added, and `Vary:
/// Origin` when answers differ by origin (so that no cache hands one site's answer to
/// another).
pub(crate) fn response(resp: &mut ResponseHeader, ctx: &Ctx) {
    let Some(cors) = ctx.route.as_ref().and_then(|rt| rt.cors.as_ref()) else {
        return;
    };
    let upstream: Vec<http::HeaderName> = resp
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for k in upstream {
        resp.remove_header(&k);
    }
    add(resp, ctx);
    if cors.policy.varies() {
        let varies = resp
            .headers
            .get_all(http::header::VARY)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| vary_lists(v, "origin")));
        if !varies {
            let _ = resp.append_header("Vary", "Origin");
        }
    }
}

/// The request's CORS headers, on any answer (Rampart's own refusals too, so that a page
/// can read why it was refused).
pub(crate) fn add(resp: &mut ResponseHeader, ctx: &Ctx) {
    for (k, v) in ctx.cors.iter().flatten() {
        let _ = resp.insert_header(*k, v.as_str());
    }
}

fn vary_lists(v: &str, name: &str) -> bool {
    v.split(',')
        .any(|n| n.trim() == "*" || n.trim().eq_ignore_ascii_case(name))
}
