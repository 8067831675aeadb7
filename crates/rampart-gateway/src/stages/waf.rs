//! `waf`: CRS/SecLang phases 1 and 2 on the request (its body read and held back, whatever
//! its framing), and phases 3–5 on the response and at the end, through `rampart-waf`.

use super::{reject, Decision, Reject};
use crate::ctx::Ctx;
use crate::framing::{self, BodyLength};
use crate::metrics::metrics;
use crate::respond::error_header;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};
use rampart_waf::engine::Phase;
use std::time::{Duration, Instant};

/// A request's WAF state across Pingora's phases.
pub struct WafReq {
    pub(crate) tx: rampart_waf::engine::Transaction<'static>,
    /// Block mode: the route's rules may refuse the response.
    pub(crate) blocking: bool,
    /// Phase 4 wants this response's body (its type is inspected).
    pub(crate) inspect_body: bool,
    /// Response body bytes kept for phase 4 (up to the limit).
    pub(crate) body: Vec<u8>,
    /// Chunks are held back from the client until phase 4 has run (block mode).
    pub(crate) holding: bool,
    pub(crate) held: Vec<u8>,
    pub(crate) phase4_done: bool,
    /// Phase 3 refused the response: its headers were replaced, its body is dropped.
    pub(crate) response_refused: bool,
}

