//! The Pingora adapter: Rampart's request pipeline mapped onto Pingora's phases.
//!
//! Request stages run in `request_filter`, in dataflow order (see [`REQUEST_STAGES`]); each
//! returns [`Decision::Continue`] or [`Decision::Respond`], and a refusal is recorded in the
//! context for the access log. Then Pingora picks the upstream target (`upstream_peer`),
//! retries idempotent requests on connect failures, and `logging` writes the access log.

use crate::framing::{self, BodyLength};
use crate::metrics::metrics;
use crate::snapshot::Snapshot;
use crate::upstream::UpstreamPool;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType};
use rampart_router::Match;
use rampart_tls::ClientIdentity;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub struct Gateway {
    pub state: Arc<ArcSwap<Snapshot>>,
    pub events: Arc<rampart_events::Events>,
}

/// A refusal decided by a stage; the response body is the standard JSON error.
pub struct Reject {
    pub status: u16,
    pub message: &'static str,
    pub reason: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

pub enum Decision {
    Continue,
    Respond(Reject),
}

fn reject(status: u16, message: &'static str, reason: &'static str) -> Decision {
    Decision::Respond(Reject {
        status,
        message,
        reason,
        headers: Vec::new(),
    })
}

pub struct Ctx {
    snap: Option<Arc<Snapshot>>,
    request_id: String,
    client_ip: Option<IpAddr>,
    host: String,
    route: Option<usize>,
    prefix: String,
    pool: Option<Arc<UpstreamPool>>,
    tried: Vec<SocketAddr>,
    target: Option<SocketAddr>,
    start: Instant,
    upstream_start: Option<Instant>,
    upstream_time: Option<Duration>,
    body_len: BodyLength,
    body_seen: u64,
    /// The stage that refused the request and why, for the access log.
    refused: Option<(&'static str, &'static str)>,
    listener: Option<usize>,
    tls: bool,
    hsts: Option<String>,
    /// The verified client certificate (mTLS), if any.
    identity: Option<ClientIdentity>,
    principal: Option<rampart_auth::Principal>,
    /// The authorization decision, for the access log (never for the client).
    authz: Option<rampart_authz::Decision>,
    ratelimit_headers: Vec<(&'static str, String)>,
    throttled: Option<Duration>,
    /// This request's key has been rejected persistently (reported once per window).
    sustained_excess: bool,
    /// Held for the life of the request: releases the concurrency slot when dropped.
    inflight: Option<rampart_limits::InFlightGuard>,
    /// The WAF transaction, kept from the request phases to the response and logging ones.
    waf: Option<Box<WafReq>>,
    /// Body bytes the WAF read that Pingora will not replay from its buffer.
    body_prefix: Option<Bytes>,
    /// The canonical path (see `rampart_router::canonical_path`): what every stage decides
    /// on and what the upstream receives.
    path: String,
    /// The canonical path differs from the one sent: the upstream gets the canonical one.
    path_rewritten: bool,
    /// A genuine WebSocket handshake whose `Upgrade` was kept (the route must opt in).
    websocket: bool,
    /// The whole body was read and held by the WAF: the upstream gets it with this length.
    body_complete: Option<usize>,
    /// When the first body byte was awaited, for the body timeout and minimum rate.
    body_started: Option<Instant>,
    /// The upstream's 5xx body is replaced by Rampart's JSON (`hide_upstream_errors`).
    hide_error: bool,
}

/// A request's WAF state across Pingora's phases.
pub struct WafReq {
    tx: rampart_waf::engine::Transaction<'static>,
    /// Block mode: the route's rules may refuse the response.
    blocking: bool,
    /// Phase 4 wants this response's body (its type is inspected).
    inspect_body: bool,
    /// Response body bytes kept for phase 4 (up to the limit).
    body: Vec<u8>,
    /// Chunks are held back from the client until phase 4 has run (block mode).
    holding: bool,
    held: Vec<u8>,
    phase4_done: bool,
    /// Phase 3 refused the response: its headers were replaced, its body is dropped.
    response_refused: bool,
}

/// What the stages see of a request: the parsed header and, for HTTP/1, the raw header
/// bytes (Pingora repairs some framing ambiguities in the parsed form; a security gateway
/// refuses them instead, so it looks at what was actually sent).
pub struct Req<'a> {
    pub head: &'a RequestHeader,
    pub raw: Option<Bytes>,
    pub listener: Option<usize>,
    /// HTTP/2: the HEADERS frame did not end the stream, so DATA frames follow (a body with
    /// or without Content-Length).
    pub h2_body: bool,
}

type Stage = fn(&Req, &Snapshot, &mut Ctx) -> Decision;

/// A pipeline step: most are synchronous checks; authentication may wait on an IdP.
#[derive(Clone, Copy)]
enum Step {
    Sync(Stage),
    Authenticate,
    RateLimit,
    /// Reads (and holds back) the request body, so it runs last, with the session.
    Waf,
}

/// The request pipeline, in the order a request meets it. Later issues insert their stages
/// (network lists, authentication, authorization, limits, WAF, validation) at their place.
const REQUEST_STAGES: &[(&str, Step)] = &[
    ("https_redirect", Step::Sync(stage_https_redirect)),
    ("framing", Step::Sync(stage_framing)),
    ("path", Step::Sync(stage_path)),
    ("headers", Step::Sync(stage_headers)),
    ("header_limits", Step::Sync(stage_header_limits)),
    ("body_limit", Step::Sync(stage_body_limit)),
    ("route", Step::Sync(stage_route)),
    ("upgrade", Step::Sync(stage_upgrade)),
    ("client_cert", Step::Sync(stage_client_cert)),
    ("authenticate", Step::Authenticate),
    ("authorize", Step::Sync(stage_authorize)),
    ("rate_limit", Step::RateLimit),
    ("concurrency", Step::Sync(stage_concurrency)),
    ("waf", Step::Waf),
];

async fn stage_rate_limit(r: &Req<'_>, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route) = ctx.route.map(|i| &snap.routes[i]) else {
        return Decision::Continue;
    };
    if route.limits.is_empty() {
        return Decision::Continue;
    }
    let head = r.head;
    let header = |name: &str| {
        head.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let principal = ctx.principal.as_ref();
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
        route: route.spec.name.as_str(),
        header: &header,
        claim: &claim,
    };
    let d = snap.limiter.check(&route.limits, &facts).await;
    let m = metrics();
    if d.backend_error {
        m.ratelimit_backend_errors
            .with_label_values(&[route.spec.name.as_str()])
            .inc();
    }
    if d.sustained_excess {
        ctx.sustained_excess = true;
        log::warn!(
            "rate limit: sustained excess on route {} by a {} key ({})",
            route.spec.name,
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
            ctx.ratelimit_headers = headers;
            Decision::Continue
        }
        rampart_limits::Verdict::Delay(wait) => {
            ctx.ratelimit_headers = headers;
            ctx.throttled = Some(wait);
            tokio::time::sleep(wait).await;
            Decision::Continue
        }
        rampart_limits::Verdict::Reject { retry_after } => {
            m.ratelimit_rejected
                .with_label_values(&[
                    route.spec.name.as_str(),
                    d.key_type.as_deref().unwrap_or("-"),
                ])
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

/// WAF phases 1 and 2: the request as sent, then its body, read and held back (up to the
/// inspection limit) so that nothing reaches the upstream before the rules have seen it.
/// Pingora forwards the held bytes from its retry buffer once the request goes upstream.
async fn stage_waf(session: &mut Session, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(rw) = ctx.route.and_then(|i| snap.routes[i].waf.as_ref()) else {
        return Decision::Continue;
    };
    let ip = ctx.client_ip.map(|i| i.to_string()).unwrap_or_default();
    let mut tx = rw.transaction(&ip);
    let raw = session
        .as_downstream()
        .as_http1()
        .map(|h1| h1.get_headers_raw_bytes());
    let head = raw.as_deref().and_then(crate::waf::raw_head);
    let (method, uri, proto, headers) = head.unwrap_or_else(|| {
        // HTTP/2: the decoded header list is what was sent.
        let req = session.req_header();
        let mut headers: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        // :authority is HTTP/2's Host; rules (and ModSecurity behind nginx) see it as Host.
        if !req.headers.contains_key(http::header::HOST) {
            if let Some(a) = req.uri.authority() {
                headers.insert(0, ("host".to_string(), a.as_str().as_bytes().to_vec()));
            }
        }
        let uri = req
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        (
            req.method.as_str().to_string(),
            uri,
            format!("{:?}", req.version),
            headers,
        )
    });
    // The rules decide on the path the upstream will receive; REQUEST_URI_RAW stays as sent
    // (and an absolute-form target keeps its scheme and authority, as ModSecurity sees it).
    let canonical = if ctx.path_rewritten {
        let (before_query, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri.as_str(), None),
        };
        let prefix = match framing::absolute_form_authority(before_query) {
            Some(a) => &before_query[..before_query.find(a).unwrap_or(0) + a.len()],
            None => "",
        };
        match query {
            Some(q) => format!("{prefix}{}?{q}", ctx.path),
            None => format!("{prefix}{}", ctx.path),
        }
    } else {
        uri.clone()
    };
    tx.request_headers(&method, &canonical, &proto, &headers);
    if canonical != uri {
        tx.set_request_uri_raw(&uri);
    }
    tx.run_phase(1);
    let cfg = &rw.rt.cfg;
    let mut refusal = None;
    // A body inspected only in part (process_partial) cannot be parsed whole.
    let mut partial = false;
    // Every body is read here whatever its framing (Content-Length, chunked, HTTP/2 DATA
    // frames); only a verified WebSocket handshake (which has none) upgrades.
    if tx.interruption.is_none()
        && !matches!(ctx.body_len, BodyLength::None)
        && rw.rt.ruleset.request_body_access
    {
        let limit = cfg.request_body_limit.0 as usize;
        let max = snap.config.limits.max_request_body.0 as usize;
        session.enable_retry_buffering();
        let mut body: Vec<u8> = Vec::new();
        let mut over = false;
        let mut complete = false;
        let pace = BodyPace::new(snap, ctx);
        loop {
            if body.len() > limit {
                over = true;
                break;
            }
            let read = match pace.next_deadline(body.len()) {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline.into(), session.read_request_body())
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => {
                            ctx.waf = Some(waf_req(tx, rw));
                            return reject(408, "request body timeout", "request body too slow");
                        }
                    }
                }
                None => {
                    ctx.waf = Some(waf_req(tx, rw));
                    return reject(408, "request body timeout", "request body too slow");
                }
            };
            match read {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => {
                    complete = true;
                    break;
                }
                Err(_) => {
                    ctx.waf = Some(waf_req(tx, rw));
                    return reject(400, "bad request", "request body unreadable");
                }
            }
        }
        if body.len() > max {
            refusal = Some(reject(413, "request body too large", "body over limit"));
        } else if over && cfg.request_body_limit_action == rampart_config::BodyLimitAction::Reject {
            refusal = Some(reject(
                413,
                "request body too large",
                "body over WAF inspection limit",
            ));
        } else if session.retry_buffer_truncated() && session.is_body_done() {
            // The last read went past what Pingora can forward from its buffer: refuse
            // rather than send the upstream a request without its body.
            refusal = Some(reject(
                413,
                "request body too large",
                "body over WAF inspection limit",
            ));
        } else {
            if session.retry_buffer_truncated() {
                // Pingora's buffer gave up past 64 KiB, so it will not replay what was
                // read: the body filter puts these bytes in front of the next chunk.
                ctx.body_prefix = Some(Bytes::copy_from_slice(&body));
            } else if complete {
                // Forwarded with its length: no chunked framing for the upstream to read
                // differently (and no HTTP/2 end-of-stream turned into a second terminator).
                ctx.body_complete = Some(body.len());
            }
            partial = over;
            body.truncate(limit);
            tx.request_body(&body);
        }
    }
    // Phase 2 runs for every request: most attack rules live there, bodies or not.
    if refusal.is_none() {
        tx.run_phase(2);
        if tx.interruption.is_none()
            && rw.mode == rampart_config::WafMode::Block
            && cfg.reject_unparsable_body
            && !partial
            && tx.request_body_error().is_some()
        {
            refusal = Some(reject(
                400,
                "bad request",
                "request body could not be parsed",
            ));
        }
    }
    let decision = match (&tx.interruption, refusal) {
        (_, Some(r)) => r,
        (Some(i), None) => {
            let m = metrics();
            let route = snap.routes[ctx.route.unwrap_or(0)].spec.name.as_str();
            m.waf_blocked
                .with_label_values(&[route, &i.rule_id.to_string()])
                .inc();
            match &i.action {
                // The rules' own SecRequestBodyLimit with Reject.
                _ if i.rule_id == 0 && i.status == 413 => reject(
                    413,
                    "request body too large",
                    "body over the WAF rules' SecRequestBodyLimit",
                ),
                rampart_waf::engine::Disruptive::Redirect(url) => Decision::Respond(Reject {
                    status: 302,
                    message: "redirected",
                    reason: "blocked by WAF rules",
                    headers: vec![("Location", url.clone())],
                }),
                _ => Decision::Respond(Reject {
                    status: cfg.status,
                    message: "forbidden",
                    reason: "blocked by WAF rules",
                    headers: Vec::new(),
                }),
            }
        }
        (None, None) => Decision::Continue,
    };
    ctx.waf = Some(waf_req(tx, rw));
    decision
}

