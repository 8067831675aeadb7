//! `header_limits` (431) and `body_limit` (413 on a declared Content-Length).

use super::{reject, Decision, Req};
use crate::ctx::Ctx;
use crate::framing::BodyLength;
use crate::snapshot::Snapshot;

pub(super) fn headers(r: &Req, snap: &Snapshot, _: &mut Ctx) -> Decision {
    let max = snap.config.limits.max_header_bytes.0 as usize;
    let size = match r.raw {
        Some(raw) => raw.len(),
        None => {
            // HTTP/2: HPACK-decoded size, as the header list size is counted in RFC 9113.
            let req = r.head;
            let mut n = req.method.as_str().len() + req.uri.path().len() + 12;
            n += req.uri.query().map_or(0, str::len);
            for (name, value) in req.headers.iter() {
                n += name.as_str().len() + value.len() + 32;
            }
            n
        }
    };
    if size > max {
        return reject(431, "request header fields too large", "headers over limit");
    }
    Decision::Continue
}

pub(super) fn body(_: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    if let BodyLength::Length(n) = ctx.body.len {
        if n > snap.config.limits.max_request_body.0 {
            return reject(413, "request body too large", "body over limit");
        }
    }
    Decision::Continue
}
