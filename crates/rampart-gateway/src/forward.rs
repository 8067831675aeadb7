//! What crosses the gateway in each direction besides the body: the upstream's view of the
//! request (canonical path in origin form, forwarding and identity headers set by Rampart
//! alone, credentials kept back, `_` names dropped) and the client's view of the response
//! (no upstream software banners, route header lists, hidden 5xx bodies).

use crate::ctx::Ctx;
use crate::respond::{error_body, error_header};
use crate::stages::param_is;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

/// `upstream_request_filter`: what the upstream receives of the request.
pub(crate) fn upstream_request(req: &mut RequestHeader, ctx: &Ctx) -> Result<()> {
    if let Some(snap) = ctx.snap.as_deref() {
        let h = &snap.config.requests;
        if h.underscore_headers != rampart_config::UnderscoreHeaders::Keep {
            strip_underscored(req, &h.allow_underscore_headers);
        }
    }
    if let Some(n) = ctx.body.complete {
        // The body was read whole and inspected: it goes upstream with its length.
        req.remove_header(&http::header::TRANSFER_ENCODING);
        req.insert_header(http::header::CONTENT_LENGTH, n.to_string())?;
    }
    // Client-supplied forwarding headers are replaced by what Rampart verified.
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
    // The verified path only: what a client wrote left of its own address is dropped, so
    // a backend reading the first entry gets the client that `client_ip` found.
    if let Some(peer) = ctx.peer_ip {
        let mut xff = String::new();
        for ip in ctx.forwarded_chain.iter().chain(std::iter::once(&peer)) {
            if !xff.is_empty() {
                xff.push_str(", ");
            }
            xff.push_str(&ip.to_string());
        }
        req.insert_header("X-Forwarded-For", xff)?;
    }
    req.insert_header("X-Forwarded-Proto", if ctx.tls { "https" } else { "http" })?;
    identity_headers(req, ctx)?;
    if let Some(id) = &ctx.auth.identity {
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
    // The trace as decided at the start (the client's own headers replaced): the gateway
    // is the upstream's parent span.
    if let Some(t) = &ctx.trace {
        req.insert_header("traceparent", t.traceparent())?;
        match &t.tracestate {
            Some(s) => req.insert_header("tracestate", s.as_str())?,
            None => {
                req.remove_header("tracestate");
            }
        }
    }
    if checks_response_bodies(ctx) {
        // The rules must read the response body as text, not gzip.
        req.remove_header("accept-encoding");
    }
    let strip = ctx.route_spec().is_some_and(|r| r.strip_prefix);
    // The upstream gets the canonical path in origin form (an absolute-form target's
    // authority was checked against Host, and is not the upstream's to act on).
    let absolute = req.uri.authority().is_some();
    // The query as it stands here, not as the client sent it: credentials
    // (`auth.api_key.query`) were taken out of it above.
    if (ctx.path_rewritten || absolute) && !(strip && ctx.prefix != "/") {
        let new = match req.uri.query() {
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
        let new = match req.uri.query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest,
        };
        let uri: http::Uri = new
            .parse()
            .map_err(|_| Error::explain(ErrorType::InternalError, "bad rewritten uri"))?;
        req.set_uri(uri);
    }
    if let Some(pool) = ctx
        .upstream
        .pool
        .as_ref()
        .filter(|p| p.spec.protocol == rampart_config::UpstreamProtocol::Http2)
    {
        // Pingora's HTTP/2 client takes `:scheme` and `:authority` from the URI: the
        // authority is the Host the client asked for (checked by the framing stage).
        let scheme = if pool.tls.is_some() { "https" } else { "http" };
        let authority = match (ctx.host.as_str(), ctx.upstream.target) {
            ("", Some(t)) => t.to_string(),
            (h, _) => h.to_string(),
        };
        let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: http::Uri = format!("{scheme}://{authority}{pq}")
            .parse()
            .map_err(|_| Error::explain(ErrorType::InternalError, "bad upstream authority"))?;
        req.set_uri(uri);
    }
    Ok(())
}

/// The route reads response bodies: its API contract checks responses, or its WAF
/// inspects them.
pub(crate) fn checks_response_bodies(ctx: &Ctx) -> bool {
    ctx.route
        .as_ref()
        .and_then(|r| r.contract.as_ref())
        .is_some_and(|c| c.cfg.response != rampart_config::ContractMode::Off)
        || crate::stages::waf::route_waf(ctx).is_some_and(|w| w.rt.cfg.inspect_response_body)
}

/// Who the upstream is told the caller is, and which credentials it may see.
fn identity_headers(req: &mut RequestHeader, ctx: &Ctx) -> Result<()> {
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
    if let Some(p) = &ctx.auth.principal {
        req.insert_header("X-Consumer-Id", p.consumer_id.as_str())?;
        if !p.groups.is_empty() {
            req.insert_header("X-Consumer-Groups", p.groups.join(","))?;
        }
        req.insert_header("X-Auth-Method", p.method.as_str())?;
        for (h, v) in &p.claim_headers {
            let _ = req.insert_header(h.clone(), v.as_str());
        }
    }
    let route_auth = ctx.route_spec().and_then(|r| r.auth.as_ref());
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
    Ok(())
}

/// `response_filter`: no tunnel without a handshake, WAF phase 3, then what the client
/// may see of the upstream's response headers.
pub(crate) fn response(session: &Session, resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
    if let Some(s) = ctx.upstream.start {
        ctx.upstream.time = Some(s.elapsed());
    }
    if resp.status == http::StatusCode::SWITCHING_PROTOCOLS && !ctx.websocket {
        // Only a verified WebSocket handshake on a route that allows it may become a
        // tunnel; an upstream switching protocols on anything else is refused.
        ctx.refused = Some(("upgrade", "upstream switched protocols without a handshake"));
        return Error::e_explain(ErrorType::HTTPStatus(502), "unexpected 101 from upstream");
    }
    crate::stages::waf::response_headers(resp, ctx);
    crate::stages::contract_response_headers(resp, ctx);
    let hide_errors = ctx.route_spec().is_some_and(|r| r.hide_upstream_errors);
    if hide_errors && resp.status.as_u16() >= 500 {
        // Stack traces and internal addresses stay inside: same status, our body. A
        // response without a body (HEAD, Content-Length: 0) gets none either: no body
        // filter call would come to write it.
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
    } else if let Some(r) = ctx.route_spec() {
        filter_response_headers(resp, r);
    }
    crate::stages::cors::response(resp, ctx);
    crate::stages::rules_response(resp, ctx);
    // Upstream software versions are reconnaissance material: keep them inside.
    resp.remove_header("server");
    resp.remove_header("x-powered-by");
    resp.insert_header("X-Request-Id", ctx.request_id.as_str())?;
    if let Some(v) = &ctx.hsts {
        resp.insert_header("Strict-Transport-Security", v.as_str())?;
    }
    for (k, v) in &ctx.limits.headers {
        resp.insert_header(*k, v.as_str())?;
    }
    Ok(())
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
