//! The admin listener: `/healthz`, `/readyz`, `/metrics`, and the admin API (config,
//! resources, history, bans, upstream health, certificates), described by `openapi.json`.
//!
//! Everything but the health endpoints needs a bearer token (`admin.tokens`, stored
//! hashed); `/metrics` too when `admin.metrics: authenticated`. Roles nest: a `viewer`
//! reads (secrets redacted), an `operator` also bans and reloads certificates, an `admin`
//! also changes the config. Config writes need `If-Match` with the generation in force and
//! go through the same validation and atomic swap as a reload; a refused change changes
//! nothing. Every change, and every refused token, is a security event; every API call
//! is an access-log line.
//!
//! The live dashboard: `/dashboard` (page, script, style: public, they hold no data) and
//! `/dashboard/stream` (any role), server-sent events with the aggregates of a window each
//! second, written as they come (the one answer here that is not whole).

mod api;
mod auth;

use crate::metrics::metrics;
use crate::reload::Reloader;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use rampart_config::{AdminRole, MetricsAccess};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

pub use auth::Caller;

/// The admin listener's application.
pub struct Admin {
    pub state: Arc<ArcSwap<Snapshot>>,
    pub reloader: Arc<Reloader>,
    pub events: Arc<rampart_events::Events>,
    lockout: auth::Lockout,
}

impl Admin {
    pub fn new(
        state: Arc<ArcSwap<Snapshot>>,
        reloader: Arc<Reloader>,
        events: Arc<rampart_events::Events>,
    ) -> Admin {
        Admin {
            state,
            reloader,
            events,
            lockout: Default::default(),
        }
    }
}

/// An API request, read whole.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub peer: Option<IpAddr>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        crate::hygiene::query_param(self.query.as_deref()?, name)
    }
}

/// An answer, with what it changed (for the event and the access log).
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    /// The change made, for the security event: (action, reason, changes); boxed, since
    /// most replies change nothing.
    pub change: Option<Box<(&'static str, String, Vec<String>)>>,
}

impl Reply {
    pub fn json(status: u16, v: serde_json::Value) -> Reply {
        let body = serde_json::to_vec(&v).unwrap_or_default();
        Reply {
            status,
            content_type: "application/json",
            body,
            headers: Vec::new(),
            change: None,
        }
    }

    /// An error: `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, serde_json::json!({ "error": message.into() }))
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn into_response(self, head: bool) -> Response<Vec<u8>> {
        let mut b = Response::builder()
            .status(self.status)
            .header("Content-Type", self.content_type)
            .header("Content-Length", self.body.len())
            .header("Cache-Control", "no-store")
            .header("X-Content-Type-Options", "nosniff");
        for (k, v) in &self.headers {
            b = b.header(*k, v.as_str());
        }
        let body = if head { Vec::new() } else { self.body };
        b.body(body).unwrap_or_else(|_| {
            Response::builder()
                .status(500)
                .body(Vec::new())
                .expect("static response parts")
        })
    }
}