/// How long a request body may take: all of it within `request_body_timeout`, and after a
/// grace period at least `min_request_body_rate` bytes per second on average (a client
/// sending one byte a second holds a connection and an upstream slot otherwise).
struct BodyPace {
    start: Instant,
    total: Duration,
    rate: u64,
}

const BODY_RATE_GRACE: Duration = Duration::from_secs(5);

impl BodyPace {
    fn new(snap: &Snapshot, ctx: &Ctx) -> BodyPace {
        let l = &snap.config.limits;
        BodyPace {
            start: ctx.body_started.unwrap_or_else(Instant::now),
            total: l.request_body_timeout.0,
            rate: l.min_request_body_rate.0,
        }
    }

    /// When the next bytes must have arrived, having received `received`; None: too late.
    fn next_deadline(&self, received: usize) -> Option<Instant> {
        let mut deadline = self.start + self.total;
        if self.rate > 0 {
            let earned = Duration::from_secs_f64(received as f64 / self.rate as f64);
            deadline = deadline.min(self.start + BODY_RATE_GRACE + earned);
        }
        (deadline > Instant::now()).then_some(deadline)
    }
}

fn waf_req(
    tx: rampart_waf::engine::Transaction<'static>,
    rw: &crate::waf::RouteWaf,
) -> Box<WafReq> {
    Box::new(WafReq {
        tx,
        blocking: rw.mode == rampart_config::WafMode::Block,
        inspect_body: false,
        body: Vec::new(),
        holding: false,
        held: Vec::new(),
        phase4_done: false,
        response_refused: false,
    })
}

