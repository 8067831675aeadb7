//! `validate`: the route's OpenAPI contract (rampart-openapi), after the WAF. The request is
//! checked as the upstream will receive it: the canonical path (less `strip_prefix`), the
//! query, the headers, and the whole body (read here, up to `max_body`, whatever its
//! framing; the upstream then gets it with its length). `enforce` answers 400/404/405/415
//! with an RFC 9457 problem document; `detect` lets it through; both report every
//! violation in the event.

use super::{Decision, Reject};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use pingora::proxy::Session;
use rampart_config::{ContractMode, UnknownQuery};

/// `operation`: on routes whose operations have settings of their own, which operation
/// the request is for (method and path alone, before anything is read), so that
/// authorization, limits and the upstream can be the operation's. HEAD counts as GET where
/// no HEAD is declared (backends answer it with the GET handler). A request that matches
/// no operation is refused (404) when `validate` would let it through (detect, off, or
/// `undeclared: allow`): a spelling the description lacks (a trailing slash, another case)
/// could otherwise reach the same backend handler around the operation's policy.
pub(super) fn operation(r: &super::Req, _: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route) = ctx.route.clone() else {
        return Decision::Continue;
    };
    let Some(c) = route
        .contract
        .as_ref()
        .filter(|_| !route.operations.is_empty())
    else {
        return Decision::Continue;
    };
    let path = upstream_path(ctx, route.spec.strip_prefix);
    let base = c.cfg.base_path.as_deref();
    let method = r.head.method.as_str();
    let found = c.spec.find(method, &path, base).or_else(|| {
        (r.head.method == http::Method::HEAD)
            .then(|| c.spec.find("GET", &path, base))
            .flatten()
    });
    let Some(found) = found else {
        // `validate` refuses it later anyway (with 405 and Allow where the path exists).
        if c.cfg.request == ContractMode::Enforce && c.cfg.undeclared == UnknownQuery::Refuse {
            return Decision::Continue;
        }
        return super::reject(404, "not found", "no API operation matches");
    };
    if let Some(op) = route.operations.get(&found.at) {
        if let Some(pool) = &op.pool {
            ctx.upstream.pool = Some(pool.clone());
        }
        ctx.operation = Some(op.clone());
    }
    Decision::Continue
}

pub(super) async fn run(session: &mut Session, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route) = ctx.route.clone() else {
        return Decision::Continue;
    };
    let Some(c) = route.contract.as_ref() else {
        return Decision::Continue;
    };
    let enforce = match c.cfg.request {
        ContractMode::Off => return Decision::Continue,
        ContractMode::Enforce => true,
        ContractMode::Detect => false,
    };
    let body = match super::body::read_whole(session, snap, ctx, c.cfg.max_body.0 as usize).await {
        Ok(b) => b,
        Err(too_large) if enforce => return too_large,
        // Detect mode: what could not be read whole is checked without its body.
        Err(_) => None,
    };
    let path = upstream_path(ctx, route.spec.strip_prefix);
    let req = session.req_header();
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let request = rampart_openapi::Request {
        method: req.method.as_str(),
        path: &path,
        query: req.uri.query(),
        headers: &headers,
        body: body.as_deref(),
    };
    let opts = rampart_openapi::Options {
        refuse_unknown_query: c.cfg.unknown_query == UnknownQuery::Refuse,
        base_path: c.cfg.base_path.as_deref(),
    };
    match c.spec.check(&request, opts) {
        Ok(op) => {
            if let Some(refusal) = security(op, &c.cfg.security, ctx) {
                if enforce {
                    return refusal;
                }
                ctx.contract.problem = None;
                ctx.contract.detected_by = Some("validate");
            }
            ctx.contract.op = Some(op.at);
            ctx.contract.operation = Some(
                op.id
                    .clone()
                    .unwrap_or_else(|| format!("{} {}", op.method, op.path)),
            );
            Decision::Continue
        }
        Err(refusal)
            if matches!(refusal.status, 404 | 405) && c.cfg.undeclared == UnknownQuery::Allow =>
        {
            Decision::Continue
        }
        Err(refusal) => {
            ctx.contract.violations = refusal.violations.clone();
            if !enforce {
                ctx.contract.detected_by = Some("validate");
                return Decision::Continue;
            }
            ctx.contract.problem = Some(crate::contract::problem(
                &refusal,
                c.cfg.show_violations,
                &ctx.request_id,
            ));
            let mut headers = Vec::new();
            if refusal.status == 405 {
                headers.push(("Allow", refusal.allow.join(", ")));
            }
            Decision::Respond(Reject {
                status: refusal.status,
                message: "request does not match the API contract",
                reason: "request breaks the API contract",
                headers,
            })
        }
    }
}

