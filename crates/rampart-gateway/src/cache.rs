//! The response cache, the last stage before the upstream: pingora-cache's phases over
//! `rampart-cache`'s store. Pingora runs it after `request_filter`, so every check of the
//! pipeline (auth, authorization, limits, WAF, validation) ran for the request before an
//! answer can come from the cache.
//!
//! What makes an entry (the key): the route, its upstream, the upstream's method, and the
//! route's `key` parts (host, path, query, headers) read from the request *as the upstream
//! will receive it* (after prefix stripping, rules and credential removal), plus which rules
//! applied. The variant: the response's `Vary` headers, the route's `vary_on`, and — for an
//! authenticated request, unless the upstream said `public` — the consumer.

use crate::ctx::Ctx;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;
use pingora_cache::cache_control::{CacheControl, Cacheable, InterpretCacheControl};
use pingora_cache::key::HashBinary;
use pingora_cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora_cache::{
    CacheKey, CacheMeta, CacheMetaDefaults, CacheOptionOverrides, CachePhase, NoCacheReason,
    RespCacheable, VarianceBuilder,
};
use rampart_cache::{EntryInfo, Store};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// A response naming more `Vary` headers than this is not stored (each is hashed per
/// request; RFC 9110 has no limit, real responses name a few).
const MAX_VARY: usize = 16;

/// Statuses stored without explicit freshness (RFC 9110 §15.1 "heuristically cacheable",
/// minus the ones an API rarely means to keep: 405, 414, 501).
const HEURISTIC: [u16; 8] = [200, 203, 204, 300, 301, 308, 404, 410];

/// Statuses stored at all, with the origin's freshness (an API's 401, 403 or 429 is about
/// one caller, never to be replayed to others).
const STORABLE: [u16; 13] = [
    200, 203, 204, 300, 301, 302, 307, 308, 404, 405, 410, 414, 501,
];

/// A path and query longer than this is passed on, not stored (entries stay small).
const MAX_KEY_TARGET: usize = 2048;

/// The process's store and fetch lock (pingora-cache takes them `&'static`).
pub(crate) struct CacheRt {
    pub(crate) store: &'static Store,
    lock: &'static CacheKeyLockImpl,
    /// The settings it was made with (a reload cannot change them).
    settings: rampart_config::CacheSettings,
}

static CACHE: OnceLock<CacheRt> = OnceLock::new();

/// Makes the store from the first config (later calls only warn if the settings changed).
pub(crate) fn init(settings: &rampart_config::CacheSettings) {
    let rt = CACHE.get_or_init(|| CacheRt {
        store: Store::leak(settings.max_size.0 as usize),
        lock: Box::leak(CacheLock::new_boxed(settings.lock_timeout.0)),
        settings: settings.clone(),
    });
    if rt.settings != *settings {
        log::warn!("cache.max_size and cache.lock_timeout take effect after a restart");
    }
}

/// The store, once made.
pub(crate) fn store() -> Option<&'static Store> {
    CACHE.get().map(|c| c.store)
}

fn route_cache(ctx: &Ctx) -> Option<&rampart_config::RouteCache> {
    ctx.route_spec()?.cache.as_ref()
}

/// `request_cache_filter`: turn the cache on for this request when its route caches it.
pub(crate) fn request(session: &mut Session, ctx: &mut Ctx) {
    let Some(rt) = CACHE.get() else { return };
    let Some(c) = route_cache(ctx) else { return };
    if ctx.refused.is_some() || ctx.websocket || ctx.grpc {
        return;
    }
    let req = session.req_header();
    if !c.methods.iter().any(|m| m.as_str() == req.method.as_str()) {
        return;
    }
    // A body on a GET is the upstream's to read: an answer must not be reused for a
    // request whose body it never saw.
    let bodyless = matches!(
        ctx.body.len,
        crate::framing::BodyLength::None | crate::framing::BodyLength::Length(0)
    );
    if !bodyless {
        return;
    }
    if (ctx.auth.principal.is_some() || ctx.auth.identity.is_some()) && !c.authenticated {
        return;
    }
    if req.uri.path_and_query().map_or(0, |p| p.as_str().len()) > MAX_KEY_TARGET {
        return;
    }
    // A stored body served in client-chosen slices would reach the response checks in
    // pieces: such routes answer whole.
    session.ignore_downstream_range = crate::forward::checks_response_bodies(ctx);
    let mut overrides = CacheOptionOverrides::default();
    overrides.wait_timeout = Some(rt.settings.lock_timeout.0);
    overrides.max_lock_retries = Some(3);
    session.cache.enable(
        rt.store,
        Some(rt.store.eviction()),
        None,
        Some(rt.lock),
        Some(overrides),
    );
    session.cache.set_max_file_size_bytes(c.max_body.0 as usize);
}

