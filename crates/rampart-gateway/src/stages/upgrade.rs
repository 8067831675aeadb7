//! `upgrade`: only a genuine WebSocket handshake, on a route with `websocket: true`, may
//! upgrade; [`sanitize`] removes every other `Upgrade` before the stages run.

use super::{reject, Decision, Req};
use crate::ctx::Ctx;
use crate::framing::BodyLength;
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;

/// A WebSocket handshake only upgrades on a route that opted in (`websocket: true`); every
/// other `Upgrade` was already removed from the request.
pub(super) fn run(_: &Req, _: &Snapshot, ctx: &mut Ctx) -> Decision {
    let allowed = ctx.route.as_ref().is_some_and(|r| r.spec.websocket);
    if ctx.websocket && !allowed {
        return reject(400, "bad request", "websocket not enabled on this route");
    }
    if ctx.websocket && !matches!(ctx.body.len, BodyLength::None) {
        return reject(400, "bad request", "websocket handshake with a body");
    }
    Decision::Continue
}

/// Keeps `Upgrade` only on a genuine WebSocket handshake (returns true then). Any other
/// `Upgrade` (h2c, made-up protocols) is removed with its `Connection` token: Pingora would
/// otherwise treat the request as an upgrade, and a body behind it would go to the upstream
/// as an uninspected tunnel.
pub(super) fn sanitize(req: &mut RequestHeader) -> bool {
    if !req.headers.contains_key(http::header::UPGRADE) {
        return false;
    }
    let genuine = crate::hygiene::is_websocket_handshake(
        req.method.as_str(),
        req.version == http::Version::HTTP_11,
        |name| {
            req.headers
                .get_all(name)
                .iter()
                .map(|v| v.as_bytes())
                .collect()
        },
    );
    if genuine {
        return true;
    }
    req.remove_header(&http::header::UPGRADE);
    req.remove_header("http2-settings");
    let kept: Vec<String> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(str::trim)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case("upgrade")
                && !t.eq_ignore_ascii_case("http2-settings")
        })
        .map(str::to_string)
        .collect();
    req.remove_header(&http::header::CONNECTION);
    if !kept.is_empty() {
        let _ = req.insert_header(http::header::CONNECTION, kept.join(", "));
    }
    false
}
