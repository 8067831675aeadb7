//! One request's state across Pingora's phases: what the stages decided and found, for the
//! phases after them, the access log and the event.

use crate::framing::BodyLength;
use crate::snapshot::{RouteRt, Snapshot};
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
    /// The W3C trace: the caller's when a trusted peer sent one, else a new one.
    pub(crate) trace: Option<rampart_trace::TraceContext>,
    /// Each stage that ran: when, how long, whether it refused (for the spans).
    pub(crate) stage_runs: Vec<crate::otel::StageRun>,
    /// The TCP peer (a proxy, when one is trusted to speak for the client).
    pub(crate) peer_ip: Option<IpAddr>,
    /// The client: the peer, or who a trusted proxy says the client is.
    pub(crate) client_ip: Option<IpAddr>,
    /// The verified forwarding path (client first, peer excluded): the upstream's
    /// `X-Forwarded-For` is this and the peer.
    pub(crate) forwarded_chain: Vec<IpAddr>,
    pub(crate) host: String,
    pub(crate) listener: Option<usize>,
    pub(crate) tls: bool,
    pub(crate) hsts: Option<String>,
    pub(crate) start: Instant,
    /// The canonical path (see `rampart_router::canonical_path`): what every stage decides
    /// on and what the upstream receives.
    pub(crate) path: String,
    /// The canonical path differs from the one sent: the upstream gets the canonical one.
    pub(crate) path_rewritten: bool,
    /// A genuine WebSocket handshake whose `Upgrade` was kept (the route must opt in).
    pub(crate) websocket: bool,
    /// CORS headers for the answer to an allowed cross-origin request (the `cors` stage).
    pub(crate) cors: Option<rampart_cors::Headers>,
    /// The request is gRPC (`application/grpc…`): Rampart's own answers are gRPC statuses.
    pub(crate) grpc: bool,
    /// The route's rules that applied (names), for the access log.
    pub(crate) rules_applied: Vec<String>,
    /// Their changes to the answer's headers.
    pub(crate) response_ops: Vec<rampart_rules::Ops>,
    /// Their changes to the request's headers (made on the session; the WAF, which reads
    /// an HTTP/1 request's raw header block, applies them to what it reads too).
    pub(crate) request_ops: Vec<rampart_rules::Ops>,
    /// The matched route, shared with the snapshot it came from.
    pub(crate) route: Option<Arc<RouteRt>>,
    /// The API operation the request is for, when the route gives it settings of its own.
    pub(crate) operation: Option<Arc<crate::contract::OpRt>>,
    /// The route's path prefix that matched (for strip_prefix).
    pub(crate) prefix: String,
    /// The stage that refused the request and why, for the access log.
    pub(crate) refused: Option<(&'static str, &'static str)>,
    /// The upstream's 5xx body is replaced by Rampart's JSON (`hide_upstream_errors`).
    pub(crate) hide_error: bool,
    pub(crate) auth: AuthState,
    pub(crate) limits: LimitState,
    pub(crate) body: BodyState,
    pub(crate) upstream: UpstreamState,
    /// The WAF transaction, kept from the request phases to the response and logging ones.
    pub(crate) waf: Option<Box<WafReq>>,
    pub(crate) contract: ContractState,
    /// The bot verdict (`bots` stage) and why.
    pub(crate) bot: Option<crate::stages::BotFacts>,
    /// A challenge pass cookie was presented: whether it is valid (`None`: none, or no
    /// challenge configured).
    pub(crate) pass: Option<bool>,
    /// The route's bot policy asks for the browser challenge.
    pub(crate) bot_challenge: bool,
    /// The client's TLS hello, when it spoke TLS to this listener itself.
    pub(crate) hello: Option<Arc<rampart_bots::tls::ClientHello>>,
    /// This request's place in the in-flight count (`overload`), held until it ends.
    pub(crate) overload: Option<crate::stages::overload::Slot>,
    /// The request as the upstream gets it, when the cache keyed it (for `Vary`).
    pub(crate) cache_view: Option<Box<pingora::http::RequestHeader>>,
    /// What the cache did (`hit`, `miss`, …), for the access log.
    pub(crate) cache: Option<&'static str>,
}