/// The request as the upstream will receive it: the key and the variants are decided on
/// that, not on what the client sent.
fn upstream_view(session: &Session, ctx: &Ctx) -> Result<RequestHeader> {
    let mut req = session.req_header().clone();
    pingora_cache::filters::upstream::request_filter(&mut req, None);
    crate::forward::upstream_request(&mut req, ctx)?;
    Ok(req)
}

/// The values of one header, every line (a value cannot hold a newline), under every name
/// a WSGI/CGI backend folds into it (`X_Lang` is `X-Lang` to them, when underscore names
/// are kept): a variant must not ignore a spelling the upstream reads.
fn header_value(req: &RequestHeader, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut any = false;
    let values = req
        .headers
        .iter()
        .filter(|(k, _)| crate::hygiene::folded_eq(name, k.as_str()))
        .map(|(_, v)| v);
    for v in values {
        if any {
            out.push(b'\n');
        }
        out.extend_from_slice(v.as_bytes());
        any = true;
    }
    if !any {
        // Absent differs from empty (a value cannot hold NUL).
        out.push(0);
    }
    out
}

/// `cache_key_callback`.
pub(crate) fn key(session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
    let c = route_cache(ctx)
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "cache without a route"))?;
    let view = upstream_view(session, ctx)?;
    let path = view.uri.path().to_string();
    let query = view.uri.query().map(str::to_string);
    // Each part is length-prefixed, so no two different requests spell the same key.
    let mut primary: Vec<u8> = Vec::with_capacity(128);
    let mut part = |b: &[u8]| {
        primary.extend_from_slice(&(b.len() as u32).to_le_bytes());
        primary.extend_from_slice(b);
    };
    part(b"v2");
    part(ctx.route_name().as_bytes());
    // The upstream is told the scheme (X-Forwarded-Proto) and may build links with it.
    part(if ctx.tls { b"https" } else { b"http" });
    part(
        ctx.upstream
            .pool
            .as_ref()
            .map_or("", |p| p.name.as_str())
            .as_bytes(),
    );
    part(view.method.as_str().as_bytes());
    for k in &c.key {
        match k.as_str() {
            "host" => part(ctx.host.to_ascii_lowercase().as_bytes()),
            "path" => part(path.as_bytes()),
            "query" => match query.as_deref() {
                Some(q) => part(format!("?{q}").as_bytes()),
                None => part(b""),
            },
            h => part(&header_value(&view, h.strip_prefix("header:").unwrap_or(h))),
        }
    }
    // A rule's header changes reach the upstream only when the rule applied.
    for r in &ctx.rules_applied {
        part(r.as_bytes());
    }
    // pingora-cache hashes the primary key whenever it needs it (lookup, lock, eviction,
    // variance): hash it once here.
    let hash = pingora_cache::key::hash_key(&primary);
    let mut key = CacheKey::new(primary, "");
    key.set_primary_bin_override(hash);
    key.extensions.insert(EntryInfo {
        route: ctx.route_name().to_string(),
        path: ctx.path.clone(),
        query,
    });
    ctx.cache_view = Some(Box::new(view));
    Ok(key)
}

/// The response's `Vary` names, lower-cased; `None` for `*` or too many.
fn vary_names(headers: &http::HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for v in headers.get_all(http::header::VARY) {
        let v = v.to_str().ok()?;
        for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if n == "*" {
                return None;
            }
            let n = n.to_ascii_lowercase();
            if !names.contains(&n) {
                if names.len() == MAX_VARY {
                    return None;
                }
                names.push(n);
            }
        }
    }
    Some(names)
}

