//! The request pipeline: every stage a request meets before it goes upstream, in dataflow
//! order ([`Stage::PIPELINE`]), one file each. A stage returns [`Decision::Continue`] or
//! [`Decision::Respond`]; the first refusal ends the loop, is recorded in the context (stage
//! and reason, for the access log and events) and answered with Rampart's JSON error.

mod authenticate;
mod authorize;
mod bans;
mod body;
pub(crate) mod bots;
mod challenge;
mod client_cert;
mod client_ip;
mod concurrency;
mod contract;
pub(crate) mod cors;
mod docs;
mod framing;
mod graphql;
mod headers;
mod limits;
mod network;
pub(crate) mod overload;
mod path;
mod rate_limit;
mod redirect;
mod route;
mod rules;
mod upgrade;
pub(crate) mod waf;

pub(crate) use bots::BotFacts;
pub(crate) use challenge::keys as challenge_keys;
pub(crate) use contract::{
    response_body as contract_response_body, response_headers as contract_response_headers,
};
pub(crate) use cors::CorsRt;
pub(crate) use headers::param_is;
pub(crate) use rules::{apply_to_list as rules_request_headers, response as rules_response};
pub(crate) use waf::WafReq;

use crate::ctx::Ctx;
use crate::metrics::metrics;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use rampart_tls::ClientIdentity;
use std::sync::Arc;
use std::time::Instant;

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
    /// Close the connection without an answer (a network policy's `action: close`); the
    /// reason goes to the access log and the event.
    Close(&'static str),
    /// Rampart answers the request itself (documentation), without the upstream.
    Serve(Served),
}

/// A response Rampart serves itself.
pub struct Served {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
    pub headers: Vec<(&'static str, String)>,
    /// Why, when serving it refuses the request (the challenge page): recorded like a
    /// stage's refusal, for the access log and the event.
    pub refusal: Option<&'static str>,
}

pub(crate) fn reject(status: u16, message: &'static str, reason: &'static str) -> Decision {
    Decision::Respond(Reject {
        status,
        message,
        reason,
        headers: Vec::new(),
    })
}

/// What the stages see of a request: the parsed header and, for HTTP/1, the raw header
/// bytes (Pingora repairs some framing ambiguities in the parsed form; a security gateway
/// refuses them instead, so it looks at what was actually sent).
pub struct Req<'a> {
    pub head: &'a RequestHeader,
    pub raw: Option<&'a Bytes>,
    pub listener: Option<usize>,
    /// HTTP/2: the HEADERS frame did not end the stream, so DATA frames follow (a body with
    /// or without Content-Length).
    pub h2_body: bool,
}

/// The stages, by name. Later issues add theirs at their place in [`Stage::PIPELINE`]
/// (network lists before `Framing`, input validation after `Waf`, the cache last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    ClientIp,
    Bans,
    Network,
    Bots,
    Overload,
    AcmeChallenge,
    HttpsRedirect,
    Framing,
    Path,
    Headers,
    HeaderLimits,
    BodyLimit,
    ChallengeAnswer,
    Route,
    RouteNetwork,
    BotPolicy,
    Cors,
    Challenge,
    Operation,
    Upgrade,
    ClientCert,
    Authenticate,
    ConsumerBan,
    Authorize,
    Rules,
    RateLimit,
    Concurrency,
    Waf,
    Validate,
    Graphql,
    Docs,
    UpstreamLimit,
}

impl Stage {
    /// The order a request meets them.
    pub const PIPELINE: [Stage; 32] = [
        Stage::ClientIp,
        Stage::Bans,
        Stage::Network,
        Stage::Bots,
        Stage::Overload,
        Stage::AcmeChallenge,
        Stage::HttpsRedirect,
        Stage::Framing,
        Stage::Path,
        Stage::Headers,
        Stage::HeaderLimits,
        Stage::BodyLimit,
        Stage::ChallengeAnswer,
        Stage::Route,
        Stage::RouteNetwork,
        Stage::BotPolicy,
        Stage::Cors,
        Stage::Challenge,
        Stage::Operation,
        Stage::Upgrade,
        Stage::ClientCert,
        Stage::Authenticate,
        Stage::ConsumerBan,
        Stage::Authorize,
        Stage::Rules,
        Stage::RateLimit,
        Stage::Concurrency,
        Stage::Waf,
        Stage::Validate,
        Stage::Graphql,
        Stage::Docs,
        Stage::UpstreamLimit,
    ];

