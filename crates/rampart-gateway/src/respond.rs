//! Rampart's own answers: one JSON error shape (`{"error", "request_id"}`, never upstream
//! details or request content) for every refusal and every failure to proxy.

use crate::ctx::Ctx;
use crate::framing;
use crate::framing::BodyLength;
use crate::stages::Reject;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, Session};
use pingora::{Error, ErrorSource, ErrorType};

/// Rampart's own JSON error body: never upstream details, never request content.
pub fn error_body(message: &str, request_id: &str) -> Bytes {
    let v = serde_json::json!({ "error": message, "request_id": request_id });
    Bytes::from(v.to_string())
}

pub fn error_header(status: u16, len: usize, request_id: &str) -> ResponseHeader {
    let mut h = ResponseHeader::build(status, Some(4)).expect("valid status");
    let _ = h.insert_header("Content-Type", "application/json");
    let _ = h.insert_header("Content-Length", len.to_string());
    let _ = h.insert_header("X-Request-Id", request_id);
    let _ = h.insert_header("Cache-Control", "no-store");
    h
}

/// `application/grpc`, alone or with a suffix (`+proto`, `+json`; any case).
pub(crate) fn is_grpc(content_type: &[u8]) -> bool {
    // Compared in place: it runs for every HTTP/2 request that has a Content-Type.
    const GRPC: &[u8] = b"application/grpc";
    content_type.len() >= GRPC.len()
        && content_type[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(content_type.get(GRPC.len()), None | Some(b'+' | b';'))
}

/// The gRPC status for an HTTP status Rampart answers with.
fn grpc_status(http: u16) -> u8 {
    match http {
        400 | 415 => 3,       // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 | 405 => 12,      // UNIMPLEMENTED
        408 | 504 => 4,       // DEADLINE_EXCEEDED
        413 | 429 | 431 => 8, // RESOURCE_EXHAUSTED
        500 => 13,            // INTERNAL
        502 | 503 => 14,      // UNAVAILABLE
        _ => 2,               // UNKNOWN
    }
}

/// A gRPC client reads statuses, not JSON: a "trailers-only" answer (HTTP 200, the
/// status and message in the only header block, no messages).
pub(crate) fn grpc_error_header(status: u16, message: &str, request_id: &str) -> ResponseHeader {
    let mut h = ResponseHeader::build(200, Some(5)).expect("valid status");
    let _ = h.insert_header("Content-Type", "application/grpc");
    let _ = h.insert_header("grpc-status", grpc_status(status).to_string());
    // The gRPC spec: percent-encode what is not printable ASCII, and `%` itself.
    let encoded: String = message
        .bytes()
        .map(|b| match b {
            b' '..=b'~' if b != b'%' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let _ = h.insert_header("grpc-message", encoded);
    let _ = h.insert_header("X-Request-Id", request_id);
    let _ = h.insert_header("Cache-Control", "no-store");
    h
}

pub(crate) async fn respond(session: &mut Session, ctx: &Ctx, r: &Reject) -> Result<()> {
    if ctx.grpc {
        let mut h = grpc_error_header(r.status, r.message, &ctx.request_id);
        for (k, v) in &r.headers {
            let _ = h.insert_header(*k, v.as_str());
        }
        if let Some(v) = &ctx.hsts {
            let _ = h.insert_header("Strict-Transport-Security", v.as_str());
        }
        if !matches!(ctx.body.len, BodyLength::None) {
            session.set_keepalive(None);
        }
        session.write_response_header(Box::new(h), true).await?;
        return Ok(());
    }
    let body = match &ctx.contract.problem {
        Some(p) => p.clone(),
        None => error_body(r.message, &ctx.request_id),
    };
    let mut h = error_header(r.status, body.len(), &ctx.request_id);
    if ctx.contract.problem.is_some() {
        let _ = h.insert_header("Content-Type", "application/problem+json");
    }
    for (k, v) in &r.headers {
        let _ = h.insert_header(*k, v.as_str());
    }
    if let Some(v) = &ctx.hsts {
        let _ = h.insert_header("Strict-Transport-Security", v.as_str());
    }
    crate::stages::cors::add(&mut h, ctx);
    // A refused request may still have an unread body on the wire: never reuse the
    // connection, so the body cannot be parsed as a next request.
    if !matches!(ctx.body.len, BodyLength::None) || r.status == 400 {
        session.set_keepalive(None);
        let _ = h.insert_header("Connection", "close");
    }
    session.write_response_header(Box::new(h), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// A response Rampart serves itself (documentation): no upstream involved.
pub(crate) async fn serve(
    session: &mut Session,
    ctx: &Ctx,
    s: crate::stages::Served,
) -> Result<()> {
    let mut h = ResponseHeader::build(s.status, Some(6)).expect("valid status");
    // A 204 (an answered CORS preflight) or a 304 has neither content nor its length
    // (RFC 9110).
    let no_content = matches!(s.status, 204 | 304);
    if !no_content {
        let _ = h.insert_header("Content-Type", s.content_type);
        let _ = h.insert_header("Content-Length", s.body.len().to_string());
    }
    let _ = h.insert_header("X-Request-Id", ctx.request_id.as_str());
    for (k, v) in &s.headers {
        let _ = h.insert_header(*k, v.as_str());
    }
    crate::stages::rules_response(&mut h, ctx);
    if let Some(v) = &ctx.hsts {
        let _ = h.insert_header("Strict-Transport-Security", v.as_str());
    }
    let head_only = no_content || session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(h), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(s.body), true).await?;
    }
    Ok(())
}

/// `fail_to_proxy`: the upstream could not be used or the request was cut: Rampart's
/// JSON error (502/504/413/408...), never the upstream's details.
pub(crate) async fn fail_to_proxy(session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
    let body_refused = matches!(ctx.refused, Some(("body_limit", _)));
    let (code, message) = match e.etype() {
        _ if body_refused => (413, "request body too large"),
        ErrorType::HTTPStatus(c) if *c >= 500 => (*c, "upstream unavailable"),
        ErrorType::HTTPStatus(c) => (*c, "request refused"),
        _ => match e.esource() {
            ErrorSource::Upstream => match e.etype() {
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                    (504, "upstream timed out")
                }
                _ => (502, "upstream unavailable"),
            },
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                    (0, "")
                }
                _ => (400, "bad request"),
            },
            _ => (500, "internal error"),
        },
    };
    if matches!(code, 502 | 504) {
        if let (Some(pool), Some(addr)) = (&ctx.upstream.pool, ctx.upstream.target) {
            if code == 504 && matches!(e.etype(), ErrorType::ReadTimedout) {
                pool.report_failure(&addr, "read_timeout");
            }
        }
    }
    if code > 0 && session.response_written().is_none() && ctx.grpc {
        if ctx.request_id.is_empty() {
            ctx.request_id = framing::new_request_id();
        }
        let h = grpc_error_header(code, message, &ctx.request_id);
        session.set_keepalive(None);
        let _ = session.write_response_header(Box::new(h), true).await;
    } else if code > 0 && session.response_written().is_none() {
        if ctx.request_id.is_empty() {
            ctx.request_id = framing::new_request_id();
        }
        let body = error_body(message, &ctx.request_id);
        let mut h = error_header(code, body.len(), &ctx.request_id);
        let _ = h.insert_header("Connection", "close");
        if let Some(v) = &ctx.hsts {
            let _ = h.insert_header("Strict-Transport-Security", v.as_str());
        }
        crate::stages::cors::add(&mut h, ctx);
        session.set_keepalive(None);
        if session
            .write_response_header(Box::new(h), false)
            .await
            .is_ok()
        {
            let _ = session.write_response_body(Some(body), true).await;
        }
    }
    FailToProxy {
        error_code: code,
        can_reuse_downstream: false,
    }
}