/// `cache_vary_filter`: which variant of the entry this request needs.
pub(crate) fn variance(meta: &CacheMeta, ctx: &mut Ctx, req: &RequestHeader) -> Option<HashBinary> {
    let c = route_cache(ctx)?;
    let view = ctx.cache_view.as_deref().unwrap_or(req);
    let mut v = VarianceBuilder::new();
    // Always a variance, so every entry is checked against the request that finds it.
    v.add_value("\u{1}v", "1");
    for name in vary_names(&meta.response_header().headers).unwrap_or_default() {
        v.add_owned_name_value(name.clone(), header_value(view, &name));
    }
    for name in &c.vary_on {
        v.add_owned_name_value(name.to_ascii_lowercase(), header_value(view, name));
    }
    // Authenticated and anonymous callers never share an entry, `public` or not.
    let authenticated = ctx.auth.principal.is_some() || ctx.auth.identity.is_some();
    v.add_value("\u{1}authenticated", if authenticated { "1" } else { "0" });
    let public =
        CacheControl::from_resp_headers(meta.response_header()).is_some_and(|cc| cc.public());
    if authenticated && !public {
        // Everything that tells the upstream who calls (the consumer, its groups, the
        // method, claim headers, the client certificate), as the upstream receives it.
        for name in identity_headers(ctx) {
            let value = header_value(view, &name);
            v.add_owned_name_value(format!("\u{1}{name}"), value);
        }
    }
    v.finalize()
}

/// The identity headers Rampart sets upstream (see `forward::identity_headers`).
fn identity_headers(ctx: &Ctx) -> Vec<String> {
    let mut names: Vec<String> = rampart_rules::IDENTITY.map(str::to_string).to_vec();
    if let Some(snap) = ctx.snap.as_deref() {
        for jwt in &snap.config.auth.jwt {
            names.extend(
                jwt.claims_to_headers
                    .values()
                    .map(|h| h.to_ascii_lowercase()),
            );
        }
    }
    names
}

/// The request carries a credential the upstream may act on that Rampart did not check
/// (no `auth` on the route): `Authorization`, a cookie, the API key header or query
/// parameter, a client certificate. Shared caches do not store such answers unless the
/// upstream allows it (RFC 9111 §3.5; Varnish passes them by default).
fn unchecked_credentials(ctx: &Ctx, view: &RequestHeader) -> bool {
    if ctx.auth.principal.is_some() {
        return false;
    }
    let h = &view.headers;
    if h.contains_key(http::header::AUTHORIZATION)
        || h.contains_key(http::header::COOKIE)
        || ctx.auth.identity.is_some()
    {
        return true;
    }
    let Some(snap) = ctx.snap.as_deref() else {
        return false;
    };
    let key = &snap.config.auth.api_key;
    h.contains_key(key.header.as_str())
        || key.query.as_deref().is_some_and(|name| {
            view.uri.query().is_some_and(|q| {
                q.split('&')
                    .any(|kv| crate::stages::param_is(kv.split('=').next().unwrap_or(""), name))
            })
        })
}

