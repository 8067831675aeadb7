//! Header pre-filter for HTTP/1 connections (plain, and over TLS after the handshake), in
//! front of Pingora's HTTP/1 parser: each
//! request's header block must arrive completely within `request_header_timeout`
//! (slowloris) and fit in `max_header_bytes` (431). Pingora's own read timeout applies per
//! read, so a client dribbling one byte at a time would otherwise hold a connection forever.
//! The bytes read are handed back to the stream untouched (`rewind`; TLS streams are wrapped
//! in [`Replayed`], which serves the decrypted bytes again), then Pingora proceeds. HTTP/2
//! (ALPN h2, or h2c's preface) frames its own messages and is left to Pingora.
//! It wraps the proxy as a `ServerApp`, which Pingora calls for every request on a
//! connection, so kept-alive requests are covered too; an idle kept-alive connection is
//! closed after the same timeout.

use crate::framing::{self, new_request_id};
use crate::metrics::metrics;
use crate::proxy::Gateway;
use crate::respond::{error_body, error_header};
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::Stream;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, UniqueID, UniqueIDType,
    ALPN,
};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::os::unix::io::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{timeout_at, Instant};

/// The pre-filter in front of an HTTP app: the proxy, and the admin listener (which gets
/// the same header timeout, size limit and malformed-request refusals).
pub struct Prefiltered<A = HttpProxy<Gateway>> {
    pub inner: Arc<A>,
    pub state: Arc<ArcSwap<Snapshot>>,
    pub conns: ConnTracker,
    pub events: Arc<rampart_events::Events>,
}

/// Open connections per client IP, for `max_connections_per_ip`. Pingora calls
/// `process_new` once per request on a connection, so a connection is known from its first
/// request until `process_new` returns None (not reused: closed).
/// A connection is its id (the fd, for sharding) and its socket digest: Pingora closes a
/// finished connection before `process_new` returns, so a new connection can get the same
/// fd while the old entry is still here. The digest is allocated per accepted connection
/// and kept alive by the entry, so two live connections never share one.
/// Sharded (connections by id, counts by IP) so requests on different connections rarely
/// share a lock.
pub struct ConnTracker {
    /// Open connection id → its client IP, identity and listener port; shard by id.
    open: Vec<Mutex<HashMap<i32, OpenConn>>>,
    /// Client IP → open connections; shard by the IP's hash.
    per_ip: Vec<Mutex<HashMap<IpAddr, u32>>>,
    /// Listener port → open connections (touched once per connection, not per request).
    per_listener: Mutex<HashMap<u16, u32>>,
    /// Open connections on the listeners that count (`server.max_connections`).
    total: std::sync::atomic::AtomicU32,
}

/// An open connection's client IP, identity and listener port.
type OpenConn = (IpAddr, Identity, u16);

/// A new connection's limits: per client IP, on its listener, on all listeners.
#[derive(Clone, Copy, Default)]
pub struct ConnLimits {
    pub per_ip: Option<u32>,
    pub listener: Option<u32>,
    pub total: Option<u32>,
}

/// What tells one connection from a later one on the same fd.
pub type Identity = Option<Arc<pingora::protocols::SocketDigest>>;

fn same(a: &Identity, b: &Identity) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

const CONN_SHARDS: usize = 16;

