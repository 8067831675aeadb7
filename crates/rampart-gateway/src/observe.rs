//! What a request leaves behind once it is done: WAF phase 5, metrics, one security event
//! when a stage refused it or a rule matched (credentials redacted), and the access-log line.

use crate::ctx::Ctx;
use crate::metrics::metrics;
use crate::proxy::Gateway;
use crate::snapshot::Snapshot;
use pingora::proxy::Session;
use pingora::Error;
use std::time::SystemTime;

impl Gateway {
    /// `logging`: WAF phase 5, metrics, the security event and the access-log line.
    pub(crate) fn log_request(&self, session: &Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let elapsed = ctx.start.elapsed();
        // Phase 5 first: it needs the context mutably, everything below only reads it.
        crate::stages::waf::finish(ctx);
        settle_permit(ctx, status);
        let route = ctx.route_name();
        let m = metrics();
        m.requests
            .with_label_values(&[route, status_label(status)])
            .inc();
        m.duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        if let (Some(pool), Some(t)) = (&ctx.upstream.pool, ctx.upstream.time) {
            m.upstream_duration
                .with_label_values(&[pool.name.as_str()])
                .observe(t.as_secs_f64());
        }
        self.security_event(session, ctx, route, status);
        {
            let blocked_by = match ctx.refused {
                Some(("route" | "https_redirect", _)) | None => None,
                Some((stage, _)) => Some(stage),
            };
            // Rule ids only for a request the WAF refused (the dashboard ranks blocks).
            let rules: Vec<u64> = match (blocked_by, ctx.waf.as_deref()) {
                (Some("waf"), Some(w)) => w.tx.matched.iter().map(|m| m.id).collect(),
                _ => Vec::new(),
            };
            crate::dashboard::record(
                ctx.snap.as_deref(),
                route,
                status,
                elapsed,
                blocked_by,
                &rules,
                ctx.client_ip,
                ctx.auth.principal.as_ref().map(|p| p.consumer_id.as_str()),
            );
        }
        {
            let req = session.req_header();
            crate::otel::record(ctx, req.method.as_str(), req.uri.path(), route, status);
        }
        self.respond_automatically(ctx, status);
        if !crate::access_log::enabled() {
            return;
        }
        let req = session.req_header();
        let mut line = serde_json::json!({
            "ts": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "request_id": ctx.request_id,
            "trace_id": ctx.trace.as_ref().map(|t| t.trace_id_hex()),
            "client_ip": ctx.client_ip.map(|i| i.to_string()),
            "method": req.method.as_str(),
            "host": ctx.host,
            "path": req.uri.path(),
            "route": route,
            "upstream": ctx.upstream.pool.as_ref().map(|p| p.name.as_str()),
            "target": ctx.upstream.target.map(|t| t.to_string()),
            "attempts": ctx.upstream.tried.len(),
            "status": status,
            "bytes_sent": session.body_bytes_sent(),
            "bytes_received": session.body_bytes_read(),
            "duration_ms": elapsed.as_secs_f64() * 1000.0,
            "upstream_ms": ctx.upstream.time.map(|t| t.as_secs_f64() * 1000.0),
        });
        if ctx.tls {
            line["tls"] = true.into();
        }
        if let Some(p) = &ctx.auth.principal {
            line["consumer"] = p.consumer_id.as_str().into();
            line["auth_method"] = p.method.as_str().into();
        }
        if let Some(b) = &ctx.bot {
            line["bot"] = b.verdict.name().into();
            line["bot_reason"] = b.reason.into();
            if let Some(c) = &b.crawler {
                line["crawler"] = c.as_str().into();
            }
        }
        if let Some(h) = &ctx.hello {
            line["ja4"] = h.ja4.as_str().into();
        }
        if let Some(t) = ctx.limits.throttled {
            line["throttled_ms"] = (t.as_secs_f64() * 1000.0).into();
        }
        if let Some(d) = &ctx.auth.authz {
            line["authz"] = serde_json::json!({
                "allowed": d.allowed,
                "reason": d.reason,
                "policies": d.policies,
            });
        }
        if let Some(id) = &ctx.auth.identity {
            line["client_cert_fingerprint"] = id.fingerprint_sha256.as_str().into();
        }
        if let Some(w) = &ctx.waf {
            // Ids and score only: rule messages and matched data belong to the event stream.
            line["waf_anomaly_score"] = w.tx.anomaly_score().into();
            if !w.tx.matched.is_empty() {
                line["waf_rules"] = w.tx.matched.iter().map(|m| m.id).collect::<Vec<_>>().into();
            }
        }
        if let Some(op) = &ctx.contract.operation {
            line["operation"] = op.as_str().into();
        }
        if !ctx.contract.violations.is_empty() {
            // How many; which ones are in the event.
            line["contract_violations"] = ctx.contract.violations.len().into();
        }
        if let Some(c) = ctx.cache {
            line["cache"] = c.into();
        }
        if session.subrequest_ctx.is_some() {
            // The cache's background refresh of a stale entry, not a client's request.
            line["background"] = true.into();
        }
        if !ctx.rules_applied.is_empty() {
            line["rules"] = ctx.rules_applied.clone().into();
        }
        if let Some((stage, reason)) = ctx.refused {
            line["refused_by"] = stage.into();
            line["reason"] = reason.into();
        }
        if let Some(e) = e {
            // The error type only: messages may carry upstream details.
            line["error"] = e.etype().as_str().into();
        }
        crate::access_log::write(line.to_string());
    }