/// The operation's `security`, when the route maps the description's schemes to
/// authenticators: one of its requirements must be met by who authenticated (method and
/// scopes). 401 for an anonymous caller, 403 otherwise.
fn security(
    op: &rampart_openapi::Operation,
    schemes: &std::collections::BTreeMap<String, rampart_config::AuthMethod>,
    ctx: &mut Ctx,
) -> Option<Decision> {
    if schemes.is_empty() || op.security.is_empty() {
        return None;
    }
    let principal = ctx.auth.principal.as_ref();
    let met = op.security.iter().any(|req| {
        req.iter().all(|(scheme, scopes)| {
            let Some(method) = schemes.get(scheme) else {
                return false;
            };
            principal.is_some_and(|p| {
                let have = rampart_authz::scopes_of(p.claims.as_deref());
                p.method == *method && scopes.iter().all(|s| have.contains(&s.as_str()))
            })
        })
    });
    if met {
        return None;
    }
    let (status, reason) = match principal {
        None => (401, "credentials required by the operation"),
        Some(_) => (403, "the operation's security requirements are not met"),
    };
    let wanted: Vec<String> = op
        .security
        .iter()
        .map(|req| {
            req.iter()
                .map(|(s, scopes)| {
                    if scopes.is_empty() {
                        s.clone()
                    } else {
                        format!("{s} ({})", scopes.join(" "))
                    }
                })
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .collect();
    let v = rampart_openapi::Violation {
        pointer: "/security".into(),
        keyword: "security".into(),
        message: format!("requires {}", wanted.join(" or ")),
    };
    ctx.contract.problem = Some(crate::contract::problem_doc(
        status,
        reason,
        Some(serde_json::json!([v])),
        &ctx.request_id,
    ));
    ctx.contract.violations = vec![v];
    Some(Decision::Respond(Reject {
        status,
        message: reason,
        reason,
        headers: Vec::new(),
    }))
}

/// The path the upstream will receive (see `forward.rs`), without the query.
fn upstream_path(ctx: &Ctx, strip: bool) -> String {
    if strip && ctx.prefix != "/" {
        let rest = ctx
            .path
            .get(ctx.prefix.trim_end_matches('/').len()..)
            .unwrap_or("");
        if rest.starts_with('/') {
            rest.to_string()
        } else {
            format!("/{rest}")
        }
    } else {
        ctx.path.clone()
    }
}

/// The route's contract and the request's operation, when its responses are checked.
fn response_check(ctx: &Ctx) -> Option<(std::sync::Arc<crate::contract::ContractRt>, bool)> {
    let c = ctx.route.as_ref()?.contract.clone()?;
    let enforce = match c.cfg.response {
        ContractMode::Off => return None,
        ContractMode::Enforce => true,
        ContractMode::Detect => false,
    };
    ctx.contract.op?;
    Some((c, enforce))
}

/// The response's status and media type against the operation (after WAF phase 3). In
/// enforce mode a violation replaces the response with a bodyless 502 (the client is not
/// told what the backend got wrong; the event is); a body to check is held back.
pub(crate) fn response_headers(resp: &mut pingora::http::ResponseHeader, ctx: &mut Ctx) {
    if ctx.refused.is_some() {
        return;
    }
    let Some((c, enforce)) = response_check(ctx) else {
        return;
    };
    let Some(op) = ctx.contract.op.and_then(|at| c.spec.operation(at)) else {
        return;
    };
    let status = resp.status.as_u16();
    let header = |name: http::header::HeaderName| {
        resp.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header(http::header::CONTENT_TYPE);
    let mut head = op.check_response_head(status, content_type.as_deref());
    let encoded = header(http::header::CONTENT_ENCODING).is_some_and(|e| e != "identity");
    if head.body_schema && encoded {
        // Accept-Encoding was removed upstream-bound; a compressed body cannot be read.
        head.violations.push(rampart_openapi::Violation {
            pointer: "/response/header/content-encoding".into(),
            keyword: "content-encoding".into(),
            message: "a compressed body cannot be checked".into(),
        });
    }
    if !head.violations.is_empty() {
        ctx.contract.violations.extend(head.violations);
        ctx.contract.detected_by.get_or_insert("validate_response");
        if enforce {
            refuse_response(ctx);
            *resp = crate::respond::error_header(502, 0, &ctx.request_id);
        }
        return;
    }
    if head.body_schema {
        ctx.contract.capture = Some(crate::ctx::ResponseCapture {
            status,
            content_type,
            enforce,
            limit: c.cfg.max_response_body.0 as usize,
            body: Vec::new(),
            over: false,
        });
    }
}

fn refuse_response(ctx: &mut Ctx) {
    ctx.contract.response_refused = true;
    ctx.refused = Some(("validate_response", "response breaks the API contract"));
}

/// The response body against its schema, once whole. Enforce mode holds it back meanwhile
/// (up to `max_response_body`) and, on a violation or a body too large to check, ends the
/// connection before any body byte: the status line is already out.
pub(crate) fn response_body(
    body: &mut Option<Bytes>,
    end_of_stream: bool,
    ctx: &mut Ctx,
) -> pingora::Result<()> {
    if ctx.contract.response_refused {
        *body = None;
        return Ok(());
    }
    let Some(cap) = ctx.contract.capture.as_mut() else {
        return Ok(());
    };
    if let Some(b) = body.as_ref() {
        if cap.body.len() + b.len() > cap.limit {
            cap.over = true;
        } else {
            cap.body.extend_from_slice(b);
        }
    }
    if cap.enforce {
        if cap.over {
            *body = None;
            let v = rampart_openapi::Violation {
                pointer: "/response/body".into(),
                keyword: "maxLength".into(),
                message: "the body is larger than max_response_body and cannot be checked".into(),
            };
            ctx.contract.violations.push(v);
            ctx.contract.capture = None;
            refuse_response(ctx);
            // 502 if the status line is still held; otherwise the connection just ends.
            return pingora::Error::e_explain(
                pingora::ErrorType::HTTPStatus(502),
                "response too large to check",
            );
        }
        // Held back until checked; released whole below.
        *body = None;
    }
    if !end_of_stream {
        return Ok(());
    }
    let cap = ctx.contract.capture.take().expect("checked above");
    if cap.over {
        return Ok(()); // detect mode: too large to check, passed on unchecked
    }
    let violations = ctx
        .route
        .as_ref()
        .and_then(|r| r.contract.as_ref())
        .and_then(|c| {
            Some(c.spec.operation(ctx.contract.op?)?.check_response_body(
                cap.status,
                cap.content_type.as_deref(),
                &cap.body,
            ))
        })
        .unwrap_or_default();
    if violations.is_empty() {
        if cap.enforce {
            *body = Some(Bytes::from(cap.body));
        }
        return Ok(());
    }
    ctx.contract.violations.extend(violations);
    ctx.contract.detected_by.get_or_insert("validate_response");
    if cap.enforce {
        refuse_response(ctx);
        return pingora::Error::e_explain(
            pingora::ErrorType::HTTPStatus(502),
            "response breaks the API contract",
        );
    }
    Ok(())
}