impl Default for ConnTracker {
    fn default() -> Self {
        ConnTracker {
            open: (0..CONN_SHARDS).map(|_| Mutex::default()).collect(),
            per_ip: (0..CONN_SHARDS).map(|_| Mutex::default()).collect(),
            per_listener: Mutex::default(),
            total: Default::default(),
        }
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ConnTracker {
    fn open_shard(&self, id: i32) -> std::sync::MutexGuard<'_, HashMap<i32, OpenConn>> {
        locked(&self.open[id.unsigned_abs() as usize % CONN_SHARDS])
    }

    fn ip_shard(&self, ip: IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        let h = rampart_limits::local::hash_with(|h| ip.hash(h));
        locked(&self.per_ip[(h % CONN_SHARDS as u64) as usize])
    }

    fn release_ip(&self, ip: IpAddr) {
        let mut per_ip = self.ip_shard(ip);
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    /// A connection ended (or was replaced): its place in every count.
    fn release(&self, ip: IpAddr, port: u16) {
        self.release_ip(ip);
        let mut per = locked(&self.per_listener);
        if let Some(n) = per.get_mut(&port) {
            *n -= 1;
            if *n == 0 {
                per.remove(&port);
            }
        }
        self.total
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Register a connection's request; `Err(reason)` when a new connection exceeds a
    /// limit. One connection's requests come one after another, so its entry cannot race
    /// itself.
    fn enter(
        &self,
        id: i32,
        who: &Identity,
        ip: IpAddr,
        port: u16,
        limits: ConnLimits,
    ) -> Result<(), &'static str> {
        use std::sync::atomic::Ordering::Relaxed;
        let stale = {
            let mut open = self.open_shard(id);
            match open.get(&id) {
                Some((_, w, _)) if same(w, who) => return Ok(()),
                // A closed connection whose fd this one reuses, not yet forgotten.
                Some(_) => open.remove(&id).map(|(ip, _, port)| (ip, port)),
                None => None,
            }
        };
        if let Some((old, old_port)) = stale {
            self.release(old, old_port);
        }
        let n = self.total.fetch_add(1, Relaxed);
        if limits.total.is_some_and(|l| n >= l) {
            self.total.fetch_sub(1, Relaxed);
            return Err("connections in total");
        }
        {
            let mut per = locked(&self.per_listener);
            let n = per.entry(port).or_insert(0);
            if limits.listener.is_some_and(|l| *n >= l) {
                if *n == 0 {
                    per.remove(&port);
                }
                self.total.fetch_sub(1, Relaxed);
                return Err("connections per listener");
            }
            *n += 1;
        }
        {
            let mut per_ip = self.ip_shard(ip);
            let n = per_ip.entry(ip).or_insert(0);
            if limits.per_ip.is_some_and(|l| *n >= l) {
                if *n == 0 {
                    per_ip.remove(&ip);
                }
                drop(per_ip);
                // Undo the listener and total places taken above.
                let mut per = locked(&self.per_listener);
                if let Some(n) = per.get_mut(&port) {
                    *n -= 1;
                    if *n == 0 {
                        per.remove(&port);
                    }
                }
                self.total.fetch_sub(1, Relaxed);
                return Err("connections per ip");
            }
            *n += 1;
        }
        self.open_shard(id).insert(id, (ip, who.clone(), port));
        Ok(())
    }

    /// This connection's earlier request was registered (it is being reused).
    fn is_open(&self, id: i32, who: &Identity) -> bool {
        self.open_shard(id)
            .get(&id)
            .is_some_and(|(_, w, _)| same(w, who))
    }

    fn leave(&self, id: i32, who: &Identity) {
        let ip = {
            let mut open = self.open_shard(id);
            match open.get(&id) {
                Some((_, w, _)) if same(w, who) => open.remove(&id).map(|(ip, _, p)| (ip, p)),
                // Already replaced by a newer connection on the same fd.
                _ => None,
            }
        };
        if let Some((ip, port)) = ip {
            self.release(ip, port);
        }
    }
}

/// Drops connections from refused networks before the TLS handshake (Pingora's pre-TLS
/// hook), so a denied peer costs no handshake.
pub struct AcceptGate {
    pub state: Arc<ArcSwap<Snapshot>>,
    pub events: Arc<rampart_events::Events>,
}

#[async_trait]
impl pingora::listeners::PreTlsProcess for AcceptGate {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
        let (peer, local) = addresses(stream);
        let Some(mut peer) = peer else { return Ok(()) };
        let snap = self.state.load_full();
        let reason = match accept(&snap, stream, peer, local).await {
            Ok(client) => {
                peer = client;
                match crate::network::refused_at_accept(&snap, peer, local) {
                    None => {
                        let timeout = snap.config.limits.request_header_timeout.0;
                        match crate::hello::read(stream, timeout).await {
                            Ok(Some(h)) => {
                                // A CA validating TLS-ALPN-01 never reaches HTTP.
                                return match crate::acme::answer_tls_alpn(stream, &h).await {
                                    Some(answered) => answered,
                                    None => Ok(()),
                                };
                            }
                            Ok(None) => return Ok(()),
                            Err(reason) => ("tls", reason),
                        }
                    }
                    Some(reason) => ("network", reason),
                }
            }
            Err(reason) => ("proxy_protocol", reason),
        };
        metrics().rejected.with_label_values(&[reason.1]).inc();
        let id = crate::framing::new_request_id();
        record_refusal(
            &self.state,
            &self.events,
            Some(peer),
            &[],
            reason.0,
            0,
            reason.1,
            id,
        );
        pingora::Error::e_explain(pingora::ErrorType::ConnectionClosed, reason.1)
    }
}

/// A stream's peer and local addresses.
fn addresses(stream: &L4Stream) -> (Option<IpAddr>, Option<std::net::SocketAddr>) {
    let digest = stream.get_socket_digest();
    let inet = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
        a.and_then(|a| a.as_inet()).copied()
    };
    let peer = inet(digest.as_ref().and_then(|d| d.peer_addr())).map(|a| a.ip());
    let local = inet(digest.as_ref().and_then(|d| d.local_addr()));
    (peer, local)
}