    /// One event for a request a security stage refused (routing 404/405 and redirects are
    /// not security decisions).
    /// Feeds the response playbooks with this request's refusal, off the request's path:
    /// what they do (a ban, or why none) is itself a security event.
    fn respond_automatically(&self, ctx: &Ctx, status: u16) {
        use rampart_bans::EventKind;
        let kind = match (ctx.refused.map(|r| r.0), status) {
            (Some("waf"), _) => EventKind::WafBlock,
            (Some("authenticate"), 401) => EventKind::AuthFailure,
            (Some("authenticate"), 429) => EventKind::Lockout,
            (Some("rate_limit"), 429) => EventKind::RateLimited,
            (Some("validate" | "graphql"), _) => EventKind::ValidationFailure,
            _ => return,
        };
        let Some(snap) = ctx.snap.as_ref() else {
            return;
        };
        if !snap.responses.counts(kind) {
            return;
        }
        let responses = snap.responses.clone();
        let events = self.events.clone();
        let ip = ctx.client_ip;
        let consumer = ctx.auth.principal.as_ref().map(|p| p.consumer_id.clone());
        let request_id = ctx.request_id.clone();
        tokio::spawn(async move {
            for action in responses.observe(kind, ip, consumer.as_deref()).await {
                let (action, reason) = match action {
                    rampart_bans::Action::Banned {
                        playbook,
                        key,
                        duration,
                        level,
                        shared,
                        limit,
                    } => {
                        metrics()
                            .rejected
                            .with_label_values(&["automatic ban"])
                            .inc();
                        let scope = if shared {
                            ""
                        } else {
                            " on this node only (redis unavailable)"
                        };
                        let secs = duration.as_secs();
                        match limit {
                            Some(rate) => (
                                "throttle",
                                format!(
                                    "playbook {playbook} throttled {key} to {rate} for {secs}s (level {level}){scope}"
                                ),
                            ),
                            None => (
                                "ban",
                                format!(
                                    "playbook {playbook} banned {key} for {secs}s (level {level}){scope}"
                                ),
                            ),
                        }
                    }
                    rampart_bans::Action::NotBanned { playbook, key, why } => (
                        "none",
                        format!("playbook {playbook} did not ban {key}: {why}"),
                    ),
                };
                log::warn!("{reason}");
                let mut e = rampart_events::Event::notice(action, reason);
                e.stage = "response".into();
                e.request_id = request_id.clone();
                e.client_ip = ip.map(|i| i.to_string());
                e.consumer = consumer.clone();
                events.emit(e);
            }
        });
    }