    /// The name logs, events and metrics use.
    pub fn name(self) -> &'static str {
        match self {
            Stage::ClientIp => "client_ip",
            Stage::Bans => "bans",
            Stage::Network => "network",
            Stage::Overload => "overload",
            Stage::Bots => "bots",
            Stage::BotPolicy => "bot_policy",
            Stage::Cors => "cors",
            Stage::AcmeChallenge => "acme_challenge",
            Stage::HttpsRedirect => "https_redirect",
            Stage::Framing => "framing",
            Stage::Path => "path",
            Stage::Headers => "headers",
            Stage::HeaderLimits => "header_limits",
            Stage::BodyLimit => "body_limit",
            Stage::ChallengeAnswer => "challenge_answer",
            Stage::Route => "route",
            Stage::RouteNetwork => "route_network",
            Stage::Challenge => "challenge",
            Stage::Operation => "operation",
            Stage::Upgrade => "upgrade",
            Stage::ClientCert => "client_cert",
            Stage::Authenticate => "authenticate",
            Stage::ConsumerBan => "consumer_ban",
            Stage::Authorize => "authorize",
            Stage::Rules => "rules",
            Stage::RateLimit => "rate_limit",
            Stage::Concurrency => "concurrency",
            Stage::Waf => "waf",
            Stage::Validate => "validate",
            Stage::Graphql => "graphql",
            Stage::Docs => "docs",
            Stage::UpstreamLimit => "upstream_limit",
        }
    }

    async fn run(self, cx: &mut StageCx<'_>) -> Decision {
        // The WAF reads the body, so it gets the session itself; the others see the request.
        match self {
            Stage::Waf => return waf::run(cx.session, cx.snap, cx.ctx).await,
            Stage::Validate => return contract::run(cx.session, cx.snap, cx.ctx).await,
            Stage::Graphql => return graphql::run(cx.session, cx.snap, cx.ctx).await,
            // It may change the request's headers.
            Stage::Rules => return rules::run(cx.session, cx.snap, cx.ctx),
            _ => {}
        }
        let r = Req {
            head: cx.session.req_header(),
            raw: cx.raw.as_ref(),
            listener: cx.ctx.listener,
            h2_body: cx.h2_body,
        };
        let (snap, ctx) = (cx.snap, &mut *cx.ctx);
        match self {
            Stage::ClientIp => client_ip::run(&r, snap, ctx),
            Stage::Bans => bans::ip(&r, snap, ctx),
            Stage::Network => network::listener(&r, snap, ctx),
            Stage::Overload => overload::run(&r, snap, ctx),
            Stage::Bots => bots::classify(&r, snap, ctx).await,
            Stage::BotPolicy => bots::policy(&r, snap, ctx).await,
            Stage::Cors => cors::run(&r, ctx),
            Stage::AcmeChallenge => match crate::acme::answer_http01(&r, ctx).await {
                Some(served) => Decision::Serve(served),
                None => Decision::Continue,
            },
            Stage::HttpsRedirect => redirect::run(&r, snap, ctx),
            Stage::Framing => framing::run(&r, snap, ctx),
            Stage::Path => path::run(&r, snap, ctx),
            Stage::Headers => headers::run(&r, snap, ctx),
            Stage::HeaderLimits => limits::headers(&r, snap, ctx),
            Stage::BodyLimit => limits::body(&r, snap, ctx),
            Stage::ChallengeAnswer => challenge::answer(&r, snap, ctx),
            Stage::Route => route::run(&r, snap, ctx),
            Stage::RouteNetwork => network::route(&r, snap, ctx),
            Stage::Challenge => challenge::run(&r, snap, ctx),
            Stage::Operation => contract::operation(&r, snap, ctx),
            Stage::Upgrade => upgrade::run(&r, snap, ctx),
            Stage::ClientCert => client_cert::run(&r, snap, ctx),
            Stage::Authenticate => authenticate::run(&r, snap, ctx).await,
            Stage::ConsumerBan => bans::consumer(&r, snap, ctx),
            Stage::Authorize => authorize::run(&r, snap, ctx),
            Stage::RateLimit => rate_limit::run(&r, snap, ctx).await,
            Stage::Concurrency => concurrency::run(&r, snap, ctx),
            Stage::Docs => docs::run(&r, snap, ctx),
            Stage::UpstreamLimit => concurrency::upstream(ctx),
            Stage::Waf | Stage::Validate | Stage::Graphql | Stage::Rules => {
                unreachable!("handled above")
            }
        }
    }
}

/// What one request's stages work on.
struct StageCx<'a> {
    session: &'a mut Session,
    snap: &'a Snapshot,
    ctx: &'a mut Ctx,
    raw: Option<Bytes>,
    h2_body: bool,
}

