//! Connection pre-filter for plain-HTTP listeners: the first request's header block must
//! arrive completely within `request_header_timeout` (slowloris) and fit in
//! `max_header_bytes` (431), before Pingora parses it. Pingora's own read timeout is per
//! read, so a client dribbling one byte at a time would otherwise hold a connection forever.
//! The bytes read are handed back to the stream untouched.

use crate::framing::new_request_id;
use crate::metrics::metrics;
use crate::proxy::{error_body, error_header};
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream as L4Stream;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

pub struct HeaderDeadline {
    pub state: Arc<ArcSwap<Snapshot>>,
}

fn find_header_end(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(3);
    buf[start..].windows(4).any(|w| w == b"\r\n\r\n")
}

async fn refuse(stream: &mut L4Stream, status: u16, message: &str) {
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
}

#[async_trait]
impl PreTlsProcess for HeaderDeadline {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
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
                        metrics().rejected.with_label_values(&["header timeout"]).inc();
                        refuse(stream, 408, "request header timeout").await;
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
            if find_header_end(&buf, before) {
                break;
            }
            if buf.len() > max {
                metrics().rejected.with_label_values(&["headers over limit"]).inc();
                refuse(stream, 431, "request header fields too large").await;
                return pingora::Error::e_explain(
                    pingora::ErrorType::InvalidHTTPHeader,
                    "request header too large",
                );
            }
        }
        stream.rewind(&buf);
        Ok(())
    }
}
