//! `https_redirect`: plain-HTTP listeners with `redirect_https` answer 308 to https.

use super::{Decision, Reject, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;

pub(super) fn run(r: &Req, snap: &Snapshot, _: &mut Ctx) -> Decision {
    let Some(l) = _listener(snap, r) else {
        return Decision::Continue;
    };
    if !l.redirect_https {
        return Decision::Continue;
    }
    let host = r
        .head
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(rampart_router::normalize_host)
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
        })
        .unwrap_or_else(|| l.addr.ip().to_string());
    let port = if l.https_port == 443 {
        String::new()
    } else {
        format!(":{}", l.https_port)
    };
    let path = r
        .head
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    Decision::Respond(Reject {
        status: 308,
        message: "this service is only available over https",
        reason: "https redirect",
        headers: vec![("Location", format!("https://{host}{port}{path}"))],
    })
}

fn _listener<'a>(snap: &'a Snapshot, r: &Req) -> Option<&'a crate::snapshot::ListenerRt> {
    r.listener.and_then(|i| snap.listeners.get(i))
}
