//! The TLS ClientHello of each connection, for the bot verdict and the access log. The
//! pre-TLS hook (`prefilter::AcceptGate`) reads the hello's records before rustls does
//! (and puts them back); the fingerprint is kept here by the connection's addresses until
//! the connection ends. rustls shows a parsed hello without its extension list, and JA4
//! needs the list, so the raw bytes are read.
//!
//! A hello is kept from the handshake (pending) and marked live when the connection's
//! first request arrives; pending entries of handshakes that never finished are swept by
//! age, live ones leave with their connection, so a long-lived connection keeps its
//! fingerprint.

use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::GetSocketDigest;
use rampart_bots::tls::{parse, ClientHello, Hello, MAX_HELLO};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// A connection: its peer and local addresses (unique among open connections).
pub(crate) type Key = (SocketAddr, SocketAddr);

struct Entry {
    hello: Arc<ClientHello>,
    at: Instant,
    live: bool,
}

const SHARDS: usize = 16;
/// Pending hellos older than this belong to handshakes that failed.
const PENDING_AGE: Duration = Duration::from_secs(60);
/// A shard is swept when it grows past this, and refuses new pending entries past 8×.
const SWEEP_AT: usize = 1024;

fn shards() -> &'static [Mutex<HashMap<Key, Entry>>] {
    static S: OnceLock<Vec<Mutex<HashMap<Key, Entry>>>> = OnceLock::new();
    S.get_or_init(|| (0..SHARDS).map(|_| Mutex::default()).collect())
}

fn shard(k: &Key) -> std::sync::MutexGuard<'static, HashMap<Key, Entry>> {
    let h = rampart_limits::local::hash_with(|h| std::hash::Hash::hash(k, h));
    shards()[(h % SHARDS as u64) as usize]
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// A connection's addresses from its socket digest.
pub(crate) fn key(d: Option<&pingora::protocols::SocketDigest>) -> Option<Key> {
    let d = d?;
    let peer = *d.peer_addr()?.as_inet()?;
    let local = *d.local_addr()?.as_inet()?;
    Some((peer, local))
}

fn remember(k: Key, hello: Arc<ClientHello>) {
    let mut s = shard(&k);
    if s.len() >= SWEEP_AT {
        let now = Instant::now();
        s.retain(|_, e| e.live || now.duration_since(e.at) < PENDING_AGE);
        if s.len() >= SWEEP_AT * 8 {
            return;
        }
    }
    s.insert(
        k,
        Entry {
            hello,
            at: Instant::now(),
            live: false,
        },
    );
}

/// The connection's hello; marks it live (kept until [`forget`]).
pub(crate) fn get(k: &Key) -> Option<Arc<ClientHello>> {
    let mut s = shard(k);
    let e = s.get_mut(k)?;
    e.live = true;
    Some(e.hello.clone())
}

/// The connection ended.
pub(crate) fn forget(k: &Key) {
    shard(k).remove(k);
}

/// Reads the client's first TLS records up to a complete ClientHello (within `timeout`)
/// and puts every byte back for rustls. A hello that does not parse is left to rustls to
/// refuse; `Err` only when the client is too slow. Returns the hello when it parsed.
pub(crate) async fn read(
    stream: &mut L4Stream,
    timeout: Duration,
) -> Result<Option<Arc<ClientHello>>, &'static str> {
    let k = key(stream.get_socket_digest().as_deref());
    let mut buf = Vec::with_capacity(2048);
    let outcome = tokio::time::timeout(timeout, async {
        let mut chunk = [0u8; 4096];
        loop {
            match parse(&buf) {
                Hello::Done(h) => return Ok(Some(h)),
                Hello::Invalid(_) => return Ok(None),
                Hello::Incomplete(_) if buf.len() >= MAX_HELLO => return Ok(None),
                Hello::Incomplete(_) => {}
            }
            let want = (MAX_HELLO - buf.len()).min(chunk.len());
            match stream.read(&mut chunk[..want]).await {
                // Health checks and scanners connect and leave: nothing to report.
                Ok(0) | Err(_) => return Ok(None),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    stream.rewind(&buf);
    match outcome {
        Ok(Ok(Some(h))) => {
            let h = Arc::new(h);
            if let Some(k) = k {
                remember(k, h.clone());
            }
            Ok(Some(h))
        }
        Ok(Ok(None)) => Ok(None),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("TLS hello timed out"),
    }
}