/// WAF phases 1 and 2: the request as sent, then its body, read and held back (up to the
/// inspection limit) so that nothing reaches the upstream before the rules have seen it.
/// Pingora forwards the held bytes from its retry buffer once the request goes upstream.
pub(super) async fn run(session: &mut Session, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let route = ctx.route.clone();
    let Some(rw) = route.as_ref().and_then(|r| r.waf.as_ref()) else {
        return Decision::Continue;
    };
    let ip = ctx.client_ip.map(|i| i.to_string()).unwrap_or_default();
    let mut tx = rw.transaction(&ip);
    if snap.geo.has_countries() {
        tx.set_geo(snap.geo.clone());
    }
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
    let canonical: std::borrow::Cow<str> = if ctx.path_rewritten {
        let (before_query, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri.as_str(), None),
        };
        let prefix = match framing::absolute_form_authority(before_query) {
            Some(a) => &before_query[..before_query.find(a).unwrap_or(0) + a.len()],
            None => "",
        };
        match query {
            Some(q) => format!("{prefix}{}?{q}", ctx.path).into(),
            None => format!("{prefix}{}", ctx.path).into(),
        }
    } else {
        uri.as_str().into()
    };
    let mut headers = headers;
    if raw.is_some() && !ctx.request_ops.is_empty() {
        // The raw HTTP/1 block is what the client sent; the upstream will get it with the
        // rules' changes, so the WAF reads it so too (HTTP/2's list already has them).
        super::rules_request_headers(&mut headers, &ctx.request_ops);
    }
    tx.request_headers(&method, &canonical, &proto, headers);
    if ctx.path_rewritten {
        tx.set_request_uri_raw(&uri);
    }
    tx.run_phase(Phase::RequestHeaders);
    let cfg = &rw.rt.cfg;
    let mut refusal = None;
    // A body inspected only in part (process_partial) cannot be parsed whole.
    let mut partial = false;
    // Every body is read here whatever its framing (Content-Length, chunked, HTTP/2 DATA
    // frames); only a verified WebSocket handshake (which has none) upgrades.
    // A gRPC route's body is protobuf messages streamed both ways: waiting for all of it
    // would stall a stream, and the rules read text; they see its headers.
    let grpc_route = ctx.route.as_ref().is_some_and(|r| r.spec.grpc);
    if tx.interruption.is_none()
        && !matches!(ctx.body.len, BodyLength::None)
        && rw.rt.ruleset.request_body_access
        && !grpc_route
    {
        let limit = cfg.request_body_limit.0 as usize;
        let max = snap.config.limits.max_request_body.0 as usize;
        session.enable_retry_buffering();
        ctx.body.consumed = true;
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
                ctx.body.prefix = Some(Bytes::copy_from_slice(&body));
            } else if complete {
                // Forwarded with its length: no chunked framing for the upstream to read
                // differently (and no HTTP/2 end-of-stream turned into a second terminator).
                ctx.body.complete = Some(body.len());
                if ctx.route.as_ref().is_some_and(|r| r.contract.is_some()) {
                    // The contract check reads it next.
                    ctx.body.read = Some(Bytes::copy_from_slice(&body));
                }
            }
            partial = over;
            body.truncate(limit);
            tx.request_body(&body);
        }
    }
    // Phase 2 runs for every request: most attack rules live there, bodies or not.
    if refusal.is_none() {
        tx.run_phase(Phase::RequestBody);
        if tx.interruption.is_none()
            && rw.mode == rampart_config::WafMode::Block
            && cfg.reject_unparsable_body
            && !partial
        {
            if tx.request_body_error().is_some() {
                refusal = Some(reject(
                    400,
                    "bad request",
                    "request body could not be parsed",
                ));
            } else if tx.multipart_strict_error() {
                refusal = Some(reject(
                    400,
                    "bad request",
                    "multipart body failed strict validation",
                ));
            }
        }
    }
    let decision = match (&tx.interruption, refusal) {
        (_, Some(r)) => r,
        (Some(i), None) => {
            let m = metrics();
            let route = ctx.route_name();
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
pub(crate) struct BodyPace {
    start: Instant,
    total: Duration,
    rate: u64,
}

const BODY_RATE_GRACE: Duration = Duration::from_secs(5);

impl BodyPace {
    pub(crate) fn new(snap: &Snapshot, ctx: &Ctx) -> BodyPace {
        let l = &snap.config.limits;
        BodyPace {
            start: ctx.body.started.unwrap_or_else(Instant::now),
            total: l.request_body_timeout.0,
            rate: l.min_request_body_rate.0,
        }
    }

    /// When the next bytes must have arrived, having received `received`; None: too late.
    pub(crate) fn next_deadline(&self, received: usize) -> Option<Instant> {
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

/// WAF phase 3 on the upstream's response headers; a block replaces the response
/// (configured status, no body) before anything reaches the client.
pub(crate) fn response_headers(resp: &mut ResponseHeader, ctx: &mut Ctx) {
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
    w.tx.run_phase(Phase::ResponseHeaders);
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
pub(crate) fn finish(ctx: &mut Ctx) {
    let Some(w) = ctx.waf.as_deref_mut() else {
        return;
    };
    if w.inspect_body && !w.phase4_done && !w.response_refused {
        let inspected = std::mem::take(&mut w.body);
        w.tx.response_body(&inspected);
        w.tx.run_phase(Phase::ResponseBody);
        w.phase4_done = true;
    }
    w.tx.run_phase(Phase::Logging);
}

/// WAF phase 4 on the response body, when the route inspects bodies of its type (block
/// mode holds the body back until the phase ran).
pub(crate) fn response_body(
    body: &mut Option<Bytes>,
    end_of_stream: bool,
    ctx: &mut Ctx,
) -> Result<Option<Duration>> {
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
    w.tx.run_phase(Phase::ResponseBody);
    w.phase4_done = true;
    if w.blocking {
        if let Some(i) = &w.tx.interruption {
            // The status line is already out: end the connection rather than let the
            // body through. The client sees a truncated response.
            let rule = i.rule_id;
            *body = None;
            refuse_response(ctx, rule);
            return Error::e_explain(ErrorType::InternalError, "response body blocked by the WAF");
        }
    }
    Ok(None)
}

/// The WAF settings of the request's route, if it runs the WAF.
pub(crate) fn route_waf(ctx: &Ctx) -> Option<&crate::waf::RouteWaf> {
    ctx.route.as_ref()?.waf.as_ref()
}

/// Records a response the WAF refused (phase 3 or 4): for the access log, event and metrics.
fn refuse_response(ctx: &mut Ctx, rule: u64) {
    ctx.refused = Some(("waf", "response blocked by WAF rules"));
    metrics()
        .waf_blocked
        .with_label_values(&[ctx.route_name(), rule.to_string().as_str()])
        .inc();
}