fn allow_get(reply: Reply) -> Reply {
    reply.with_header("Allow", "GET, HEAD")
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let started = Instant::now();
        let head = session.req_header().method == Method::HEAD;
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let (method, path, query, headers) = {
            let r = session.req_header();
            (
                r.method.clone(),
                r.uri.path().to_string(),
                r.uri.query().map(str::to_string),
                r.headers.clone(),
            )
        };
        let method = if method == Method::HEAD {
            Method::GET
        } else {
            method
        };
        let snap = self.state.load_full();
        let cfg = &snap.config.admin;

        // Probes, scrapes and the dashboard's static files: no token, no access-log line.
        let page = |content_type: &'static str, body: &str| {
            Some(Reply {
                status: 200,
                content_type,
                body: body.as_bytes().to_vec(),
                headers: vec![
                    // The page runs its own script and style only, talks to this listener
                    // only, and is never framed.
                    (
                        "Content-Security-Policy",
                        "default-src 'none'; script-src 'self'; style-src 'self'; \
                         connect-src 'self'; img-src 'self'; base-uri 'none'; \
                         form-action 'none'; frame-ancestors 'none'"
                            .into(),
                    ),
                    ("X-Frame-Options", "DENY".into()),
                    ("Referrer-Policy", "no-referrer".into()),
                ],
                change: None,
            })
        };
        let dashboard = cfg.dashboard;
        let public = match path.as_str() {
            "/dashboard" | "/dashboard/" if dashboard => {
                page("text/html; charset=utf-8", rampart_dashboard::PAGE)
            }
            "/dashboard/dashboard.js" if dashboard => {
                page("text/javascript; charset=utf-8", rampart_dashboard::SCRIPT)
            }
            "/dashboard/dashboard.css" if dashboard => {
                page("text/css; charset=utf-8", rampart_dashboard::STYLE)
            }
            // Browsers ask for it with the page; a 401 (and its event) would be noise.
            "/favicon.ico" if dashboard => Some(Reply::error(404, "no icon")),
            "/healthz" => Some(Reply::json(200, serde_json::json!({"status": "ok"}))),
            "/readyz" => Some(Reply::json(
                200,
                serde_json::json!({"status": "ready", "config_generation": snap.generation}),
            )),
            "/metrics" if cfg.metrics == MetricsAccess::Public => Some(metrics_reply()),
            _ => None,
        };
        if let Some(r) = public {
            let r = if method == Method::GET {
                r
            } else {
                allow_get(Reply::error(405, "method not allowed"))
            };
            return r.into_response(head);
        }

        let mut req = Req {
            method,
            path,
            query,
            headers,
            peer,
            body: Vec::new(),
        };
        let (reply, caller) = self.serve(session, &mut req, &snap).await;
        self.record(&req, &reply, caller.as_ref(), started);
        reply.into_response(head)
    }
}

fn metrics_reply() -> Reply {
    Reply {
        status: 200,
        content_type: "text/plain; version=0.0.4",
        body: metrics().render(),
        headers: Vec::new(),
        change: None,
    }
}

impl Admin {
    /// Who is calling, or the refusal (counted toward the lockout, and an event).
    fn authenticate(
        &self,
        session: &ServerSession,
        req: &Req,
        cfg: &rampart_config::Admin,
    ) -> Result<Caller, Reply> {
        if let Some(ip) = req.peer {
            if let Some(left) = self.lockout.locked(ip) {
                let secs = left.as_secs().max(1);
                return Err(
                    Reply::error(429, "too many failed attempts; try again later")
                        .with_header("Retry-After", secs.to_string()),
                );
            }
        }
        let identity = session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .and_then(|s| s.extension.get::<rampart_tls::ClientIdentity>())
            .cloned();
        let authorization = req.headers.get("authorization").map(|v| v.as_bytes());
        match auth::authenticate(cfg, authorization, identity.as_ref()) {
            Ok(c) => {
                if let Some(ip) = req.peer {
                    self.lockout.succeed(ip);
                }
                Ok(c)
            }
            Err(why) => {
                // Only a wrong token counts: a request without one guesses nothing.
                let counted = !matches!(why, auth::Refusal::Missing);
                let locked = counted && req.peer.is_some_and(|ip| self.lockout.fail(cfg, ip));
                let action = if locked { "lockout" } else { "auth_failure" };
                self.event(req, 401, action, why.reason(), None, Vec::new());
                let message = if cfg.tokens.is_empty() {
                    "the admin API has no tokens configured (admin.tokens)"
                } else {
                    "a valid bearer token is required"
                };
                Err(Reply::error(401, message)
                    .with_header("WWW-Authenticate", "Bearer realm=\"rampart-admin\""))
            }
        }
    }