/// A new connection on a listener with `proxy_protocol`: the PROXY header is read (within
/// the header timeout, from a trusted balancer only) and the client it names becomes the
/// connection's peer for everything after. Returns the client address.
async fn accept(
    snap: &Snapshot,
    stream: &mut L4Stream,
    peer: IpAddr,
    local: Option<std::net::SocketAddr>,
) -> Result<IpAddr, &'static str> {
    let expects = local
        .and_then(|l| snap.listener_for(l))
        .is_some_and(|i| snap.listeners[i].proxy_protocol);
    if !expects {
        return Ok(peer);
    }
    if !snap.client_ip.is_trusted(peer) {
        return Err("PROXY protocol from an untrusted peer");
    }
    let timeout = snap.config.limits.request_header_timeout.0;
    let header = tokio::time::timeout(timeout, read_proxy_header(stream))
        .await
        .map_err(|_| "PROXY protocol header timed out")??;
    let Some(source) = header else {
        return Ok(peer);
    };
    let digest = pingora::protocols::SocketDigest::from_raw_fd(stream.as_raw_fd());
    let _ = digest
        .peer_addr
        .set(Some(pingora::protocols::l4::socket::SocketAddr::Inet(
            source,
        )));
    stream.set_socket_digest(digest);
    Ok(source.ip().to_canonical())
}