/// `response_cache_filter`: whether (and how long) the upstream's answer may be kept.
pub(crate) fn cacheable(session: &Session, resp: &ResponseHeader, ctx: &Ctx) -> RespCacheable {
    use RespCacheable::Uncacheable;
    let Some(c) = route_cache(ctx) else {
        return Uncacheable(NoCacheReason::NeverEnabled);
    };
    if resp.headers.contains_key(http::header::SET_COOKIE) {
        return Uncacheable(NoCacheReason::Custom("set-cookie"));
    }
    if vary_names(&resp.headers).is_none() {
        return Uncacheable(NoCacheReason::Custom("vary"));
    }
    if !STORABLE.contains(&resp.status.as_u16()) {
        return Uncacheable(NoCacheReason::OriginNotCache);
    }
    // Credentials the upstream saw without Rampart checking them: RFC 9111 §3.5 rules.
    // An authenticated caller's answers are kept per identity instead (`variance`).
    let view = ctx.cache_view.as_deref().unwrap_or(session.req_header());
    let authorization = unchecked_credentials(ctx, view);
    let cc = CacheControl::from_resp_headers(resp);
    let swr = c.stale_while_revalidate.map_or(0, |d| secs(d.0));
    let sie = c.stale_if_error.map_or(0, |d| secs(d.0));
    let defaults = CacheMetaDefaults::new(|_| None, swr, sie);
    let decided =
        pingora_cache::filters::resp_cacheable(cc.as_ref(), resp.clone(), authorization, &defaults);
    if let RespCacheable::Cacheable(_) = decided {
        return decided;
    }
    // No freshness from the upstream: the route's ttl, for statuses that allow it.
    // A `max-age` that does not parse still says the origin chose: stale, not the ttl.
    let explicit = cc.as_ref().is_some_and(|cc| {
        cc.fresh_duration().is_some() || cc.has_key("max-age") || cc.has_key("s-maxage")
    }) || resp.headers.contains_key(http::header::EXPIRES);
    let forbidden = cc
        .as_ref()
        .is_some_and(|cc| cc.is_cacheable() == Cacheable::No)
        || (authorization
            && !cc
                .as_ref()
                .is_some_and(|cc| cc.allow_caching_authorized_req()));
    if explicit || forbidden || !HEURISTIC.contains(&resp.status.as_u16()) {
        return decided;
    }
    let now = SystemTime::now();
    let mut header = resp.clone();
    if let Some(cc) = &cc {
        cc.strip_private_headers(&mut header);
    }
    RespCacheable::Cacheable(CacheMeta::new(now + c.ttl.0, now, swr, sie, header))
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// The `Cache-Status` value (RFC 9211) for this response, and the access log's word.
pub(crate) fn status(session: &Session) -> (&'static str, String) {
    let cache = &session.cache;
    let (word, value) = match cache.phase() {
        CachePhase::Hit => {
            let ttl = cache
                .maybe_cache_meta()
                .and_then(|m| m.fresh_until().duration_since(SystemTime::now()).ok())
                .map_or(0, |d| d.as_secs());
            ("hit", format!("rampart; hit; ttl={ttl}"))
        }
        CachePhase::Stale | CachePhase::StaleUpdating => {
            ("stale", "rampart; hit; fwd=stale".to_string())
        }
        CachePhase::Revalidated => (
            "revalidated",
            "rampart; hit; fwd=stale; fwd-status=304".to_string(),
        ),
        CachePhase::Miss => ("miss", "rampart; fwd=miss; stored".to_string()),
        CachePhase::Expired => ("expired", "rampart; fwd=stale; stored".to_string()),
        CachePhase::Disabled(NoCacheReason::NeverEnabled) => {
            ("bypass", "rampart; fwd=bypass".to_string())
        }
        CachePhase::RevalidatedNoCache(r) => (
            "revalidated",
            format!(
                "rampart; fwd=stale; fwd-status=304; detail={}",
                r.as_str().to_ascii_lowercase()
            ),
        ),
        CachePhase::Disabled(r) => (
            "uncacheable",
            format!(
                "rampart; fwd=miss; detail={}",
                r.as_str().to_ascii_lowercase()
            ),
        ),
        _ => ("bypass", "rampart; fwd=bypass".to_string()),
    };
    (word, value)
}

/// `should_serve_stale`: within the windows the entry allows (pingora-cache checks them),
/// while revalidating in the background, or when the upstream failed.
///
/// Pingora builds the background request from the client's request as HTTP/1 text; for an
/// HTTP/2 client that text says `HTTP/2` and cannot be parsed (the refresh never runs and
/// its fetch lock dangles), so HTTP/2 clients revalidate in the foreground.
pub(crate) fn serve_stale(session: &Session, error: Option<&Error>) -> bool {
    match error {
        None => !session.as_downstream().is_http2(),
        Some(e) => {
            e.esource() == &pingora::ErrorSource::Upstream
                || matches!(e.etype(), ErrorType::HTTPStatus(s) if *s >= 500)
        }
    }
}