    async fn serve(
        &self,
        session: &mut ServerSession,
        req: &mut Req,
        snap: &Snapshot,
    ) -> (Reply, Option<Caller>) {
        let cfg = &snap.config.admin;
        let caller = match self.authenticate(session, req, cfg) {
            Ok(c) => c,
            Err(r) => return (r, None),
        };
        if req.path == "/metrics" {
            let r = if req.method == Method::GET {
                metrics_reply()
            } else {
                allow_get(Reply::error(405, "method not allowed"))
            };
            return (r, Some(caller));
        }
        let endpoint = match api::route(&req.method, &req.path) {
            Ok(e) => e,
            Err(r) => return (r, Some(caller)),
        };
        if caller.role < endpoint.role {
            let need = match endpoint.role {
                AdminRole::Viewer => "viewer",
                AdminRole::Operator => "operator",
                AdminRole::Admin => "admin",
            };
            return (
                Reply::error(403, format!("this needs the {need} role")),
                Some(caller),
            );
        }
        if endpoint.body {
            match read_body(session, cfg.max_body.0 as usize).await {
                Ok(b) => req.body = b,
                Err(r) => return (r, Some(caller)),
            }
        }
        let reply = api::handle(self, snap, &caller, req, endpoint).await;
        if let Some((action, reason, changes)) = reply.change.as_deref() {
            self.event(
                req,
                reply.status,
                action,
                reason.clone(),
                Some(caller.name.clone()),
                changes.clone(),
            );
        }
        (reply, Some(caller))
    }

    fn event(
        &self,
        req: &Req,
        status: u16,
        action: &str,
        reason: String,
        actor: Option<String>,
        changes: Vec<String>,
    ) {
        let mut e = crate::observe::bare_event("admin", action, reason);
        e.client_ip = req.peer.map(|i| i.to_string());
        e.method = req.method.to_string();
        e.uri = req.path.clone();
        e.status = status;
        e.actor = actor;
        e.changes = changes;
        self.events.emit(e);
    }

    /// One access-log line per API call.
    fn record(&self, req: &Req, reply: &Reply, caller: Option<&Caller>, started: Instant) {
        if !crate::access_log::enabled() {
            return;
        }
        let mut line = serde_json::json!({
            "ts": rampart_events::Event::now_ts(),
            "listener": "admin",
            "client_ip": req.peer.map(|i| i.to_string()),
            "method": req.method.as_str(),
            "path": req.path,
            "status": reply.status,
            "actor": caller.map(|c| c.name.as_str()),
            "bytes_received": req.body.len(),
            "bytes_sent": reply.body.len(),
            "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
        });
        if let Some((action, _, changes)) = reply.change.as_deref() {
            line["action"] = (*action).into();
            line["changes"] = changes.clone().into();
        }
        crate::access_log::write(line.to_string());
    }
}

async fn read_body(session: &mut ServerSession, max: usize) -> Result<Vec<u8>, Reply> {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || Reply::error(413, format!("the body is larger than {max} bytes"));
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(Reply::error(400, "the request body could not be read")),
        }
    }
}

/// The admin listener as Pingora runs it: whole answers from [`Admin`], except the
/// dashboard's stream, which is written a message at a time.
pub struct AdminApp {
    admin: Admin,
    streams: std::sync::atomic::AtomicUsize,
}

/// Dashboard streams open at once, at most (each one builds a message a second).
const MAX_STREAMS: usize = 16;

impl AdminApp {
    pub fn new(admin: Admin) -> AdminApp {
        AdminApp {
            admin,
            streams: Default::default(),
        }
    }

    /// Writes a whole answer, as Pingora's `ServeHttp` does; returns whether the
    /// connection can be reused.
    async fn write(http: &mut ServerSession, resp: Response<Vec<u8>>) -> bool {
        let (parts, body) = resp.into_parts();
        let header: pingora::http::ResponseHeader = parts.into();
        if http.write_response_header(Box::new(header)).await.is_err() {
            return false;
        }
        body.is_empty() || http.write_response_body(body.into(), true).await.is_ok()
    }

