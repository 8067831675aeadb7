//! `validate`: the route's OpenAPI contract (rampart-openapi), after the WAF. The request is
//! checked as the upstream will receive it: the canonical path (less `strip_prefix`), the
//! query, the headers, and the whole body (read here, up to `max_body`, whatever its
//! framing; the upstream then gets it with its length). `enforce` answers 400/404/405/415
//! with an RFC 9457 problem document; `detect` lets it through; both report every
//! violation in the event.

use super::waf::BodyPace;
use super::{reject, Decision, Reject};
use crate::ctx::Ctx;
use crate::framing::BodyLength;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use pingora::proxy::Session;
use rampart_config::{ContractMode, UnknownQuery};

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
    let body = match body(session, snap, ctx, c.cfg.max_body.0 as usize).await {
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
            ctx.contract.operation = Some(
                op.id
                    .clone()
                    .unwrap_or_else(|| format!("{} {}", op.method, op.path)),
            );
            Decision::Continue
        }
        Err(refusal) => {
            ctx.contract.violations = refusal.violations.clone();
            if !enforce {
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

/// The whole body (`None`: there is none). What the WAF already read whole is reused;
/// otherwise it is read here, bounded in size and pace, and held for Pingora to replay.
/// `Err`: the refusal (too large, too slow, unreadable, or already read only in part).
async fn body(
    session: &mut Session,
    snap: &Snapshot,
    ctx: &mut Ctx,
    max: usize,
) -> Result<Option<Bytes>, Decision> {
    if matches!(ctx.body.len, BodyLength::None) {
        return Ok(None);
    }
    if let Some(b) = &ctx.body.read {
        return if b.len() > max {
            Err(too_large())
        } else {
            Ok(Some(b.clone()))
        };
    }
    if ctx.body.consumed {
        // The WAF read it but not whole (over its inspection limit): not checkable.
        return Err(too_large());
    }
    if let BodyLength::Length(n) = ctx.body.len {
        if n as usize > max {
            return Err(too_large());
        }
    }
    session.enable_retry_buffering();
    ctx.body.consumed = true;
    let pace = BodyPace::new(snap, ctx);
    let mut body = Vec::new();
    loop {
        let Some(deadline) = pace.next_deadline(body.len()) else {
            return Err(reject(408, "request body timeout", "request body too slow"));
        };
        let read = tokio::time::timeout_at(deadline.into(), session.read_request_body()).await;
        match read {
            Err(_) => return Err(reject(408, "request body timeout", "request body too slow")),
            Ok(Err(_)) => return Err(reject(400, "bad request", "request body unreadable")),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => {
                body.extend_from_slice(&chunk);
                if body.len() > max {
                    return Err(too_large());
                }
            }
        }
    }
    if session.retry_buffer_truncated() {
        return Err(too_large());
    }
    // Forwarded with its length, like a body the WAF held.
    ctx.body.complete = Some(body.len());
    let body = Bytes::from(body);
    ctx.body.read = Some(body.clone());
    Ok(Some(body))
}

fn too_large() -> Decision {
    reject(
        413,
        "request body too large",
        "body over the contract's max_body",
    )
}