fn stage_concurrency(_: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route) = ctx.route.map(|i| &snap.routes[i]) else {
        return Decision::Continue;
    };
    let Some(c) = &route.spec.concurrency else {
        return Decision::Continue;
    };
    let key = match (c.key.as_str(), ctx.principal.as_ref()) {
        ("consumer", Some(p)) => format!("{}|c:{}", route.spec.name, p.consumer_id),
        ("consumer", None) => format!(
            "{}|ip:{}",
            route.spec.name,
            ctx.client_ip.map(|i| i.to_string()).unwrap_or_default()
        ),
        _ => route.spec.name.clone(),
    };
    match snap.inflight.acquire(&key, c.limit) {
        Some(g) => {
            ctx.inflight = Some(g);
            Decision::Continue
        }
        None => Decision::Respond(Reject {
            status: 503,
            message: "too many requests in progress",
            reason: "concurrency limit",
            headers: vec![("Retry-After", "1".into())],
        }),
    }
}

fn stage_authorize(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route) = ctx.route.map(|i| &snap.routes[i]) else {
        return Decision::Continue;
    };
    let decision = match &route.policy {
        Some(policy) => {
            let p = ctx.principal.as_ref();
            let req = rampart_authz::AuthzRequest {
                consumer: p.map(|p| p.consumer_id.as_str()),
                groups: p.map(|p| p.groups.as_slice()).unwrap_or(&[]),
                claims: p.and_then(|p| p.claims.as_deref()),
                method: r.head.method.as_str(),
                path: ctx.path.as_str(),
                route: route.spec.name.as_str(),
                client_ip: ctx.client_ip,
                mtls: ctx
                    .identity
                    .as_ref()
                    .map(|i| (i.common_name.as_deref(), i.fingerprint_sha256.as_str())),
                now: SystemTime::now(),
            };
            policy.decide(&req)
        }
        // Authenticated routes without a policy follow default_authorization.
        None if route.spec.auth.is_some() && ctx.principal.is_some() => {
            rampart_authz::default_decision(snap.config.default_authorization)
        }
        None => return Decision::Continue,
    };
    let allowed = decision.allowed;
    ctx.authz = Some(decision);
    if allowed {
        Decision::Continue
    } else {
        reject(403, "forbidden", "authorization denied")
    }
}

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

