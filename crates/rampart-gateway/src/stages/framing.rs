//! `framing`: request smuggling checks (RFC 9112 §6) on the raw header bytes; an HTTP/2
//! request with DATA frames has a body whatever it declares.

use super::{reject, Decision, Req};
use crate::ctx::Ctx;
use crate::framing;
use crate::framing::BodyLength;
use crate::snapshot::Snapshot;

pub(super) fn run(r: &Req, _: &Snapshot, ctx: &mut Ctx) -> Decision {
    let req = r.head;
    let (cl, te): (Vec<&[u8]>, Vec<&[u8]>) = match r.raw {
        Some(raw) => match framing::raw_framing_headers(raw) {
            Ok(v) => v,
            Err(e) => return reject(400, "bad request", e.reason()),
        },
        None => (
            req.headers
                .get_all(http::header::CONTENT_LENGTH)
                .iter()
                .map(|v| v.as_bytes())
                .collect(),
            req.headers
                .get_all(http::header::TRANSFER_ENCODING)
                .iter()
                .map(|v| v.as_bytes())
                .collect(),
        ),
    };
    match framing::check(&cl, &te, req.version == http::Version::HTTP_10) {
        // HTTP/2 need not declare a length: DATA frames after a HEADERS frame without
        // END_STREAM are a body all the same, and get the same inspection and limits.
        Ok(BodyLength::None) if r.h2_body => ctx.body.len = BodyLength::Chunked,
        Ok(len) => ctx.body.len = len,
        Err(e) => return reject(400, "bad request", e.reason()),
    }
    if let Some(raw) = r.raw {
        if let Err(reason) = framing::check_target(raw) {
            return reject(400, "bad request", reason);
        }
    }
    if let Some(host) = req.headers.get(http::header::HOST) {
        // HTTP/1.0 may send an empty Host (it predates the header); the rules judge it.
        let empty_ok = req.version == http::Version::HTTP_10;
        if !(host.is_empty() && empty_ok) {
            if let Err(reason) = framing::check_host(host.as_bytes()) {
                return reject(400, "bad request", reason);
            }
        }
    }
    Decision::Continue
}
