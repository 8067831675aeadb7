//! `authenticate`: credentials to a principal through `rampart-auth` (401, 429 lockout,
//! 401 step-up, 503 when password hashing is saturated).

use super::{Decision, Reject, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use crate::stages::param_is;

/// The API key a request carries: the configured header, else (if enabled) the query param.
fn api_key_of<'a>(r: &'a Req, snap: &Snapshot) -> Option<std::borrow::Cow<'a, str>> {
    let s = &snap.config.auth.api_key;
    if let Some(v) = r
        .head
        .headers
        .get(s.header.as_str())
        .and_then(|v| v.to_str().ok())
    {
        return Some(v.into());
    }
    let name = s.query.as_deref()?;
    let q = r.head.uri.query()?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        param_is(k, name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
    })
}

pub(super) async fn run(r: &Req<'_>, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route_rt) = ctx.route.clone() else {
        return Decision::Continue;
    };
    let route = &route_rt.spec;
    let Some(auth) = &route.auth else {
        return Decision::Continue;
    };
    let api_key = api_key_of(r, snap);
    let cert = ctx
        .auth
        .identity
        .as_ref()
        .map(|id| rampart_auth::CertFacts {
            common_name: id.common_name.clone(),
            sans: id.dns_sans.iter().chain(&id.uri_sans).cloned().collect(),
            fingerprint_sha256: id.fingerprint_sha256.clone(),
        });
    let creds = rampart_auth::Credentials {
        authorization: r
            .head
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        api_key: api_key.as_deref(),
        client_ip: ctx.client_ip,
        certificate: cert.as_ref(),
    };
    match snap.auth.authenticate(auth, &creds).await {
        rampart_auth::Outcome::Authenticated(p) => {
            ctx.auth.principal = Some(p);
            Decision::Continue
        }
        rampart_auth::Outcome::Anonymous => Decision::Continue,
        rampart_auth::Outcome::Denied { reason } => Decision::Respond(Reject {
            status: 401,
            message: "authentication required",
            reason,
            headers: vec![("WWW-Authenticate", snap.auth.challenges(auth).join(", "))],
        }),
        rampart_auth::Outcome::Locked { reason, retry_after } => Decision::Respond(Reject {
            status: 429,
            message: "too many failed attempts, try later",
            reason,
            headers: vec![("Retry-After", retry_after.as_secs().max(1).to_string())],
        }),
        rampart_auth::Outcome::Busy { reason } => Decision::Respond(Reject {
            status: 503,
            message: "service busy, try later",
            reason,
            headers: vec![("Retry-After", "1".into())],
        }),
        rampart_auth::Outcome::StepUp { reason } => Decision::Respond(Reject {
            status: 401,
            message: "stronger authentication required",
            reason,
            headers: vec![(
                "WWW-Authenticate",
                "Bearer error=\"insufficient_user_authentication\", error_description=\"A stronger authentication is required\"".into(),
            )],
        }),
    }
}