    fn security_event(&self, session: &Session, ctx: &Ctx, route: &str, status: u16) {
        let waf = ctx.waf.as_deref();
        let m = metrics();
        if let Some(w) = waf {
            m.waf_anomaly
                .with_label_values(&[route])
                .observe(w.tx.anomaly_score() as f64);
            for r in &w.tx.matched {
                m.waf_matches
                    .with_label_values(&[route, r.id.to_string().as_str()])
                    .inc();
            }
        }
        let waf_matched = waf.is_some_and(|w| !w.tx.matched.is_empty());
        let (stage, reason, action) = match ctx.refused {
            Some(("route" | "https_redirect", _)) => return,
            Some((stage, reason)) => (stage, reason, "block"),
            None if waf_matched => {
                let detect = waf.is_some_and(|w| !w.blocking);
                if detect {
                    ("waf", "WAF rules matched (detection only)", "detect")
                } else {
                    (
                        "waf",
                        "WAF rules matched below the blocking threshold",
                        "allow",
                    )
                }
            }
            None if !ctx.contract.violations.is_empty() => {
                match ctx.contract.detected_by.unwrap_or("validate") {
                    "graphql" => (
                        "graphql",
                        "GraphQL request over the limits (detection only)",
                        "detect",
                    ),
                    "validate_response" => (
                        "validate_response",
                        "response breaks the API contract (detection only)",
                        "detect",
                    ),
                    _ => (
                        "validate",
                        "request breaks the API contract (detection only)",
                        "detect",
                    ),
                }
            }
            None => return,
        };
        if action == "block" {
            m.blocked.with_label_values(&[route, stage]).inc();
        }
        if !self.events.enabled() {
            return;
        }
        let req = session.req_header();
        let (secret_headers, secret_params) = redaction_lists(ctx.snap.as_deref());
        let reason = match (&ctx.auth.authz, stage) {
            (Some(d), "authorize") => d.reason.clone(),
            _ if ctx.limits.sustained_excess => format!("{reason}: sustained excess from this key"),
            _ => reason.to_string(),
        };
        self.events.emit(rampart_events::Event {
            id: String::new(),
            ts: rampart_events::Event::now_ts(),
            request_id: ctx.request_id.clone(),
            trace_id: ctx.trace.as_ref().map(|t| t.trace_id_hex()),
            client_ip: ctx.client_ip.map(|i| i.to_string()),
            method: req.method.as_str().to_string(),
            host: ctx.host.clone(),
            uri: rampart_events::redact::redact_pairs(&req.uri.to_string(), &secret_params),
            route: (route != "-").then(|| route.to_string()),
            stage: stage.to_string(),
            action: action.into(),
            status,
            reason,
            consumer: ctx.auth.principal.as_ref().map(|p| p.consumer_id.clone()),
            anomaly_score: waf.map(|w| w.tx.anomaly_score()),
            rules: waf
                .map(|w| {
                    w.tx.matched
                        .iter()
                        .map(|r| rampart_events::RuleMatch {
                            id: r.id,
                            msg: r.msg.clone(),
                            data: if rampart_events::redact::is_secret_variable(
                                &r.matched_var_name,
                                &secret_headers,
                                &secret_params,
                            ) {
                                format!("REDACTED (credential in {})", r.matched_var_name)
                            } else {
                                rampart_events::redact::redact_pairs(&r.data, &secret_params)
                            },
                            severity: r.severity.clone(),
                            tags: r.tags.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            policies: ctx
                .auth
                .authz
                .as_ref()
                .map(|d| d.policies.clone())
                .unwrap_or_default(),
            violations: ctx
                .contract
                .violations
                .iter()
                .map(|v| rampart_events::ContractViolation {
                    pointer: v.pointer.clone(),
                    keyword: v.keyword.clone(),
                    message: v.message.clone(),
                })
                .collect(),
            bot: ctx.bot.as_ref().map(|b| b.verdict.name().to_string()),
            ja4: ctx.hello.as_ref().map(|h| h.ja4.clone()),
            actor: None,
            changes: Vec::new(),
        });
    }
}

/// The names whose values events never show: the configured lists plus the API-key
/// header and query parameter.
fn redaction_lists(snap: Option<&Snapshot>) -> (Vec<String>, Vec<String>) {
    let Some(s) = snap else {
        return (Vec::new(), Vec::new());
    };
    let e = &s.config.events;
    let k = &s.config.auth.api_key;
    let mut headers = e.redact_headers.clone();
    headers.push(k.header.clone());
    let mut params = e.redact_query.clone();
    params.extend(k.query.clone());
    (headers, params)
}

fn status_label(s: u16) -> &'static str {
    // Static labels avoid an allocation per request for the common statuses.
    match s {
        200 => "200",
        201 => "201",
        204 => "204",
        301 => "301",
        302 => "302",
        304 => "304",
        308 => "308",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        429 => "429",
        431 => "431",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        0 => "0",
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// The event sinks, for what happens outside a request (a shared store lost or regained).
/// Set once the sinks start; the snapshot (and the tasks it starts) is built before that.
static SYSTEM_EVENTS: std::sync::OnceLock<std::sync::Arc<rampart_events::Events>> =
    std::sync::OnceLock::new();

/// Makes `events` the sinks of [`system_event`].
pub(crate) fn set_system_events(events: std::sync::Arc<rampart_events::Events>) {
    let _ = SYSTEM_EVENTS.set(events);
}

/// A security event that no request caused (always logged too).
pub(crate) fn system_event(stage: &str, action: &str, reason: String) {
    log::warn!("{stage}: {reason}");
    if let Some(events) = SYSTEM_EVENTS.get() {
        events.emit(bare_event(stage, action, reason));
    }
}

/// An event about no request in particular (a system change, an admin call): the
/// stage, action and reason, the rest empty for the caller to fill.
pub(crate) fn bare_event(stage: &str, action: &str, reason: String) -> rampart_events::Event {
    let mut e = rampart_events::Event::notice(action, reason);
    e.stage = stage.into();
    e.request_id = crate::framing::new_request_id();
    e
}

/// The adaptive limit learns from what the upstream did: its time to answer, or a failure
/// (no answer, or a 5xx of its own). A request refused after the pipeline says nothing
/// about the upstream.
fn settle_permit(ctx: &mut Ctx, status: u16) {
    let Some(permit) = ctx.upstream.permit.take() else {
        return;
    };
    match ctx.upstream.time {
        Some(t) if status < 500 => permit.answered(t),
        Some(_) => permit.failed(),
        None if ctx.upstream.target.is_some() => permit.failed(),
        None => drop(permit),
    }
    if let Some(pool) = &ctx.upstream.pool {
        if let Some(limit) = &pool.adaptive {
            metrics()
                .upstream_limit
                .with_label_values(&[pool.name.as_str()])
                .set(limit.limit() as i64);
        }
    }
}
