//! `headers`: header names with `_` (when refused), credentials given twice, ambiguous
//! `Content-Type` parameters.

use super::{reject, Decision, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;

/// Whether a query parameter's name, decoded as a backend decodes it (`api%5Fkey` is
/// `api_key`), is `name`.
pub(crate) fn param_is(raw: &str, name: &str) -> bool {
    rampart_events::redact::param_name(raw) == name
}

/// Credentials given twice are ambiguous: the gateway would check one, a backend that gets
/// them (`forward_credentials`) might read the other.
fn duplicate_credentials(r: &Req, snap: &Snapshot) -> Option<&'static str> {
    let s = &snap.config.auth.api_key;
    if r.head
        .headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .count()
        > 1
    {
        return Some("duplicate Authorization header");
    }
    if r.head.headers.get_all(s.header.as_str()).iter().count() > 1 {
        return Some("duplicate API key header");
    }
    if let (Some(name), Some(q)) = (s.query.as_deref(), r.head.uri.query()) {
        let n = q
            .split('&')
            .filter(|kv| param_is(kv.split('=').next().unwrap_or(""), name))
            .count();
        if n > 1 {
            return Some("duplicate API key parameter");
        }
    }
    None
}

/// Headers that two parsers would read differently: names with `_` (when refused rather
/// than dropped), credentials given twice, and `Content-Type` parameters given twice (a WAF
/// reading the first `boundary` while the backend uses the last one sees another body).
pub(super) fn run(r: &Req, snap: &Snapshot, _: &mut Ctx) -> Decision {
    let h = &snap.config.requests;
    if h.underscore_headers == rampart_config::UnderscoreHeaders::Reject
        && r.head
            .headers
            .keys()
            .any(|k| crate::hygiene::underscore_dropped(k.as_str(), &h.allow_underscore_headers))
    {
        return reject(400, "bad request", "underscore in header name");
    }
    if let Some(reason) = duplicate_credentials(r, snap) {
        return reject(400, "bad request", reason);
    }
    let mut types = r.head.headers.get_all(http::header::CONTENT_TYPE).iter();
    if let Some(ct) = types.next() {
        if types.next().is_some() {
            return reject(400, "bad request", "duplicate Content-Type");
        }
        if let Err(reason) = crate::hygiene::check_content_type(ct.as_bytes()) {
            return reject(400, "bad request", reason);
        }
    }
    Decision::Continue
}
