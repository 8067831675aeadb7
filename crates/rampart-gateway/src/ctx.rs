//! One request's state across Pingora's phases: what the stages decided and found, for the
//! phases after them, the access log and the event.

use crate::framing::BodyLength;
use crate::snapshot::Snapshot;
use crate::stages::WafReq;
use crate::upstream::UpstreamPool;
use bytes::Bytes;
use rampart_tls::ClientIdentity;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Ctx {
    pub(crate) snap: Option<Arc<Snapshot>>,
    pub(crate) request_id: String,
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) host: String,
    pub(crate) route: Option<usize>,
    pub(crate) prefix: String,
    pub(crate) pool: Option<Arc<UpstreamPool>>,
    pub(crate) tried: Vec<SocketAddr>,
    pub(crate) target: Option<SocketAddr>,
    pub(crate) start: Instant,
    pub(crate) upstream_start: Option<Instant>,
    pub(crate) upstream_time: Option<Duration>,
    pub(crate) body_len: BodyLength,
    pub(crate) body_seen: u64,
    /// The stage that refused the request and why, for the access log.
    pub(crate) refused: Option<(&'static str, &'static str)>,
    pub(crate) listener: Option<usize>,
    pub(crate) tls: bool,
    pub(crate) hsts: Option<String>,
    /// The verified client certificate (mTLS), if any.
    pub(crate) identity: Option<ClientIdentity>,
    pub(crate) principal: Option<rampart_auth::Principal>,
    /// The authorization decision, for the access log (never for the client).
    pub(crate) authz: Option<rampart_authz::Decision>,
    pub(crate) ratelimit_headers: Vec<(&'static str, String)>,
    pub(crate) throttled: Option<Duration>,
    /// This request's key has been rejected persistently (reported once per window).
    pub(crate) sustained_excess: bool,
    /// Held for the life of the request: releases the concurrency slot when dropped.
    pub(crate) inflight: Option<rampart_limits::InFlightGuard>,
    /// The WAF transaction, kept from the request phases to the response and logging ones.
    pub(crate) waf: Option<Box<WafReq>>,
    /// Body bytes the WAF read that Pingora will not replay from its buffer.
    pub(crate) body_prefix: Option<Bytes>,
    /// The canonical path (see `rampart_router::canonical_path`): what every stage decides
    /// on and what the upstream receives.
    pub(crate) path: String,
    /// The canonical path differs from the one sent: the upstream gets the canonical one.
    pub(crate) path_rewritten: bool,
    /// A genuine WebSocket handshake whose `Upgrade` was kept (the route must opt in).
    pub(crate) websocket: bool,
    /// The whole body was read and held by the WAF: the upstream gets it with this length.
    pub(crate) body_complete: Option<usize>,
    /// When the first body byte was awaited, for the body timeout and minimum rate.
    pub(crate) body_started: Option<Instant>,
    /// The upstream's 5xx body is replaced by Rampart's JSON (`hide_upstream_errors`).
    pub(crate) hide_error: bool,
}

impl Ctx {
    pub(crate) fn new() -> Ctx {
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

    /// The matched route's name, or "-".
    pub(crate) fn route_name(&self) -> &str {
        self.route
            .and_then(|i| self.snap.as_ref().map(|s| s.routes[i].spec.name.as_str()))
            .unwrap_or("-")
    }

    /// The matched route's settings.
    pub(crate) fn route_spec(&self) -> Option<&rampart_config::Route> {
        let snap = self.snap.as_deref()?;
        Some(&snap.routes.get(self.route?)?.spec)
    }
}
