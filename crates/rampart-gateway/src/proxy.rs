//! The Pingora adapter: each `ProxyHttp` phase delegates to the module that owns it.
//!
//! | phase | owner |
//! |---|---|
//! | `request_filter` | `stages` (the pipeline, one file per stage) |
//! | `request_body_filter` | here: streamed-body limits and pace |
//! | `request_cache_filter`, `cache_key_callback`, `cache_vary_filter`, `response_cache_filter`, `should_serve_stale` | `cache` (the last stage before the upstream) |
//! | `upstream_peer`, `fail_to_connect` | here, over `upstream` pools |
//! | `upstream_request_filter`, `response_filter` | `forward` |
//! | `response_body_filter` | `stages::waf` (phase 4), `forward` (hidden 5xx bodies) |
//! | `fail_to_proxy` | `respond` |
//! | `logging` | `observe` |

use crate::ctx::Ctx;
use crate::metrics::metrics;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType};
use pingora_cache::key::HashBinary;
use pingora_cache::{CacheKey, CacheMeta, RespCacheable};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Gateway {
    pub state: Arc<ArcSwap<Snapshot>>,
    pub events: Arc<rampart_events::Events>,
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

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // The snapshot is pinned for the whole request: a reload never changes a request
        // half-way through.
        crate::stages::run(session, self.state.load_full(), ctx).await
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(prefix) = ctx.body.prefix.take() {
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
            let pace = crate::stages::waf::BodyPace::new(snap, ctx);
            if !end_of_stream && pace.next_deadline(ctx.body.seen as usize).is_none() {
                return refuse_streamed_body(ctx, "body_timeout", "request body too slow", 408);
            }
        }
        if let Some(b) = body {
            ctx.body.seen += b.len() as u64;
            let max = ctx
                .snap
                .as_ref()
                .map(|s| s.config.limits.max_request_body.0)
                .unwrap_or(0);
            if ctx.body.seen > max {
                return refuse_streamed_body(ctx, "body_limit", "body over limit", 413);
            }
        }
        Ok(())
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        crate::cache::request(session, ctx);
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
        crate::cache::key(session, ctx)
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        ctx: &mut Ctx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        crate::cache::variance(meta, ctx, req)
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<RespCacheable> {
        Ok(crate::cache::cacheable(session, resp, ctx))
    }

    fn should_serve_stale(
        &self,
        session: &mut Session,
        _ctx: &mut Ctx,
        error: Option<&Error>,
    ) -> bool {
        crate::cache::serve_stale(session, error)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let pool = ctx
            .upstream
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
        let Some(addr) = pool.select(&key, &ctx.upstream.tried) else {
            return Error::e_explain(ErrorType::HTTPStatus(502), "no healthy upstream target");
        };
        ctx.upstream.tried.push(addr);
        ctx.upstream.target = Some(addr);
        ctx.upstream.start = Some(Instant::now());
        let mut peer = match &pool.tls {
            Some(t) => t.peer(addr),
            None => HttpPeer::new(addr, false, String::new()),
        };
        let t = &pool.spec.timeouts;
        peer.options.connection_timeout = Some(t.connect.0);
        peer.options.read_timeout = Some(t.read.0);
        peer.options.write_timeout = Some(t.write.0);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        if pool.spec.protocol == rampart_config::UpstreamProtocol::Http2 {
            // HTTP/2 only: ALPN `h2` over TLS, prior knowledge (h2c) without.
            peer.options.set_http_version(2, 2);
        }
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
        if let (Some(pool), Some(addr)) = (&ctx.upstream.pool, peer._address.as_inet()) {
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
        if let (Some(pool), Some(addr)) = (&ctx.upstream.pool, ctx.upstream.target) {
            let kind = if matches!(e.etype(), ErrorType::ConnectTimedout) {
                "connect_timeout"
            } else {
                "connect_error"
            };
            pool.report_failure(&addr, kind);
            let retries = pool.spec.retries as usize;
            // Nothing reached the upstream yet, but a body may have been consumed; only
            // idempotent methods are replayed, like every careful proxy.
            if is_idempotent(&session.req_header().method) && ctx.upstream.tried.len() <= retries {
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
        if session.cache.enabled() {
            // HEAD as GET, the client's conditions and ranges dropped (the whole answer is
            // what gets stored), the entry's validators added when revalidating.
            pingora_cache::filters::upstream::request_filter(req, session.cache.maybe_cache_meta());
        }
        crate::forward::upstream_request(req, ctx)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        crate::forward::response(session, resp, ctx)?;
        if ctx.route_spec().is_some_and(|r| r.cache.is_some()) {
            // Tags are for purging here, not for clients.
            resp.remove_header("cache-tag");
            let (word, value) = crate::cache::status(session);
            ctx.cache = Some(word);
            metrics().cache_result(ctx.route_name(), word);
            resp.insert_header("Cache-Status", value)?;
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
            *body = end_of_stream
                .then(|| crate::respond::error_body("upstream error", &ctx.request_id));
            return Ok(None);
        }
        let delay = crate::stages::waf::response_body(body, end_of_stream, ctx)?;
        crate::stages::contract_response_body(body, end_of_stream, ctx)?;
        Ok(delay)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        crate::respond::fail_to_proxy(session, e, ctx).await
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        self.log_request(session, e, ctx);
    }
}