/// Reads exactly the PROXY header; bytes read past it are put back for TLS or HTTP.
async fn read_proxy_header(
    stream: &mut L4Stream,
) -> Result<Option<std::net::SocketAddr>, &'static str> {
    use rampart_net::proxy_protocol::{parse, Parse};
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        match parse(&buf) {
            Parse::Done(h) => {
                if buf.len() > h.len {
                    stream.rewind(&buf[h.len..]);
                }
                return Ok(h.source);
            }
            Parse::Invalid(reason) => return Err(reason),
            Parse::Incomplete => {}
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| "connection failed before its PROXY header")?;
        if n == 0 {
            return Err("connection closed before its PROXY header");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Prefiltered<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let id = stream.id();
        let digest = stream.get_socket_digest();
        let peer = digest
            .as_ref()
            .and_then(|d| d.peer_addr())
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let local = digest
            .as_ref()
            .and_then(|d| d.local_addr())
            .and_then(|a| a.as_inet())
            .copied();
        // A new connection on a PROXY protocol listener: the header names the client.
        let (stream, peer) = match (peer, stream.as_any().is::<L4Stream>()) {
            (Some(ip), true) if !self.conns.is_open(id, &digest) => {
                let mut l4: Box<L4Stream> = stream.into_any().downcast().ok()?;
                let snap = self.state.load_full();
                match accept(&snap, &mut l4, ip, local).await {
                    Ok(client) => (l4 as Stream, Some(client)),
                    Err(reason) => {
                        metrics().rejected.with_label_values(&[reason]).inc();
                        let rid = crate::framing::new_request_id();
                        record_refusal(
                            &self.state,
                            &self.events,
                            peer,
                            &[],
                            "proxy_protocol",
                            0,
                            reason,
                            rid,
                        );
                        return None;
                    }
                }
            }
            _ => (stream, peer),
        };
        // The PROXY header may have replaced the digest: the connection is the new one.
        let who: Identity = stream.get_socket_digest();
        if let Some(ip) = peer {
            let refused = crate::network::refused_at_accept(&self.state.load(), ip, local);
            if let Some(reason) = refused {
                metrics().rejected.with_label_values(&[reason]).inc();
                let id = crate::framing::new_request_id();
                record_refusal(
                    &self.state,
                    &self.events,
                    peer,
                    &[],
                    "network",
                    0,
                    reason,
                    id,
                );
                return None;
            }
            let limits = {
                let snap = self.state.load();
                match local.and_then(|l| snap.listener_for(l)) {
                    Some(i) => ConnLimits {
                        per_ip: snap.listeners[i].max_connections_per_ip,
                        listener: snap.listeners[i].max_connections,
                        total: snap.config.server.max_connections,
                    },
                    None => ConnLimits::default(),
                }
            };
            let port = local.map_or(0, |l| l.port());
            if let Err(why) = self.conns.enter(id, &who, ip, port, limits) {
                metrics().rejected.with_label_values(&[why]).inc();
                // Plain HTTP gets a 503; a TLS connection is closed.
                let l4 = stream.into_any().downcast::<L4Stream>().ok();
                let (id, status) = match l4 {
                    Some(mut l4) => (refuse(&mut l4, 503, "too many connections").await, 503),
                    None => (new_request_id(), 0),
                };
                record_refusal(
                    &self.state,
                    &self.events,
                    peer,
                    &[],
                    "connections",
                    status,
                    why,
                    id,
                );
                return None;
            }
        }
        let out = self.serve(stream, shutdown, peer).await;
        if out.is_none() {
            self.conns.leave(id, &who);
            if let Some(k) = crate::hello::key(who.as_deref()) {
                crate::hello::forget(&k);
            }
        }
        out
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

impl<A: ServerApp + Send + Sync + 'static> Prefiltered<A> {
    async fn serve(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
        peer: Option<IpAddr>,
    ) -> Option<Stream> {
        let stream = if stream.as_any().is::<L4Stream>() {
            let mut l4: Box<L4Stream> = stream.into_any().downcast().ok()?;
            let mut shutdown = shutdown.clone();
            let head = tokio::select! {
                r = self.read_header_block(&mut *l4, peer) => r.ok()?,
                _ = shutdown.changed() => return None,
            };
            if head.len() < H2_PREFACE.len() {
                // Pingora's h2c check waits for a preface's worth of bytes from a plain
                // stream: a request shorter than that is served through `Replayed`, whose
                // peek answers from what arrived.
                let mut wrapped = Box::new(Replayed::new(l4 as Stream));
                wrapped.rewind(&head);
                wrapped as Stream
            } else {
                l4.rewind(&head);
                l4 as Stream
            }
        } else if stream.as_any().is::<Replayed>() || is_tls_http1(&stream) {
            // HTTPS (HTTP/1): the same checks on the decrypted bytes, replayed by the
            // wrapper (kept for the connection's later requests). HTTP/2 frames its own
            // messages and is left to Pingora.
            let mut wrapped: Box<Replayed> = if stream.as_any().is::<Replayed>() {
                stream.into_any().downcast().ok()?
            } else {
                Box::new(Replayed::new(stream))
            };
            let mut shutdown = shutdown.clone();
            let head = tokio::select! {
                r = self.read_header_block(&mut *wrapped, peer) => r.ok()?,
                _ = shutdown.changed() => return None,
            };
            wrapped.rewind(&head);
            wrapped as Stream
        } else {
            stream
        };
        self.inner.process_new(stream, shutdown).await
    }
}

/// Refuse with Rampart's JSON error and close; returns the request id it carried.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, status: u16, message: &str) -> String {
    let id = new_request_id();
    let body = error_body(message, &id);
    let h = error_header(status, body.len(), &id);
    let reason = h.status.canonical_reason().unwrap_or("Error");
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in h.headers.iter() {
        out.push_str(&format!("{}: {}\r\n", k.as_str(), v.to_str().unwrap_or("")));
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&body);
    let _ = stream.write_all(&bytes).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
    id
}