/// What the route's API contract found.
#[derive(Default)]
pub(crate) struct ContractState {
    /// The operation the request addressed (`operationId`, or `METHOD path`).
    pub(crate) operation: Option<String>,
    /// Every violation (also in detect mode, for the event).
    pub(crate) violations: Vec<rampart_openapi::Violation>,
    /// The stage that found violations it let through (detect mode).
    pub(crate) detected_by: Option<&'static str>,
    /// The RFC 9457 document answered instead of Rampart's usual error.
    pub(crate) problem: Option<Bytes>,
    /// The operation, for the response check.
    pub(crate) op: Option<rampart_openapi::OpRef>,
    /// The response body being checked.
    pub(crate) capture: Option<ResponseCapture>,
    /// The response was refused: the upstream's body is dropped.
    pub(crate) response_refused: bool,
}

/// A response body collected for its contract check.
pub(crate) struct ResponseCapture {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    /// Held back from the client until checked (enforce mode).
    pub(crate) enforce: bool,
    pub(crate) limit: usize,
    pub(crate) body: Vec<u8>,
    pub(crate) over: bool,
}

/// Who the caller is and what they may do.
#[derive(Default)]
pub(crate) struct AuthState {
    /// The verified client certificate (mTLS), if any.
    pub(crate) identity: Option<ClientIdentity>,
    pub(crate) principal: Option<rampart_auth::Principal>,
    /// The authorization decision, for the access log (never for the client).
    pub(crate) authz: Option<rampart_authz::Decision>,
}

/// What traffic control decided.
#[derive(Default)]
pub(crate) struct LimitState {
    /// `RateLimit-Policy` / `RateLimit` for the response.
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) throttled: Option<Duration>,
    /// A playbook's throttle on this client or consumer: the key it applies to and the rate.
    pub(crate) restricted: Option<(rampart_bans::Subject, String)>,
    /// This request's key has been rejected persistently (reported once per window).
    pub(crate) sustained_excess: bool,
    /// Held for the life of the request: releases the concurrency slot when dropped.
    pub(crate) inflight: Option<rampart_limits::InFlightGuard>,
}

/// The request body: its framing, what was read, and when.
#[derive(Default)]
pub(crate) struct BodyState {
    pub(crate) len: BodyLength,
    /// Bytes streamed through `request_body_filter`.
    pub(crate) seen: u64,
    /// Body bytes the WAF read that Pingora will not replay from its buffer.
    pub(crate) prefix: Option<Bytes>,
    /// The whole body was read and held by the WAF: the upstream gets it with this length.
    pub(crate) complete: Option<usize>,
    /// The whole body, when a stage read it complete (the WAF, the contract check).
    pub(crate) read: Option<Bytes>,
    /// A stage has read from the body (whole or not): nobody may start reading it again.
    pub(crate) consumed: bool,
    /// When the first body byte was awaited, for the body timeout and minimum rate.
    pub(crate) started: Option<Instant>,
}

/// The upstream side: the pool, the targets tried, and timings.
#[derive(Default)]
pub(crate) struct UpstreamState {
    pub(crate) pool: Option<Arc<UpstreamPool>>,
    /// This request's place under the upstream's adaptive limit.
    pub(crate) permit: Option<rampart_limits::adaptive::Permit>,
    pub(crate) tried: Vec<SocketAddr>,
    pub(crate) target: Option<SocketAddr>,
    pub(crate) start: Option<Instant>,
    pub(crate) time: Option<Duration>,
}

impl Ctx {
    pub(crate) fn new() -> Ctx {
        Ctx {
            snap: None,
            request_id: String::new(),
            trace: None,
            stage_runs: Vec::new(),
            peer_ip: None,
            client_ip: None,
            forwarded_chain: Vec::new(),
            host: String::new(),
            listener: None,
            tls: false,
            hsts: None,
            start: Instant::now(),
            path: String::new(),
            path_rewritten: false,
            websocket: false,
            cors: None,
            grpc: false,
            rules_applied: Vec::new(),
            response_ops: Vec::new(),
            request_ops: Vec::new(),
            route: None,
            operation: None,
            prefix: String::new(),
            refused: None,
            hide_error: false,
            auth: AuthState::default(),
            limits: LimitState::default(),
            body: BodyState::default(),
            upstream: UpstreamState::default(),
            waf: None,
            contract: ContractState::default(),
            bot: None,
            pass: None,
            bot_challenge: false,
            hello: None,
            overload: None,
            cache_view: None,
            cache: None,
        }
    }

    /// The matched route's name, or "-".
    pub(crate) fn route_name(&self) -> &str {
        self.route.as_ref().map_or("-", |r| r.spec.name.as_str())
    }

    /// The matched route's settings.
    pub(crate) fn route_spec(&self) -> Option<&rampart_config::Route> {
        Some(&self.route.as_ref()?.spec)
    }
}
