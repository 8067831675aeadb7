//! `client_ip`: the real client address. From a trusted proxy, read from the configured
//! forwarding header (`rampart-net`); otherwise the TCP peer. A header that cannot be read
//! is refused (400) or ignored, by config; either way it is never believed.

use super::{reject, Decision, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use rampart_config::MalformedClientIp;

pub(super) fn run(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let (Some(peer), Some(header)) = (ctx.peer_ip, snap.client_ip.header()) else {
        return Decision::Continue;
    };
    let values: Vec<&[u8]> = r
        .head
        .headers
        .get_all(header)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let resolved = match snap.client_ip.resolve(peer, &values) {
        Ok(r) => r,
        Err(e) => match snap.config.server.malformed_client_ip {
            MalformedClientIp::Reject => {
                return reject(400, "malformed forwarding header", e.reason);
            }
            MalformedClientIp::Ignore => e.fallback,
        },
    };
    ctx.client_ip = Some(resolved.client);
    ctx.forwarded_chain = resolved.chain;
    Decision::Continue
}