/// `request_filter`: the connection facts, then every stage in order. `Ok(true)`: the
/// request was answered here and goes no further.
pub(crate) async fn run(session: &mut Session, snap: Arc<Snapshot>, ctx: &mut Ctx) -> Result<bool> {
    ctx.start = Instant::now();
    ctx.peer_ip = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_canonical());
    // The `client_ip` stage replaces it when a trusted proxy speaks for someone else.
    ctx.client_ip = ctx.peer_ip;
    ctx.request_id = match session.req_header().headers.get("x-request-id") {
        Some(v) if crate::framing::valid_request_id(v.as_bytes()) => {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        }
        _ => crate::framing::new_request_id(),
    };
    // Only a peer trusted to speak for clients (a proxy in `trusted_proxies`) may join the
    // request to its trace; from anyone else a `traceparent` is replaced, not followed.
    ctx.trace = {
        let h = &session.req_header().headers;
        let parents: Vec<&[u8]> = h
            .get_all("traceparent")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        let trusted = ctx.peer_ip.is_some_and(|p| snap.client_ip.trusts(p));
        let states = h.get_all("tracestate").iter().map(|v| v.as_bytes());
        let (mut tc, _) = rampart_trace::TraceContext::from_headers(&parents, states, trusted);
        if tc.parent_id.is_none() && !crate::otel::sample_new_trace() {
            tc.flags &= !0x01;
        }
        Some(tc)
    };
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
        ctx.auth.identity = ssl.extension.get::<ClientIdentity>().cloned();
        ctx.hsts = ctx.listener.and_then(|i| snap.listeners[i].hsts.clone());
        let conn = session.digest().and_then(|d| d.socket_digest.as_deref());
        ctx.hello = crate::hello::key(conn).and_then(|k| crate::hello::get(&k));
    }
    // Until a route is chosen, a gRPC client is one speaking HTTP/2 with a gRPC content
    // type; after, only a `grpc` route's requests are (route.rs): nobody else can turn
    // Rampart's refusals into 200s.
    ctx.grpc = session.req_header().version == http::Version::HTTP_2
        && session
            .req_header()
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| crate::respond::is_grpc(v.as_bytes()));
    ctx.websocket = upgrade::sanitize(session.req_header_mut());
    let has_body = !session.as_downstream_mut().is_body_empty();
    if has_body {
        // Between body reads; the whole body is also bounded (`BodyPace`).
        session.set_read_timeout(Some(snap.config.limits.request_body_timeout.0));
    }
    // Slow readers: a response write that stalls is cut (Pingora's downstream write
    // timeout, and for HTTP/1 its minimum send rate).
    {
        let l = &snap.config.limits;
        session.set_write_timeout(Some(l.response_write_timeout.0));
        session.set_min_send_rate(
            Some(l.min_response_rate.0.min(usize::MAX as u64) as usize).filter(|r| *r > 0),
        );
    }
    let h2_body = session.req_header().version == http::Version::HTTP_2 && has_body;
    let raw = session
        .as_downstream()
        .as_http1()
        .map(|h1| h1.get_headers_raw_bytes());
    ctx.body.started = Some(Instant::now());
    let mut outcome = None;
    let mut served = None;
    {
        let mut cx = StageCx {
            session: &mut *session,
            snap: &snap,
            ctx: &mut *ctx,
            raw,
            h2_body,
        };
        // Stages are timed only for a span that will be sent.
        let timed = crate::otel::enabled() && cx.ctx.trace.as_ref().is_some_and(|t| t.sampled());
        for stage in Stage::PIPELINE {
            let t0 = timed.then(Instant::now);
            let d = stage.run(&mut cx).await;
            if let Some(t0) = t0 {
                cx.ctx.stage_runs.push(crate::otel::StageRun {
                    name: stage.name(),
                    start: t0,
                    took: t0.elapsed(),
                    refused: !matches!(d, Decision::Continue | Decision::Serve(_)),
                });
            }
            match d {
                Decision::Continue => continue,
                Decision::Respond(r) => {
                    cx.ctx.refused = Some((stage.name(), r.reason));
                    outcome = Some(Ok(r));
                }
                Decision::Close(reason) => {
                    cx.ctx.refused = Some((stage.name(), reason));
                    outcome = Some(Err(reason));
                }
                Decision::Serve(s) => {
                    if let Some(reason) = s.refusal {
                        cx.ctx.refused = Some((stage.name(), reason));
                    }
                    served = Some(s)
                }
            }
            break;
        }
    }
    ctx.snap = Some(snap);
    if let Some(s) = served {
        crate::respond::serve(session, ctx, s).await?;
        return Ok(true);
    }
    match outcome {
        None => Ok(false),
        Some(Ok(r)) => {
            metrics().rejected.with_label_values(&[r.reason]).inc();
            crate::respond::respond(session, ctx, &r).await?;
            Ok(true)
        }
        Some(Err(reason)) => {
            metrics().rejected.with_label_values(&[reason]).inc();
            // A downstream "connection closed" makes fail_to_proxy answer nothing.
            session.set_keepalive(None);
            Err(pingora::Error::explain(pingora::ErrorType::ConnectionClosed, reason).into_down())
        }
    }
}