impl<A> Prefiltered<A> {
    /// Reads one request's header block (refusing what is slow, large or malformed) and
    /// returns the bytes read, for the caller to hand back to the stream.
    async fn read_header_block<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &self,
        stream: &mut S,
        peer: Option<IpAddr>,
    ) -> pingora::Result<Vec<u8>> {
        let (max, limit) = {
            let snap = self.state.load();
            let l = &snap.config.limits;
            (l.max_header_bytes.0 as usize, l.request_header_timeout.0)
        };
        let deadline = Instant::now() + limit;
        let mut buf: Vec<u8> = Vec::with_capacity(2048);
        let mut chunk = [0u8; 4096];
        loop {
            let before = buf.len();
            let n = match timeout_at(deadline, stream.read(&mut chunk)).await {
                Err(_) => {
                    if !buf.is_empty() {
                        metrics()
                            .rejected
                            .with_label_values(&["header timeout"])
                            .inc();
                        let id = refuse(stream, 408, "request header timeout").await;
                        record_refusal(
                            &self.state,
                            &self.events,
                            peer,
                            &buf,
                            "header_timeout",
                            408,
                            "request header timeout",
                            id,
                        );
                    }
                    return pingora::Error::e_explain(
                        pingora::ErrorType::ReadTimedout,
                        "request header timeout",
                    );
                }
                Ok(Ok(0)) => {
                    return pingora::Error::e_explain(
                        pingora::ErrorType::ConnectionClosed,
                        "closed before a request",
                    )
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    return pingora::Error::e_because(pingora::ErrorType::ReadError, "pre-read", e)
                }
            };
            buf.extend_from_slice(&chunk[..n]);
            if framing::head_complete(&buf, before) {
                if let Err((status, reason)) = framing::check_head(&buf) {
                    metrics().rejected.with_label_values(&[reason]).inc();
                    let message = if status == 431 {
                        "request header fields too large"
                    } else {
                        "bad request"
                    };
                    let id = refuse(stream, status, message).await;
                    let stage = if status == 431 {
                        "header_limits"
                    } else {
                        "framing"
                    };
                    record_refusal(
                        &self.state,
                        &self.events,
                        peer,
                        &buf,
                        stage,
                        status,
                        reason,
                        id,
                    );
                    return pingora::Error::e_explain(
                        pingora::ErrorType::InvalidHTTPHeader,
                        reason,
                    );
                }
                break;
            }
            if buf.len() > max {
                metrics()
                    .rejected
                    .with_label_values(&["headers over limit"])
                    .inc();
                let id = refuse(stream, 431, "request header fields too large").await;
                record_refusal(
                    &self.state,
                    &self.events,
                    peer,
                    &buf,
                    "header_limits",
                    431,
                    "headers over limit",
                    id,
                );
                return pingora::Error::e_explain(
                    pingora::ErrorType::InvalidHTTPHeader,
                    "request header too large",
                );
            }
        }
        Ok(buf)
    }
}

/// Streams whose pre-read bytes can be handed back for Pingora to parse.
trait Rewind {
    fn rewind(&mut self, data: &[u8]);
}

impl Rewind for L4Stream {
    fn rewind(&mut self, data: &[u8]) {
        L4Stream::rewind(self, data)
    }
}

fn is_tls_http1(stream: &Stream) -> bool {
    stream.get_ssl_digest().is_some() && !matches!(stream.selected_alpn_proto(), Some(ALPN::H2))
}

/// A TLS connection whose decrypted header bytes the pre-filter read: they are served
/// again, first, to whoever reads next (Pingora). Everything else is the inner stream's.
#[derive(Debug)]
pub struct Replayed {
    inner: Stream,
    prefix: Vec<u8>,
    pos: usize,
}

impl Replayed {
    fn new(inner: Stream) -> Replayed {
        Replayed {
            inner,
            prefix: Vec::new(),
            pos: 0,
        }
    }
}