    /// `/dashboard/stream?window=5m|1h|24h&route=NAME`: one `data:` message a second
    /// until the client goes away or the listener shuts down. Returns whether the
    /// connection can serve another request (a refusal is a whole answer).
    async fn stream(&self, http: &mut ServerSession, shutdown: &ShutdownWatch) -> bool {
        let started = Instant::now();
        let snap = self.admin.state.load_full();
        let (query, headers) = {
            let r = http.req_header();
            (r.uri.query().map(str::to_string), r.headers.clone())
        };
        let peer = http.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let req = Req {
            method: Method::GET,
            path: "/dashboard/stream".into(),
            query,
            headers,
            peer,
            body: Vec::new(),
        };
        let refuse = |r: Reply| r.into_response(false);
        if !snap.config.admin.dashboard {
            let r = Reply::error(404, "the dashboard is off (admin.dashboard)");
            self.admin.record(&req, &r, None, started);
            return Self::write(http, refuse(r)).await;
        }
        let caller = match self.admin.authenticate(http, &req, &snap.config.admin) {
            Ok(c) => c,
            Err(r) => {
                self.admin.record(&req, &r, None, started);
                return Self::write(http, refuse(r)).await;
            }
        };
        let window = req.param("window").unwrap_or_else(|| "5m".into());
        if !matches!(window.as_str(), "5m" | "1h" | "24h") {
            let r = Reply::error(400, "window must be 5m, 1h or 24h");
            self.admin.record(&req, &r, Some(&caller), started);
            return Self::write(http, refuse(r)).await;
        }
        let route = req.param("route").filter(|r| !r.is_empty());
        use std::sync::atomic::Ordering::Relaxed;
        if self.streams.fetch_add(1, Relaxed) >= MAX_STREAMS {
            self.streams.fetch_sub(1, Relaxed);
            let r = Reply::error(429, "too many dashboard streams are open")
                .with_header("Retry-After", "5");
            self.admin.record(&req, &r, Some(&caller), started);
            return Self::write(http, refuse(r)).await;
        }
        let ok = Reply {
            status: 200,
            content_type: "text/event-stream",
            body: Vec::new(),
            headers: Vec::new(),
            change: None,
        };
        self.admin.record(&req, &ok, Some(&caller), started);
        let mut header = pingora::http::ResponseHeader::build(200, None).expect("status 200");
        for (k, v) in [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ] {
            let _ = header.insert_header(k, v);
        }
        if !http.is_http2() {
            let _ = header.insert_header("Transfer-Encoding", "chunked");
        }
        http.set_keepalive(None);
        if http.write_response_header(Box::new(header)).await.is_ok() {
            loop {
                let snap = self.admin.state.load_full();
                let msg =
                    crate::dashboard::message(&snap, &self.admin.events, &window, route.as_deref());
                let mut frame = b"data: ".to_vec();
                frame.extend_from_slice(msg.to_string().as_bytes());
                frame.extend_from_slice(b"\n\n");
                if http.write_response_body(frame.into(), false).await.is_err() {
                    break;
                }
                let mut down = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = down.changed() => break,
                }
                if *shutdown.borrow() {
                    break;
                }
            }
        }
        self.streams.fetch_sub(1, Relaxed);
        false
    }
}

#[async_trait]
impl HttpServerApp for AdminApp {
    async fn process_new_http(
        self: &Arc<Self>,
        mut http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !matches!(http.read_request().await, Ok(true)) {
            return None;
        }
        http.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        let streaming = {
            let r = http.req_header();
            r.uri.path() == "/dashboard/stream" && r.method == Method::GET
        };
        let reusable = if streaming {
            self.stream(&mut http, shutdown).await
        } else {
            let resp = self.admin.response(&mut http).await;
            Self::write(&mut http, resp).await
        };
        if !reusable {
            let _ = http.finish().await;
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&http);
        match http.finish().await {
            Ok(c) => c.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(_) => None,
        }
    }
}