/// Whether a query parameter's name, decoded as a backend decodes it (`api%5Fkey` is
/// `api_key`), is `name`.
fn param_is(raw: &str, name: &str) -> bool {
    if !raw.contains(['%', '+']) {
        return raw == name;
    }
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy() == name
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

async fn stage_authenticate(r: &Req<'_>, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(route) = ctx.route.map(|i| &snap.routes[i].spec) else {
        return Decision::Continue;
    };
    let Some(auth) = &route.auth else {
        return Decision::Continue;
    };
    let api_key = api_key_of(r, snap);
    let cert = ctx.identity.as_ref().map(|id| rampart_auth::CertFacts {
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
            ctx.principal = Some(p);
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

fn stage_https_redirect(r: &Req, snap: &Snapshot, _: &mut Ctx) -> Decision {
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

fn stage_client_cert(_: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let needs = ctx
        .route
        .map(|i| snap.routes[i].spec.require_client_cert)
        .unwrap_or(false);
    if needs && ctx.identity.is_none() {
        return reject(403, "client certificate required", "no client certificate");
    }
    Decision::Continue
}

fn stage_framing(r: &Req, _: &Snapshot, ctx: &mut Ctx) -> Decision {
    let req = r.head;
    let (cl, te): (Vec<&[u8]>, Vec<&[u8]>) = match &r.raw {
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
        Ok(BodyLength::None) if r.h2_body => ctx.body_len = BodyLength::Chunked,
        Ok(len) => ctx.body_len = len,
        Err(e) => return reject(400, "bad request", e.reason()),
    }
    if let Some(raw) = &r.raw {
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

/// One canonical path for routing, authorization, the WAF and the upstream.
fn stage_path(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let raw = r.head.uri.path();
    match rampart_router::canonical_path(raw, &snap.path_policy) {
        Ok(p) => {
            ctx.path_rewritten = p != raw;
            ctx.path = p.into_owned();
            Decision::Continue
        }
        Err(e) => reject(400, "bad request", e.reason()),
    }
}

/// Headers that two parsers would read differently: names with `_` (when refused rather
/// than dropped), credentials given twice, and `Content-Type` parameters given twice (a WAF
/// reading the first `boundary` while the backend uses the last one sees another body).
fn stage_headers(r: &Req, snap: &Snapshot, _: &mut Ctx) -> Decision {
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

/// A WebSocket handshake only upgrades on a route that opted in (`websocket: true`); every
/// other `Upgrade` was already removed from the request.
fn stage_upgrade(_: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let allowed = ctx.route.is_some_and(|i| snap.routes[i].spec.websocket);
    if ctx.websocket && !allowed {
        return reject(400, "bad request", "websocket not enabled on this route");
    }
    if ctx.websocket && !matches!(ctx.body_len, BodyLength::None) {
        return reject(400, "bad request", "websocket handshake with a body");
    }
    Decision::Continue
}

fn stage_header_limits(r: &Req, snap: &Snapshot, _: &mut Ctx) -> Decision {
    let max = snap.config.limits.max_header_bytes.0 as usize;
    let size = match &r.raw {
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

fn stage_body_limit(_: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    if let BodyLength::Length(n) = ctx.body_len {
        if n > snap.config.limits.max_request_body.0 {
            return reject(413, "request body too large", "body over limit");
        }
    }
    Decision::Continue
}

fn stage_route(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let req = r.head;
    match snap.router.find(&ctx.host, &ctx.path, req.method.as_str()) {
        Match::Route { index, prefix } => {
            ctx.route = Some(index);
            ctx.prefix = prefix;
            ctx.pool = Some(snap.routes[index].pool.clone());
            Decision::Continue
        }
        Match::NotFound => reject(404, "no route matches this request", "no route"),
        Match::MethodNotAllowed { allow } => Decision::Respond(Reject {
            status: 405,
            message: "method not allowed",
            reason: "method not allowed",
            headers: vec![("Allow", allow.join(", "))],
        }),
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

/// Rampart's own JSON error body: never upstream details, never request content.
pub fn error_body(message: &str, request_id: &str) -> Bytes {
    let v = serde_json::json!({ "error": message, "request_id": request_id });
    Bytes::from(v.to_string())
}

pub fn error_header(status: u16, len: usize, request_id: &str) -> ResponseHeader {
    let mut h = ResponseHeader::build(status, Some(4)).expect("valid status");
    let _ = h.insert_header("Content-Type", "application/json");
    let _ = h.insert_header("Content-Length", len.to_string());
    let _ = h.insert_header("X-Request-Id", request_id);
    let _ = h.insert_header("Cache-Control", "no-store");
    h
}

async fn respond(session: &mut Session, ctx: &Ctx, r: &Reject) -> Result<()> {
    let body = error_body(r.message, &ctx.request_id);
    let mut h = error_header(r.status, body.len(), &ctx.request_id);
    for (k, v) in &r.headers {
        let _ = h.insert_header(*k, v.as_str());
    }
    if let Some(v) = &ctx.hsts {
        let _ = h.insert_header("Strict-Transport-Security", v.as_str());
    }
    // A refused request may still have an unread body on the wire: never reuse the
    // connection, so the body cannot be parsed as a next request.
    if !matches!(ctx.body_len, BodyLength::None) || r.status == 400 {
        session.set_keepalive(None);
        let _ = h.insert_header("Connection", "close");
    }
    session.write_response_header(Box::new(h), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

fn is_idempotent(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::TRACE
    )
}

/// Ends a request whose body is being streamed upstream (`fail_to_proxy` answers `status`).
fn refuse_streamed_body(
    ctx: &mut Ctx,
    stage: &'static str,
    reason: &'static str,
    status: u16,
) -> Result<()> {
    ctx.refused = Some((stage, reason));
    metrics().rejected.with_label_values(&[reason]).inc();
    Error::e_explain(ErrorType::HTTPStatus(status), reason)
}

/// Keeps `Upgrade` only on a genuine WebSocket handshake (returns true then). Any other
/// `Upgrade` (h2c, made-up protocols) is removed with its `Connection` token: Pingora would
/// otherwise treat the request as an upgrade, and a body behind it would go to the upstream
/// as an uninspected tunnel.
fn sanitize_upgrade(req: &mut RequestHeader) -> bool {
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

/// The WAF settings of the request's route, if it runs the WAF.
fn route_waf(ctx: &Ctx) -> Option<&crate::waf::RouteWaf> {
    let snap = ctx.snap.as_deref()?;
    snap.routes.get(ctx.route?)?.waf.as_ref()
}

/// Records a response the WAF refused (phase 3 or 4): for the access log, event and metrics.
fn refuse_response(ctx: &mut Ctx, rule: u64) {
    ctx.refused = Some(("waf", "response blocked by WAF rules"));
    metrics()
        .waf_blocked
        .with_label_values(&[route_name(ctx), rule.to_string().as_str()])
        .inc();
}

fn route_name(ctx: &Ctx) -> &str {
    ctx.route
        .and_then(|i| ctx.snap.as_ref().map(|s| s.routes[i].spec.name.as_str()))
        .unwrap_or("-")
}

impl Gateway {
    /// WAF phase 3 on the upstream's response headers; a block replaces the response
    /// (configured status, no body) before anything reaches the client.
    fn waf_response_headers(&self, resp: &mut ResponseHeader, ctx: &mut Ctx) {
        let Some(rw) = route_waf(ctx) else { return };
        let status = rw.rt.cfg.status;
        let content_type = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let inspect = rw.inspects_response_type(content_type);
        let Some(w) = ctx.waf.as_deref_mut() else {
            return;
        };
        let headers: Vec<(String, Vec<u8>)> = resp
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        w.tx.response_headers(resp.status.as_u16(), "HTTP/1.1", &headers);
        w.tx.run_phase(3);
        w.inspect_body = inspect;
        if w.blocking {
            if let Some(i) = &w.tx.interruption {
                let rule = i.rule_id;
                w.response_refused = true;
                *resp = error_header(status, 0, &ctx.request_id);
                refuse_response(ctx, rule);
                return;
            }
            w.holding = inspect;
        }
    }

    /// Phases 4 (when the body never came through the body filter) and 5 (logging).
    fn waf_finish(&self, ctx: &mut Ctx) {
        let Some(w) = ctx.waf.as_deref_mut() else {
            return;
        };
        if w.inspect_body && !w.phase4_done && !w.response_refused {
            let inspected = std::mem::take(&mut w.body);
            w.tx.response_body(&inspected);
            w.tx.run_phase(4);
            w.phase4_done = true;
        }
        w.tx.run_phase(5);
    }

    /// One event for a request a security stage refused (routing 404/405 and redirects are
    /// not security decisions).
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
        let reason = match (&ctx.authz, stage) {
            (Some(d), "authorize") => d.reason.clone(),
            _ if ctx.sustained_excess => format!("{reason}: sustained excess from this key"),
            _ => reason.to_string(),
        };
        self.events.emit(rampart_events::Event {
            ts: rampart_events::Event::now_ts(),
            request_id: ctx.request_id.clone(),
            client_ip: ctx.client_ip.map(|i| i.to_string()),
            method: req.method.as_str().to_string(),
            host: ctx.host.clone(),
            uri: rampart_events::redact::redact_pairs(&req.uri.to_string(), &secret_params),
            route: (route != "-").then(|| route.to_string()),
            stage: stage.to_string(),
            action: action.into(),
            status,
            reason,
            consumer: ctx.principal.as_ref().map(|p| p.consumer_id.clone()),
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
                .authz
                .as_ref()
                .map(|d| d.policies.clone())
                .unwrap_or_default(),
        });
    }

    /// Who the upstream is told the caller is, and which credentials it may see.
    fn identity_headers(
        &self,
        session: &Session,
        req: &mut RequestHeader,
        ctx: &Ctx,
    ) -> Result<()> {
        let Some(snap) = ctx.snap.as_ref() else {
            return Ok(());
        };
        // Identity headers are Rampart's to set: whatever the client sent is removed.
        let claim_headers = snap
            .config
            .auth
            .jwt
            .iter()
            .flat_map(|i| i.claims_to_headers.values().map(String::as_str));
        strip_headers(
            req,
            ["x-consumer-id", "x-consumer-groups", "x-auth-method"]
                .into_iter()
                .chain(claim_headers),
        );
        if let Some(p) = &ctx.principal {
            req.insert_header("X-Consumer-Id", p.consumer_id.as_str())?;
            if !p.groups.is_empty() {
                req.insert_header("X-Consumer-Groups", p.groups.join(","))?;
            }
            req.insert_header("X-Auth-Method", p.method.as_str())?;
            for (h, v) in &p.claim_headers {
                let _ = req.insert_header(h.clone(), v.as_str());
            }
        }
        let route_auth = ctx.route.and_then(|i| snap.routes[i].spec.auth.as_ref());
        if let Some(a) = route_auth {
            if !a.forward_credentials {
                req.remove_header("authorization");
                let s = &snap.config.auth.api_key;
                req.remove_header(s.header.as_str());
                if let (Some(name), Some(q)) = (s.query.as_deref(), req.uri.query()) {
                    let kept: Vec<&str> = q
                        .split('&')
                        .filter(|kv| !param_is(kv.split('=').next().unwrap_or(""), name))
                        .collect();
                    if kept.len() != q.split('&').count() {
                        let path = req.uri.path();
                        let new = if kept.is_empty() {
                            path.to_string()
                        } else {
                            format!("{path}?{}", kept.join("&"))
                        };
                        if let Ok(uri) = new.parse::<http::Uri>() {
                            req.set_uri(uri);
                        }
                    }
                }
            }
        }
        let _ = session;
        Ok(())
    }
}

/// The route's response header deny list, then its allow list (framing headers always
/// stay: the client must be able to read the response).
fn filter_response_headers(resp: &mut ResponseHeader, r: &rampart_config::Route) {
    for name in &r.response_headers_deny {
        resp.remove_header(name.as_str());
    }
    if let Some(allow) = &r.response_headers_allow {
        let framing = [
            "content-length",
            "transfer-encoding",
            "connection",
            "content-encoding",
        ];
        let drop: Vec<http::HeaderName> = resp
            .headers
            .keys()
            .filter(|k| {
                !framing.contains(&k.as_str())
                    && !allow.iter().any(|a| a.eq_ignore_ascii_case(k.as_str()))
            })
            .cloned()
            .collect();
        for h in drop {
            resp.remove_header(&h);
        }
    }
}

/// Removes header names with `_` that are not allow-listed (scanned once; most requests
/// have none).
fn strip_underscored(req: &mut RequestHeader, allow: &[String]) {
    let present: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|k| crate::hygiene::underscore_dropped(k.as_str(), allow))
        .cloned()
        .collect();
    for h in present {
        req.remove_header(&h);
    }
}

/// Removes every header named in `names` (any case), all their values. The request is
/// scanned once: it rarely carries any of them, and a scan of its few headers costs less
/// than one header-map removal per name.
fn strip_headers<'n>(req: &mut RequestHeader, names: impl Iterator<Item = &'n str> + Clone) {
    // Compared as WSGI/CGI backends fold names: `X_Consumer_Id` is `X-Consumer-Id` to them.
    let listed = |k: &http::HeaderName| {
        names
            .clone()
            .any(|n| crate::hygiene::folded_eq(n, k.as_str()))
    };
    let present: Vec<http::HeaderName> =
        req.headers.keys().filter(|k| listed(k)).cloned().collect();
    for h in present {
        req.remove_header(&h);
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            snap: None,
            request_id: String::new(),
            client_ip: None,
            host: String::new(),
            route: None,
            prefix: String::new(),
            pool: None,
            tried: Vec::new(),
            target: None,
            start: Instant::now(),
            upstream_start: None,
            upstream_time: None,
            body_len: BodyLength::None,
            body_seen: 0,
            refused: None,
            listener: None,
            tls: false,
            hsts: None,
            identity: None,
            principal: None,
            authz: None,
            ratelimit_headers: Vec::new(),
            throttled: None,
            sustained_excess: false,
            inflight: None,
            waf: None,
            body_prefix: None,
            path: String::new(),
            path_rewritten: false,
            websocket: false,
            body_complete: None,
            body_started: None,
            hide_error: false,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // The snapshot is pinned for the whole request: a reload never changes a request
        // half-way through.
        let snap = self.state.load_full();
        ctx.start = Instant::now();
        ctx.client_ip = client_ip(session);
        ctx.request_id = match session.req_header().headers.get("x-request-id") {
            Some(v) if framing::valid_request_id(v.as_bytes()) => {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            }
            _ => framing::new_request_id(),
        };
        let mut outcome = None;
        ctx.host = {
            let req = session.req_header();
            req.headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri.authority().map(|a| a.as_str()))
                .unwrap_or("")
                .to_string()
        };
        ctx.listener = session
            .server_addr()
            .and_then(|a| a.as_inet())
            .and_then(|a| snap.listener_for(*a));
        if let Some(ssl) = session.digest().and_then(|d| d.ssl_digest.as_ref()) {
            ctx.tls = true;
            ctx.identity = ssl.extension.get::<ClientIdentity>().cloned();
            ctx.hsts = ctx.listener.and_then(|i| snap.listeners[i].hsts.clone());
        }
        ctx.websocket = sanitize_upgrade(session.req_header_mut());
        // Between body reads; the whole body is also bounded (`BodyPace`).
        session.set_read_timeout(Some(snap.config.limits.request_body_timeout.0));
        let h2_body = session.req_header().version == http::Version::HTTP_2
            && !session.as_downstream_mut().is_body_empty();
        let req = Req {
            head: session.req_header(),
            raw: session
                .as_downstream()
                .as_http1()
                .map(|h1| h1.get_headers_raw_bytes()),
            listener: ctx.listener,
            h2_body,
        };
        let mut waf_next = false;
        ctx.body_started = Some(Instant::now());
        for (name, step) in REQUEST_STAGES {
            let decision = match step {
                Step::Sync(stage) => stage(&req, &snap, ctx),
                Step::Authenticate => stage_authenticate(&req, &snap, ctx).await,
                Step::RateLimit => stage_rate_limit(&req, &snap, ctx).await,
                Step::Waf => {
                    waf_next = true;
                    break;
                }
            };
            if let Decision::Respond(r) = decision {
                ctx.refused = Some((name, r.reason));
                outcome = Some(r);
                break;
            }
        }
        if waf_next {
            if let Decision::Respond(r) = stage_waf(session, &snap, ctx).await {
                ctx.refused = Some(("waf", r.reason));
                outcome = Some(r);
            }
        }
        ctx.snap = Some(snap);
        match outcome {
            None => Ok(false),
            Some(r) => {
                metrics().rejected.with_label_values(&[r.reason]).inc();
                respond(session, ctx, &r).await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(prefix) = ctx.body_prefix.take() {
            let mut all = prefix.to_vec();
            all.extend_from_slice(body.as_deref().unwrap_or(&[]));
            *body = Some(Bytes::from(all));
        }
        // Pingora 0.9.1 writes an empty chunk to an HTTP/1.1 upstream as a chunked
        // terminator and then terminates the body again (cloudflare/pingora#935): an HTTP/2
        // client's empty END_STREAM DATA frame became a stray "0\r\n\r\n" that the upstream
        // read as the next request. An empty chunk carries nothing: hand Pingora none.
        if body.as_ref().is_some_and(|b| b.is_empty()) {
            *body = None;
        }
        if let Some(snap) = ctx.snap.as_deref() {
            let pace = BodyPace::new(snap, ctx);
            if !end_of_stream && pace.next_deadline(ctx.body_seen as usize).is_none() {
                return refuse_streamed_body(ctx, "body_timeout", "request body too slow", 408);
            }
        }
        if let Some(b) = body {
            ctx.body_seen += b.len() as u64;
            let max = ctx
                .snap
                .as_ref()
                .map(|s| s.config.limits.max_request_body.0)
                .unwrap_or(0);
            if ctx.body_seen > max {
                return refuse_streamed_body(ctx, "body_limit", "body over limit", 413);
            }
        }
        Ok(())
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let pool = ctx
            .pool
            .clone()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route selected"))?;
        // Only consistent hashing reads the key; round robin ignores it.
        let key: Vec<u8> = match (pool.spec.balance, pool.spec.hash_key.as_deref()) {
            (rampart_config::Balance::RoundRobin, _) => Vec::new(),
            (_, Some(k)) if k.starts_with("header:") => session
                .req_header()
                .headers
                .get(&k["header:".len()..])
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default(),
            _ => match ctx.client_ip {
                Some(IpAddr::V4(ip)) => ip.octets().to_vec(),
                Some(IpAddr::V6(ip)) => ip.octets().to_vec(),
                None => Vec::new(),
            },
        };
        let Some(addr) = pool.select(&key, &ctx.tried) else {
            return Error::e_explain(ErrorType::HTTPStatus(502), "no healthy upstream target");
        };
        ctx.tried.push(addr);
        ctx.target = Some(addr);
        ctx.upstream_start = Some(Instant::now());
        let mut peer = match &pool.tls {
            Some(t) => t.peer(addr),
            None => HttpPeer::new(addr, false, String::new()),
        };
        let t = &pool.spec.timeouts;
        peer.options.connection_timeout = Some(t.connect.0);
        peer.options.read_timeout = Some(t.read.0);
        peer.options.write_timeout = Some(t.write.0);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let (Some(pool), Some(addr)) = (&ctx.pool, peer._address.as_inet()) {
            pool.report_success(addr);
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(pool), Some(addr)) = (&ctx.pool, ctx.target) {
            let kind = if matches!(e.etype(), ErrorType::ConnectTimedout) {
                "connect_timeout"
            } else {
                "connect_error"
            };
            pool.report_failure(&addr, kind);
            let retries = pool.spec.retries as usize;
            // Nothing reached the upstream yet, but a body may have been consumed; only
            // idempotent methods are replayed, like every careful proxy.
            if is_idempotent(&session.req_header().method) && ctx.tried.len() <= retries {
                e.set_retry(true);
            }
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(snap) = ctx.snap.as_deref() {
            let h = &snap.config.requests;
            if h.underscore_headers != rampart_config::UnderscoreHeaders::Keep {
                strip_underscored(req, &h.allow_underscore_headers);
            }
        }
        if let Some(n) = ctx.body_complete {
            // The body was read whole and inspected: it goes upstream with its length.
            req.remove_header(&http::header::TRANSFER_ENCODING);
            req.insert_header(http::header::CONTENT_LENGTH, n.to_string())?;
        }
        // Client-supplied forwarding headers are not trusted (no trusted proxies yet).
        strip_headers(
            req,
            [
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host",
                "forwarded",
                "x-real-ip",
                "x-client-cert-subject",
                "x-client-cert-fingerprint",
                "x-client-cert-san",
            ]
            .into_iter(),
        );
        if let Some(ip) = ctx.client_ip {
            req.insert_header("X-Forwarded-For", ip.to_string())?;
        }
        req.insert_header("X-Forwarded-Proto", if ctx.tls { "https" } else { "http" })?;
        self.identity_headers(session, req, ctx)?;
        if let Some(id) = &ctx.identity {
            // Only what the TLS layer verified; the client-sent versions were removed above.
            let _ = req.insert_header("X-Client-Cert-Subject", id.subject.as_str());
            let _ = req.insert_header("X-Client-Cert-Fingerprint", id.fingerprint_sha256.as_str());
            let sans: Vec<&str> = id
                .dns_sans
                .iter()
                .chain(&id.uri_sans)
                .map(|s| s.as_str())
                .collect();
            if !sans.is_empty() {
                let _ = req.insert_header("X-Client-Cert-San", sans.join(", "));
            }
        }
        if !ctx.host.is_empty() {
            req.insert_header("X-Forwarded-Host", ctx.host.as_str())?;
        }
        req.insert_header("X-Request-Id", ctx.request_id.as_str())?;
        if route_waf(ctx).is_some_and(|w| w.rt.cfg.inspect_response_body) {
            // The rules must read the response body as text, not gzip.
            req.remove_header("accept-encoding");
        }
        let strip = ctx
            .route
            .and_then(|i| ctx.snap.as_ref().map(|s| s.routes[i].spec.strip_prefix))
            .unwrap_or(false);
        // The upstream gets the canonical path in origin form (an absolute-form target's
        // authority was checked against Host, and is not the upstream's to act on).
        let absolute = req.uri.authority().is_some();
        if (ctx.path_rewritten || absolute) && !(strip && ctx.prefix != "/") {
            let new = match session.req_header().uri.query() {
                Some(q) => format!("{}?{q}", ctx.path),
                None => ctx.path.clone(),
            };
            let uri: http::Uri = new
                .parse()
                .map_err(|_| Error::explain(ErrorType::InternalError, "bad canonical uri"))?;
            req.set_uri(uri);
        }
        if strip && ctx.prefix != "/" {
            let path = ctx.path.as_str();
            let rest = path
                .get(ctx.prefix.trim_end_matches('/').len()..)
                .unwrap_or("");
            let rest = if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("/{rest}")
            };
            let new = match session.req_header().uri.query() {
                Some(q) => format!("{rest}?{q}"),
                None => rest,
            };
            let uri: http::Uri = new
                .parse()
                .map_err(|_| Error::explain(ErrorType::InternalError, "bad rewritten uri"))?;
            req.set_uri(uri);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(s) = ctx.upstream_start {
            ctx.upstream_time = Some(s.elapsed());
        }
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS && !ctx.websocket {
            // Only a verified WebSocket handshake on a route that allows it may become a
            // tunnel; an upstream switching protocols on anything else is refused.
            ctx.refused = Some(("upgrade", "upstream switched protocols without a handshake"));
            return Error::e_explain(ErrorType::HTTPStatus(502), "unexpected 101 from upstream");
        }
        self.waf_response_headers(resp, ctx);
        let route = ctx
            .route
            .and_then(|i| ctx.snap.as_deref().map(|s| &s.routes[i].spec));
        if let Some(r) = route {
            if r.hide_upstream_errors && resp.status.as_u16() >= 500 {
                // Stack traces and internal addresses stay inside: same status, our body.
                // A response without a body (HEAD, Content-Length: 0) gets none either: no
                // body filter call would come to write it.
                let status = resp.status.as_u16();
                let bodyless = session.req_header().method == http::Method::HEAD
                    || resp
                        .headers
                        .get(http::header::CONTENT_LENGTH)
                        .is_some_and(|v| v.as_bytes() == b"0");
                let len = if bodyless {
                    0
                } else {
                    error_body("upstream error", &ctx.request_id).len()
                };
                *resp = error_header(status, len, &ctx.request_id);
                ctx.hide_error = !bodyless;
            } else {
                filter_response_headers(resp, r);
            }
        }
        // Upstream software versions are reconnaissance material: keep them inside.
        resp.remove_header("server");
        resp.remove_header("x-powered-by");
        resp.insert_header("X-Request-Id", ctx.request_id.as_str())?;
        if let Some(v) = &ctx.hsts {
            resp.insert_header("Strict-Transport-Security", v.as_str())?;
        }
        for (k, v) in &ctx.ratelimit_headers {
            resp.insert_header(*k, v.as_str())?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if ctx.hide_error {
            *body = end_of_stream.then(|| error_body("upstream error", &ctx.request_id));
            return Ok(None);
        }
        let limit = route_waf(ctx)
            .map(|w| w.rt.cfg.response_body_limit.0 as usize)
            .unwrap_or(0);
        let Some(w) = ctx.waf.as_deref_mut() else {
            return Ok(None);
        };
        if w.response_refused {
            *body = None;
            return Ok(None);
        }
        if !w.inspect_body || w.phase4_done {
            return Ok(None);
        }
        if let Some(b) = body.as_ref() {
            let room = limit.saturating_sub(w.body.len());
            w.body.extend_from_slice(&b[..b.len().min(room)]);
        }
        let complete = end_of_stream || w.body.len() >= limit;
        if w.holding {
            if !complete {
                // Held back until phase 4 has seen it: the client gets nothing yet.
                w.held
                    .extend_from_slice(body.take().as_deref().unwrap_or(&[]));
                return Ok(None);
            }
            if !w.held.is_empty() {
                let mut all = std::mem::take(&mut w.held);
                all.extend_from_slice(body.as_deref().unwrap_or(&[]));
                *body = Some(Bytes::from(all));
            }
        }
        if !complete {
            return Ok(None);
        }
        let inspected = std::mem::take(&mut w.body);
        w.tx.response_body(&inspected);
        w.tx.run_phase(4);
        w.phase4_done = true;
        if w.blocking {
            if let Some(i) = &w.tx.interruption {
                // The status line is already out: end the connection rather than let the
                // body through. The client sees a truncated response.
                let rule = i.rule_id;
                *body = None;
                refuse_response(ctx, rule);
                return Error::e_explain(
                    ErrorType::InternalError,
                    "response body blocked by the WAF",
                );
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let body_refused = matches!(ctx.refused, Some(("body_limit", _)));
        let (code, message) = match e.etype() {
            _ if body_refused => (413, "request body too large"),
            ErrorType::HTTPStatus(c) if *c >= 500 => (*c, "upstream unavailable"),
            ErrorType::HTTPStatus(c) => (*c, "request refused"),
            _ => match e.esource() {
                ErrorSource::Upstream => match e.etype() {
                    ErrorType::ConnectTimedout
                    | ErrorType::ReadTimedout
                    | ErrorType::WriteTimedout => (504, "upstream timed out"),
                    _ => (502, "upstream unavailable"),
                },
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                        (0, "")
                    }
                    _ => (400, "bad request"),
                },
                _ => (500, "internal error"),
            },
        };
        if matches!(code, 502 | 504) {
            if let (Some(pool), Some(addr)) = (&ctx.pool, ctx.target) {
                if code == 504 && matches!(e.etype(), ErrorType::ReadTimedout) {
                    pool.report_failure(&addr, "read_timeout");
                }
            }
        }
        if code > 0 && session.response_written().is_none() {
            if ctx.request_id.is_empty() {
                ctx.request_id = framing::new_request_id();
            }
            let body = error_body(message, &ctx.request_id);
            let mut h = error_header(code, body.len(), &ctx.request_id);
            let _ = h.insert_header("Connection", "close");
            if let Some(v) = &ctx.hsts {
                let _ = h.insert_header("Strict-Transport-Security", v.as_str());
            }
            session.set_keepalive(None);
            if session
                .write_response_header(Box::new(h), false)
                .await
                .is_ok()
            {
                let _ = session.write_response_body(Some(body), true).await;
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let elapsed = ctx.start.elapsed();
        // Phase 5 first: it needs the context mutably, everything below only reads it.
        self.waf_finish(ctx);
        let route = route_name(ctx);
        let m = metrics();
        m.requests
            .with_label_values(&[route, status_label(status)])
            .inc();
        m.duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        if let (Some(pool), Some(t)) = (&ctx.pool, ctx.upstream_time) {
            m.upstream_duration
                .with_label_values(&[pool.name.as_str()])
                .observe(t.as_secs_f64());
        }
        self.security_event(session, ctx, route, status);
        if !crate::access_log::enabled() {
            return;
        }
        let req = session.req_header();
        let mut line = serde_json::json!({
            "ts": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "request_id": ctx.request_id,
            "client_ip": ctx.client_ip.map(|i| i.to_string()),
            "method": req.method.as_str(),
            "host": ctx.host,
            "path": req.uri.path(),
            "route": route,
            "upstream": ctx.pool.as_ref().map(|p| p.name.as_str()),
            "target": ctx.target.map(|t| t.to_string()),
            "attempts": ctx.tried.len(),
            "status": status,
            "bytes_sent": session.body_bytes_sent(),
            "bytes_received": session.body_bytes_read(),
            "duration_ms": elapsed.as_secs_f64() * 1000.0,
            "upstream_ms": ctx.upstream_time.map(|t| t.as_secs_f64() * 1000.0),
        });
        if ctx.tls {
            line["tls"] = true.into();
        }
        if let Some(p) = &ctx.principal {
            line["consumer"] = p.consumer_id.as_str().into();
            line["auth_method"] = p.method.as_str().into();
        }
        if let Some(t) = ctx.throttled {
            line["throttled_ms"] = (t.as_secs_f64() * 1000.0).into();
        }
        if let Some(d) = &ctx.authz {
            line["authz"] = serde_json::json!({
                "allowed": d.allowed,
                "reason": d.reason,
                "policies": d.policies,
            });
        }
        if let Some(id) = &ctx.identity {
            line["client_cert_fingerprint"] = id.fingerprint_sha256.as_str().into();
        }
        if let Some(w) = &ctx.waf {
            // Ids and score only: rule messages and matched data belong to the event stream.
            line["waf_anomaly_score"] = w.tx.anomaly_score().into();
            if !w.tx.matched.is_empty() {
                line["waf_rules"] = w.tx.matched.iter().map(|m| m.id).collect::<Vec<_>>().into();
            }
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