impl Rewind for Replayed {
    fn rewind(&mut self, data: &[u8]) {
        let mut all = data.to_vec();
        all.extend_from_slice(&self.prefix[self.pos..]);
        self.prefix = all;
        self.pos = 0;
    }
}

impl AsyncRead for Replayed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.pos);
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut *this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replayed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Replayed {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await
    }
}

impl UniqueID for Replayed {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Replayed {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Replayed {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> std::time::Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> std::time::Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Replayed {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Replayed {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, d: pingora::protocols::SocketDigest) {
        self.inner.set_socket_digest(d)
    }
}

/// What Pingora peeks for on cleartext connections to tell h2c from HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[async_trait]
impl Peek for Replayed {
    /// Pingora peeks exactly the HTTP/2 preface's length (24 bytes) to detect h2c, and a
    /// plain TCP stream's peek waits until that many bytes arrived: an HTTP/1.0 request
    /// shorter than that (`GET / HTTP/1.0\r\n\r\n`) was never answered. Bytes that already
    /// differ from the preface cannot become it, so the peek answers with what is here,
    /// padded (the caller only compares with the preface); otherwise it reads on.
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        loop {
            let have = &self.prefix[self.pos..];
            if have.len() >= buf.len() {
                buf.copy_from_slice(&have[..buf.len()]);
                return Ok(true);
            }
            if !have.is_empty() && !H2_PREFACE.starts_with(have) {
                buf.fill(0);
                buf[..have.len()].copy_from_slice(have);
                return Ok(true);
            }
            let mut more = [0u8; 64];
            let n = self.inner.read(&mut more).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.prefix.drain(..self.pos);
            self.pos = 0;
            self.prefix.extend_from_slice(&more[..n]);
        }
    }
}

/// A refusal before Pingora parsed a request: the metric, an access-log line and a security
/// event. Method, target and Host are read best-effort from the raw head (`buf`, possibly
/// empty; it may be what was malformed), secrets redacted.
#[allow(clippy::too_many_arguments)]
fn record_refusal(
    state: &ArcSwap<Snapshot>,
    events: &rampart_events::Events,
    peer: Option<IpAddr>,
    buf: &[u8],
    stage: &str,
    status: u16,
    reason: &str,
    id: String,
) {
    metrics().blocked.with_label_values(&["-", stage]).inc();
    let snap = state.load();
    crate::dashboard::record(
        Some(&snap),
        "-",
        status,
        std::time::Duration::ZERO,
        Some(stage),
        &[],
        peer,
        None,
    );
    let wants_log = crate::access_log::enabled();
    if !events.enabled() && !wants_log {
        return;
    }
    let head = &buf[..buf.len().min(8192)];
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().splitn(3, ' ');
    let method: String = parts.next().unwrap_or("").chars().take(32).collect();
    let uri: String = parts.next().unwrap_or("").chars().take(2048).collect();
    let uri = {
        let e = &snap.config.events;
        let mut params = e.redact_query.clone();
        params.extend(snap.config.auth.api_key.query.clone());
        rampart_events::redact::redact_pairs(&uri, &params)
    };
    let host = head
        .split(|b| *b == b'\n')
        .skip(1)
        .find_map(|l| {
            let l = String::from_utf8_lossy(l);
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("host")
                .then(|| v.trim().chars().take(255).collect::<String>())
        })
        .unwrap_or_default();
    if wants_log {
        // Every refusal gets an access-log line, like requests Pingora parsed.
        let path = uri.split('?').next().unwrap_or("");
        let line = serde_json::json!({
            "ts": rampart_events::Event::now_ts(),
            "request_id": id,
            "client_ip": peer.map(|i| i.to_string()),
            "method": method,
            "host": host,
            "path": path,
            "status": status,
            "refused_by": stage,
            "reason": reason,
        });
        crate::access_log::write(line.to_string());
    }
    if !events.enabled() {
        return;
    }
    let mut e = rampart_events::Event::notice("block", reason.into());
    e.stage = stage.into();
    e.request_id = id;
    e.client_ip = peer.map(|i| i.to_string());
    e.method = method;
    e.host = host;
    e.uri = uri;
    e.status = status;
    events.emit(e);
}
