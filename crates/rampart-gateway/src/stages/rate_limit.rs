//! `rate_limit`: a response playbook's throttle on this client or consumer, then the
//! route's limits, through `rampart-limits` (429, delay, or 503 when the shared backend is
//! down and `on_backend_error: deny`).

use super::{Decision, Reject, Req};
use crate::ctx::Ctx;
use crate::metrics::metrics;
use crate::snapshot::Snapshot;

pub(super) async fn run(r: &Req<'_>, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    if let Some((on, rate)) = ctx.limits.restricted.take() {
        if let Some(refused) = throttle(snap, ctx, on, &rate).await {
            return refused;
        }
    }
    let Some(route) = ctx.route.clone() else {
        return Decision::Continue;
    };
    if !route.limits.is_empty() {
        let d = check(r, snap, ctx, &route.limits, &route.spec.name).await;
        if !matches!(d, Decision::Continue) {
            return d;
        }
    }
    // An operation with limits of its own is held to them as well.
    if let Some(op) = ctx.operation.clone() {
        if !op.limits.is_empty() {
            return check(r, snap, ctx, &op.limits, &op.label).await;
        }
    }
    Decision::Continue
}

/// `limits` (a route's or an operation's, named `label` in metrics and logs).
pub(super) async fn check(
    r: &Req<'_>,
    snap: &Snapshot,
    ctx: &mut Ctx,
    limits: &[rampart_limits::LimitRt],
    label: &str,
) -> Decision {
    let head = r.head;
    let header = |name: &str| {
        head.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let principal = ctx.auth.principal.as_ref();
    let claim = |name: &str| {
        let c = principal?.claims.as_deref()?;
        rampart_auth::claim_path(c, name).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let facts = rampart_limits::Facts {
        client_ip: ctx.client_ip,
        consumer: principal.map(|p| p.consumer_id.as_str()),
        route: label,
        header: &header,
        claim: &claim,
    };
    let d = snap.limiter.check(limits, &facts).await;
    let m = metrics();
    if d.backend_error {
        m.ratelimit_backend_errors.with_label_values(&[label]).inc();
    }
    if d.sustained_excess {
        ctx.limits.sustained_excess = true;
        log::warn!(
            "rate limit: sustained excess on {} by a {} key ({})",
            label,
            d.key_type.as_deref().unwrap_or("-"),
            ctx.client_ip.map(|i| i.to_string()).unwrap_or_default()
        );
    }
    let mut headers = Vec::new();
    if let Some(p) = &d.policy_header {
        headers.push(("RateLimit-Policy", p.clone()));
    }
    if let Some(l) = &d.limit_header {
        headers.push(("RateLimit", l.clone()));
    }
    match d.verdict {
        rampart_limits::Verdict::Allow => {
            ctx.limits.headers = headers;
            Decision::Continue
        }
        rampart_limits::Verdict::Delay(wait) => {
            ctx.limits.headers = headers;
            ctx.limits.throttled = Some(wait);
            tokio::time::sleep(wait).await;
            Decision::Continue
        }
        rampart_limits::Verdict::Reject { retry_after } => {
            m.ratelimit_rejected
                .with_label_values(&[label, d.key_type.as_deref().unwrap_or("-")])
                .inc();
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            headers.push(("Retry-After", secs.to_string()));
            Decision::Respond(Reject {
                status: 429,
                message: "too many requests",
                reason: "rate limited",
                headers,
            })
        }
        rampart_limits::Verdict::Unavailable => Decision::Respond(Reject {
            status: 503,
            message: "service unavailable",
            reason: "rate limit backend unavailable",
            headers: vec![("Retry-After", "1".into())],
        }),
    }
}

/// A playbook's throttle: the key held to `rate`, counted on every node when bans are
/// shared. A rate that does not compile (a ban written by hand into Redis) refuses: a
/// throttle is never lifted by a typo.
async fn throttle(
    snap: &Snapshot,
    ctx: &Ctx,
    on: rampart_bans::Subject,
    rate: &str,
) -> Option<Decision> {
    let key = match on {
        rampart_bans::Subject::ClientIp => "client_ip",
        rampart_bans::Subject::Consumer => "consumer",
    };
    let spec = rampart_config::RateLimit {
        key: rampart_config::LimitKey::One(key.into()),
        rate: Some(rate.to_string()),
        backend: if snap.bans.shared() {
            rampart_config::LimitBackend::Redis
        } else {
            rampart_config::LimitBackend::Local
        },
        ..Default::default()
    };
    let refuse = |retry: u64| {
        Decision::Respond(Reject {
            status: 429,
            message: "too many requests",
            reason: "throttled by a response playbook",
            headers: vec![("Retry-After", retry.max(1).to_string())],
        })
    };
    let Ok(limit) = rampart_limits::LimitRt::compile(&format!("throttle-{key}"), &spec) else {
        log::warn!("throttle: unreadable rate {rate:?}; refusing");
        return Some(refuse(60));
    };
    let no_header = |_: &str| None;
    let no_claim = |_: &str| None;
    let facts = rampart_limits::Facts {
        client_ip: ctx.client_ip,
        consumer: ctx.auth.principal.as_ref().map(|p| p.consumer_id.as_str()),
        route: "",
        header: &no_header,
        claim: &no_claim,
    };
    match snap
        .limiter
        .check(std::slice::from_ref(&limit), &facts)
        .await
        .verdict
    {
        rampart_limits::Verdict::Reject { retry_after } => {
            metrics()
                .rejected
                .with_label_values(&["playbook throttle"])
                .inc();
            Some(refuse(retry_after.as_secs_f64().ceil() as u64))
        }
        _ => None,
    }
}
