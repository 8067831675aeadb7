//! Reading a request body whole, for the stages that must see all of it before the upstream
//! does (the API contract, GraphQL limits): bounded in size and pace, held for Pingora to
//! replay, then forwarded with its length.

use super::waf::BodyPace;
use super::{reject, Decision};
use crate::ctx::Ctx;
use crate::framing::BodyLength;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use pingora::proxy::Session;

/// The whole body (`None`: there is none). What the WAF already read whole is reused;
/// otherwise it is read here, bounded in size and pace, and held for Pingora to replay.
/// `Err`: the refusal (too large, too slow, unreadable, or already read only in part).
pub(super) async fn read_whole(
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
        "body over the max_body of the route's checks",
    )
}
